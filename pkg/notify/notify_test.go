package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var idRE = regexp.MustCompile(`^[0-9a-f]{16}-[0-9]+$`)

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		secret         string // dispatcher's
		receiverSecret string // "" = receiver does not verify
		wantDelivered  uint64
		wantFailed     uint64
	}{
		{name: "unsigned", wantDelivered: 1},
		{name: "signed", secret: "s3cret", receiverSecret: "s3cret", wantDelivered: 1},
		{name: "wrong secret rejected by receiver", secret: "other", receiverSecret: "s3cret", wantFailed: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, h hit, _ int) int {
				if tc.receiverSecret != "" && Verify(tc.receiverSecret, r, h.Body, time.Minute) != nil {
					return http.StatusUnauthorized
				}
				return http.StatusNoContent
			})
			d := newDispatcher(t, Config{Secret: tc.secret})
			body := []byte(`{"server_id":"1","stream_name":"test110","x":"\u00e9 <&>"}`)
			d.Enqueue(Event{Name: "on_pub_start", URL: srv.URL + "/on_pub_start?a=1", Stream: "live/test110", Body: body})
			flush(t, d)

			hits := rc.snapshot()
			if len(hits) != 1 {
				t.Fatalf("got %d requests, want 1", len(hits))
			}
			h := hits[0]
			if h.Path != "/on_pub_start" || !bytes.Equal(h.Body, body) {
				t.Errorf("path %q body %q, want /on_pub_start and the body unchanged", h.Path, h.Body)
			}
			for k, want := range map[string]string{
				"Content-Type": "application/json",
				"User-Agent":   UserAgent,
				HeaderEvent:    "on_pub_start",
			} {
				if got := h.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if !idRE.MatchString(h.ID) {
				t.Errorf("%s = %q, want 16 hex chars-counter", HeaderEventID, h.ID)
			}
			ts, err := strconv.ParseInt(h.Header.Get(HeaderTimestamp), 10, 64)
			if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Hour {
				t.Errorf("%s = %q, want Unix seconds of now", HeaderTimestamp, h.Header.Get(HeaderTimestamp))
			}
			sig := h.Header.Get(HeaderSignature)
			switch {
			case tc.secret == "" && sig != "":
				t.Errorf("unsigned dispatcher sent %s %q", HeaderSignature, sig)
			case tc.secret != "" && sig != Sign(tc.secret, h.Header.Get(HeaderTimestamp), body):
				t.Errorf("%s = %q, want Sign(secret, timestamp, body)", HeaderSignature, sig)
			}
			st := d.Stats()
			if st.Delivered != tc.wantDelivered || st.Failed != tc.wantFailed || st.Retried != 0 {
				t.Errorf("stats %+v, want delivered %d failed %d retried 0", st, tc.wantDelivered, tc.wantFailed)
			}
		})
	}
}

