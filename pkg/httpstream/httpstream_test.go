package httpstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// handler, reader goroutine and client must be gone once the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errSubClosed = errors.New("fake subscription closed")

// fakeSub is a Subscription fed by the test: each value sent on ch is one
// batch that Next returns.
type fakeSub struct {
	ch       chan [][]byte
	done     chan struct{}
	once     sync.Once
	closes   atomic.Int32
	hasAudio bool
	hasVideo bool
}

func newFakeSub() *fakeSub {
	return &fakeSub{ch: make(chan [][]byte, 64), done: make(chan struct{}), hasAudio: true}
}

func (f *fakeSub) Next(dst [][]byte) ([][]byte, error) {
	select {
	case <-f.done:
		return dst, errSubClosed
	default:
	}
	select {
	case b := <-f.ch:
		return append(dst, b...), nil
	case <-f.done:
		return dst, errSubClosed
	}
}

func (f *fakeSub) Tracks() (hasAudio, hasVideo bool) { return f.hasAudio, f.hasVideo }

func (f *fakeSub) Close() {
	f.closes.Add(1)
	f.once.Do(func() { close(f.done) })
}

func (f *fakeSub) isClosed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// waitClosed fails the test unless the handler closes the subscription within d.
func (f *fakeSub) waitClosed(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(d):
		t.Fatalf("%s: the handler did not close the subscription within %v", what, d)
	}
}

// harness is a Handler for ".flv" with a fake subscription, served by an
// httptest server.
type harness struct {
	srv      *httptest.Server
	handler  *Handler
	sub      *fakeSub
	sessions chan *Session
	running  sync.WaitGroup // ServeHTTP calls in progress
	inFlight atomic.Int32
}

const testServerName = "sluice-test"

func startBytes(sub Subscription) []byte {
	a, v := sub.Tracks()
	return []byte(fmt.Sprintf("START audio=%v video=%v", a, v))
}

// newHarness serves a Handler whose Subscribe refuses with refuse if it is
// not nil. withStart gives it Start bytes (as FLV has; TS has none).
func newHarness(t *testing.T, refuse error, withStart bool) *harness {
	t.Helper()
	h := &harness{sub: newFakeSub(), sessions: make(chan *Session, 16)}
	var ids atomic.Int32
	h.handler = &Handler{
		Suffix:      ".flv",
		ContentType: "video/x-flv",
		Subscribe: func(s *Session) (Subscription, error) {
			h.sessions <- s
			if refuse != nil {
				return nil, refuse
			}
			return h.sub, nil
		},
		NewSessionID: func() string { return fmt.Sprintf("TESTSUB%d", ids.Add(1)) },
		WriteTimeout: 5 * time.Second,
		ServerName:   testServerName,
	}
	if withStart {
		h.handler.Start = startBytes
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.running.Add(1)
		h.inFlight.Add(1)
		defer func() {
			h.inFlight.Add(-1)
			h.running.Done()
		}()
		h.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		h.sub.Close() // ends a stream the test left running
		h.srv.Close()
		h.waitHandlers(t, 5*time.Second)
	})
	return h
}

// waitHandlers fails the test unless every ServeHTTP call has returned within d.
func (h *harness) waitHandlers(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for h.inFlight.Load() > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%d handler(s) still running after %v", h.inFlight.Load(), d)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) url(path string) string { return h.srv.URL + path }
func (h *harness) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(h.srv.URL, "http") + path
}

// session returns the session the handler passed to Subscribe.
func (h *harness) session(t *testing.T) *Session {
	t.Helper()
	select {
	case s := <-h.sessions:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe was not called")
		return nil
	}
}

// noSession fails if Subscribe was called.
func (h *harness) noSession(t *testing.T, what string) {
	t.Helper()
	select {
	case s := <-h.sessions:
		t.Errorf("%s: Subscribe was called (session %s)", what, s.ID())
	default:
	}
}

