// Package httpstream serves one live stream per request over HTTP, or over
// WebSocket when the request asks for an upgrade: the response head, a
// format's start bytes, then the stream's shared bytes until the client
// leaves. HTTP-FLV and HTTP-TS (and their WebSocket twins) are this with
// different start bytes.
package httpstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/connstat"
	"sluice/pkg/netx"
	"sluice/pkg/streamurl"
)

// Subscription yields the shared bytes of a stream.
type Subscription interface {
	Next(dst [][]byte) ([][]byte, error)
	// Tracks says whether the stream has audio and video (both true while
	// that is not known yet).
	Tracks() (hasAudio, hasVideo bool)
	Close()
}

// Handler serves subscribers of one format. Requests must already be routed
// to it by their suffix.
type Handler struct {
	// Suffix is the URL suffix of the format, e.g. ".flv".
	Suffix      string
	ContentType string
	// Start returns the bytes a subscriber gets before the stream (the FLV
	// file header); may be nil.
	Start func(sub Subscription) []byte
	// MessageSize gives, over WebSocket, the length of the message that
	// starts with buffer first, when the format's units (FLV tags) are
	// several buffers; nil: each buffer is one message.
	MessageSize func(first []byte) int
	// Subscribe accepts a subscriber, or refuses it with an error that is
	// answered 403.
	Subscribe    func(s *Session) (Subscription, error)
	NewSessionID func() string
	Logger       *zap.Logger
	// WriteTimeout is the socket write timeout. Default 10 s.
	WriteTimeout time.Duration
	// ServerName is sent in the Server header.
	ServerName string

	// Push sessions and the watcher of their clients (push.go).
	pushMu    sync.Mutex
	watcher   *netx.Watcher
	pushCount int
}

// Session is one HTTP or WebSocket subscriber.
type Session struct {
	streamurl.Info
	id         string
	remoteAddr string
	startTime  time.Time
	websocket  bool
	conn       *connstat.Conn
	closeOnce  sync.Once
	push       atomic.Pointer[pusher] // set when served in push mode
}

// ID returns the session id (e.g. FLVSUB1).
func (s *Session) ID() string { return s.id }

// RemoteAddr returns the client's ip:port.
func (s *Session) RemoteAddr() string { return s.remoteAddr }

// StartTime returns when the request arrived.
func (s *Session) StartTime() time.Time { return s.startTime }

// WebSocket reports whether the session streams over WebSocket.
func (s *Session) WebSocket() bool { return s.websocket }

// ReadBytes returns the bytes read from the client after the request head.
func (s *Session) ReadBytes() uint64 {
	if s.conn == nil {
		return 0
	}
	return s.conn.ReadBytes()
}

// WrittenBytes returns the bytes written to the client, response head included.
func (s *Session) WrittenBytes() uint64 {
	if s.conn == nil {
		return 0
	}
	return s.conn.WrittenBytes()
}

// errSessionClosed ends a session closed by the server (Close: a kick, a
// shutdown).
var errSessionClosed = errors.New("session closed")

// Close ends the session.
func (s *Session) Close() {
	if p := s.push.Load(); p != nil {
		p.end(errSessionClosed)
		return
	}
	s.closeConn()
}

func (s *Session) closeConn() {
	s.closeOnce.Do(func() {
		if s.conn != nil {
			s.conn.Close()
		}
	})
}

const corsHeaders = "Access-Control-Allow-Credentials: true\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Access-Control-Allow-Headers: Content-Type\r\n"

// ServeHTTP answers one request and streams until the client leaves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := &Session{
		Info:       streamurl.FromHTTP(r, h.Suffix),
		remoteAddr: r.RemoteAddr,
		startTime:  time.Now(),
	}
	if s.StreamName == "" {
		http.NotFound(w, r)
		return
	}
	wsKey, upgrade, err := websocketKey(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", h.ContentType)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.websocket = upgrade
	if h.NewSessionID != nil {
		s.id = h.NewSessionID()
	}
	log := h.logger().With(zap.String("session_id", s.id), zap.String("stream_name", s.StreamName),
		zap.String("remote_addr", s.remoteAddr))
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "streaming not supported on this connection", http.StatusInternalServerError)
		return
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		log.Warn("hijack failed", zap.Error(err))
		return
	}
	s.conn = connstat.New(raw)
	sub, err := h.Subscribe(s)
	if err != nil {
		log.Info("subscriber refused", zap.Error(err))
		writeRefusal(s.conn, err)
		s.Close()
		return
	}
	log.Info("subscriber started", zap.String("url", s.URL), zap.Bool("websocket", s.websocket))
	if h.servePush(s, sub, brw.Reader.Buffered()) {
		return // the group writes the stream from now on
	}
	err = h.stream(s, brw.Reader, sub, wsKey)
	sub.Close()
	s.Close()
	log.Info("subscriber ended", zap.NamedError("reason", err), zap.Uint64("wrote_bytes", s.WrittenBytes()))
}

