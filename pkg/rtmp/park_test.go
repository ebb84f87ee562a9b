package rtmp

import (
	"context"
	"net"
	"testing"
	"time"

	"sluice/pkg/group"
)

// groupHandler serves the group core, as the server does.
type groupHandler struct {
	m      *group.Manager
	closed chan string
}

func (h *groupHandler) OnConnect(*ServerSession) {}

func (h *groupHandler) OnPublish(s *ServerSession) (Publisher, error) {
	return h.m.Publish(group.SessionInfo{ID: s.ID(), StreamName: s.StreamName()})
}

func (h *groupHandler) OnPlay(s *ServerSession) (Subscription, error) {
	return h.m.Subscribe(group.SessionInfo{ID: s.ID(), StreamName: s.StreamName()}, 0), nil
}

func (h *groupHandler) OnClose(s *ServerSession) { h.closed <- s.ID() }

// startParkServer starts a server on the group core; ids are P1, P2, ...
func startParkServer(t *testing.T) (*Server, *groupHandler, string) {
	t.Helper()
	h := &groupHandler{
		m: group.NewManager(group.Config{Formats: []group.FormatSpec{
			{Name: "rtmp", GOPNum: 1, NewMuxer: func(string) group.Muxer { return Muxer{} }},
		}}),
		closed: make(chan string, 16),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	srv := &Server{Handler: h, NewSessionID: func() string { n++; return "P" + string(rune('0'+n)) }}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
		h.m.WaitPush()
	})
	return srv, h, ln.Addr().String()
}

// sessionState finds the session with id and reports whether it is parked.
func sessionState(srv *Server, id string) (found, parked bool) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		if s.ID() == id {
			s.parkMu.Lock()
			defer s.parkMu.Unlock()
			return true, s.parked
		}
	}
	return false, false
}

func waitParked(t *testing.T, srv *Server, id string, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		found, parked := sessionState(srv, id)
		if found && parked == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s: found %v parked %v, want parked %v", id, found, parked, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestPlayerParks: a push player with nothing to say has no goroutine
// (parked); its ping wakes it, is answered, and it parks again; media keeps
// flowing throughout; a kick, the player leaving and a shutdown each end a
// parked session.
func TestPlayerParks(t *testing.T) {
	srv, h, addr := startParkServer(t)
	ctx := context.Background()
	pub, err := Dial(ctx, "rtmp://"+addr+"/live/s", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(); err != nil {
		t.Fatal(err)
	}
	sent := readTestPackets(t, "../../../shared/media/h264_aac_360p.flv", 400)
	for i := range sent[:100] {
		if err := pub.WritePacket(&sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	player, err := Dial(ctx, "rtmp://"+addr+"/live/s", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	if err := player.Play(); err != nil {
		t.Fatal(err)
	}
	const playerID = "P2"
	waitParked(t, srv, playerID, true)

	// A ping from the player: answered, then parked again.
	if err := player.WriteChunks([][]byte{AppendUserControl(nil, EventPingRequest, 4242)}); err != nil {
		t.Fatal(err)
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range sent[100:] {
			pub.WritePacket(&sent[100+i])
		}
	}()
	media := 0
	for pong := false; !pong; {
		player.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		msg, err := player.cr.ReadMessage() // readMessage swallows user control messages
		if err != nil {
			t.Fatalf("waiting for the ping response (%d media messages so far): %v", media, err)
		}
		switch msg.TypeID {
		case TypeUserControl:
			ev, arg, _, _ := ParseUserControl(msg.Payload)
			pong = ev == EventPingResponse && arg == 4242
		case TypeAudio, TypeVideo:
			media++
		}
	}
	<-published
	waitParked(t, srv, playerID, true)
	// Media still flows after the wake.
	for i := range sent[:50] {
		if err := pub.WritePacket(&sent[i]); err != nil {
			t.Fatal(err)
		}
	}
	for n := 0; n < 20; {
		msg, err := player.readMessage()
		if err != nil {
			t.Fatal(err)
		}
		if msg.TypeID == TypeVideo || msg.TypeID == TypeAudio {
			n++
		}
	}

	// A kick (Close from another goroutine) ends a parked session.
	srv.mu.Lock()
	var kicked *ServerSession
	for s := range srv.sessions {
		if s.ID() == playerID {
			kicked = s
		}
	}
	srv.mu.Unlock()
	kicked.Close()
	waitClosed(t, h, playerID)

	// A player that leaves while parked is noticed.
	p2, err := Dial(ctx, "rtmp://"+addr+"/live/s", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Play(); err != nil {
		t.Fatal(err)
	}
	waitParked(t, srv, "P3", true)
	p2.Close()
	waitClosed(t, h, "P3")

	// A parked player at shutdown: the cleanup's Shutdown must end it.
	p3, err := Dial(ctx, "rtmp://"+addr+"/live/s", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p3.Close()
	if err := p3.Play(); err != nil {
		t.Fatal(err)
	}
	waitParked(t, srv, "P4", true)
}

func waitClosed(t *testing.T, h *groupHandler, id string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-h.closed:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("session %s not closed", id)
		}
	}
}
