package relay_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/relay"
)

// TestMain fails the package when a pull goroutine outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStreamNameFromURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, want string
	}{
		{"rtmp://127.0.0.1/live/test110?x=1", "test110"},
		{"rtmp://h:1935/live/test110", "test110"},
		{"rtmp://h/live/a/b?k=v&x=y", "b"},
		{"rtsp://h:554/live/cam1/", "cam1"},
		{"rtsps://user:pw@h/x/y.sdp", "y.sdp"},
		{"rtmp://h/live/s#frag", "s"},
	} {
		got, err := relay.StreamNameFromURL(tc.url)
		if err != nil || got != tc.want {
			t.Errorf("StreamNameFromURL(%q) = %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
	for _, bad := range []string{"rtmp://h", "rtmp://h/", "rtmp://h///", "", "::not a url", "rtmp://h/live/%zz"} {
		if got, err := relay.StreamNameFromURL(bad); err == nil {
			t.Errorf("StreamNameFromURL(%q) = %q, want an error", bad, got)
		}
	}
}

// ---------------------------------------------------------------------------
// Fakes

type nopMuxer struct{}

func (nopMuxer) Mux(pkt *av.Packet) []byte { return pkt.Payload }

// recorder is the group observer: it records the pull's pub events.
type recorder struct {
	mu     sync.Mutex
	events []group.Event
}

func (r *recorder) OnEvent(ev group.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) pubEvents() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Type == group.EventPubStart || ev.Type == group.EventPubStop {
			out = append(out, ev.Type.String()+":"+ev.Session.ID+":"+ev.Session.BaseType)
		}
	}
	return out
}

func newManager() (*group.Manager, *recorder) {
	rec := &recorder{}
	return group.NewManager(group.Config{
		Formats:  []group.FormatSpec{{Name: "test", NewMuxer: func(string) group.Muxer { return nopMuxer{} }}},
		Observer: rec,
	}), rec
}

// fakeSource is a connected remote stream: it delivers the packets sent on
// pkts and then blocks until closed (or ends with err when end is closed).
type fakeSource struct {
	pkts   chan *av.Packet
	closed chan struct{}
	once   sync.Once
	end    chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{pkts: make(chan *av.Packet, 16), closed: make(chan struct{}), end: make(chan struct{})}
}

func (s *fakeSource) ReadPacket() (*av.Packet, error) {
	select {
	case p := <-s.pkts:
		return p, nil
	case <-s.closed:
		return nil, errors.New("fake source closed")
	case <-s.end:
		return nil, io.EOF
	}
}

func (s *fakeSource) RemoteAddr() string   { return "192.0.2.1:1935" }
func (s *fakeSource) ReadBytes() uint64    { return 1000 }
func (s *fakeSource) WrittenBytes() uint64 { return 100 }
func (s *fakeSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *fakeSource) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// dialer is a fake DialFunc. Each call is recorded; next decides its outcome.
type dialer struct {
	mu    sync.Mutex
	calls int
	at    []time.Time
	srcs  []*fakeSource
	// next returns the source of call n (0-based), or an error. nil
	// fails every attempt.
	next func(ctx context.Context, n int) (relay.Source, error)
}

func (d *dialer) dial(ctx context.Context, rawURL string, opt relay.PullOptions) (relay.Source, error) {
	d.mu.Lock()
	n := d.calls
	d.calls++
	d.at = append(d.at, time.Now())
	next := d.next
	d.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("dial context without the pull timeout")
	}
	if next == nil {
		return nil, errors.New("connection refused")
	}
	src, err := next(ctx, n)
	if s, ok := src.(*fakeSource); ok && err == nil {
		d.mu.Lock()
		d.srcs = append(d.srcs, s)
		d.mu.Unlock()
	}
	return src, err
}

func (d *dialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

func (d *dialer) source(i int) *fakeSource {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i < len(d.srcs) {
		return d.srcs[i]
	}
	return nil
}

// failures records OnAttemptFailed calls.
type failures struct {
	mu    sync.Mutex
	infos []group.SessionInfo
	errs  []error
}

func (f *failures) add(info group.SessionInfo, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infos = append(f.infos, info)
	f.errs = append(f.errs, err)
}

func (f *failures) list() []group.SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]group.SessionInfo(nil), f.infos...)
}