// payload returns n bytes of a pattern that differs per seed.
func payload(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// TestHandlerHTTP: a plain GET gets 200 with the response head, the start
// bytes and then every buffer in order; closing the client closes the
// subscription and ends the handler.
func TestHandlerHTTP(t *testing.T) {
	h := newHarness(t, nil, true)
	batches := [][][]byte{
		{payload(1, 100), payload(2, 3)},
		{payload(3, 70000)},
		{payload(4, 1), payload(5, 188*7), payload(6, 65536)},
	}
	want := startBytes(h.sub)
	for _, b := range batches {
		h.sub.ch <- b
		for _, buf := range b {
			want = append(want, buf...)
		}
	}
	before := time.Now()
	resp, err := h.srv.Client().Get(h.url("/live/test.flv?token=abc"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s, want 200", resp.Status)
	}
	for k, v := range map[string]string{
		"Content-Type":                     "video/x-flv",
		"Cache-Control":                    "no-cache",
		"Access-Control-Allow-Origin":      "*",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Headers":     "Content-Type",
		"Server":                           testServerName,
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %q: want a body until close", resp.ContentLength, resp.TransferEncoding)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatalf("reading %d bytes of body: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		t.Fatalf("body differs from start bytes + buffers at byte %d of %d", i, len(want))
	}

	s := h.session(t)
	if s.ID() != "TESTSUB1" || s.StreamName != "test" || s.AppName != "live" || s.URLParam != "token=abc" || s.WebSocket() {
		t.Errorf("session id=%q stream=%q app=%q param=%q websocket=%v", s.ID(), s.StreamName, s.AppName, s.URLParam, s.WebSocket())
	}
	if want := "http://" + h.srv.Listener.Addr().String() + "/live/test.flv?token=abc"; s.URL != want {
		t.Errorf("session URL = %q, want %q", s.URL, want)
	}
	if _, _, err := net.SplitHostPort(s.RemoteAddr()); err != nil {
		t.Errorf("session RemoteAddr %q: %v", s.RemoteAddr(), err)
	}
	if st := s.StartTime(); st.Before(before.Add(-time.Second)) || st.After(time.Now()) {
		t.Errorf("session StartTime %v not within the request", st)
	}
	// The counter is bumped when the write call returns, which can be just
	// after the client has already read the bytes: wait for it.
	deadline := time.Now().Add(2 * time.Second)
	for s.WrittenBytes() < uint64(len(want)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := s.WrittenBytes(); w < uint64(len(want)) {
		t.Errorf("WrittenBytes = %d, less than the %d body bytes received", w, len(want))
	}
	if h.sub.isClosed() {
		t.Fatal("subscription closed while the client is still reading")
	}

	resp.Body.Close()
	h.sub.waitClosed(t, 2*time.Second, "HTTP client closed")
	h.waitHandlers(t, 2*time.Second)
}

// TestHandlerHEAD: HEAD answers the head without subscribing.
func TestHandlerHEAD(t *testing.T) {
	h := newHarness(t, nil, true)
	resp, err := h.srv.Client().Head(h.url("/live/test.flv"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "video/x-flv" {
		t.Errorf("HEAD: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	h.noSession(t, "HEAD")
}

// dialWS opens a WebSocket to path with gorilla's client.
func dialWS(t *testing.T, h *harness, path string) (*websocket.Conn, *http.Response) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(h.wsURL(path), nil)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v (response %v)", path, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// readBinary reads one message within 5 s and checks that it is binary.
func readBinary(t *testing.T, c *websocket.Conn, what string) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if typ != websocket.BinaryMessage {
		t.Fatalf("%s: message type %d, want binary", what, typ)
	}
	return msg
}

// TestHandlerWebSocket: a WebSocket client gets the start bytes as one
// message, then one binary message per buffer with the buffer's bytes,
// across every frame length encoding; masked ping and text frames from the
// client do not end the session; its close frame, or its leaving without
// one, closes the subscription.
func TestHandlerWebSocket(t *testing.T) {
	sizes := [][]int{{125, 126}, {0, 1}, {65535, 65536, 70000}, {188 * 40}}
	for _, tc := range []struct {
		name      string
		withStart bool
		end       string // "close frame" or "tcp close"
	}{
		{"start+close frame", true, "close frame"},
		{"nostart+tcp close", false, "tcp close"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil, tc.withStart)
			var batches [][][]byte
			seed := byte(0)
			for _, ss := range sizes {
				var b [][]byte
				for _, n := range ss {
					seed++
					b = append(b, payload(seed, n))
				}
				batches = append(batches, b)
				h.sub.ch <- b
			}
			c, resp := dialWS(t, h, "/live/test.flv")
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %s, want 101", resp.Status)
			}
			for k, v := range map[string]string{"Access-Control-Allow-Origin": "*", "Server": testServerName} {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.withStart {
				if msg := readBinary(t, c, "start message"); !bytes.Equal(msg, startBytes(h.sub)) {
					t.Fatalf("first message = %q, want the start bytes %q", msg, startBytes(h.sub))
				}
			}
			check := func(batches [][][]byte) {
				for i, b := range batches {
					for j, buf := range b {
						msg := readBinary(t, c, fmt.Sprintf("batch %d buffer %d", i, j))
						if !bytes.Equal(msg, buf) {
							t.Fatalf("batch %d buffer %d: message of %d bytes differs from the buffer of %d", i, j, len(msg), len(buf))
						}
					}
				}
			}
			check(batches)

			s := h.session(t)
			if !s.WebSocket() || s.StreamName != "test" {
				t.Errorf("session websocket=%v stream=%q", s.WebSocket(), s.StreamName)
			}

			// Client frames (masked by gorilla) are read and dropped.
			if err := c.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("hello server")); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(websocket.BinaryMessage, payload(9, 3000)); err != nil {
				t.Fatal(err)
			}
			later := [][][]byte{{payload(42, 500)}}
			time.Sleep(50 * time.Millisecond)
			h.sub.ch <- later[0]
			check(later)
			if h.sub.isClosed() {
				t.Fatal("subscription closed after the client's ping, text and binary frames")
			}

			switch tc.end {
			case "close frame":
				msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
				if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
					t.Fatal(err)
				}
			case "tcp close":
				c.Close()
			}
			h.sub.waitClosed(t, 2*time.Second, tc.end)
			h.waitHandlers(t, 2*time.Second)
		})
	}
}

// TestHandlerWebSocketReadBytes: the client's frames count as bytes read
// from the client (Session.ReadBytes: "the bytes read from the client after
// the request head").
//
// Known bug, skipped rather than failed until fixed: the reader goroutine in
// Handler.stream reads through io.MultiReader(br, s.conn), and br (the
// hijacked bufio.Reader of net/http) reads the raw connection, not the
// counting one; it only returns EOF when the connection does, so s.conn is
// never read and ReadBytes stays 0 for every WebSocket session.
func TestHandlerWebSocketReadBytes(t *testing.T) {
	h := newHarness(t, nil, false)
	c, _ := dialWS(t, h, "/live/test.flv")
	s := h.session(t)
	frame := payload(1, 1000)
	if err := c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		t.Fatal(err)
	}
	// A buffer sent after the frame arrives after the server read it, or
	// not: the count is polled.
	deadline := time.Now().Add(2 * time.Second)
	for s.ReadBytes() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r := s.ReadBytes()
	if r == 0 {
		t.Fatalf("ReadBytes = 0 after a %d-byte client frame", len(frame))
	}
	if want := uint64(len(frame) + 8); r < want { // 2-byte header, 2-byte length, 4-byte mask
		t.Errorf("ReadBytes = %d after a frame of %d bytes on the wire", r, want)
	}
}

// TestHandlerServerEnds: when the subscription ends, the handler closes the
// connection: an HTTP client reads EOF, a WebSocket client an error.
func TestHandlerServerEnds(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		h := newHarness(t, nil, true)
		resp, err := h.srv.Client().Get(h.url("/live/test.flv"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h.session(t)
		h.sub.Close()
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, resp.Body)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("body ended with %v, want EOF", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("body not ended 2 s after the subscription closed")
		}
		h.waitHandlers(t, 2*time.Second)
	})
	t.Run("websocket", func(t *testing.T) {
		h := newHarness(t, nil, false)
		c, _ := dialWS(t, h, "/live/test.flv")
		h.session(t)
		h.sub.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadMessage(); err == nil || isTimeout(err) {
			t.Errorf("read after the subscription closed: %v, want a closed connection", err)
		}
		h.waitHandlers(t, 2*time.Second)
	})
}