// Some events fail their first 3 attempts with 503: everything still arrives,
// each stream strictly in order, with the same id on every attempt.
func TestOrderPerStreamUnderRetries(t *testing.T) {
	t.Parallel()
	const streams, perStream = 10, 20
	flaky := func(seq int) bool { return seq%4 == 1 }
	rc, srv := newReceiver(t, func(_ http.ResponseWriter, _ *http.Request, h hit, n int) int {
		if flaky(h.Seq) && n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := newDispatcher(t, Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	for seq := range perStream {
		for s := range streams {
			d.Enqueue(mkEvent("on_sub_start", srv.URL+"/on_sub_start", fmt.Sprintf("live/s%d", s), seq))
		}
	}
	flush(t, d)

	byStream := map[string][]hit{}
	for _, h := range rc.snapshot() {
		byStream[h.Stream] = append(byStream[h.Stream], h)
	}
	if len(byStream) != streams {
		t.Fatalf("requests for %d streams, want %d", len(byStream), streams)
	}
	ids := map[string]string{} // id -> stream/seq
	wantRetries := 0
	for stream, hits := range byStream {
		var order []int
		for i, h := range hits {
			if i > 0 && h.Seq < hits[i-1].Seq {
				t.Fatalf("%s: seq %d arrived after seq %d", stream, h.Seq, hits[i-1].Seq)
			}
			if len(order) == 0 || order[len(order)-1] != h.Seq {
				order = append(order, h.Seq)
			}
			key := fmt.Sprintf("%s/%d", stream, h.Seq)
			if prev, ok := ids[h.ID]; ok && prev != key {
				t.Fatalf("id %s used by %s and %s", h.ID, prev, key)
			}
			ids[h.ID] = key
		}
		for i, seq := range order {
			if seq != i {
				t.Fatalf("%s: delivery order %v, want 0..%d", stream, order, perStream-1)
			}
		}
		for seq := range perStream {
			n := 0
			var id string
			for _, h := range hits {
				if h.Seq == seq {
					n++
					if id != "" && h.ID != id {
						t.Fatalf("%s/%d: id changed across retries: %s then %s", stream, seq, id, h.ID)
					}
					id = h.ID
				}
			}
			want := 1
			if flaky(seq) {
				want = 4
				wantRetries += 3
			}
			if n != want {
				t.Errorf("%s/%d: %d attempts, want %d", stream, seq, n, want)
			}
		}
	}
	if len(ids) != streams*perStream {
		t.Errorf("%d distinct ids, want %d", len(ids), streams*perStream)
	}
	st := d.Stats()
	if st.Delivered != streams*perStream || st.Retried != uint64(wantRetries) || st.Failed != 0 || st.Dropped != 0 || st.QueueDepth != 0 {
		t.Errorf("stats %+v, want delivered %d retried %d", st, streams*perStream, wantRetries)
	}
	if es := st.PerEvent["on_sub_start"]; es.Delivered != streams*perStream || es.Retried != uint64(wantRetries) {
		t.Errorf("per-event stats %+v", es)
	}
}

// Stream A's receiver path takes 2 s per request; stream B's 50 events all
// arrive before A's second event does.
func TestSlowStreamDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	rc, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, h hit, _ int) int {
		if h.Stream == "A" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		return http.StatusOK
	})
	d := newDispatcher(t, Config{})
	d.Enqueue(mkEvent("on_pub_start", srv.URL+"/slow", "A", 0))
	d.Enqueue(mkEvent("on_pub_stop", srv.URL+"/slow", "A", 1))
	for i := range 50 {
		d.Enqueue(mkEvent("on_sub_start", srv.URL+"/fast", "B", i))
	}
	flush(t, d)

	hits := rc.snapshot()
	secondA, lastB, nB := -1, -1, 0
	for i, h := range hits {
		switch {
		case h.Stream == "A" && h.Seq == 1:
			secondA = i
		case h.Stream == "B":
			lastB, nB = i, nB+1
			if h.Seq != nB-1 {
				t.Fatalf("B out of order: seq %d at position %d", h.Seq, nB-1)
			}
		}
	}
	if nB != 50 || secondA < 0 {
		t.Fatalf("got %d B events and A's second at %d", nB, secondA)
	}
	if lastB > secondA {
		t.Errorf("B's last event arrived after A's second (positions %d > %d)", lastB, secondA)
	}
}

