package rtmp

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/amf0"
	"sluice/pkg/connstat"
	"sluice/pkg/netx"
	"sluice/pkg/streamurl"
)

// StatusError refuses a publish or play with a specific onStatus code (e.g.
// NetStream.Publish.Unauthorized); other errors are told as
// NetStream.Publish.BadName or NetStream.Play.Failed.
type StatusError struct {
	Code string
	Err  error
}

func (e *StatusError) Error() string { return e.Err.Error() }

func (e *StatusError) Unwrap() error { return e.Err }

// Values Sluice announces on connect (as lal).
const (
	windowAckSize     = 5000000
	peerBandwidth     = 5000000
	peerBandwidthType = 2 // dynamic
)

// ServerSession is one RTMP connection accepted by a Server: a publisher or
// a player once it has sent publish or play.
type ServerSession struct {
	srv       *Server
	conn      *connstat.Conn
	br        *bufio.Reader
	id        string
	startTime time.Time

	// Set by connect.
	app, tcURL, flashVer string
	objectEncoding       float64
	// Set by publish or play.
	streamName, urlParam, rawName string
	baseType                      string

	writeMu  sync.Mutex
	writeBuf []byte

	peerWindow   uint32
	lastAckBytes uint64

	publisher Publisher
	lastMedia time.Time // when the publisher last sent audio or video
	sub       Subscription
	subDone   chan struct{}
	push      *netx.Pusher // set when the subscription is served in push mode (push.go)

	closeOnce sync.Once

	// Parking (park.go): a push player with nothing to read has no
	// goroutine; the server's watcher wakes it when the player sends.
	cr         *ChunkReader
	parkMu     sync.Mutex
	parked     bool
	closing    bool
	watchID    uint64
	watch      *netx.Watcher
	finishOnce sync.Once
}

func newServerSession(srv *Server, c net.Conn) *ServerSession {
	id := ""
	if srv.NewSessionID != nil {
		id = srv.NewSessionID()
	}
	conn := connstat.New(c)
	s := &ServerSession{
		srv:       srv,
		conn:      conn,
		br:        bufio.NewReaderSize(conn, 4096),
		id:        id,
		startTime: time.Now(),
		baseType:  "PUBSUB",
	}
	return s
}

// logger returns a logger with the session's fields. It is made at each
// call rather than kept: log lines are few per session, and a kept logger
// (its encoder buffer) is a kilobyte per idle player.
func (s *ServerSession) logger() *zap.Logger {
	return s.srv.logger().With(zap.String("session_id", s.id), zap.String("stream_name", s.streamName),
		zap.String("remote_addr", s.RemoteAddr()))
}

// ID returns the session id, e.g. RTMPPUBSUB1.
func (s *ServerSession) ID() string { return s.id }

// RemoteAddr returns the peer's ip:port.
func (s *ServerSession) RemoteAddr() string { return s.conn.RemoteAddr().String() }

// StartTime returns when the connection was accepted.
func (s *ServerSession) StartTime() time.Time { return s.startTime }

// App returns the app of the connect command.
func (s *ServerSession) App() string { return s.app }

// TcURL returns the tcUrl of the connect command.
func (s *ServerSession) TcURL() string { return s.tcURL }

// FlashVer returns the flashVer of the connect command.
func (s *ServerSession) FlashVer() string { return s.flashVer }

// StreamName returns the stream name of publish or play, without the query.
func (s *ServerSession) StreamName() string { return s.streamName }

// URLParam returns the query of the publish or play name.
func (s *ServerSession) URLParam() string { return s.urlParam }

// URL returns tcUrl + "/" + the publish or play name with its query.
func (s *ServerSession) URL() string {
	return strings.TrimSuffix(s.tcURL, "/") + "/" + s.rawName
}

// BaseType returns "PUB" after publish, "SUB" after play, "PUBSUB" before.
func (s *ServerSession) BaseType() string { return s.baseType }

// ReadBytes returns the bytes read from the socket, handshake included.
func (s *ServerSession) ReadBytes() uint64 { return s.conn.ReadBytes() }

// WrittenBytes returns the bytes written to the socket, handshake included.
func (s *ServerSession) WrittenBytes() uint64 { return s.conn.WrittenBytes() }