type fixture struct {
	groups *group.Manager
	rec    *recorder
	dial   *dialer
	fails  *failures
	pm     *relay.PullManager
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	g, rec := newManager()
	f := &fixture{groups: g, rec: rec, dial: &dialer{}, fails: &failures{}}
	f.pm = &relay.PullManager{Groups: g, DialRTMP: f.dial.dial, OnAttemptFailed: f.fails.add}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { f.pm.Shutdown(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("PullManager.Shutdown did not return within 5 s")
		}
	})
	return f
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkFreshIDs(t *testing.T, first string, infos []group.SessionInfo) {
	t.Helper()
	seen := map[string]bool{}
	for i, info := range infos {
		if !strings.HasPrefix(info.ID, "RTMPPULL") {
			t.Errorf("attempt %d: id %q, want an RTMPPULL id", i, info.ID)
		}
		if seen[info.ID] {
			t.Errorf("attempt %d reuses id %q (ids %v)", i, info.ID, ids(infos))
		}
		seen[info.ID] = true
		if info.BaseType != group.BasePull || info.Protocol != "RTMP" {
			t.Errorf("attempt %d: base_type %q protocol %q, want PULL RTMP", i, info.BaseType, info.Protocol)
		}
	}
	if len(infos) > 0 && infos[0].ID != first {
		t.Errorf("first failed attempt has id %q, StartPull returned %q", infos[0].ID, first)
	}
}

func ids(infos []group.SessionInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.ID)
	}
	return out
}

// ---------------------------------------------------------------------------
// Tests

// The retry limit: RetryNum 0 makes one attempt, N makes 1+N, each failed
// one reported once with a new session id.
func TestPullRetryLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		retry, attempts int
	}{{0, 1}, {2, 3}} {
		t.Run("retry"+string(rune('0'+tc.retry)), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/src?a=b", StreamName: "local", RetryNum: tc.retry, AutoStopNoOut: -1})
			if err != nil {
				t.Fatalf("StartPull: %v", err)
			}
			if !f.pm.HasPull("local") {
				t.Errorf("HasPull false right after StartPull")
			}
			waitFor(t, 10*time.Second, "the pull to give up", func() bool { return !f.pm.HasPull("local") })
			if n := f.dial.count(); n != tc.attempts {
				t.Errorf("dialed %d times, want %d", n, tc.attempts)
			}
			infos := f.fails.list()
			if len(infos) != tc.attempts {
				t.Fatalf("OnAttemptFailed called %d times, want %d (%v)", len(infos), tc.attempts, ids(infos))
			}
			checkFreshIDs(t, id, infos)
			for _, info := range infos {
				if info.URL != "rtmp://192.0.2.1/live/src?a=b" || info.StreamName != "local" || info.URLParam != "a=b" {
					t.Errorf("failed attempt info %+v: want the remote url, local stream name and url_param", info)
				}
			}
			if ev := f.rec.pubEvents(); len(ev) != 0 {
				t.Errorf("a failed attempt made group events: %v", ev)
			}
			if g := f.groups.Group("local"); g != nil {
				t.Errorf("failed pulls left the group behind")
			}
			// The retries are spaced by the backoff (1 s, then 2 s).
			f.dial.mu.Lock()
			at := f.dial.at
			f.dial.mu.Unlock()
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < 900*time.Millisecond {
					t.Errorf("retry %d came %v after the previous attempt, want the ≥ 1 s backoff", i, gap)
				}
			}
			if _, err := f.pm.StopPull("local"); !errors.Is(err, relay.ErrNoPull) {
				t.Errorf("StopPull after the pull gave up: %v, want ErrNoPull", err)
			}
		})
	}
}

// RetryNum -1 retries until stopped; StopPull of a pull that is not
// connected reports ErrNoPull but stops the retries all the same.
func TestPullRetryForeverStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/src", RetryNum: -1, AutoStopNoOut: -1})
	if err != nil {
		t.Fatalf("StartPull: %v", err)
	}
	// The stream name defaults to the URL's last segment.
	if !f.pm.HasPull("src") {
		t.Fatalf("no pull for the default stream name src")
	}
	waitFor(t, 5*time.Second, "a second attempt", func() bool { return len(f.fails.list()) >= 2 })
	if _, err := f.pm.StopPull("src"); !errors.Is(err, relay.ErrNoPull) {
		t.Errorf("StopPull of a retrying pull: %v, want ErrNoPull", err)
	}
	waitFor(t, 2*time.Second, "the pull to end", func() bool { return !f.pm.HasPull("src") })
	// The run loop has returned (HasPull is false): no attempt can follow;
	// check all the same over the next backoff's first second.
	n := f.dial.count()
	time.Sleep(1200 * time.Millisecond)
	if got := f.dial.count(); got != n {
		t.Errorf("%d more attempts after StopPull", got-n)
	}
	checkFreshIDs(t, id, f.fails.list())
	// A new pull can start once the old one is gone.
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/src", RetryNum: 0, AutoStopNoOut: -1}); err != nil {
		t.Errorf("StartPull after StopPull: %v", err)
	}
}