// 2xx is delivered, 5xx retried, anything else (4xx, 3xx) given up at once,
// and the next event of the stream follows.
func TestStatusHandling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status                         int
		wantDelivered, wantFailed      uint64 // of the first event
		wantRetried, wantFirstAttempts int
	}{
		{status: 200, wantDelivered: 1, wantFirstAttempts: 1},
		{status: 202, wantDelivered: 1, wantFirstAttempts: 1},
		{status: 204, wantDelivered: 1, wantFirstAttempts: 1},
		{status: 500, wantDelivered: 1, wantRetried: 1, wantFirstAttempts: 2},
		{status: 502, wantDelivered: 1, wantRetried: 1, wantFirstAttempts: 2},
		{status: 503, wantDelivered: 1, wantRetried: 1, wantFirstAttempts: 2},
		{status: 504, wantDelivered: 1, wantRetried: 1, wantFirstAttempts: 2},
		{status: 400, wantFailed: 1, wantFirstAttempts: 1},
		{status: 401, wantFailed: 1, wantFirstAttempts: 1},
		{status: 404, wantFailed: 1, wantFirstAttempts: 1},
		{status: 409, wantFailed: 1, wantFirstAttempts: 1},
		{status: 429, wantFailed: 1, wantFirstAttempts: 1},
		{status: 301, wantFailed: 1, wantFirstAttempts: 1},
		{status: 302, wantFailed: 1, wantFirstAttempts: 1},
		{status: 307, wantFailed: 1, wantFirstAttempts: 1},
	}
	for _, tc := range tests {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, h hit, n int) int {
				if h.Path == "/first" && n == 1 {
					if tc.status >= 300 && tc.status < 400 {
						w.Header().Set("Location", "/elsewhere")
					}
					return tc.status
				}
				return http.StatusOK
			})
			d := newDispatcher(t, Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
			d.Enqueue(mkEvent("on_sub_stop", srv.URL+"/first", "s", 0))
			d.Enqueue(mkEvent("on_sub_stop", srv.URL+"/second", "s", 1))
			flush(t, d)

			var paths []string
			first := 0
			for _, h := range rc.snapshot() {
				paths = append(paths, h.Path)
				if h.Path == "/first" {
					first++
				}
			}
			if first != tc.wantFirstAttempts || paths[len(paths)-1] != "/second" || len(paths) != tc.wantFirstAttempts+1 {
				t.Errorf("requests %v, want /first ×%d then /second (no redirect followed)", paths, tc.wantFirstAttempts)
			}
			st := d.Stats()
			if st.Delivered != tc.wantDelivered+1 || st.Failed != tc.wantFailed || st.Retried != uint64(tc.wantRetried) {
				t.Errorf("stats %+v, want delivered %d failed %d retried %d",
					st, tc.wantDelivered+1, tc.wantFailed, tc.wantRetried)
			}
			if es := st.PerEvent["on_sub_stop"]; es.Failed != tc.wantFailed {
				t.Errorf("per-event Failed %d, want %d", es.Failed, tc.wantFailed)
			}
		})
	}
}

// URLs that can never work are given up (Failed), not retried forever.
func TestUnusableURLFails(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, Config{MinBackoff: time.Hour})
	for _, u := range []string{"ftp://127.0.0.1/x", "127.0.0.1:1/no-scheme", "http://[::1"} {
		d.Enqueue(Event{Name: "on_update", URL: u, Stream: u})
	}
	flush(t, d)
	if st := d.Stats(); st.Failed != 3 || st.Retried != 0 {
		t.Errorf("stats %+v, want 3 failed", st)
	}
}

// The receiver is down while 1000 events of 100 streams are enqueued; it comes
// back on the same port and gets every event, each stream in order.
func TestOutageAndRecovery(t *testing.T) {
	t.Parallel()
	const streams, perStream = 100, 10
	rc := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv1 := &http.Server{Handler: rc}
	go func() { _ = srv1.Serve(ln) }()
	d := newDispatcher(t, Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 250 * time.Millisecond})
	url := "http://" + addr + "/on_pub_start"

	d.Enqueue(mkEvent("on_server_start", url, "", 0)) // warm the connection pool
	flush(t, d)
	_ = srv1.Close() // receiver down: listener and connections closed

	for seq := range perStream {
		for s := range streams {
			d.Enqueue(mkEvent("on_pub_start", url, fmt.Sprintf("s%d", s), seq))
		}
	}
	eventually(t, "retries while the receiver is down", func() bool { return d.Stats().Retried >= streams })
	if n := rc.count(); n != 1 {
		t.Fatalf("%d requests reached a closed receiver", n-1)
	}

	var ln2 net.Listener
	eventually(t, "listening again on "+addr, func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv2 := &http.Server{Handler: rc}
	go func() { _ = srv2.Serve(ln2) }()
	defer srv2.Close()
	flush(t, d)

	seen := map[string]bool{}
	last := map[string]int{}
	for _, h := range rc.snapshot()[1:] {
		seen[h.ID] = true
		if prev, ok := last[h.Stream]; ok && h.Seq < prev {
			t.Fatalf("%s: seq %d after %d", h.Stream, h.Seq, prev)
		}
		last[h.Stream] = h.Seq
	}
	if len(seen) != streams*perStream {
		t.Errorf("%d distinct events arrived, want %d", len(seen), streams*perStream)
	}
	for s := range streams {
		if last[fmt.Sprintf("s%d", s)] != perStream-1 {
			t.Errorf("s%d: last seq %d", s, last[fmt.Sprintf("s%d", s)])
		}
	}
	st := d.Stats()
	if st.Delivered != streams*perStream+1 || st.Dropped != 0 || st.Failed != 0 || st.Retried < streams {
		t.Errorf("stats %+v", st)
	}
}