// Close ends the session. Safe to call from any goroutine, more than once.
func (s *ServerSession) Close() {
	s.parkMu.Lock()
	s.closing = true
	wasParked := s.parked
	if wasParked {
		s.unwatchLocked()
	}
	s.parkMu.Unlock()
	s.closeOnce.Do(func() { s.conn.Close() })
	if wasParked {
		// No goroutine reads a parked session: end it here, in a goroutine
		// of its own (Close may be called from its writer).
		go s.finish(net.ErrClosed)
	}
}

// run serves the session until it ends or parks.
func (s *ServerSession) run() {
	err := s.serve()
	if errors.Is(err, errParked) {
		return
	}
	s.finish(err)
}

// finish ends the session once: connection, publisher or subscription,
// handler, log, and the server's count.
func (s *ServerSession) finish(err error) {
	s.finishOnce.Do(func() { s.end(err) })
	s.srv.mu.Lock()
	if _, ok := s.srv.sessions[s]; ok {
		delete(s.srv.sessions, s)
		s.srv.wg.Done()
	}
	s.srv.mu.Unlock()
}

func (s *ServerSession) end(err error) {
	s.Close()
	if s.publisher != nil {
		s.publisher.Close()
	}
	if s.sub != nil {
		s.sub.Close()
		<-s.subDone
	}
	if s.push != nil {
		s.push.Wait()
	}
	if ch, ok := s.srv.Handler.(CloseHandler); ok {
		ch.OnClose(s)
	}
	switch {
	case err == nil, errors.Is(err, errStop), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.logger().Info("rtmp session closed", zap.Uint64("read_bytes", s.ReadBytes()), zap.Uint64("wrote_bytes", s.WrittenBytes()))
	default:
		s.logger().Info("rtmp session closed", zap.Error(err), zap.Uint64("read_bytes", s.ReadBytes()), zap.Uint64("wrote_bytes", s.WrittenBytes()))
	}
}