// StopPull while the dial is in progress cancels it: ErrNoPull (nothing was
// connected), the dial's context ends, no retry follows.
func TestStopPullWhileConnecting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dialing := make(chan struct{}, 1)
	f.dial.next = func(ctx context.Context, n int) (relay.Source, error) {
		dialing <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/src", StreamName: "s", RetryNum: -1, AutoStopNoOut: -1, Timeout: time.Minute}); err != nil {
		t.Fatalf("StartPull: %v", err)
	}
	select {
	case <-dialing:
	case <-time.After(5 * time.Second):
		t.Fatal("the pull never dialed")
	}
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/other", StreamName: "s"}); !errors.Is(err, relay.ErrInputExists) {
		t.Errorf("second StartPull while the first connects: %v, want ErrInputExists", err)
	}
	start := time.Now()
	if id, err := f.pm.StopPull("s"); !errors.Is(err, relay.ErrNoPull) || id != "" {
		t.Errorf("StopPull of a connecting pull = %q, %v; want \"\", ErrNoPull", id, err)
	}
	waitFor(t, 2*time.Second, "the connecting pull to end", func() bool { return !f.pm.HasPull("s") })
	if d := time.Since(start); d > time.Second {
		t.Errorf("the dial was not canceled: the pull ended %v after StopPull", d)
	}
	time.Sleep(1200 * time.Millisecond) // one backoff
	if n := f.dial.count(); n != 1 {
		t.Errorf("dialed %d times, want 1 (no retry after StopPull)", n)
	}
	if ev := f.rec.pubEvents(); len(ev) != 0 {
		t.Errorf("a pull stopped while connecting joined the group: %v", ev)
	}
}

// ErrInputExists: the stream has a publisher, or a pull already.
// ErrAutoStop: AutoStopNoOut 0 and no subscriber.
func TestStartPullRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pub, err := f.groups.Publish(group.SessionInfo{ID: "RTMPPUBSUB1", BaseType: group.BasePub, StreamName: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/busy", RetryNum: -1, AutoStopNoOut: -1}); !errors.Is(err, relay.ErrInputExists) {
		t.Errorf("StartPull into a published stream: %v, want ErrInputExists", err)
	} else if err.Error() != "lal.logic: in stream already exist at group" {
		t.Errorf("ErrInputExists text %q, want lal's", err.Error())
	}

	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/nobody", AutoStopNoOut: 0}); !errors.Is(err, relay.ErrAutoStop) {
		t.Errorf("StartPull with AutoStopNoOut 0 and no subscriber: %v, want ErrAutoStop", err)
	} else if err.Error() != "should auto stop pull" {
		t.Errorf("ErrAutoStop text %q, want lal's", err.Error())
	}
	if f.pm.HasPull("nobody") || f.dial.count() != 0 {
		t.Errorf("a refused StartPull dialed or left a pull")
	}

	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtsp://192.0.2.1/live/cam"}); err == nil {
		t.Errorf("StartPull of rtsp:// without DialRTSP succeeded")
	}
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/"}); err == nil {
		t.Errorf("StartPull without a stream name in the URL succeeded")
	}

	// With a subscriber waiting, AutoStopNoOut 0 is accepted.
	sub := f.groups.Subscribe(group.SessionInfo{ID: "FLVSUB1", BaseType: group.BaseSub, StreamName: "watched"}, 0)
	defer sub.Close()
	f.dial.next = func(ctx context.Context, n int) (relay.Source, error) { return newFakeSource(), nil }
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/watched", AutoStopNoOut: 0}); err != nil {
		t.Errorf("StartPull with AutoStopNoOut 0 and a subscriber: %v", err)
	}
	// A second pull of the same stream: refused, connected or not.
	waitFor(t, 2*time.Second, "the pull to join", func() bool {
		g := f.groups.Group("watched")
		return g != nil && g.HasInSession()
	})
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/watched", AutoStopNoOut: -1}); !errors.Is(err, relay.ErrInputExists) {
		t.Errorf("second StartPull: %v, want ErrInputExists", err)
	}
}