// QueueSize 10 with a blocked receiver: the oldest events, across streams,
// are dropped and counted; the newest are kept and delivered in order.
func TestQueueBoundDropsOldest(t *testing.T) {
	t.Parallel()
	arrived := make(chan string, 2)
	g := newGate()
	rc, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, h hit, _ int) int {
		if h.Name == "blocker" {
			arrived <- h.Stream
			g.wait(r)
		}
		return http.StatusOK
	})
	t.Cleanup(g.open)
	core, logs := observer.New(zap.WarnLevel)
	d := newDispatcher(t, Config{QueueSize: 10, Logger: zap.New(core)})
	d.Enqueue(mkEvent("blocker", srv.URL, "A", -1))
	d.Enqueue(mkEvent("blocker", srv.URL, "B", -1))
	recv(t, arrived, "first blocker")
	recv(t, arrived, "second blocker")
	for seq := range 30 { // even seqs to A, odd to B
		d.Enqueue(mkEvent("on_pub_start", srv.URL, string(rune('A'+seq%2)), seq))
	}
	// 2 in flight + 8 newest kept = 10; seqs 0..21 dropped.
	st := d.Stats()
	if st.Dropped != 22 || st.QueueDepth != 10 || st.PerEvent["on_pub_start"].Dropped != 22 || st.PerEvent["on_pub_start"].QueueDepth != 8 {
		t.Fatalf("stats %+v, want dropped 22, queue depth 10", st)
	}
	eventually(t, "queue-full warning", func() bool {
		return logs.FilterMessageSnippet("queue full").Len() > 0
	})
	g.open()
	flush(t, d)

	var got []string
	for _, h := range rc.snapshot() {
		if h.Name != "blocker" {
			got = append(got, fmt.Sprintf("%s%d", h.Stream, h.Seq))
		}
	}
	gotA, gotB := filter(got, "A"), filter(got, "B")
	if gotA != "A22 A24 A26 A28" || gotB != "B23 B25 B27 B29" {
		t.Errorf("delivered A=%q B=%q, want the 8 newest in order", gotA, gotB)
	}
	if n := logs.FilterMessageSnippet("queue full").Len(); n >= 22 {
		t.Errorf("%d queue-full warnings for 22 drops, want rate-limited", n)
	}
	if st := d.Stats(); st.Delivered != 10 || st.Dropped != 22 {
		t.Errorf("stats %+v", st)
	}
}

