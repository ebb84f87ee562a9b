package httpstream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/netx"
)

// rawMuxer encodes a packet as its payload: the bytes a client gets are
// exactly the payloads, in order.
type rawMuxer struct{}

func (rawMuxer) Mux(pkt *av.Packet) []byte { return pkt.Payload }

// pushHarness serves a real group's stream "s" through a Handler, so that
// subscribers run in push mode.
type pushHarness struct {
	m       *group.Manager
	pub     *group.Publisher
	handler *Handler
	srv     *httptest.Server
	subs    chan *Session
	seq     int
	ids     int // session ids handed out; handler goroutines run one at a time here
}

func newPushHarness(t *testing.T, writeTimeout time.Duration) *pushHarness {
	t.Helper()
	h := &pushHarness{subs: make(chan *Session, 16)}
	h.m = group.NewManager(group.Config{
		Formats:      []group.FormatSpec{{Name: "raw", GOPNum: 1, NewMuxer: func(string) group.Muxer { return rawMuxer{} }}},
		WriteTimeout: writeTimeout,
		MaxLag:       time.Hour,
	})
	var err error
	if h.pub, err = h.m.Publish(group.SessionInfo{ID: "P", StreamName: "s"}); err != nil {
		t.Fatal(err)
	}
	h.handler = &Handler{
		Suffix:      ".flv",
		ContentType: "video/x-flv",
		Subscribe: func(s *Session) (Subscription, error) {
			h.subs <- s
			return h.m.Subscribe(group.SessionInfo{ID: s.ID(), StreamName: s.StreamName, Close: s.Close}, 0), nil
		},
		NewSessionID: func() string { h.ids++; return fmt.Sprintf("PUSHSUB%d", h.ids) },
		WriteTimeout: writeTimeout,
	}
	h.srv = httptest.NewServer(h.handler)
	t.Cleanup(func() {
		h.pub.Close()
		h.srv.Close()
		h.m.WaitPush()
	})
	return h
}

// write publishes one video frame of n bytes and returns its payload.
func (h *pushHarness) write(n int, key bool) []byte {
	h.seq++
	b := bytes.Repeat([]byte{byte(h.seq)}, n)
	copy(b, fmt.Sprintf("<%d>", h.seq))
	h.pub.WritePacket(&av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, KeyFrame: key, Timestamp: int64(h.seq) * 40, Payload: b})
	return b
}

// get opens a raw request and returns the connection and a reader
// positioned after the response head.
func (h *pushHarness) get(t *testing.T) (net.Conn, *bufio.Reader, *Session) {
	t.Helper()
	c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /live/s.flv HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v, %v", resp, err)
	}
	var s *Session
	select {
	case s = <-h.subs:
	case <-time.After(5 * time.Second):
		t.Fatal("no session")
	}
	return c, br, s
}

// waitPushed waits until s is served in push mode.
func waitPushed(t *testing.T, s *Session) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.push.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("session not served in push mode")
		}
		time.Sleep(time.Millisecond)
	}
}

func waitGroupSubs(t *testing.T, m *group.Manager, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := m.Group("s")
		if g != nil && len(g.Stat().Subs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d subscribers", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPushStreamsInOrder: a push subscriber gets the cached keyframe and
// then every frame, byte for byte; a client that stops reading for a while
// (its socket fills) then reads again gets everything, in order.
func TestPushStreamsInOrder(t *testing.T) {
	h := newPushHarness(t, 10*time.Second)
	want := h.write(1000, true)
	c, br, s := h.get(t)
	waitPushed(t, s)
	for i := 0; i < 300; i++ { // ~15 MB, far more than the socket buffers hold
		want = append(want, h.write(50_000, i%50 == 0)...)
	}
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("read %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("stream differs at byte %d of %d", i, len(want))
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.WrittenBytes() < uint64(len(want)) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if w := s.WrittenBytes(); w < uint64(len(want)) {
		t.Errorf("WrittenBytes %d < %d body bytes", w, len(want))
	}
}

// TestPushClientLeaves: clients that close, or send a byte, while nothing
// is being written are noticed by the sweep; a kick (Session.Close) ends a
// push session at once. Each leaves the group.
func TestPushClientLeaves(t *testing.T) {
	h := newPushHarness(t, 10*time.Second)
	h.write(100, true)
	c1, _, s1 := h.get(t)
	c2, _, s2 := h.get(t)
	_, br3, s3 := h.get(t)
	for _, s := range []*Session{s1, s2, s3} {
		waitPushed(t, s)
	}
	waitGroupSubs(t, h.m, 3)
	c1.Close()
	c2.Write([]byte("x"))
	waitGroupSubs(t, h.m, 1)
	s3.Close()
	waitGroupSubs(t, h.m, 0)
	if _, err := io.ReadAll(br3); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("kicked client: %v", err)
	}
}

// TestPushSlowClientTimesOut: a client whose socket stays full for the
// write timeout is ended; the others go on.
func TestPushSlowClientTimesOut(t *testing.T) {
	h := newPushHarness(t, 300*time.Millisecond)
	h.write(100, true)
	_, _, slow := h.get(t)
	fastConn, fastBR, fast := h.get(t)
	waitPushed(t, slow)
	waitPushed(t, fast)
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, fastBR)
		done <- n
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.write(100_000, false)
		time.Sleep(5 * time.Millisecond)
		g := h.m.Group("s")
		if g != nil && len(g.Stat().Subs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client that never reads was not ended")
		}
	}
	if st := h.m.Group("s").Stat(); st.Subs[0].ID != fast.ID() || fast.WrittenBytes() == 0 {
		t.Fatalf("left: %+v", st.Subs)
	}
	fastConn.Close()
	<-done
}

// TestPushCloseRacesStart: a session closed (kicked, shut down) while it is
// being handed to the group ends, whatever the moment, and the handler's
// watcher stops with the last push session. (The window that used to leak
// the watcher is too narrow to hit from here: TestPushRegisterClosedConn
// is its deterministic test.)
func TestPushCloseRacesStart(t *testing.T) {
	h := newPushHarness(t, 10*time.Second)
	h.write(100, true)
	subscribe := h.handler.Subscribe
	var n atomic.Int64
	h.handler.Subscribe = func(s *Session) (Subscription, error) {
		sub, err := subscribe(s)
		<-h.subs
		delay := time.Duration(n.Add(1)%40) * 5 * time.Microsecond
		go func() {
			time.Sleep(delay)
			s.Close()
		}()
		return sub, err
	}
	for i := 0; i < 300; i++ {
		c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /live/s.flv HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection %d not closed by the server: %v", i, err)
		}
		c.Close()
	}
	waitGroupSubs(t, h.m, 0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.handler.pushMu.Lock()
		running := h.handler.watcher != nil
		count := h.handler.pushCount
		h.handler.pushMu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher still running with %d push sessions registered", count)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPushRegisterClosedConn: a connection closed before it could be
// watched (a kick during the response head) is refused by register, and
// the watcher register started for it stops: it used to run on with no
// session to end it.
func TestPushRegisterClosedConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	w, err := netx.New(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	h := &Handler{}
	if err := h.register(&pusher{Pusher: netx.Pusher{W: w}}); err == nil {
		t.Fatal("register watched a closed connection")
	}
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	if h.watcher != nil || h.pushCount != 0 {
		t.Fatalf("after a refused register: watcher running %v, %d registered", h.watcher != nil, h.pushCount)
	}
}