// A connected pull is the group's input (base PULL); StopPull returns its id,
// closes the source and ends the retries; kicking it through the group
// (SessionInfo.Close, as kick_session does) does the same.
func TestPullJoinStopAndKick(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"StopPull", "kick", "source-ends"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.dial.next = func(ctx context.Context, n int) (relay.Source, error) { return newFakeSource(), nil }
			id, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/src", StreamName: "s", RetryNum: -1, AutoStopNoOut: -1})
			if err != nil {
				t.Fatalf("StartPull: %v", err)
			}
			waitFor(t, 2*time.Second, "the pull to join", func() bool {
				g := f.groups.Group("s")
				return g != nil && g.HasInSession()
			})
			st := f.groups.Group("s").Stat()
			if st.Pub.ID != id || st.Pub.BaseType != group.BasePull || st.Pub.RemoteAddr != "192.0.2.1:1935" || st.Pub.Counters == nil || st.Pub.Counters.ReadBytes() != 1000 {
				t.Errorf("group input %+v, want the pull %s with base PULL, the source's address and counters", *st.Pub, id)
			}
			src := f.dial.source(0)
			pkt := &av.Packet{Kind: av.KindVideo, Payload: []byte{0x17, 1, 0, 0, 0}, DataOffset: 5, KeyFrame: true}
			src.pkts <- pkt
			switch how {
			case "StopPull":
				got, err := f.pm.StopPull("s")
				if err != nil || got != id {
					t.Errorf("StopPull = %q, %v; want %q, nil", got, err, id)
				}
			case "kick":
				st.Pub.Close()
			case "source-ends":
				close(src.end) // the remote ended: a retry follows (RetryNum -1)
				waitFor(t, 3*time.Second, "the retry to join", func() bool { return f.dial.source(1) != nil })
				waitFor(t, 2*time.Second, "the retry to join the group", func() bool {
					g := f.groups.Group("s")
					return g != nil && g.HasInSession() && g.Stat().Pub.ID != id
				})
				id2 := f.groups.Group("s").Stat().Pub.ID
				if !strings.HasPrefix(id2, "RTMPPULL") || id2 == id {
					t.Errorf("the retry has id %q, want a new RTMPPULL id (first %q)", id2, id)
				}
				got, err := f.pm.StopPull("s")
				if err != nil || got != id2 {
					t.Errorf("StopPull = %q, %v; want %q, nil", got, err, id2)
				}
				src = f.dial.source(1)
			}
			waitFor(t, 2*time.Second, "the pull to end", func() bool { return !f.pm.HasPull("s") })
			if !src.isClosed() {
				t.Errorf("the source was not closed")
			}
			if g := f.groups.Group("s"); g != nil {
				t.Errorf("the group outlived its only session")
			}
			n := f.dial.count()
			time.Sleep(1200 * time.Millisecond)
			if got := f.dial.count(); got != n {
				t.Errorf("%d attempts after the pull was stopped", got-n)
			}
			ev := f.rec.pubEvents()
			if len(ev) == 0 || ev[0] != "pub_start:"+id+":PULL" || len(ev)%2 != 0 {
				t.Errorf("group events %v, want pub_start of %s first and a stop for each start", ev, id)
			}
			for i := 0; i+1 < len(ev); i += 2 {
				if strings.Replace(ev[i], "pub_start", "pub_stop", 1) != ev[i+1] {
					t.Errorf("group events %v: %s not followed by its stop", ev, ev[i])
				}
			}
			if len(f.fails.list()) != 0 {
				t.Errorf("OnAttemptFailed called for attempts that joined: %v", ids(f.fails.list()))
			}
		})
	}
}

