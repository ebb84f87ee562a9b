package group

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/pkg/av"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// copyMuxer encodes a packet as its payload behind a one-byte format mark, so
// tests can tell which format's bytes a subscriber got.
type copyMuxer struct {
	mark  byte
	calls *int
}

func (c copyMuxer) Mux(pkt *av.Packet) []byte {
	if c.calls != nil {
		*c.calls++
	}
	return append([]byte{c.mark}, pkt.Payload...)
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) OnEvent(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func newTestManager(gopNum int, obs Observer) *Manager {
	return NewManager(Config{
		Formats: []FormatSpec{
			{Name: "a", GOPNum: gopNum, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a'} }},
			{Name: "b", GOPNum: 0, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'b'} }},
		},
		Observer: obs,
	})
}

func video(ts int64, key bool) *av.Packet {
	return &av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, Timestamp: ts, KeyFrame: key, Payload: []byte(fmt.Sprintf("v%d", ts))}
}

func audio(ts int64) *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, Payload: []byte(fmt.Sprintf("a%d", ts))}
}

func videoHeader() *av.Packet {
	return &av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, KeyFrame: true, SeqHeader: true, Payload: []byte("vsh")}
}

func audioHeader() *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, SeqHeader: true, Payload: []byte("ash")}
}

func metadata() *av.Packet {
	return &av.Packet{Kind: av.KindData, Payload: []byte("meta")}
}

// drain returns everything a subscriber has pending, as strings, without
// waiting for more.
func drain(t *testing.T, s *Sub) []string {
	t.Helper()
	var out []string
	for {
		s.g.mu.Lock()
		bufs, err := s.collect(nil)
		s.g.mu.Unlock()
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		if len(bufs) == 0 {
			return out
		}
		for _, b := range bufs {
			out = append(out, string(b))
		}
	}
}

func info(id, stream string) SessionInfo {
	return SessionInfo{ID: id, StreamName: stream, AppName: "live", Protocol: "RTMP"}
}

