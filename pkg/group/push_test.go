package group

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// testSink records what a push subscriber is handed; while full it keeps
// the bytes as a real sink would and takes nothing more until drained.
type testSink struct {
	mu      sync.Mutex
	got     []string
	full    bool
	kept    [][]byte
	calls   int
	ended   error
	endedCh chan struct{}
	sub     *Sub
}

func newTestSink() *testSink { return &testSink{endedCh: make(chan struct{})} }

func (k *testSink) Deliver(bufs [][]byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.full {
		for _, b := range bufs {
			k.kept = append(k.kept, b)
		}
		return false
	}
	for _, b := range bufs {
		k.got = append(k.got, string(b))
	}
	return true
}

func (k *testSink) End(err error) {
	k.mu.Lock()
	k.ended = err
	k.mu.Unlock()
	close(k.endedCh)
	k.sub.Close()
}

func (k *testSink) setFull(full bool) {
	k.mu.Lock()
	k.full = full
	k.mu.Unlock()
}

// drainKept writes what the sink kept, then resumes the subscriber; the
// sink stays full when stayFull (it will keep what it gets next).
func (k *testSink) drainKept(stayFull bool) {
	k.mu.Lock()
	for _, b := range k.kept {
		k.got = append(k.got, string(b))
	}
	k.kept = nil
	k.full = stayFull
	k.mu.Unlock()
	k.sub.Resume()
}

func (k *testSink) snapshot() ([]string, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.got...), k.calls
}

// waitGot waits until the sink has n buffers and returns them.
func waitGot(t *testing.T, k *testSink, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := k.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink has %d buffers %q, waiting for %d", len(got), got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func pushSub(m *Manager, id string) (*Sub, *testSink) {
	s := m.Subscribe(info(id, "s"), 0)
	k := newTestSink()
	k.sub = s
	s.Push(k.Deliver, k.End)
	return s, k
}

// TestPushDelivers: push subscribers get the cached GOP, then every frame
// in order, from one delivery goroutine that ends with the last of them.
func TestPushDelivers(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	s1, k1 := pushSub(m, "S1")
	s2, k2 := pushSub(m, "S2")
	for _, k := range []*testSink{k1, k2} {
		if got := waitGot(t, k, 2); fmt.Sprint(got) != "[avsh av0]" {
			t.Fatalf("joiner got %q, want the header and the cached keyframe", got)
		}
	}
	pub.WritePacket(video(40, false))
	pub.WritePacket(audio(50))
	pub.WritePacket(video(80, false))
	for _, k := range []*testSink{k1, k2} {
		if got := waitGot(t, k, 5); fmt.Sprint(got) != "[avsh av0 av40 aa50 av80]" {
			t.Fatalf("got %q", got)
		}
	}
	s1.Close()
	pub.WritePacket(video(120, false))
	waitGot(t, k2, 6)
	s2.Close()
	pub.Close()
	m.WaitPush() // the delivery goroutine ends with its last push subscriber
	if g := m.Group("s"); g != nil {
		t.Fatalf("group left: %+v", g.Stat())
	}
}

// TestPushBlockedSinkResumes: a full sink is not handed anything until it
// resumes; then it gets everything it missed, in order, and the others are
// not held up meanwhile.
func TestPushBlockedSinkResumes(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	slow, ks := pushSub(m, "SLOW")
	defer slow.Close()
	fast, kf := pushSub(m, "FAST")
	defer fast.Close()
	waitGot(t, ks, 2)
	waitGot(t, kf, 2)

	ks.setFull(true)
	pub.WritePacket(video(40, false))
	waitGot(t, kf, 3)
	_, calls := ks.snapshot()
	if calls != 2 {
		t.Fatalf("slow sink called %d times, want 2 (the join, then the frame it kept)", calls)
	}
	for i := 2; i < 200; i++ { // more than one batch
		pub.WritePacket(video(int64(i)*40, false))
	}
	waitGot(t, kf, 201)
	if _, c := ks.snapshot(); c != calls {
		t.Fatalf("blocked sink called again (%d calls) before it resumed", c)
	}
	ks.drainKept(false)
	got := waitGot(t, ks, 201)
	for i, b := range got[2:] {
		if want := fmt.Sprintf("av%d", (i+1)*40); b != want {
			t.Fatalf("slow sink buffer %d = %q, want %q", i+2, b, want)
		}
	}
}