// AutoStopNoOut: the pull ends that long after its last subscriber left, and
// no retry follows.
func TestPullAutoStopAfterLastSubscriber(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.dial.next = func(ctx context.Context, n int) (relay.Source, error) { return newFakeSource(), nil }
	sub := f.groups.Subscribe(group.SessionInfo{ID: "FLVSUB1", BaseType: group.BaseSub, StreamName: "s"}, 0)
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/s", RetryNum: -1, AutoStopNoOut: 300 * time.Millisecond}); err != nil {
		t.Fatalf("StartPull: %v", err)
	}
	waitFor(t, 2*time.Second, "the pull to join", func() bool { return f.dial.source(0) != nil && f.groups.Group("s").HasInSession() })
	time.Sleep(600 * time.Millisecond) // longer than AutoStopNoOut: the subscriber keeps it alive
	if !f.pm.HasPull("s") || f.dial.source(0).isClosed() {
		t.Fatalf("the pull stopped while a subscriber watched")
	}
	sub.Close()
	left := time.Now()
	waitFor(t, 2*time.Second, "the auto stop", func() bool { return !f.pm.HasPull("s") })
	if d := time.Since(left); d < 250*time.Millisecond {
		t.Errorf("the pull stopped %v after the last subscriber left, want ≥ 300 ms", d)
	}
	if !f.dial.source(0).isClosed() {
		t.Errorf("the source was not closed")
	}
	time.Sleep(1200 * time.Millisecond)
	if n := f.dial.count(); n != 1 {
		t.Errorf("dialed %d times, want 1 (no retry after the auto stop)", n)
	}
	if g := f.groups.Group("s"); g != nil {
		t.Errorf("the group outlived the auto-stopped pull")
	}
}

// A retrying pull whose stream has had no subscriber for AutoStopNoOut stops
// retrying.
func TestPullAutoStopWhileRetrying(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sub := f.groups.Subscribe(group.SessionInfo{ID: "FLVSUB1", BaseType: group.BaseSub, StreamName: "s"}, 0)
	if _, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/s", RetryNum: -1, AutoStopNoOut: 200 * time.Millisecond}); err != nil {
		t.Fatalf("StartPull: %v", err)
	}
	waitFor(t, 2*time.Second, "the first attempt", func() bool { return len(f.fails.list()) >= 1 })
	sub.Close()
	waitFor(t, 4*time.Second, "the pull to give up", func() bool { return !f.pm.HasPull("s") })
	if n := len(f.fails.list()); n > 2 {
		t.Errorf("%d attempts, want the retries to stop once nobody watches", n)
	}
}

// Shutdown ends connected pulls too, not only the ones waiting to retry.
func TestPullManagerShutdownClosesConnected(t *testing.T) {
	t.Parallel()
	g, _ := newManager()
	d := &dialer{next: func(ctx context.Context, n int) (relay.Source, error) { return newFakeSource(), nil }}
	pm := &relay.PullManager{Groups: g, DialRTMP: d.dial}
	if _, err := pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/s", RetryNum: -1, AutoStopNoOut: -1}); err != nil {
		t.Fatalf("StartPull: %v", err)
	}
	waitFor(t, 2*time.Second, "the pull to join", func() bool { return d.source(0) != nil && g.Group("s") != nil && g.Group("s").HasInSession() })
	done := make(chan struct{})
	go func() { pm.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		d.source(0).Close() // let the goroutines end for goleak
		<-done
		t.Fatalf("Shutdown blocked on a connected pull: it must close the source")
	}
	if !d.source(0).isClosed() {
		t.Errorf("the source was not closed")
	}
	if d.count() != 1 {
		t.Errorf("dialed %d times, want 1", d.count())
	}
}

// The session id returned by StartPull is the id of the first attempt; an
// attempt failed once per call of OnAttemptFailed, with each error.
func TestPullAttemptErrorsReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var calls atomic.Int32
	f.dial.next = func(ctx context.Context, n int) (relay.Source, error) {
		calls.Add(1)
		return nil, errors.New("refused " + string(rune('A'+n)))
	}
	id, err := f.pm.StartPull(relay.PullOptions{URL: "rtmp://192.0.2.1/live/s", RetryNum: 1, AutoStopNoOut: -1})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 4*time.Second, "the pull to give up", func() bool { return !f.pm.HasPull("s") })
	f.fails.mu.Lock()
	errs := append([]error(nil), f.fails.errs...)
	f.fails.mu.Unlock()
	if len(errs) != 2 || calls.Load() != 2 || errs[0].Error() != "refused A" || errs[1].Error() != "refused B" {
		t.Errorf("OnAttemptFailed errors %v after %d dials, want [refused A refused B]", errs, calls.Load())
	}
	checkFreshIDs(t, id, f.fails.list())
}