func filter(s []string, prefix string) string {
	var out []string
	for _, v := range s {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return strings.Join(out, " ")
}

// Pending on_update events are replaced by newer ones; an on_update in flight
// is not, and other events are never coalesced.
func TestOnUpdateCoalesced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		blocker       string // event name held in flight by the receiver
		wantCoalesced uint64
		want          string // delivered, in order, after the blocker
	}{
		// u1 u2 x u3 u4 u5 enqueued while another event is in flight.
		{name: "behind another event", blocker: "on_server_start", wantCoalesced: 4, want: "on_rtmp_connect/3 on_update/6"},
		// u1 u2 x u3 u4 u5 enqueued while an older on_update is in flight.
		{name: "behind an on_update in flight", blocker: OnUpdate, wantCoalesced: 4, want: "on_rtmp_connect/3 on_update/6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{}, 1)
			g := newGate()
			rc, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, h hit, _ int) int {
				if h.Seq == 0 {
					arrived <- struct{}{}
					g.wait(r)
				}
				return http.StatusOK
			})
			t.Cleanup(g.open)
			d := newDispatcher(t, Config{})
			d.Enqueue(mkEvent(tc.blocker, srv.URL, "", 0))
			recv(t, arrived, "blocker")
			for seq, name := range []string{OnUpdate, OnUpdate, "on_rtmp_connect", OnUpdate, OnUpdate, OnUpdate} {
				d.Enqueue(mkEvent(name, srv.URL, "", seq+1))
			}
			st := d.Stats()
			if st.Coalesced != tc.wantCoalesced || st.PerEvent[OnUpdate].Coalesced != tc.wantCoalesced || st.QueueDepth != 3 {
				t.Fatalf("stats %+v, want coalesced %d, depth 3", st, tc.wantCoalesced)
			}
			g.open()
			flush(t, d)
			var got []string
			for _, h := range rc.snapshot()[1:] {
				got = append(got, fmt.Sprintf("%s/%d", h.Name, h.Seq))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("delivered %v, want %s", got, tc.want)
			}
			if st := d.Stats(); st.Delivered != 3 || st.Dropped != 0 || st.PerEvent[OnUpdate].Delivered != map[bool]uint64{true: 2, false: 1}[tc.blocker == OnUpdate] {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// The head of a stream, sleeping between retries, is "pending, not in flight":
// the queue bound may drop it, and its stream moves on at once.
func TestBackingOffHeadCanBeDropped(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	rc, srv := newReceiver(t, func(http.ResponseWriter, *http.Request, hit, int) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	d := newDispatcher(t, Config{QueueSize: 3, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	d.Enqueue(mkEvent("on_pub_start", srv.URL, "s", 0))
	eventually(t, "first attempt failed", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		h := d.all.head
		return h != nil && !h.inFlight && h.attempts == 1
	})
	healthy.Store(true)
	for seq := 1; seq <= 3; seq++ {
		d.Enqueue(mkEvent("on_pub_start", srv.URL, "s", seq))
	}
	flush(t, d) // would take an hour if the dropped head's backoff still applied
	var seqs []int
	for _, h := range rc.snapshot() {
		seqs = append(seqs, h.Seq)
	}
	if fmt.Sprint(seqs) != "[0 1 2 3]" {
		t.Errorf("requests for seqs %v, want [0 1 2 3]", seqs)
	}
	if st := d.Stats(); st.Dropped != 1 || st.Delivered != 3 || st.Retried != 0 {
		t.Errorf("stats %+v, want dropped 1, delivered 3", st)
	}
}

func TestWants(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, Config{})
	if !d.Wants("http://127.0.0.1:1/hook") {
		t.Error("an event with a URL is not wanted")
	}
	if d.Wants("") {
		t.Error("an event with no URL and no subscriber is wanted")
	}
	_, cancel := d.Subscribe()
	if !d.Wants("") {
		t.Error("an event with no URL is not wanted by a subscriber")
	}
	cancel()
	if d.Wants("") {
		t.Error("an event with no URL is wanted after the subscriber left")
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	rc, srv := newReceiver(t, nil)
	d := newDispatcher(t, Config{})
	ch, cancel := d.Subscribe()
	for seq := range 20 {
		url := srv.URL
		if seq%2 == 1 {
			url = "" // published only, never posted
		}
		d.Enqueue(mkEvent("on_sub_start", url, fmt.Sprintf("s%d", seq%3), seq))
	}
	ids := map[string]bool{}
	for seq := range 20 {
		ev := recv(t, ch, "event "+strconv.Itoa(seq))
		if !bytes.Equal(ev.Body, mkBody(fmt.Sprintf("s%d", seq%3), seq)) || !idRE.MatchString(ev.ID) || ids[ev.ID] || ev.Time.IsZero() {
			t.Fatalf("event %d: %+v", seq, ev)
		}
		ids[ev.ID] = true
	}
	cancel()
	cancel() // idempotent
	if _, ok := <-ch; ok {
		t.Error("channel still open after cancel")
	}
	flush(t, d)
	if rc.count() != 10 {
		t.Errorf("%d events posted, want the 10 with a URL", rc.count())
	}
	for _, h := range rc.snapshot() {
		if !ids[h.ID] {
			t.Errorf("posted id %s was not published with the same id", h.ID)
		}
	}
}

// A subscriber that never reads loses events but never blocks Enqueue.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, Config{})
	stuck, cancel := d.Subscribe()
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := range 1000 {
			d.Enqueue(mkEvent("on_update", "", "", seq))
		}
	}()
	recv(t, done, "Enqueue with a stuck subscriber")
	if len(stuck) != subscriberBuffer || d.SubscriberDropped() != 1000-subscriberBuffer {
		t.Errorf("buffered %d, dropped %d; want %d and %d", len(stuck), d.SubscriberDropped(), subscriberBuffer, 1000-subscriberBuffer)
	}
	if first := <-stuck; !bytes.Equal(first.Body, mkBody("", 0)) {
		t.Errorf("first buffered event %s, want seq 0", first.Body)
	}
}

// Close abandons pending events (counted Dropped), cancels requests in
// flight, closes subscriber channels and leaves no goroutine behind.
func TestCloseAbandonsPendingAndLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	rc := &receiver{}
	g := newGate()
	srvDone := make(chan struct{})
	rc.respond = func(_ http.ResponseWriter, r *http.Request, _ hit, _ int) int {
		g.wait(r)
		return http.StatusOK
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go func() { defer close(srvDone); _ = srv.Serve(ln) }()

	d := NewDispatcher(Config{})
	sub, _ := d.Subscribe()
	for seq := range 3 {
		for s := range 5 {
			d.Enqueue(mkEvent("on_sub_start", "http://"+ln.Addr().String(), fmt.Sprintf("s%d", s), seq))
		}
	}
	eventually(t, "5 requests in flight", func() bool { return rc.count() == 5 })
	d.Close()
	d.Close() // idempotent

	st := d.Stats()
	if st.Dropped != 15 || st.Delivered != 0 || st.QueueDepth != 0 || st.PerEvent["on_sub_start"].QueueDepth != 0 {
		t.Errorf("stats after Close %+v, want 15 dropped", st)
	}
	for range 15 {
		<-sub
	}
	if _, ok := <-sub; ok {
		t.Error("subscriber channel open after Close")
	}
	if ch, cancel := d.Subscribe(); func() bool { _, ok := <-ch; return ok }() {
		t.Error("Subscribe after Close returned an open channel")
	} else {
		cancel()
	}
	d.Enqueue(mkEvent("on_sub_start", "http://"+ln.Addr().String(), "s0", 9))
	if st := d.Stats(); st.Dropped != 16 || st.QueueDepth != 0 {
		t.Errorf("Enqueue after Close: stats %+v, want 16 dropped", st)
	}
	if err := d.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}

	g.open()
	_ = srv.Close()
	<-srvDone
	goleak.VerifyNone(t, ignore)
}

