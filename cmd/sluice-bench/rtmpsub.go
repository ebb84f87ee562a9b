package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sluice/pkg/amf0"
	"sluice/pkg/flv"
	"sluice/pkg/rtmp"
)

// rtmpReader is a lean RTMP chunk-stream reader for a playing client: it
// reassembles only what it must look at. Audio and video bodies are never
// copied (their first bytes are kept to classify the frame, the rest is
// discarded in the bufio.Reader); control, command and aggregate messages
// are captured into a per-chunk-stream buffer that is reused.
type rtmpReader struct {
	in        *input
	br        *bufio.Reader
	chunkSize uint32
	low       [64]*rtmpCS
	high      map[uint32]*rtmpCS
	nstreams  int
	// Acknowledgements: the peer's window and what was acknowledged.
	peerWin uint32
	lastAck uint64
	read    func() uint64 // bytes read from the socket so far
	w       io.Writer     // for acks and ping responses; nil: none sent
	wbuf    [32]byte
}

// rtmpCS is the state of one chunk stream.
type rtmpCS struct {
	csid      uint32
	timestamp uint32
	delta     uint32
	length    uint32
	typeID    uint8
	streamID  uint32
	extended  bool
	hasHeader bool
	inMessage bool
	remaining uint32
	head      [headPeek]byte
	headLen   uint8
	capture   bool
	payload   []byte // captured body of a non-media message
}

const (
	maxCapture      = 1 << 20 // largest non-media message captured
	maxChunkStreams = 64
)

func newRTMPReader(in *input, read func() uint64, w io.Writer) *rtmpReader {
	return &rtmpReader{in: in, br: in.br, chunkSize: 128, read: read, w: w}
}

func (r *rtmpReader) stream(csid uint32) (*rtmpCS, error) {
	var cs *rtmpCS
	if csid < 64 {
		cs = r.low[csid]
	} else {
		cs = r.high[csid]
	}
	if cs != nil {
		return cs, nil
	}
	if r.nstreams >= maxChunkStreams {
		return nil, fmt.Errorf("rtmp: more than %d chunk streams", maxChunkStreams)
	}
	r.nstreams++
	cs = &rtmpCS{csid: csid}
	if csid < 64 {
		r.low[csid] = cs
	} else {
		if r.high == nil {
			r.high = map[uint32]*rtmpCS{}
		}
		r.high[csid] = cs
	}
	return cs, nil
}

