package rtmp

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// relayHandler is an in-memory stand-in for the group core: one stream, the
// publisher's packets encoded by Muxer and handed to every player.
type relayHandler struct {
	mu       sync.Mutex
	connects []string
	pub      *memPublisher
	subs     []*memSub
	refuse   error
}

type memPublisher struct {
	h      *relayHandler
	closed bool
}

func (p *memPublisher) WritePacket(pkt *av.Packet) {
	b := Muxer{}.Mux(pkt)
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, s := range p.h.subs {
		select {
		case s.ch <- b:
		default:
		}
	}
}

func (p *memPublisher) Close() {
	p.h.mu.Lock()
	p.h.pub = nil
	p.h.mu.Unlock()
}

type memSub struct {
	ch   chan []byte
	done chan struct{}
	once sync.Once
}

func (s *memSub) Next(dst [][]byte) ([][]byte, error) {
	select {
	case b := <-s.ch:
		return append(dst, b), nil
	case <-s.done:
		return dst, errors.New("closed")
	}
}

func (s *memSub) Close() { s.once.Do(func() { close(s.done) }) }

func (h *relayHandler) OnConnect(s *ServerSession) {
	h.mu.Lock()
	h.connects = append(h.connects, s.App()+"|"+s.TcURL()+"|"+s.FlashVer())
	h.mu.Unlock()
}

func (h *relayHandler) OnPublish(s *ServerSession) (Publisher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse != nil {
		return nil, h.refuse
	}
	if h.pub != nil {
		return nil, errors.New("stream already has a publisher")
	}
	h.pub = &memPublisher{h: h}
	return h.pub, nil
}

func (h *relayHandler) OnPlay(s *ServerSession) (Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := &memSub{ch: make(chan []byte, 4096), done: make(chan struct{})}
	h.subs = append(h.subs, sub)
	return sub, nil
}

func startTestServer(t *testing.T, h Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	srv := &Server{Handler: h, NewSessionID: func() string { n++; return "RTMPPUBSUB" }}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return ln.Addr().String()
}

func readTestPackets(t *testing.T, path string, max int) []av.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("test media not available: %v", err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var pkts []av.Packet
	for len(pkts) < max {
		h, body, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
	return pkts
}

func TestClientPublishAndPlayThroughServer(t *testing.T) {
	h := &relayHandler{}
	addr := startTestServer(t, h)
	ctx := context.Background()
	for _, complexHS := range []bool{false, true} {
		h.mu.Lock()
		h.pub, h.subs = nil, nil
		h.mu.Unlock()

		player, err := Dial(ctx, "rtmp://"+addr+"/live/test110?k=v", ClientOptions{ComplexHandshake: complexHS})
		if err != nil {
			t.Fatal(err)
		}
		if err := player.Play(); err != nil {
			t.Fatal(err)
		}
		pub, err := Dial(ctx, "rtmp://"+addr+"/live/test110", ClientOptions{ComplexHandshake: complexHS, FlashVer: "TEST/1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(); err != nil {
			t.Fatal(err)
		}
		// A second publisher is told BadName.
		dup, err := Dial(ctx, "rtmp://"+addr+"/live/test110", ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := dup.Publish(); err == nil || !strings.Contains(err.Error(), "NetStream.Publish.BadName") {
			t.Fatalf("duplicate publish: err = %v, want NetStream.Publish.BadName", err)
		}
		dup.Close()

		sent := readTestPackets(t, "../../../shared/media/h264_aac_360p.flv", 200)
		for i := range sent {
			if err := pub.WritePacket(&sent[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i := range sent {
			got, err := player.ReadPacket()
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			want := sent[i]
			wantPayload := want.Payload
			if want.Kind == av.KindData {
				wantPayload = flv.StripSetDataFrame(want.Payload)
			}
			if got.Kind != want.Kind || got.Timestamp != want.Timestamp || got.KeyFrame != want.KeyFrame ||
				got.CTS != want.CTS || string(got.Payload) != string(wantPayload) {
				t.Fatalf("packet %d: got %v ts %d (%d bytes), want %v ts %d (%d bytes)", i,
					got.Kind, got.Timestamp, len(got.Payload), want.Kind, want.Timestamp, len(wantPayload))
			}
		}
		pub.Close()
		player.Close()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.connects) < 2 || !strings.Contains(h.connects[1], "live|rtmp://"+addr+"/live|TEST/1.0") {
		t.Fatalf("connects: %q", h.connects)
	}
}

func TestClientPlayRefused(t *testing.T) {
	h := &relayHandler{refuse: errors.New("not allowed")}
	addr := startTestServer(t, h)
	c, err := Dial(context.Background(), "rtmp://"+addr+"/live/x", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, addr, tc, app, name string
		bad                     bool
	}{
		{in: "rtmp://h/live/s", addr: "h:1935", tc: "rtmp://h/live", app: "live", name: "s"},
		{in: "rtmp://h:19350/live/s?a=1&b=2", addr: "h:19350", tc: "rtmp://h:19350/live", app: "live", name: "s?a=1&b=2"},
		{in: "rtmp://h/a/b/c", addr: "h:1935", tc: "rtmp://h/a", app: "a", name: "b/c"},
		{in: "rtmp://h//s", addr: "h:1935", tc: "rtmp://h/", app: "", name: "s"},
		{in: "http://h/live/s", bad: true},
		{in: "rtmp://h/live", bad: true},
		{in: "rtmp://h/live/", bad: true},
	} {
		addr, tcURL, app, name, err := ParseURL(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: no error", tc.in)
			}
			continue
		}
		if err != nil || addr != tc.addr || tcURL != tc.tc || app != tc.app || name != tc.name {
			t.Errorf("%s: got %q %q %q %q %v", tc.in, addr, tcURL, app, name, err)
		}
	}
}

func TestDialTimesOutOnSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	_, err = Dial(context.Background(), "rtmp://"+ln.Addr().String()+"/live/x", ClientOptions{Timeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("handshake with a silent server succeeded")
	}
	(<-accepted).Close()
}
