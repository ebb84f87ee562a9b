// Package httpflv serves live streams as HTTP-FLV: an FLV header, then the
// stream's tags, on a response that never ends.
package httpflv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/connstat"
	"sluice/pkg/flv"
	"sluice/pkg/streamurl"
)

// Muxer encodes packets as the FLV tags shared by every FLV subscriber of a
// stream. Metadata goes out without @setDataFrame.
type Muxer struct{}

// Mux returns the FLV tag (with its PreviousTagSize) of pkt.
func (Muxer) Mux(pkt *av.Packet) []byte {
	payload := pkt.Payload
	switch pkt.Kind {
	case av.KindAudio, av.KindVideo:
	case av.KindData:
		payload = flv.StripSetDataFrame(payload)
	default:
		return nil
	}
	dst := make([]byte, 0, flv.TagSize(len(payload)))
	return flv.AppendTag(dst, uint8(pkt.Kind), uint32(pkt.Timestamp), payload)
}

// Subscription yields the shared FLV tag bytes of a stream.
type Subscription interface {
	Next(dst [][]byte) ([][]byte, error)
	// Tracks says which tracks the FLV header announces.
	Tracks() (hasAudio, hasVideo bool)
	Close()
}

// SubscribeFunc accepts a subscriber (or refuses it with an error, answered
// 403) and returns its subscription.
type SubscribeFunc func(s *SubSession) (Subscription, error)

// Handler serves HTTP-FLV subscribers. Requests must already be routed to it
// by their ".flv" suffix.
type Handler struct {
	Subscribe    SubscribeFunc
	Logger       *zap.Logger
	NewSessionID func() string
	// WriteTimeout is the socket write timeout. Default 10 s.
	WriteTimeout time.Duration
	// ServerName is sent in the Server header.
	ServerName string
}

// SubSession is one HTTP-FLV subscriber.
type SubSession struct {
	streamurl.Info
	id         string
	remoteAddr string
	startTime  time.Time
	conn       *connstat.Conn
	closeOnce  sync.Once
}

// ID returns the session id (FLVSUB<n>).
func (s *SubSession) ID() string { return s.id }

// RemoteAddr returns the client's ip:port.
func (s *SubSession) RemoteAddr() string { return s.remoteAddr }

// StartTime returns when the request arrived.
func (s *SubSession) StartTime() time.Time { return s.startTime }

// ReadBytes returns the bytes read from the client after the request head.
func (s *SubSession) ReadBytes() uint64 {
	if s.conn == nil {
		return 0
	}
	return s.conn.ReadBytes()
}

// WrittenBytes returns the bytes written to the client, response head included.
func (s *SubSession) WrittenBytes() uint64 {
	if s.conn == nil {
		return 0
	}
	return s.conn.WrittenBytes()
}

// Close ends the session.
func (s *SubSession) Close() {
	s.closeOnce.Do(func() {
		if s.conn != nil {
			s.conn.Close()
		}
	})
}

const responseHead = "HTTP/1.1 200 OK\r\n" +
	"Cache-Control: no-cache\r\n" +
	"Content-Type: video/x-flv\r\n" +
	"Connection: close\r\n" +
	"Expires: -1\r\n" +
	"Pragma: no-cache\r\n" +
	"Access-Control-Allow-Credentials: true\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Access-Control-Allow-Headers: Content-Type\r\n"

// ServeHTTP answers one FLV request and streams until the client leaves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := &SubSession{
		Info:       streamurl.FromHTTP(r, ".flv"),
		remoteAddr: r.RemoteAddr,
		startTime:  time.Now(),
	}
	if h.NewSessionID != nil {
		s.id = h.NewSessionID()
	}
	log := h.logger().With(zap.String("session_id", s.id), zap.String("stream_name", s.StreamName),
		zap.String("remote_addr", s.remoteAddr))
	if s.StreamName == "" {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "video/x-flv")
		w.WriteHeader(http.StatusOK)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "streaming not supported on this connection", http.StatusInternalServerError)
		return
	}
	// Hijack first so that a kick during Subscribe finds a connection to close.
	raw, brw, err := hj.Hijack()
	if err != nil {
		log.Warn("httpflv hijack failed", zap.Error(err))
		return
	}
	s.conn = connstat.New(raw)
	sub, err := h.Subscribe(s)
	if err != nil {
		log.Info("httpflv subscribe refused", zap.Error(err))
		writeRefusal(s.conn, err)
		s.Close()
		return
	}
	log.Info("httpflv subscriber started", zap.String("url", s.URL))
	err = h.stream(s, brw.Reader, sub)
	sub.Close()
	s.Close()
	log.Info("httpflv subscriber ended", zap.NamedError("reason", err),
		zap.Uint64("wrote_bytes", s.WrittenBytes()))
}

// writeRefusal answers 403 with the reason, on a hijacked connection.
func writeRefusal(c net.Conn, reason error) {
	body := reason.Error() + "\n"
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// stream writes the response head, the FLV header and then the
// subscription's tags with one writev per batch.
func (h *Handler) stream(s *SubSession, br *bufio.Reader, sub Subscription) error {
	timeout := h.WriteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	// Any byte from the client, or its close, ends the session (as lal).
	go func() {
		buf := make([]byte, 1)
		if br.Buffered() == 0 {
			s.conn.Read(buf)
		}
		s.Close()
		sub.Close()
	}()
	hasAudio, hasVideo := sub.Tracks()
	head := responseHead
	if h.ServerName != "" {
		head += "Server: " + h.ServerName + "\r\n"
	}
	head += "\r\n"
	start := flv.AppendFileHeader([]byte(head), hasAudio, hasVideo)
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := s.conn.Write(start); err != nil {
		return err
	}
	var bufs [][]byte
	for {
		var err error
		bufs, err = sub.Next(bufs[:0])
		if err != nil {
			return err
		}
		s.conn.SetWriteDeadline(time.Now().Add(timeout))
		nb := net.Buffers(bufs)
		_, err = s.conn.WriteBuffers(&nb)
		clear(bufs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return io.EOF
			}
			return err
		}
	}
}

func (h *Handler) logger() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}