func TestFlush(t *testing.T) {
	t.Parallel()
	t.Run("drains", func(t *testing.T) {
		t.Parallel()
		rc, srv := newReceiver(t, nil)
		d := newDispatcher(t, Config{})
		if err := d.Flush(context.Background()); err != nil {
			t.Fatalf("Flush of an empty queue: %v", err)
		}
		for seq := range 5 {
			for s := range 20 {
				d.Enqueue(mkEvent("on_pub_stop", srv.URL, fmt.Sprintf("s%d", s), seq))
			}
		}
		flush(t, d)
		if st := d.Stats(); st.QueueDepth != 0 || st.Delivered != 100 || rc.count() != 100 {
			t.Errorf("after Flush: stats %+v, %d received", st, rc.count())
		}
		// Workers exit once their stream is empty: no goroutine per idle stream.
		eventually(t, "stream workers to exit", d.idleKeys)
	})
	t.Run("deadline with a blocked receiver", func(t *testing.T) {
		t.Parallel()
		g := newGate()
		_, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ hit, _ int) int { g.wait(r); return http.StatusOK })
		t.Cleanup(g.open)
		d := newDispatcher(t, Config{Timeout: time.Minute})
		d.Enqueue(mkEvent("on_pub_stop", srv.URL, "s", 0))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := d.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Flush = %v, want context.DeadlineExceeded", err)
		}
		if st := d.Stats(); st.QueueDepth != 1 {
			t.Errorf("queue depth %d, want 1", st.QueueDepth)
		}
	})
}