// StatusError is a refusal that names its HTTP status; other errors from
// Subscribe are answered 403.
type StatusError interface {
	error
	HTTPStatus() int
}

// RetryAfterError is a refusal that tells the client when to try again: its
// answer carries a Retry-After header (e.g. 503 for a limit).
type RetryAfterError interface {
	error
	RetryAfterSeconds() int
}

// writeRefusal answers the refusal's status with the reason, on a hijacked
// connection.
func writeRefusal(c net.Conn, reason error) {
	status := http.StatusForbidden
	var se StatusError
	if errors.As(reason, &se) {
		status = se.HTTPStatus()
	}
	retry := ""
	var re RetryAfterError
	if errors.As(reason, &re) {
		retry = "Retry-After: " + strconv.Itoa(re.RetryAfterSeconds()) + "\r\n"
	}
	body := reason.Error() + "\n"
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"+retry+corsHeaders+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

func (h *Handler) responseHead(wsKey string, websocket bool) string {
	var b strings.Builder
	if websocket {
		b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\n")
		b.WriteString("Sec-WebSocket-Accept: " + websocketAccept(wsKey) + "\r\n")
	} else {
		b.WriteString("HTTP/1.1 200 OK\r\n")
		b.WriteString("Cache-Control: no-cache\r\n")
		b.WriteString("Content-Type: " + h.ContentType + "\r\n")
		b.WriteString("Connection: close\r\nExpires: -1\r\nPragma: no-cache\r\n")
	}
	if h.ServerName != "" {
		b.WriteString("Server: " + h.ServerName + "\r\n")
	}
	b.WriteString(corsHeaders)
	b.WriteString("\r\n")
	return b.String()
}

// stream writes the response head and the start bytes, then the
// subscription's bytes with one writev per batch.
func (h *Handler) stream(s *Session, br *bufio.Reader, sub Subscription, wsKey string) error {
	timeout := h.WriteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	readerDone := make(chan struct{})
	// Read through the counting connection; bytes the HTTP server had
	// already buffered after the request head are counted here.
	var client io.Reader = s.conn
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		s.conn.AddRead(n)
		client = io.MultiReader(bytes.NewReader(b), s.conn)
	}
	go func() {
		defer close(readerDone)
		if s.websocket {
			// The client's frames are read and dropped; its close ends the session.
			readWebSocket(client)
		} else {
			// Any byte from the client, or its close, ends the session (as lal).
			client.Read(make([]byte, 1))
		}
		s.Close()
		sub.Close()
	}()
	defer func() {
		s.Close()
		<-readerDone
	}()

	head := []byte(h.responseHead(wsKey, s.websocket))
	var start []byte
	if h.Start != nil {
		start = h.Start(sub)
	}
	if s.websocket && len(start) > 0 {
		head = appendFrameHeader(head, len(start))
	}
	head = append(head, start...)
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := s.conn.Write(head); err != nil {
		return err
	}
	var (
		bufs    [][]byte
		frames  [][]byte
		headers []byte
	)
	for {
		var err error
		bufs, err = sub.Next(bufs[:0])
		if err != nil {
			return err
		}
		out := bufs
		if s.websocket {
			// One binary frame per shared buffer: only the frame headers
			// are the session's own.
			frames, headers = frameAll(frames[:0], headers, bufs, h.MessageSize)
			out = frames
		}
		s.conn.SetWriteDeadline(time.Now().Add(timeout))
		nb := net.Buffers(out)
		_, err = s.conn.WriteBuffers(&nb)
		clear(bufs)
		clear(out)
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
