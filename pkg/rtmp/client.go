package rtmp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"sluice/pkg/amf0"
	"sluice/pkg/av"
	"sluice/pkg/connstat"
	"sluice/pkg/flv"
)

// ClientOptions tune a client session. Zero values take the defaults.
type ClientOptions struct {
	// Timeout bounds dialing, the handshake and the connect/publish/play
	// exchange. Default 10 s.
	Timeout time.Duration
	// ReadTimeout bounds each read of a playing session. Default 10 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write. Default 10 s.
	WriteTimeout time.Duration
	// FlashVer is sent in connect. Default "FMLE/3.0 (compatible; sluice)".
	FlashVer string
	// ComplexHandshake sends a digest C1.
	ComplexHandshake bool
	Limits           ReaderLimits
}

// ClientSession is an outgoing RTMP connection that publishes (push) or
// plays (pull) one stream.
type ClientSession struct {
	opt      ClientOptions
	conn     *connstat.Conn
	cr       *ChunkReader
	app      string
	tcURL    string
	name     string // stream name with query
	streamID uint32
	writeMu  sync.Mutex
	wbuf     []byte
	txn      float64
	peerWin  uint32
	lastAck  uint64
	closing  sync.Once
}

// ParseURL splits an RTMP URL into the tcUrl, the app and the stream name
// (with its query), the way ffmpeg does for a one-level app:
// rtmp://h:1935/live/test110?k=v → rtmp://h:1935/live, live, test110?k=v.
func ParseURL(raw string) (addr, tcURL, app, name string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", "", fmt.Errorf("rtmp: url %q: %w", raw, err)
	}
	if u.Scheme != "rtmp" {
		return "", "", "", "", fmt.Errorf("rtmp: url %q: scheme %q is not rtmp", raw, u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1935")
	}
	path := strings.TrimPrefix(u.Path, "/")
	i := strings.IndexByte(path, '/')
	// i == 0 is an empty app (rtmp://h//stream), as lal's static pull builds
	// for a group created without one.
	if i < 0 || i == len(path)-1 {
		return "", "", "", "", fmt.Errorf("rtmp: url %q has no app/stream path", raw)
	}
	app, name = path[:i], path[i+1:]
	if u.RawQuery != "" {
		name += "?" + u.RawQuery
	}
	return host, "rtmp://" + u.Host + "/" + app, app, name, nil
}