// Response bodies are drained and closed, so sequential requests share one connection.
func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	rc := &receiver{respond: func(w http.ResponseWriter, _ *http.Request, _ hit, _ int) int {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(bytes.Repeat([]byte("ok\n"), 4000)) // 12 KB the dispatcher must read
		return http.StatusOK
	}}
	srv := newUnstartedServer(t, rc)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	d := newDispatcher(t, Config{})
	for seq := range 50 {
		d.Enqueue(mkEvent("on_update", srv.URL, "s", seq))
		flush(t, d) // one at a time, so coalescing does not apply
	}
	if n := conns.Load(); n > 2 {
		t.Errorf("%d connections for 50 sequential requests, want 1", n)
	}
	if rc.count() != 50 {
		t.Errorf("%d requests, want 50", rc.count())
	}
}

// At most MaxConcurrent requests are in flight however many streams are pending.
func TestConcurrencyBounded(t *testing.T) {
	t.Parallel()
	const streams = 2*MaxConcurrent + 100
	var mu sync.Mutex
	cur, peak := 0, 0
	_, srv := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ hit, _ int) int {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		mu.Lock()
		cur--
		mu.Unlock()
		return http.StatusOK
	})
	d := newDispatcher(t, Config{Timeout: time.Minute})
	for s := range streams {
		d.Enqueue(mkEvent("on_sub_start", srv.URL, strconv.Itoa(s), 0))
	}
	flush(t, d)
	mu.Lock()
	defer mu.Unlock()
	if peak > MaxConcurrent || peak < 2 {
		t.Errorf("peak concurrency %d, want 2..%d", peak, MaxConcurrent)
	}
	if st := d.Stats(); st.Delivered != streams {
		t.Errorf("delivered %d, want %d", st.Delivered, streams)
	}
	eventually(t, "stream workers to exit", d.idleKeys)
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	const minB, maxB = 200 * time.Millisecond, 10 * time.Second
	tests := []struct {
		n    int
		base time.Duration
	}{
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{6, 6400 * time.Millisecond},
		{7, maxB},
		{100, maxB},
		{1 << 30, maxB},
	}
	for _, tc := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			got := backoffDelay(tc.n, minB, maxB)
			if got < tc.base/2 || got > tc.base {
				t.Fatalf("backoffDelay(%d) = %v, want in [%v, %v]", tc.n, got, tc.base/2, tc.base)
			}
			seen[got] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoffDelay(%d): no jitter", tc.n)
		}
	}
}

