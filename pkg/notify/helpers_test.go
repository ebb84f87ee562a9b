package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// payload is the JSON body the tests send: which stream and which event of it.
type payload struct {
	Stream string `json:"stream"`
	Seq    int    `json:"seq"`
}

func mkBody(stream string, seq int) []byte {
	b, _ := json.Marshal(payload{Stream: stream, Seq: seq})
	return b
}

func mkEvent(name, url, stream string, seq int) Event {
	return Event{Name: name, URL: url, Stream: stream, Body: mkBody(stream, seq)}
}

// hit is one request seen by a receiver.
type hit struct {
	Path   string
	Name   string
	ID     string
	Stream string
	Seq    int
	Body   []byte
	Header http.Header
}

// receiver is a webhook endpoint recording every request in arrival order.
// respond (optional) picks the status; n counts the requests seen with this
// event id, this one included.
type receiver struct {
	respond func(w http.ResponseWriter, r *http.Request, h hit, n int) int

	mu   sync.Mutex
	hits []hit
	byID map[string]int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var p payload
	_ = json.Unmarshal(b, &p)
	h := hit{Path: r.URL.Path, Name: r.Header.Get(HeaderEvent), ID: r.Header.Get(HeaderEventID),
		Stream: p.Stream, Seq: p.Seq, Body: b, Header: r.Header.Clone()}
	rc.mu.Lock()
	if rc.byID == nil {
		rc.byID = make(map[string]int)
	}
	rc.hits = append(rc.hits, h)
	rc.byID[h.ID]++
	n := rc.byID[h.ID]
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(w, r, h, n)
	}
	w.WriteHeader(status)
}

func (rc *receiver) snapshot() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

// newReceiver starts an httptest server; it is closed at the end of the test.
func newReceiver(t testing.TB, respond func(http.ResponseWriter, *http.Request, hit, int) int) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{respond: respond}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func newUnstartedServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newDispatcher returns a Dispatcher closed at the end of the test (before
// receivers created earlier are closed).
func newDispatcher(t testing.TB, cfg Config) *Dispatcher {
	t.Helper()
	d := NewDispatcher(cfg)
	t.Cleanup(d.Close)
	return d
}

// gate blocks handlers until opened. Tests create it before the receiver
// (whose handler must not read anything written after the server started)
// and register t.Cleanup(g.open) after it, so it opens before the server closes.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// wait blocks until the gate opens or the request is canceled.
func (g *gate) wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

const longWait = 60 * time.Second

func flush(t testing.TB, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), longWait)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (stats %+v)", err, d.Stats())
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(longWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv reads one value from ch with a generous deadline.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(longWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// idleKeys reports whether no key (and so no worker goroutine) is left.
func (d *Dispatcher) idleKeys() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys) == 0
}
