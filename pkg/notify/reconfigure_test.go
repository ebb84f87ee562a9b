package notify

import (
	"net/http"
	"testing"
	"time"
)

// TestReconfigureKeepsQueue: events queued (and retrying) while the receiver
// refuses the old secret survive Reconfigure, are then delivered in order
// with the new secret, and a backoff longer than the new cap is cut short.
func TestReconfigureKeepsQueue(t *testing.T) {
	// Only requests signed with the new secret succeed.
	rc, srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, h hit, n int) int {
		if Verify("new", r, h.Body, time.Minute) != nil {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	// A long backoff: without Reconfigure the retries would wait ~minutes.
	d := newDispatcher(t, Config{Secret: "old", MinBackoff: time.Minute, MaxBackoff: time.Hour, QueueSize: 100})
	const n = 20
	for i := range n {
		d.Enqueue(mkEvent("on_pub_start", srv.URL+"/a", "s1", i))
	}
	eventually(t, "a first failed attempt", func() bool { return rc.count() >= 1 })
	if h := rc.snapshot()[0]; h.Header.Get(HeaderSignature) != Sign("old", h.Header.Get(HeaderTimestamp), h.Body) {
		t.Fatal("first attempt not signed with the old secret")
	}

	d.Reconfigure(Config{Secret: "new", Timeout: 2 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, QueueSize: 1})
	flush(t, d)

	st := d.Stats()
	if st.Delivered != n || st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats after reconfigure %+v, want %d delivered and nothing lost", st, n)
	}
	var seqs []int
	for _, h := range rc.snapshot() {
		if h.Header.Get(HeaderSignature) == Sign("new", h.Header.Get(HeaderTimestamp), h.Body) {
			seqs = append(seqs, h.Seq)
		} else if h.Seq != 0 {
			t.Errorf("event %d sent after Reconfigure without the new signature", h.Seq)
		}
	}
	if len(seqs) != n {
		t.Fatalf("%d events delivered with the new secret, want %d: %v", len(seqs), n, seqs)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("delivery order %v, want 0..%d", seqs, n-1)
		}
	}
	d.mu.Lock()
	qs, to := d.cfg.QueueSize, d.cfg.Timeout
	d.mu.Unlock()
	if qs != 100 || to != 2*time.Second {
		t.Errorf("queue size %d timeout %v after Reconfigure, want 100 (unchanged) and 2s", qs, to)
	}
}