func TestLateJoinerStartsAtCachedKeyframe(t *testing.T) {
	m := newTestManager(1, nil)
	pub, err := m.Publish(info("P1", "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, p := range []*av.Packet{metadata(), videoHeader(), audioHeader(),
		video(0, true), audio(10), video(40, false), video(80, true), audio(90), video(120, false)} {
		pub.WritePacket(p)
	}
	a := m.Subscribe(info("S1", "s"), 0)
	defer a.Close()
	got := drain(t, a)
	want := []string{"ameta", "avsh", "aash", "av80", "aa90", "av120"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("gop_num 1 joiner got %v, want %v", got, want)
	}

	// Format b has no GOP cache: it waits for the next keyframe, but gets the
	// decoder configuration first.
	b := m.Subscribe(info("S2", "s"), 1)
	defer b.Close()
	if got := drain(t, b); fmt.Sprint(got) != fmt.Sprint([]string{"bmeta", "bvsh", "bash"}) {
		t.Fatalf("gop_num 0 joiner got %v before the next keyframe", got)
	}
	pub.WritePacket(audio(130))
	pub.WritePacket(video(160, false))
	if got := drain(t, b); len(got) != 0 {
		t.Fatalf("gop_num 0 joiner got %v before a keyframe", got)
	}
	pub.WritePacket(video(200, true))
	pub.WritePacket(audio(210))
	if got := drain(t, b); fmt.Sprint(got) != fmt.Sprint([]string{"bv200", "ba210"}) {
		t.Fatalf("gop_num 0 joiner got %v", got)
	}
	// The first subscriber got everything live.
	if got := drain(t, a); fmt.Sprint(got) != fmt.Sprint([]string{"aa130", "av160", "av200", "aa210"}) {
		t.Fatalf("live subscriber got %v", got)
	}
}

func TestGOPNumTwo(t *testing.T) {
	m := newTestManager(2, nil)
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(videoHeader())
	for i, ts := range []int64{0, 40, 80, 120, 160, 200} {
		pub.WritePacket(video(ts, i%2 == 0))
	}
	s := m.Subscribe(info("S1", "s"), 0)
	defer s.Close()
	want := []string{"avsh", "av80", "av120", "av160", "av200"}
	if got := drain(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAudioOnlyJoinerStartsLive(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(audioHeader())
	pub.WritePacket(audio(0))
	pub.WritePacket(audio(23))
	s := m.Subscribe(info("S1", "s"), 1) // gop 0: must not wait for a keyframe that never comes
	defer s.Close()
	pub.WritePacket(audio(46))
	if got := drain(t, s); fmt.Sprint(got) != fmt.Sprint([]string{"bash", "ba46"}) {
		t.Fatalf("got %v", got)
	}
	if a, v := s.Tracks(); !a || v {
		t.Fatalf("Tracks() = %v, %v; want audio only", a, v)
	}
}

func TestSubscriberBeforePublisherAndRepublish(t *testing.T) {
	rec := &recorder{}
	m := newTestManager(1, rec)
	s := m.Subscribe(info("S1", "s"), 0)
	defer s.Close()

	got := make(chan []string, 1)
	go func() {
		bufs, err := s.Next(nil)
		var out []string
		for _, b := range bufs {
			out = append(out, string(b))
		}
		if err != nil {
			out = append(out, err.Error())
		}
		got <- out
	}()
	pub, err := m.Publish(info("P1", "s"))
	if err != nil {
		t.Fatal(err)
	}
	pub.WritePacket(videoHeader())
	if out := <-got; len(out) == 0 || out[0] != "avsh" {
		t.Fatalf("waiting subscriber woke with %v", out)
	}
	pub.WritePacket(video(0, true))
	drain(t, s)
	pub.Close()
	if g := m.Group("s"); g == nil {
		t.Fatal("group removed while a subscriber waits")
	}
	// A new publisher: the subscriber resumes with the new configuration.
	pub2, err := m.Publish(info("P2", "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub2.Close()
	pub2.WritePacket(videoHeader())
	pub2.WritePacket(video(0, true))
	if got := drain(t, s); fmt.Sprint(got) != fmt.Sprint([]string{"avsh", "av0"}) {
		t.Fatalf("after republish got %v", got)
	}

	var types []string
	for _, e := range rec.list() {
		types = append(types, fmt.Sprintf("%s:%s:in=%v:out=%v", e.Type, e.Session.ID, e.HasInSession, e.HasOutSession))
	}
	want := []string{
		"sub_start:S1:in=false:out=true",
		"pub_start:P1:in=true:out=true",
		"pub_stop:P1:in=false:out=true",
		"pub_start:P2:in=true:out=true",
	}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
}

func TestDuplicatePublisherRefused(t *testing.T) {
	m := newTestManager(1, nil)
	pub, err := m.Publish(info("P1", "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	_, err = m.Publish(info("P2", "s"))
	if !errors.Is(err, ErrStreamExists) {
		t.Fatalf("second publisher: err = %v, want ErrStreamExists", err)
	}
	// App names are not matched: another app, same stream, is the same group.
	other := info("P3", "s")
	other.AppName = "other"
	if _, err := m.Publish(other); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("same stream in another app: err = %v", err)
	}
	if st := m.Group("s").Stat(); st.Pub == nil || st.Pub.ID != "P1" {
		t.Fatalf("publisher after refusal: %+v", st.Pub)
	}
}

func TestGroupRemovedWhenEmpty(t *testing.T) {
	rec := &recorder{}
	m := newTestManager(1, rec)
	pub, _ := m.Publish(info("P1", "s"))
	s := m.Subscribe(info("S1", "s"), 0)
	s.Close()
	s.Close() // idempotent
	if m.Group("s") == nil {
		t.Fatal("group removed while publishing")
	}
	pub.Close()
	if m.Group("s") != nil {
		t.Fatal("empty group not removed")
	}
	evs := rec.list()
	last := evs[len(evs)-1]
	if last.Type != EventPubStop || last.HasInSession || last.HasOutSession {
		t.Fatalf("last event %+v", last)
	}
	if n := len(evs); n != 4 {
		t.Fatalf("%d events, want 4 (Close twice must report once)", n)
	}
}

// TestHoldInput: a relay pull's hold keeps the group alive with no session,
// refuses other publishers, lets the pull publish, and the group goes once
// the hold is released and nothing else is left.
func TestHoldInput(t *testing.T) {
	m := newTestManager(1, nil)
	release := m.HoldInput("s")
	g := m.Group("s")
	if g == nil || g.AppName() != "" {
		t.Fatalf("held group = %v, want one with app \"\"", g)
	}
	if _, err := m.Publish(info("P1", "s")); !errors.Is(err, ErrStreamExists) {
		t.Fatalf("publisher while the input is held: err = %v, want ErrStreamExists", err)
	}
	if m.Group("s") != g {
		t.Fatal("refused publisher removed the held group")
	}
	pull := info("PULL1", "s")
	pull.BaseType = BasePull
	pub, err := m.Publish(pull)
	if err != nil {
		t.Fatalf("the pull's publish: %v", err)
	}
	pub.Close()
	if m.Group("s") != g {
		t.Fatal("group removed when the pull's attempt ended, while still held")
	}
	release()
	release() // idempotent
	if m.Group("s") != nil {
		t.Fatal("group kept after the hold was released")
	}
	if _, err := m.Publish(info("P2", "s")); err != nil {
		t.Fatalf("publisher after the release: %v", err)
	}
}

func TestLaggingSubscriberSkipsToKeyframe(t *testing.T) {
	m := NewManager(Config{
		Formats:      []FormatSpec{{Name: "a", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a'} }}},
		MaxLag:       20 * time.Millisecond,
		WriteTimeout: time.Hour,
	})
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	fast := m.Subscribe(info("F", "s"), 0)
	defer fast.Close()
	slow := m.Subscribe(info("S", "s"), 0)
	defer slow.Close()
	drain(t, fast)
	drain(t, slow)
	pub.WritePacket(video(40, false))
	if got := drain(t, fast); fmt.Sprint(got) != fmt.Sprint([]string{"av40"}) {
		t.Fatalf("fast subscriber got %v", got)
	}
	time.Sleep(40 * time.Millisecond) // the slow one's next frame is now older than MaxLag
	pub.WritePacket(video(80, true))
	pub.WritePacket(video(120, false))
	if got := drain(t, fast); fmt.Sprint(got) != fmt.Sprint([]string{"av80", "av120"}) {
		t.Fatalf("fast subscriber got %v", got)
	}
	if got := drain(t, slow); fmt.Sprint(got) != fmt.Sprint([]string{"avsh", "av80", "av120"}) {
		t.Fatalf("slow subscriber got %v, want a skip to the keyframe with the header resent", got)
	}
	if d := slow.Dropped(); d != 1 {
		t.Fatalf("dropped = %d, want 1", d)
	}
}

func TestSubscriberBehindTooLongIsEnded(t *testing.T) {
	m := NewManager(Config{
		Formats:      []FormatSpec{{Name: "a", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a'} }}},
		MaxLag:       time.Millisecond,
		WriteTimeout: 20 * time.Millisecond,
	})
	pub, _ := m.Publish(info("P1", "s"))
	defer feedAudio(pub)()
	s := m.Subscribe(info("S", "s"), 0)
	defer s.Close()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = s.Next(nil)
		time.Sleep(3 * time.Millisecond) // a reader slower than the stream
	}
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("err = %v, want ErrTooSlow", err)
	}
	if s.Dropped() == 0 {
		t.Fatal("no frames counted as dropped")
	}
}

func TestFormatEncodedOnceAndOnlyWhenWatched(t *testing.T) {
	calls := 0
	m := NewManager(Config{Formats: []FormatSpec{
		{Name: "a", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a', calls: &calls} }},
	}})
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(videoHeader())
	pub.WritePacket(video(0, true))
	if calls != 0 {
		t.Fatalf("muxed %d packets with no subscriber", calls)
	}
	subs := make([]*Sub, 50)
	for i := range subs {
		subs[i] = m.Subscribe(info(fmt.Sprint("S", i), "s"), 0)
		defer subs[i].Close()
	}
	// Activation replays the retained frames once: header + keyframe.
	if calls != 2 {
		t.Fatalf("activation muxed %d packets, want 2", calls)
	}
	pub.WritePacket(video(40, false))
	if calls != 3 {
		t.Fatalf("one packet with 50 subscribers muxed %d times in all, want 3", calls)
	}
	// Every subscriber holds the very same bytes.
	first := drain(t, subs[0])
	for _, s := range subs[1:] {
		if got := drain(t, s); fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("subscribers disagree: %v vs %v", got, first)
		}
	}
}

func TestCloseWakesBlockedNext(t *testing.T) {
	m := newTestManager(1, nil)
	s := m.Subscribe(info("S", "s"), 0)
	done := make(chan error)
	go func() {
		_, err := s.Next(nil)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestRetentionIsBounded(t *testing.T) {
	m := NewManager(Config{
		Formats:          []FormatSpec{{Name: "a", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'a'} }}},
		MaxRetainedBytes: 1000,
	})
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	pub.WritePacket(video(0, true))
	for i := 1; i < 2000; i++ { // one endless GOP
		pub.WritePacket(video(int64(i), false))
	}
	g := m.Group("s")
	g.mu.RLock()
	retained := g.log.bytesFrom(g.log.tail)
	g.mu.RUnlock()
	if retained > 1000 {
		t.Fatalf("retained %d bytes, limit 1000", retained)
	}
}

// TestAudioWakeCoalesced: in a stream with video, an audio frame does not
// wake the subscribers (it goes out with the next video frame) unless the
// last wake is audioWakeInterval old; video and audio-only streams wake at
// every frame.
func TestAudioWakeCoalesced(t *testing.T) {
	m := newTestManager(1, nil)
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	s := m.Subscribe(info("S1", "s"), 0)
	defer s.Close()
	g := m.Group("s")
	woken := func(pkt *av.Packet) bool {
		g.mu.RLock()
		w := g.wake
		g.mu.RUnlock()
		pub.WritePacket(pkt)
		select {
		case <-w:
			return true
		default:
			return false
		}
	}
	if !woken(videoHeader()) || !woken(video(0, true)) {
		t.Fatal("video did not wake the subscribers")
	}
	if woken(audio(10)) || woken(audio(20)) {
		t.Fatal("audio right after a video frame woke the subscribers")
	}
	if !woken(video(40, false)) {
		t.Fatal("video frame did not wake the subscribers")
	}
	if got := drain(t, s); len(got) != 5 {
		t.Fatalf("pending %q, want the 5 frames", got)
	}
	time.Sleep(audioWakeInterval + 10*time.Millisecond)
	if !woken(audio(100)) {
		t.Fatal("audio long after the last wake did not wake the subscribers")
	}

	// Audio-only: every frame wakes.
	pa, _ := m.Publish(info("P2", "a"))
	defer pa.Close()
	ga := m.Group("a")
	for i := range 3 {
		ga.mu.RLock()
		w := ga.wake
		ga.mu.RUnlock()
		pa.WritePacket(audio(int64(i) * 20))
		select {
		case <-w:
		default:
			t.Fatalf("audio frame %d of an audio-only stream did not wake", i)
		}
	}
}

// feedAudio publishes an audio frame every 200 µs, a stream faster than a
// slow reader; the returned function stops it and closes the publisher.
func feedAudio(pub *Publisher) (stop func()) {
	done := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
				pub.WritePacket(audio(int64(i)))
			}
		}
	}()
	return func() { close(done); <-published; pub.Close() }
}

// segMuxer keeps a frame's slices (or its payload, for a frame written
// whole) as they are and marks them with a slice of its own.
type segMuxer struct{ mark []byte }

func (m segMuxer) Mux(pkt *av.Packet) []byte {
	return append(append([]byte(nil), m.mark...), pkt.Payload...)
}

func (m segMuxer) MuxSegments(pkt *av.Packet, in [][]byte) [][]byte {
	if in == nil {
		in = [][]byte{pkt.Payload}
	}
	return append([][]byte{m.mark}, in...)
}

// TestWriteSegments: a frame written as slices reaches a SegmentMuxer's
// subscribers as those very slices (no copy), in order with frames written
// whole (their payload, not copied either), including the GOP cache given
// to a joiner and a format activated after the frames were written; a plain
// muxer gets the packet; retention counts the slices' bytes.
func TestWriteSegments(t *testing.T) {
	m := NewManager(Config{Formats: []FormatSpec{
		{Name: "seg", GOPNum: 1, NewMuxer: func(string) Muxer { return segMuxer{mark: []byte("|")} }},
		{Name: "plain", GOPNum: 1, NewMuxer: func(string) Muxer { return copyMuxer{mark: 'p'} }},
	}})
	pub, _ := m.Publish(info("P1", "s"))
	defer pub.Close()
	early := m.Subscribe(info("S1", "s"), 0)
	defer early.Close()
	media := []byte("KEYFRAME-BYTES")
	in := [][]byte{[]byte("h1"), media[:3], []byte("h2"), media[3:]}
	pub.WriteSegments(&av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, KeyFrame: true, Payload: []byte("whole")}, in)
	whole := video(40, false)
	pub.WritePacket(whole)

	want := []string{"|", "h1", "KEY", "h2", "FRAME-BYTES", "|", "v40"}
	checkSeg := func(name string, s *Sub) {
		t.Helper()
		s.g.mu.Lock()
		bufs, err := s.collect(nil)
		s.g.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range bufs {
			got = append(got, string(b))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s got %q, want %q", name, got, want)
		}
		if &bufs[2][0] != &media[0] || &bufs[4][0] != &media[3] || &bufs[6][0] != &whole.Payload[0] {
			t.Errorf("%s: the media slices were copied", name)
		}
	}
	checkSeg("subscriber before the frames", early)
	late := m.Subscribe(info("S2", "s"), 0)
	defer late.Close()
	checkSeg("joiner from the GOP cache", late)

	plain := m.Subscribe(info("S3", "s"), 1) // activated now: replays the log
	defer plain.Close()
	if got := drain(t, plain); fmt.Sprint(got) != fmt.Sprint([]string{"pwhole", "pv40"}) {
		t.Errorf("plain muxer got %q", got)
	}
	g := m.Group("s")
	g.mu.RLock()
	retained := g.log.bytesFrom(g.log.tail)
	g.mu.RUnlock()
	if want := uint64(len("h1h2KEYFRAME-BYTES") + len("v40")); retained != want {
		t.Errorf("retained %d bytes, want %d", retained, want)
	}
}