// Dial connects to an RTMP URL: TCP, handshake and the connect command.
func Dial(ctx context.Context, rawURL string, opt ClientOptions) (*ClientSession, error) {
	addr, tcURL, app, name, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt.Timeout = durationOr(opt.Timeout, 10*time.Second)
	opt.ReadTimeout = durationOr(opt.ReadTimeout, 10*time.Second)
	opt.WriteTimeout = durationOr(opt.WriteTimeout, 10*time.Second)
	if opt.FlashVer == "" {
		opt.FlashVer = "FMLE/3.0 (compatible; sluice)"
	}
	d := net.Dialer{Timeout: opt.Timeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rtmp: dial %s: %w", addr, err)
	}
	c := &ClientSession{opt: opt, conn: connstat.New(raw), app: app, tcURL: tcURL, name: name}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(opt.Timeout))
	br := bufio.NewReaderSize(c.conn, 4096)
	if err := ClientHandshake(struct {
		io.Reader
		io.Writer
	}{br, c.conn}, opt.ComplexHandshake); err != nil {
		raw.Close()
		return nil, fmt.Errorf("rtmp: handshake with %s: %w", addr, err)
	}
	c.cr = NewChunkReader(br, opt.Limits)
	if err := c.connect(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// RemoteAddr returns the server's address.
func (c *ClientSession) RemoteAddr() string { return c.conn.RemoteAddr().String() }

// ReadBytes returns the bytes read from the socket.
func (c *ClientSession) ReadBytes() uint64 { return c.conn.ReadBytes() }

// WrittenBytes returns the bytes written to the socket.
func (c *ClientSession) WrittenBytes() uint64 { return c.conn.WrittenBytes() }

// Close closes the connection.
func (c *ClientSession) Close() error {
	var err error
	c.closing.Do(func() { err = c.conn.Close() })
	return err
}

func (c *ClientSession) connect() error {
	// Everything we send is chunked at OutChunkSize: say so first.
	c.writeMu.Lock()
	c.wbuf = AppendSetChunkSize(c.wbuf[:0], OutChunkSize)
	err := c.flushLocked()
	c.writeMu.Unlock()
	if err != nil {
		return err
	}
	err = c.writeCommand(csidCommand, 0, "connect", amf0.Object{
		{Key: "app", Value: c.app},
		{Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: c.opt.FlashVer},
		{Key: "tcUrl", Value: c.tcURL},
	})
	if err != nil {
		return err
	}
	_, err = c.waitResult("connect")
	return err
}

// Publish asks to publish the URL's stream and waits for NetStream.Publish.Start.
func (c *ClientSession) Publish() error {
	if err := c.createStream(); err != nil {
		return err
	}
	if err := c.writeCommand(csidCommand, c.streamID, "publish", nil, c.name, "live"); err != nil {
		return err
	}
	return c.waitStatus("NetStream.Publish.Start")
}

// Play asks to play the URL's stream and waits for NetStream.Play.Start.
func (c *ClientSession) Play() error {
	if err := c.createStream(); err != nil {
		return err
	}
	if err := c.writeCommand(csidCommand, c.streamID, "play", nil, c.name, -2000.0); err != nil {
		return err
	}
	return c.waitStatus("NetStream.Play.Start")
}

func (c *ClientSession) createStream() error {
	if err := c.writeCommand(csidCommand, 0, "createStream", nil); err != nil {
		return err
	}
	vals, err := c.waitResult("createStream")
	if err != nil {
		return err
	}
	if len(vals) < 4 {
		return errors.New("rtmp: createStream result without a stream id")
	}
	id, ok := vals[3].(float64)
	if !ok {
		return fmt.Errorf("rtmp: createStream result stream id is %T", vals[3])
	}
	c.streamID = uint32(id)
	return nil
}

// waitResult reads messages until the _result of the last command.
func (c *ClientSession) waitResult(what string) ([]any, error) {
	for {
		vals, err := c.nextCommand()
		if err != nil {
			return nil, fmt.Errorf("rtmp: waiting for %s result: %w", what, err)
		}
		name, _ := vals[0].(string)
		txn, _ := vals[1].(float64)
		switch {
		case name == "_result" && txn == c.txn:
			return vals, nil
		case name == "_error" && txn == c.txn:
			return nil, fmt.Errorf("rtmp: %s refused: %s", what, describeStatus(vals))
		}
	}
}

// waitStatus reads messages until an onStatus; anything but code is an error.
func (c *ClientSession) waitStatus(code string) error {
	for {
		vals, err := c.nextCommand()
		if err != nil {
			return fmt.Errorf("rtmp: waiting for %s: %w", code, err)
		}
		if name, _ := vals[0].(string); name != "onStatus" {
			continue
		}
		if got := statusCode(vals); got != code {
			return fmt.Errorf("rtmp: got %s (%s), want %s", got, describeStatus(vals), code)
		}
		c.conn.SetDeadline(time.Time{})
		return nil
	}
}

func statusCode(vals []any) string {
	for _, v := range vals[2:] {
		if o, ok := v.(amf0.Object); ok {
			if s, ok := o.GetString("code"); ok {
				return s
			}
		}
	}
	return ""
}

func describeStatus(vals []any) string {
	for _, v := range vals[2:] {
		if o, ok := v.(amf0.Object); ok {
			code, _ := o.GetString("code")
			desc, _ := o.GetString("description")
			if code != "" || desc != "" {
				return strings.TrimSpace(code + " " + desc)
			}
		}
	}
	return "no status"
}

// nextCommand reads until the next command message, handling control ones.
func (c *ClientSession) nextCommand() ([]any, error) {
	for {
		msg, err := c.readMessage()
		if err != nil {
			return nil, err
		}
		payload := msg.Payload
		switch msg.TypeID {
		case TypeCommandAMF3:
			if len(payload) == 0 {
				continue
			}
			payload = payload[1:]
		case TypeCommandAMF0:
		default:
			continue
		}
		vals, err := amf0.Decode(payload)
		if err != nil {
			return nil, fmt.Errorf("rtmp: command: %w", err)
		}
		if len(vals) < 2 {
			continue
		}
		return vals, nil
	}
}

// readMessage reads one message, answering control messages.
func (c *ClientSession) readMessage() (*Message, error) {
	for {
		msg, err := c.cr.ReadMessage()
		if err != nil {
			return nil, err
		}
		if c.peerWin > 0 {
			if n := c.conn.ReadBytes(); n-c.lastAck >= uint64(c.peerWin) {
				c.lastAck = n
				c.writeControl(func(b []byte) []byte { return AppendAck(b, uint32(n)) })
			}
		}
		switch msg.TypeID {
		case TypeWindowAckSize:
			if v, err := ParseUint32(msg.Payload); err == nil {
				c.peerWin = v
			}
			continue
		case TypeUserControl:
			ev, arg, _, err := ParseUserControl(msg.Payload)
			if err == nil && ev == EventPingRequest {
				if err := c.writeControl(func(b []byte) []byte { return AppendUserControl(b, EventPingResponse, arg) }); err != nil {
					return nil, err
				}
			}
			continue
		case TypeSetChunkSize, TypeAbort, TypeAck, TypeSetPeerBandwidth:
			continue
		}
		return msg, nil
	}
}

// ReadPacket returns the next media packet of a playing session.
func (c *ClientSession) ReadPacket() (*av.Packet, error) {
	for {
		c.conn.SetReadDeadline(time.Now().Add(c.opt.ReadTimeout))
		msg, err := c.readMessage()
		if err != nil {
			return nil, err
		}
		switch msg.TypeID {
		case TypeAudio, TypeVideo:
		case TypeDataAMF0:
			if name, _, err := amf0.DecodeOne(msg.Payload); err != nil || (name != "onMetaData" && name != "@setDataFrame") {
				continue
			}
		case TypeCommandAMF0:
			vals, err := amf0.Decode(msg.Payload)
			if err == nil && len(vals) > 0 && vals[0] == "onStatus" {
				if code := statusCode(vals); strings.HasPrefix(code, "NetStream.Play.Stop") || strings.HasSuffix(code, "UnpublishNotify") {
					return nil, io.EOF
				}
			}
			continue
		default:
			continue
		}
		pkt, err := packetFromMessage(msg.TypeID, msg.Timestamp, msg.Payload)
		if err != nil {
			return nil, err
		}
		return pkt, nil
	}
}

// WritePacket sends one packet of a publishing session. Metadata is sent
// with @setDataFrame, as publishers do.
func (c *ClientSession) WritePacket(pkt *av.Packet) error {
	payload := pkt.Payload
	var csid uint32
	switch pkt.Kind {
	case av.KindAudio:
		csid = csidAudio
	case av.KindVideo:
		csid = csidVideo
	case av.KindData:
		csid = csidData
		if !flv.IsSetDataFrame(payload) {
			payload = flv.AddSetDataFrame(payload)
		}
	default:
		return fmt.Errorf("rtmp: packet kind %v cannot be sent", pkt.Kind)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.wbuf = AppendChunks(c.wbuf[:0], csid, uint8(pkt.Kind), c.streamID, uint32(pkt.Timestamp), payload, OutChunkSize)
	return c.flushLocked()
}

// MediaStreamID is the message stream id of the chunks Muxer and PushMuxer
// make; WriteChunks needs the server to have given the same id.
const MediaStreamID = mediaStreamID

// StreamID returns the message stream id the server gave in createStream.
func (c *ClientSession) StreamID() uint32 { return c.streamID }

// WriteChunks sends already chunked messages (PushMuxer's shared bytes) with
// one writev. They must use chunk size OutChunkSize and message stream id
// MediaStreamID.
func (c *ClientSession) WriteChunks(bufs [][]byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	nb := net.Buffers(bufs)
	_, err := c.conn.WriteBuffers(&nb)
	return err
}

func (c *ClientSession) writeCommand(csid, streamID uint32, name string, cmdObj any, args ...any) error {
	c.txn++
	vals := append([]any{name, c.txn, cmdObj}, args...)
	body, err := amf0.Append(nil, vals...)
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.wbuf = AppendChunks(c.wbuf[:0], csid, TypeCommandAMF0, streamID, 0, body, OutChunkSize)
	return c.flushLocked()
}

func (c *ClientSession) writeControl(build func([]byte) []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.wbuf = build(c.wbuf[:0])
	return c.flushLocked()
}

func (c *ClientSession) flushLocked() error {
	c.conn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_, err := c.conn.Write(c.wbuf)
	return err
}