// isTimeout reports a deadline error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawRequest sends req on a new connection to h and reads the response.
func rawRequest(t *testing.T, h *harness, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %q: %v", req, err)
	}
	return resp, string(body)
}

// TestHandlerRefusals: wrong method, empty stream name, bad upgrade and a
// refused subscriber.
func TestHandlerRefusals(t *testing.T) {
	t.Run("POST", func(t *testing.T) {
		h := newHarness(t, nil, true)
		resp, err := h.srv.Client().Post(h.url("/live/test.flv"), "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %s, want 405", resp.Status)
		}
		if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("POST: Allow %q, want \"GET, HEAD\"", got)
		}
		h.noSession(t, "POST")
	})
	t.Run("empty stream name", func(t *testing.T) {
		h := newHarness(t, nil, true)
		for _, path := range []string{"/live/.flv", "/.flv"} {
			resp, err := h.srv.Client().Get(h.url(path))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: status %s, want 404", path, resp.Status)
			}
		}
		h.noSession(t, "empty stream name")
	})
	t.Run("bad websocket key", func(t *testing.T) {
		h := newHarness(t, nil, true)
		for _, key := range []string{"", "short", "AAAAAAAAAAAAAAAAAAAA"} {
			resp, _ := rawRequest(t, h, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"+
				"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("key %q: status %s, want 400", key, resp.Status)
			}
		}
		resp, _ := rawRequest(t, h, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"+
			"Upgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("version 8: status %s, want 400", resp.Status)
		}
		h.noSession(t, "bad upgrade")
	})
	t.Run("subscribe refused", func(t *testing.T) {
		const reason = "stream not allowed here"
		h := newHarness(t, errors.New(reason), true)
		resp, body := rawRequest(t, h, "GET /live/test.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status %s, want 403", resp.Status)
		}
		if body != reason+"\n" {
			t.Errorf("body %q, want the reason %q", body, reason+"\n")
		}
		s := h.session(t)
		h.waitHandlers(t, 2*time.Second) // the count follows the write the client saw
		if w := s.WrittenBytes(); w == 0 {
			t.Errorf("WrittenBytes = 0 after the 403")
		}

		// The same over a WebSocket upgrade.
		_, wresp, err := websocket.DefaultDialer.Dial(h.wsURL("/live/test.flv"), nil)
		if !errors.Is(err, websocket.ErrBadHandshake) || wresp == nil || wresp.StatusCode != http.StatusForbidden {
			t.Errorf("WebSocket dial of a refused stream: %v, response %v; want a 403 bad handshake", err, wresp)
		}
		if wresp != nil {
			wresp.Body.Close()
		}
		h.session(t)
		if h.sub.closes.Load() != 0 {
			t.Errorf("the subscription the handler never got was closed")
		}
		h.waitHandlers(t, 2*time.Second)
	})
}
