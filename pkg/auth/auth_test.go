package auth

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSimpleAuth(t *testing.T) {
	a := &SimpleAuth{Key: "q191201771", MasterSecret: "pengrl"}
	for _, tc := range []struct {
		stream, query string
		status        int // 0 = allowed
	}{
		// md5("q191201771"+"test110") from spec §6.13.
		{"test110", "lal_secret=700997e1595a06c9ffa60ebef79105b0", 0},
		{"test110", "a=1&lal_secret=700997E1595A06C9FFA60EBEF79105B0", 0},
		{"test110", "lal_secret=pengrl", 0},
		{"test110", "lal_secret=PENGRL", 0},
		{"test111", "lal_secret=700997e1595a06c9ffa60ebef79105b0", http.StatusForbidden},
		{"test110", "lal_secret=wrong", http.StatusForbidden},
		{"test110", "", http.StatusUnauthorized},
		{"test110", "%zz", http.StatusUnauthorized},
	} {
		err := a.Check(tc.stream, tc.query)
		got := 0
		if d, ok := AsDenied(err); ok {
			got = d.Status
		} else if err != nil {
			t.Fatalf("%s %q: non-Denied error %v", tc.stream, tc.query, err)
		}
		if got != tc.status {
			t.Errorf("%s %q: status %d, want %d (%v)", tc.stream, tc.query, got, tc.status, err)
		}
	}
	noMaster := &SimpleAuth{Key: "k"}
	if err := noMaster.Check("s", "lal_secret="); err == nil {
		t.Error("empty secret accepted with no master secret")
	}
}

func TestBlacklist(t *testing.T) {
	var b Blacklist
	if err := b.Check("1.2.3.4:5"); err != nil {
		t.Fatal(err)
	}
	b.Add("1.2.3.4", 50*time.Millisecond)
	if err := b.Check("1.2.3.4:5"); err == nil {
		t.Fatal("listed ip allowed")
	}
	if err := b.Check("1.2.3.5:5"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if err := b.Check("1.2.3.4:5"); err != nil {
		t.Fatalf("expired entry still refused: %v", err)
	}
}

func TestHTTPAuth(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Header.Get("Content-Type") != "application/json":
			w.WriteHeader(http.StatusBadRequest)
		case strings.Contains(string(body), `"deny"`):
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "stream is banned")
		case strings.Contains(string(body), `"slow"`):
			time.Sleep(2 * time.Second)
		}
	}))
	defer srv.Close()
	h := &HTTPAuth{OnPub: srv.URL + "/pub", OnSub: srv.URL + "/sub", Timeout: 300 * time.Millisecond, CacheTTL: time.Minute}
	ctx := context.Background()

	if err := h.Check(ctx, Publish, "ok", "", []byte(`{"stream_name":"ok"}`)); err != nil {
		t.Fatalf("allowed stream: %v", err)
	}
	err := h.Check(ctx, Play, "deny", "t=1", []byte(`{"stream_name":"deny"}`))
	d, ok := AsDenied(err)
	if !ok || d.Status != http.StatusForbidden || !strings.Contains(d.Reason, "stream is banned") {
		t.Fatalf("denied stream: %v", err)
	}
	// Cached: no second request for the same stream and parameters.
	before := calls.Load()
	if err := h.Check(ctx, Play, "deny", "t=1", []byte(`{"stream_name":"deny"}`)); err == nil {
		t.Fatal("cached denial allowed")
	}
	if calls.Load() != before {
		t.Fatal("cached decision asked the server again")
	}
	// Other parameters are another decision.
	h.Check(ctx, Play, "deny", "t=2", []byte(`{"stream_name":"deny"}`))
	if calls.Load() != before+1 {
		t.Fatal("different url_param answered from the cache")
	}

	// A back end slower than the timeout: fail-closed denies, fail-open allows,
	// and neither outcome is cached.
	if err := h.Check(ctx, Publish, "slow", "", []byte(`{"stream_name":"slow"}`)); err == nil {
		t.Fatal("fail-closed allowed on timeout")
	}
	h.FailOpen = true
	if err := h.Check(ctx, Publish, "slow", "", []byte(`{"stream_name":"slow"}`)); err != nil {
		t.Fatalf("fail-open denied on timeout: %v", err)
	}
	h.FailOpen = false
	down := &HTTPAuth{OnPub: "http://127.0.0.1:1/pub", Timeout: time.Second}
	if err := down.Check(ctx, Publish, "x", "", nil); err == nil {
		t.Fatal("unreachable fail-closed server allowed")
	}
	// No URL for the action: allowed.
	if err := (&HTTPAuth{OnPub: srv.URL}).Check(ctx, Play, "x", "", nil); err != nil {
		t.Fatal(err)
	}
}