// take returns the next n bytes (n <= 16) and consumes them; the slice is
// valid until the next read.
func (r *rtmpReader) take(n int) ([]byte, error) {
	b, err := r.br.Peek(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	r.br.Discard(n)
	return b, nil
}

// readChunk reads one chunk; it returns the chunk stream whose message it
// completes, or nil.
func (r *rtmpReader) readChunk() (*rtmpCS, error) {
	b0, err := r.br.ReadByte()
	if err != nil {
		return nil, err
	}
	format := b0 >> 6
	csid := uint32(b0 & 0x3f)
	switch csid {
	case 0:
		b, err := r.take(1)
		if err != nil {
			return nil, err
		}
		csid = 64 + uint32(b[0])
	case 1:
		b, err := r.take(2)
		if err != nil {
			return nil, err
		}
		csid = 64 + uint32(b[0]) + uint32(b[1])<<8
	}
	cs, err := r.stream(csid)
	if err != nil {
		return nil, err
	}
	start := false
	switch format {
	case 0, 1, 2:
		if cs.inMessage {
			return nil, fmt.Errorf("rtmp: fmt %d chunk on csid %d inside a message", format, csid)
		}
		if format != 0 && !cs.hasHeader {
			return nil, fmt.Errorf("rtmp: fmt %d chunk on csid %d with no previous header", format, csid)
		}
		h, err := r.take([3]int{11, 7, 3}[format])
		if err != nil {
			return nil, err
		}
		ts := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		if format <= 1 {
			cs.length = uint32(h[3])<<16 | uint32(h[4])<<8 | uint32(h[5])
			cs.typeID = h[6]
		}
		if format == 0 {
			cs.streamID = binary.LittleEndian.Uint32(h[7:11])
		}
		cs.extended = ts == 0xffffff
		if cs.extended {
			e, err := r.take(4)
			if err != nil {
				return nil, err
			}
			ts = binary.BigEndian.Uint32(e)
		}
		if format == 0 {
			cs.timestamp = ts
		} else {
			cs.timestamp += ts
		}
		cs.delta = ts
		cs.hasHeader = true
		start = true
	case 3:
		if !cs.hasHeader {
			return nil, fmt.Errorf("rtmp: fmt 3 chunk on csid %d with no previous header", csid)
		}
		if cs.extended {
			e, err := r.take(4)
			if err != nil {
				return nil, err
			}
			if !cs.inMessage {
				cs.delta = binary.BigEndian.Uint32(e)
			}
		}
		if !cs.inMessage {
			cs.timestamp += cs.delta
			start = true
		}
	}
	if start {
		cs.inMessage = true
		cs.remaining = cs.length
		cs.headLen = 0
		cs.payload = cs.payload[:0]
		cs.capture = cs.typeID != rtmp.TypeAudio && cs.typeID != rtmp.TypeVideo && cs.typeID != rtmp.TypeDataAMF0
		if cs.capture && cs.length > maxCapture {
			return nil, fmt.Errorf("rtmp: message type %d of %d bytes is too large", cs.typeID, cs.length)
		}
	}
	n := min(cs.remaining, r.chunkSize)
	switch {
	case cs.capture:
		l := len(cs.payload)
		if cap(cs.payload) < l+int(n) {
			cs.payload = append(make([]byte, 0, max(int(cs.length), 64)), cs.payload...)
		}
		cs.payload = cs.payload[:l+int(n)]
		if _, err := io.ReadFull(r.br, cs.payload[l:]); err != nil {
			return nil, noEOF(err)
		}
	default:
		if k := min(int(n), headPeek-int(cs.headLen)); k > 0 {
			b, err := r.br.Peek(k)
			if err != nil {
				return nil, noEOF(err)
			}
			copy(cs.head[cs.headLen:], b)
			cs.headLen += uint8(k)
		}
		if err := r.in.skip(int(n)); err != nil {
			return nil, noEOF(err)
		}
	}
	cs.remaining -= n
	if cs.remaining > 0 {
		return nil, nil
	}
	cs.inMessage = false
	return cs, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readMessage returns the next complete message that is not protocol
// control; control messages are applied (chunk size, window, pings) on the
// way. The returned chunk stream is valid until the next call.
func (r *rtmpReader) readMessage() (*rtmpCS, error) {
	for {
		cs, err := r.readChunk()
		if err != nil {
			return nil, err
		}
		if cs == nil {
			continue
		}
		if err := r.ackIfDue(); err != nil {
			return nil, err
		}
		switch cs.typeID {
		case rtmp.TypeSetChunkSize:
			v, err := rtmp.ParseUint32(cs.payload)
			if err != nil {
				return nil, err
			}
			v &= 0x7fffffff
			if v == 0 || v > 1<<24 {
				return nil, fmt.Errorf("rtmp: bad chunk size %d", v)
			}
			r.chunkSize = v
		case rtmp.TypeAbort:
			if v, err := rtmp.ParseUint32(cs.payload); err == nil {
				if a := r.lookup(v); a != nil {
					a.inMessage = false
				}
			}
		case rtmp.TypeWindowAckSize:
			if v, err := rtmp.ParseUint32(cs.payload); err == nil {
				r.peerWin = v
			}
		case rtmp.TypeUserControl:
			ev, arg, _, err := rtmp.ParseUserControl(cs.payload)
			if err == nil && ev == rtmp.EventPingRequest && r.w != nil {
				if _, err := r.w.Write(rtmp.AppendUserControl(r.wbuf[:0], rtmp.EventPingResponse, arg)); err != nil {
					return nil, err
				}
			}
		case rtmp.TypeAck, rtmp.TypeSetPeerBandwidth:
		default:
			return cs, nil
		}
	}
}

func (r *rtmpReader) lookup(csid uint32) *rtmpCS {
	if csid < 64 {
		return r.low[csid]
	}
	return r.high[csid]
}

func (r *rtmpReader) ackIfDue() error {
	if r.peerWin == 0 || r.read == nil || r.w == nil {
		return nil
	}
	n := r.read()
	if n-r.lastAck < uint64(r.peerWin) {
		return nil
	}
	r.lastAck = n
	_, err := r.w.Write(rtmp.AppendAck(r.wbuf[:0], uint32(n)))
	return err
}

// handleRTMPMedia records an audio, video or aggregate message in st.
func handleRTMPMedia(cs *rtmpCS, st *subStat, hook frameHook) error {
	switch cs.typeID {
	case rtmp.TypeVideo:
		media, key := videoKind(cs.head[:cs.headLen])
		if media {
			st.onVideo(int64(cs.timestamp)*90, key)
			if hook != nil {
				hook(cs.timestamp)
			}
		}
	case rtmp.TypeAudio:
		if audioMedia(cs.head[:cs.headLen]) {
			st.onAudio(int64(cs.timestamp) * 90)
		}
	case rtmp.TypeAggregate:
		return walkAggregate(cs.payload, cs.timestamp, st, hook)
	}
	return nil
}

// walkAggregate records the FLV tags of an aggregate message; their
// timestamps are offset so that the first one equals the message's.
func walkAggregate(b []byte, msgTS uint32, st *subStat, hook frameHook) error {
	first := true
	var base uint32
	for len(b) >= flv.TagHeaderSize {
		h, err := flv.ParseTagHeader(b)
		if err != nil {
			return err
		}
		end := flv.TagHeaderSize + int(h.DataSize)
		if end > len(b) {
			return errors.New("rtmp: truncated aggregate message")
		}
		if first {
			base, first = h.Timestamp, false
		}
		ts := msgTS + h.Timestamp - base
		body := b[flv.TagHeaderSize:end]
		switch h.Type {
		case flv.TagVideo:
			if media, key := videoKind(body); media {
				st.onVideo(int64(ts)*90, key)
				if hook != nil {
					hook(ts)
				}
			}
		case flv.TagAudio:
			if audioMedia(body) {
				st.onAudio(int64(ts) * 90)
			}
		}
		b = b[min(end+4, len(b)):]
	}
	return nil
}

// rtmpConn is the client side of an RTMP play session before it plays.
type rtmpConn struct {
	r        *rtmpReader
	w        io.Writer
	txn      float64
	streamID uint32
}

func (c *rtmpConn) command(csid, streamID uint32, vals ...any) error {
	body, err := amf0.Append(nil, vals...)
	if err != nil {
		return err
	}
	_, err = c.w.Write(rtmp.AppendChunks(nil, csid, rtmp.TypeCommandAMF0, streamID, 0, body, 128))
	return err
}

// nextCommand returns the next AMF0 command.
func (c *rtmpConn) nextCommand() ([]any, error) {
	for {
		cs, err := c.r.readMessage()
		if err != nil {
			return nil, err
		}
		p := cs.payload
		switch cs.typeID {
		case rtmp.TypeCommandAMF3:
			if len(p) == 0 {
				continue
			}
			p = p[1:]
		case rtmp.TypeCommandAMF0:
		default:
			continue
		}
		vals, err := amf0.Decode(p)
		if err != nil {
			return nil, fmt.Errorf("rtmp: command: %w", err)
		}
		if len(vals) >= 2 {
			return vals, nil
		}
	}
}

func (c *rtmpConn) call(name string, cmdObj any, args ...any) ([]any, error) {
	c.txn++
	txn := c.txn
	if err := c.command(3, 0, append([]any{name, txn, cmdObj}, args...)...); err != nil {
		return nil, err
	}
	for {
		vals, err := c.nextCommand()
		if err != nil {
			return nil, fmt.Errorf("rtmp: waiting for %s result: %w", name, err)
		}
		n, _ := vals[0].(string)
		t, _ := vals[1].(float64)
		if t != txn {
			continue
		}
		switch n {
		case "_result":
			return vals, nil
		case "_error":
			return nil, fmt.Errorf("rtmp: %s refused: %s", name, statusOf(vals))
		}
	}
}

// statusOf returns the code of an onStatus or _error, with its description.
func statusOf(vals []any) string {
	for _, v := range vals[min(2, len(vals)):] {
		if o, ok := v.(amf0.Object); ok {
			code, _ := o.GetString("code")
			desc, _ := o.GetString("description")
			return strings.TrimSpace(code + " " + desc)
		}
	}
	return ""
}

// rtmpPlay does the handshake, connect, createStream and play on a fresh
// connection and waits for NetStream.Play.Start. st.reqAt is set when the
// play command is written.
func rtmpPlay(r *rtmpReader, w io.Writer, tcURL, app, name string, st *subStat) error {
	if err := rtmp.ClientHandshake(struct {
		io.Reader
		io.Writer
	}{r.br, w}, false); err != nil {
		return err
	}
	c := &rtmpConn{r: r, w: w}
	if _, err := c.call("connect", amf0.Object{
		{Key: "app", Value: app},
		{Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: "LNX 9,0,124,2"},
		{Key: "tcUrl", Value: tcURL},
		{Key: "fpad", Value: false},
		{Key: "capabilities", Value: 15.0},
		{Key: "audioCodecs", Value: 4071.0},
		{Key: "videoCodecs", Value: 252.0},
		{Key: "videoFunction", Value: 1.0},
	}); err != nil {
		return err
	}
	vals, err := c.call("createStream", nil)
	if err != nil {
		return err
	}
	if len(vals) < 4 {
		return errors.New("rtmp: createStream result has no stream id")
	}
	id, _ := vals[3].(float64)
	c.streamID = uint32(id)
	// Tell the server our buffer (as ffplay does); then play.
	if _, err := w.Write(rtmp.AppendUserControl(nil, rtmp.EventSetBufferLength, c.streamID, 3000)); err != nil {
		return err
	}
	c.txn++
	st.reqAt = time.Now()
	if err := c.command(8, c.streamID, "play", c.txn, nil, name, -2000.0); err != nil {
		return err
	}
	for {
		vals, err := c.nextCommand()
		if err != nil {
			return fmt.Errorf("rtmp: waiting for NetStream.Play.Start: %w", err)
		}
		if n, _ := vals[0].(string); n == "_error" {
			return fmt.Errorf("rtmp: play refused: %s", statusOf(vals))
		}
		if n, _ := vals[0].(string); n != "onStatus" {
			continue
		}
		s := statusOf(vals)
		switch {
		case strings.HasPrefix(s, "NetStream.Play.Start"):
			return nil
		case strings.HasPrefix(s, "NetStream.Play.Reset"), strings.HasPrefix(s, "NetStream.Data.Start"):
		default:
			if strings.Contains(s, "Failed") || strings.Contains(s, "NotFound") || strings.Contains(s, "BadName") {
				return fmt.Errorf("rtmp: play: %s", s)
			}
		}
	}
}

// readRTMPMedia reads the playing session until an error.
func readRTMPMedia(r *rtmpReader, st *subStat, hook frameHook) error {
	for {
		cs, err := r.readMessage()
		if err != nil {
			return err
		}
		if err := handleRTMPMedia(cs, st, hook); err != nil {
			return err
		}
	}
}