func (s *ServerSession) serve() error {
	hsTimeout := durationOr(s.srv.HandshakeTimeout, 10*time.Second)
	s.conn.SetDeadline(time.Now().Add(hsTimeout))
	if err := ServerHandshake(struct {
		io.Reader
		io.Writer
	}{s.br, s.conn}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	s.conn.SetWriteDeadline(time.Time{})
	// Until publish or play, however many messages the peer sends.
	s.conn.SetReadDeadline(time.Now().Add(durationOr(s.srv.IdleTimeout, 10*time.Second)))
	s.cr = NewChunkReader(s.br, s.srv.Limits)
	return s.readLoop(false)
}

// readLoop reads and handles the peer's messages until the session ends,
// or parks (errParked) once a push player has nothing more to read. woken:
// the peer has sent something not read yet (read before parking again).
func (s *ServerSession) readLoop(woken bool) error {
	for ; ; woken = false {
		switch {
		case s.publisher != nil:
			s.conn.SetReadDeadline(s.publisherDeadline())
		case s.push != nil:
			if !woken && s.br.Buffered() == 0 {
				if parked, err := s.park(); parked || err != nil {
					return cmp.Or(err, errParked)
				}
			}
			// Woken by the player's bytes: the rest of its message must
			// follow within the read timeout.
			s.conn.SetReadDeadline(time.Now().Add(durationOr(s.srv.ReadTimeout, 120*time.Second)))
		case s.sub != nil:
			// A player may stay silent; its writer's deadline detects a dead peer.
			s.conn.SetReadDeadline(time.Time{})
		}
		msg, err := s.cr.ReadMessage()
		if err != nil {
			return err
		}
		if err := s.ackIfDue(); err != nil {
			return err
		}
		if err := s.handleMessage(msg); err != nil {
			return err
		}
	}
}

// publisherDeadline is the read deadline of a publisher: the socket read
// timeout, or the end of its media idle timeout if sooner.
func (s *ServerSession) publisherDeadline() time.Time {
	d := time.Now().Add(durationOr(s.srv.ReadTimeout, 120*time.Second))
	if t := s.srv.PublisherIdleTimeout; t > 0 {
		if idle := s.lastMedia.Add(t); idle.Before(d) {
			d = idle
		}
	}
	return d
}

// ackIfDue sends an Acknowledgement each time the peer's window of bytes has
// been received since the last one.
func (s *ServerSession) ackIfDue() error {
	if s.peerWindow == 0 {
		return nil
	}
	n := s.ReadBytes()
	if n-s.lastAckBytes < uint64(s.peerWindow) {
		return nil
	}
	s.lastAckBytes = n
	return s.writeControl(func(b []byte) []byte { return AppendAck(b, uint32(n)) })
}

// errStop ends a session without it being an error.
var errStop = errors.New("session stopped by peer")

func (s *ServerSession) handleMessage(msg *Message) error {
	switch msg.TypeID {
	case TypeSetChunkSize, TypeAbort, TypeAck, TypeSetPeerBandwidth:
		return nil
	case TypeWindowAckSize:
		v, err := ParseUint32(msg.Payload)
		if err != nil {
			return err
		}
		s.peerWindow = v
		return nil
	case TypeUserControl:
		ev, arg, _, err := ParseUserControl(msg.Payload)
		if err != nil {
			return err
		}
		if ev == EventPingRequest {
			return s.writeControl(func(b []byte) []byte { return AppendUserControl(b, EventPingResponse, arg) })
		}
		return nil
	case TypeCommandAMF0:
		return s.handleCommand(msg.Payload)
	case TypeCommandAMF3:
		if len(msg.Payload) == 0 {
			return errors.New("rtmp: empty AMF3 command")
		}
		return s.handleCommand(msg.Payload[1:])
	case TypeDataAMF0, TypeDataAMF3, TypeAudio, TypeVideo:
		payload := msg.Payload
		typeID := msg.TypeID
		if typeID == TypeDataAMF3 {
			if len(payload) == 0 {
				return errors.New("rtmp: empty AMF3 data message")
			}
			payload, typeID = payload[1:], TypeDataAMF0
		}
		return s.handleMedia(typeID, msg.Timestamp, payload)
	case TypeAggregate:
		if s.publisher == nil {
			return errors.New("rtmp: aggregate message on a session that is not publishing")
		}
		return SplitAggregate(msg, func(typeID uint8, ts uint32, body []byte) error {
			return s.handleMedia(typeID, ts, body)
		})
	}
	s.logger().Debug("rtmp message ignored", zap.Uint8("type_id", msg.TypeID))
	return nil
}

func (s *ServerSession) handleMedia(typeID uint8, ts uint32, payload []byte) error {
	if typeID == TypeDataAMF0 {
		name, _, err := amf0.DecodeOne(payload)
		if err != nil {
			return fmt.Errorf("rtmp: data message: %w", err)
		}
		switch name {
		case "@setDataFrame", "onMetaData":
		default:
			s.logger().Debug("rtmp data message ignored", zap.Any("name", name))
			return nil
		}
	}
	if s.publisher == nil {
		if typeID == TypeDataAMF0 {
			return nil
		}
		return fmt.Errorf("rtmp: media message type %d on a session that is not publishing", typeID)
	}
	switch typeID {
	case TypeAudio, TypeVideo, TypeDataAMF0:
	default:
		s.logger().Debug("rtmp aggregate sub-message ignored", zap.Uint8("type_id", typeID))
		return nil
	}
	pkt, err := packetFromMessage(typeID, ts, payload)
	if err != nil {
		return err
	}
	if typeID != TypeDataAMF0 {
		s.lastMedia = time.Now()
	}
	s.publisher.WritePacket(pkt)
	return nil
}

func (s *ServerSession) handleCommand(payload []byte) error {
	vals, err := amf0.Decode(payload)
	if err != nil {
		return fmt.Errorf("rtmp: command: %w", err)
	}
	if len(vals) < 2 {
		return fmt.Errorf("rtmp: command with %d values", len(vals))
	}
	name, ok := vals[0].(string)
	if !ok {
		return fmt.Errorf("rtmp: command name is %T, not a string", vals[0])
	}
	txn, _ := vals[1].(float64)
	args := vals[2:]
	switch name {
	case "connect":
		return s.onConnect(txn, args)
	case "createStream":
		return s.writeCommand(csidCommand, 0, "_result", txn, nil, float64(mediaStreamID))
	case "publish":
		return s.onPublish(args)
	case "play":
		return s.onPlay(args)
	case "deleteStream", "closeStream":
		if s.publisher != nil || s.sub != nil {
			return errStop
		}
		return nil
	case "releaseStream", "FCPublish", "FCUnpublish", "getStreamLength", "FCSubscribe", "_checkbw":
		return nil
	}
	s.logger().Debug("rtmp command ignored", zap.String("command", name))
	return nil
}

func (s *ServerSession) onConnect(txn float64, args []any) error {
	if s.app != "" || s.tcURL != "" {
		return errors.New("rtmp: second connect on one connection")
	}
	if len(args) == 0 {
		return errors.New("rtmp: connect without command object")
	}
	obj, ok := args[0].(amf0.Object)
	if !ok {
		return fmt.Errorf("rtmp: connect command object is %T", args[0])
	}
	app, ok := obj.GetString("app")
	if !ok {
		return errors.New("rtmp: connect without app")
	}
	s.app = app
	s.tcURL, _ = obj.GetString("tcUrl")
	s.flashVer, _ = obj.GetString("flashVer")
	s.objectEncoding, _ = obj.GetNumber("objectEncoding")
	if s.srv.Refuse != nil {
		if err := s.srv.Refuse(s.conn.Conn); err != nil {
			return s.rejectConnect(txn, err)
		}
	}
	if s.srv.Handler != nil {
		s.srv.Handler.OnConnect(s)
	}
	s.writeMu.Lock()
	b := s.writeBuf[:0]
	b = AppendWindowAckSize(b, windowAckSize)
	b = AppendSetPeerBandwidth(b, peerBandwidth, peerBandwidthType)
	b = AppendSetChunkSize(b, OutChunkSize)
	s.writeBuf = b
	err := s.flushLocked()
	s.writeMu.Unlock()
	if err != nil {
		return err
	}
	return s.writeCommand(csidCommand, 0, "_result", txn,
		amf0.Object{{Key: "fmsVer", Value: "FMS/3,0,1,123"}, {Key: "capabilities", Value: 31.0}},
		amf0.Object{
			{Key: "level", Value: "status"},
			{Key: "code", Value: "NetConnection.Connect.Success"},
			{Key: "description", Value: "Connection succeeded."},
			{Key: "objectEncoding", Value: s.objectEncoding},
			{Key: "version", Value: Version},
		})
}

// rejectConnect answers connect with _error NetConnection.Connect.Rejected
// and ends the session.
func (s *ServerSession) rejectConnect(txn float64, reason error) error {
	s.logger().Info("rtmp connect rejected", zap.String("app", s.app), zap.Error(reason))
	// The _error is chunked at OutChunkSize: say so first.
	if err := s.writeControl(func(b []byte) []byte { return AppendSetChunkSize(b, OutChunkSize) }); err != nil {
		return err
	}
	if err := s.writeCommand(csidCommand, 0, "_error", txn, nil,
		amf0.Object{
			{Key: "level", Value: "error"},
			{Key: "code", Value: "NetConnection.Connect.Rejected"},
			{Key: "description", Value: reason.Error()},
		}); err != nil {
		return err
	}
	return errStop
}

// Version is the server version announced in the connect result.
var Version = "0,1,0"

// setName parses the publish or play name: the stream name up to the first
// '?', the query after it (spec §5.1).
func (s *ServerSession) setName(args []any) error {
	if s.publisher != nil || s.sub != nil {
		return errors.New("rtmp: second publish or play on one connection")
	}
	if s.app == "" && s.tcURL == "" {
		return errors.New("rtmp: publish or play before connect")
	}
	if len(args) < 2 {
		return errors.New("rtmp: publish or play without a stream name")
	}
	name, ok := args[1].(string)
	if !ok || name == "" {
		return errors.New("rtmp: publish or play without a stream name")
	}
	s.rawName = name
	s.streamName, s.urlParam = streamurl.SplitRTMPName(name)
	if s.streamName == "" {
		return errors.New("rtmp: empty stream name")
	}
	return nil
}

func (s *ServerSession) onPublish(args []any) error {
	if err := s.setName(args); err != nil {
		return err
	}
	s.baseType = "PUB"
	var pub Publisher
	err := errors.New("no handler")
	if s.srv.Handler != nil {
		pub, err = s.srv.Handler.OnPublish(s)
	}
	if err != nil {
		s.logger().Warn("rtmp publish refused", zap.Error(err))
		code := "NetStream.Publish.BadName"
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		s.writeStatus("error", code, err.Error())
		return errStop
	}
	s.publisher = pub
	s.lastMedia = time.Now()
	s.logger().Info("rtmp publish started", zap.String("url", s.URL()))
	return s.writeStatus("status", "NetStream.Publish.Start", "Start publishing")
}

func (s *ServerSession) onPlay(args []any) error {
	if err := s.setName(args); err != nil {
		return err
	}
	s.baseType = "SUB"
	var sub Subscription
	err := errors.New("no handler")
	if s.srv.Handler != nil {
		sub, err = s.srv.Handler.OnPlay(s)
	}
	if err != nil {
		s.logger().Warn("rtmp play refused", zap.Error(err))
		code := "NetStream.Play.Failed"
		var se *StatusError
		if errors.As(err, &se) {
			code = se.Code
		}
		s.writeStatus("error", code, err.Error())
		return errStop
	}
	s.writeMu.Lock()
	b := s.writeBuf[:0]
	b = AppendUserControl(b, EventStreamIsRecorded, mediaStreamID)
	b = AppendUserControl(b, EventStreamBegin, mediaStreamID)
	s.writeBuf = b
	err = s.flushLocked()
	s.writeMu.Unlock()
	if err == nil {
		err = s.writeStatus("status", "NetStream.Play.Start", "Start live")
	}
	if err != nil {
		sub.Close()
		return err
	}
	s.sub = sub
	s.subDone = make(chan struct{})
	if s.startPush(sub) {
		close(s.subDone) // no writer goroutine
	} else {
		go s.writeLoop()
	}
	s.logger().Info("rtmp play started", zap.String("url", s.URL()))
	return nil
}

// writeLoop sends the subscription's shared chunk bytes with one writev per
// batch, until the subscription or the connection ends.
func (s *ServerSession) writeLoop() {
	defer close(s.subDone)
	timeout := durationOr(s.srv.WriteTimeout, 10*time.Second)
	var bufs [][]byte
	for {
		var err error
		bufs, err = s.sub.Next(bufs[:0])
		if err != nil {
			s.logger().Debug("rtmp subscription ended", zap.Error(err))
			s.Close()
			return
		}
		s.writeMu.Lock()
		s.conn.SetWriteDeadline(time.Now().Add(timeout))
		nb := net.Buffers(bufs)
		_, err = s.conn.WriteBuffers(&nb)
		s.writeMu.Unlock()
		clear(bufs)
		if err != nil {
			s.logger().Info("rtmp write failed", zap.Error(err))
			s.Close()
			return
		}
	}
}

func (s *ServerSession) writeStatus(level, code, desc string) error {
	return s.writeCommand(csidData, mediaStreamID, "onStatus", 0, nil,
		amf0.Object{{Key: "level", Value: level}, {Key: "code", Value: code}, {Key: "description", Value: desc}})
}

func (s *ServerSession) writeCommand(csid, streamID uint32, name string, txn float64, values ...any) error {
	body, err := amf0.Append(nil, append([]any{name, txn}, values...)...)
	if err != nil {
		return err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.writeBuf = AppendChunks(s.writeBuf[:0], csid, TypeCommandAMF0, streamID, 0, body, OutChunkSize)
	return s.flushLocked()
}

func (s *ServerSession) writeControl(build func([]byte) []byte) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.writeBuf = build(s.writeBuf[:0])
	return s.flushLocked()
}

// flushLocked writes writeBuf; writeMu held.
func (s *ServerSession) flushLocked() error {
	s.conn.SetWriteDeadline(time.Now().Add(durationOr(s.srv.WriteTimeout, 10*time.Second)))
	_, err := s.conn.Write(s.writeBuf)
	// No deadline left behind: a push player's writes never wait, and an
	// expired deadline would fail them.
	s.conn.SetWriteDeadline(time.Time{})
	return err
}