func TestSign(t *testing.T) {
	t.Parallel()
	// Vectors computed with: printf '%s' "$ts.$body" | openssl dgst -sha256 -hmac "$secret"
	tests := []struct{ secret, ts, body, want string }{
		{"sluice-secret", "1700000000", `{"server_id":"1","event":"on_pub_start"}`,
			"sha256=cc1a8d6b30849aa6d8c096ea519b6a4eda72c032d8ae170ee06105f023e0242d"},
		{"k", "1700000000", "", "sha256=5c2999a43333a6877f49c8003f235c4f6de40f85b1b7414b70bd470a8db53d97"},
	}
	for _, tc := range tests {
		if got := Sign(tc.secret, tc.ts, []byte(tc.body)); got != tc.want {
			t.Errorf("Sign(%q, %q, %q) = %s, want %s", tc.secret, tc.ts, tc.body, got, tc.want)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	body := []byte(`{"server_id":"1"}`)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	tests := []struct {
		name    string
		secret  string        // given to Verify
		ts, sig string        // headers; sig "" = absent
		body    []byte        // given to Verify
		maxAge  time.Duration // given to Verify
		want    error
	}{
		{name: "valid", secret: secret, ts: now, sig: Sign(secret, now, body), body: body},
		{name: "valid within max age", secret: secret, ts: now, sig: Sign(secret, now, body), body: body, maxAge: time.Minute},
		{name: "old without max age", secret: secret, ts: old, sig: Sign(secret, old, body), body: body},
		{name: "wrong secret", secret: "wrong", ts: now, sig: Sign(secret, now, body), body: body, want: ErrBadSignature},
		{name: "modified body", secret: secret, ts: now, sig: Sign(secret, now, body), body: []byte(`{"server_id":"2"}`), want: ErrBadSignature},
		{name: "modified timestamp", secret: secret, ts: old, sig: Sign(secret, now, body), body: body, want: ErrBadSignature},
		{name: "old timestamp", secret: secret, ts: old, sig: Sign(secret, old, body), body: body, maxAge: 5 * time.Minute, want: ErrStaleTimestamp},
		{name: "future timestamp", secret: secret, ts: future, sig: Sign(secret, future, body), body: body, maxAge: 5 * time.Minute, want: ErrStaleTimestamp},
		{name: "non-numeric timestamp", secret: secret, ts: "soon", sig: Sign(secret, "soon", body), body: body, maxAge: time.Minute, want: ErrStaleTimestamp},
		{name: "missing signature", secret: secret, ts: now, body: body, want: ErrNoSignature},
		{name: "missing timestamp", secret: secret, sig: Sign(secret, "", body), body: body, want: ErrNoSignature},
		{name: "no sha256= prefix", secret: secret, ts: now, sig: strings.TrimPrefix(Sign(secret, now, body), "sha256="), body: body, want: ErrBadSignature},
		{name: "not hex", secret: secret, ts: now, sig: "sha256=zz", body: body, want: ErrBadSignature},
		{name: "empty secret", secret: "", ts: now, sig: Sign("", now, body), body: body, want: ErrNoSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://example.com/on_pub_start", bytes.NewReader(tc.body))
			if tc.ts != "" {
				r.Header.Set(HeaderTimestamp, tc.ts)
			}
			if tc.sig != "" {
				r.Header.Set(HeaderSignature, tc.sig)
			}
			err := Verify(tc.secret, r, tc.body, tc.maxAge)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// BenchmarkDeliver50ms: a receiver taking 50 ms per request, 100 streams × N
// events. Serial delivery (lalserver) manages 20 events/s.
func BenchmarkDeliver50ms(b *testing.B) {
	const streams = 100
	_, srv := newReceiver(b, func(_ http.ResponseWriter, r *http.Request, _ hit, _ int) int {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
		return http.StatusOK
	})
	d := newDispatcher(b, Config{})
	body := mkBody("live/bench", 0)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for s := range streams {
			d.Enqueue(Event{Name: "on_sub_start", URL: srv.URL, Stream: strconv.Itoa(s), Body: body})
		}
	}
	flush(b, d)
	elapsed := time.Since(start)
	b.StopTimer()
	if st := d.Stats(); st.Delivered != uint64(streams*b.N) {
		b.Fatalf("delivered %d, want %d", st.Delivered, streams*b.N)
	}
	b.ReportMetric(float64(streams*b.N)/elapsed.Seconds(), "events/s")
}

// TestFlushRetriesBackingOffEventsAtOnce: an event waiting out a long
// backoff is retried as soon as Flush starts, so a receiver that is back
// gets it before the shutdown deadline.
func TestFlushRetriesBackingOffEventsAtOnce(t *testing.T) {
	var healthy atomic.Bool
	var attempts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	d := newDispatcher(t, Config{MinBackoff: time.Minute, MaxBackoff: time.Minute})
	d.Enqueue(Event{Name: "on_pub_stop", URL: srv.URL, Stream: "s", Body: []byte(`{}`)})
	deadline := time.Now().Add(10 * time.Second)
	for attempts.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	healthy.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (the event waits out its one-minute backoff)", err)
	}
	if st := d.Stats(); st.Delivered != 1 {
		t.Fatalf("delivered %d, want 1", st.Delivered)
	}
}