// TestPushTooSlowEnded: a push subscriber whose sink takes less than the
// stream, for longer than the write timeout, is ended through its sink.
func TestPushTooSlowEnded(t *testing.T) {
	rec := &recorder{}
	m := NewManager(Config{
		Formats:      []FormatSpec{{Name: "a", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a'} }}},
		MaxLag:       time.Millisecond,
		WriteTimeout: 20 * time.Millisecond,
		Observer:     rec,
	})
	pub, _ := m.Publish(info("P1", "s"))
	defer feedAudio(pub)()
	s, k := pushSub(m, "S1")
	k.setFull(true)
	// The sink drains what it kept every 3 ms and is full again at once: a
	// reader slower than the stream.
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(3 * time.Millisecond)
		k.drainKept(true)
		select {
		case <-k.endedCh:
			if k.ended != ErrTooSlow {
				t.Fatalf("ended with %v, want ErrTooSlow", k.ended)
			}
			if s.Dropped() == 0 {
				t.Error("no frame counted as dropped")
			}
			if evs := rec.list(); evs[len(evs)-1].Type != EventSubStop {
				t.Errorf("last event %+v, want the sub's stop", evs[len(evs)-1])
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("a subscriber behind for longer than the write timeout was not ended")
		}
	}
}

// TestPushClosedWhileBlocked: closing a blocked push subscriber ends the
// delivery goroutine all the same.
func TestPushClosedWhileBlocked(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	s, k := pushSub(m, "S1")
	waitGot(t, k, 2)
	k.setFull(true)
	pub.WritePacket(video(40, false))
	time.Sleep(10 * time.Millisecond)
	s.Close()
	s.Resume() // after Close: harmless
	pub.Close()
	m.WaitPush()
}

// TestPushFirstDeliveryByCaller: a joiner's cached GOP is handed over by
// Push itself, before it returns, not after the delivery goroutine's next
// pass; a full sink then gets nothing more until it resumes; and a
// subscriber closed while Push delivers is never handed to the delivery
// goroutine.
func TestPushFirstDeliveryByCaller(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	s, k := pushSub(m, "S1")
	if got, calls := k.snapshot(); fmt.Sprint(got) != "[avsh av0]" || calls != 1 {
		t.Fatalf("after Push: %q in %d calls, want the header and the keyframe in one", got, calls)
	}

	full := newTestSink()
	full.full = true
	fs := m.Subscribe(info("S2", "s"), 0)
	full.sub = fs
	fs.Push(full.Deliver, full.End)
	pub.WritePacket(video(40, false))
	waitGot(t, k, 3)
	if _, calls := full.snapshot(); calls != 1 {
		t.Fatalf("a full sink was called %d times before it resumed", calls)
	}
	full.drainKept(false)
	if got := waitGot(t, full, 3); fmt.Sprint(got) != "[avsh av0 av40]" {
		t.Fatalf("resumed sink got %q", got)
	}

	var closing *Sub
	closing = m.Subscribe(info("S3", "s"), 0)
	closing.Push(func([][]byte) bool { closing.Close(); return true }, func(error) { t.Error("end called") })
	g := m.Group("s")
	g.mu.RLock()
	n := len(g.pushSubs)
	g.mu.RUnlock()
	if n != 2 {
		t.Fatalf("%d push subscribers, want 2 (the one closed during Push left out)", n)
	}
	s.Close()
	fs.Close()
	pub.Close()
	m.WaitPush()
}
