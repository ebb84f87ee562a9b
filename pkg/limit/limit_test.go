package limit

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAcquireLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		total    int
		perIP    int
		ips      []string // acquired in order
		refused  []string // the key each acquisition gets ("" = accepted)
		wantOpen int
	}{
		{name: "no limits", ips: []string{"a", "a", "a"}, refused: []string{"", "", ""}, wantOpen: 3},
		{name: "per ip", perIP: 2, ips: []string{"a", "a", "a", "b"},
			refused: []string{"", "", KeyMaxConnectionsPerIP, ""}, wantOpen: 3},
		{name: "total", total: 2, ips: []string{"a", "b", "c"},
			refused: []string{"", "", KeyMaxConnections}, wantOpen: 2},
		{name: "total before per ip", total: 1, perIP: 1, ips: []string{"a", "a"},
			refused: []string{"", KeyMaxConnections}, wantOpen: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Conns{MaxTotal: tc.total, MaxPerIP: tc.perIP}
			for i, ip := range tc.ips {
				release, r := l.Acquire(ip)
				got := ""
				if r != nil {
					got = r.Key
					if release != nil {
						t.Errorf("#%d: refused with a release func", i)
					}
				}
				if got != tc.refused[i] {
					t.Errorf("#%d (%s): refusal %q, want %q", i, ip, got, tc.refused[i])
				}
			}
			if total, _ := l.Open(""); total != tc.wantOpen {
				t.Errorf("open %d, want %d", total, tc.wantOpen)
			}
		})
	}
}

func TestReleaseExactlyOnce(t *testing.T) {
	l := &Conns{MaxPerIP: 1}
	release, r := l.Acquire("a")
	if r != nil {
		t.Fatal(r)
	}
	release()
	release()
	if total, a := l.Open("a"); total != 0 || a != 0 {
		t.Fatalf("after a double release: open %d, from a %d; want 0, 0", total, a)
	}
	// The slot is free again, and only once.
	if _, r := l.Acquire("a"); r != nil {
		t.Fatalf("refused after release: %v", r)
	}
	if _, r := l.Acquire("a"); r == nil {
		t.Fatal("second connection accepted over max_connections_per_ip 1")
	}
}

func TestConcurrentCounting(t *testing.T) {
	const limit, workers, rounds = 7, 16, 500
	l := &Conns{MaxTotal: limit}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				release, r := l.Acquire(string(rune('a' + w%3)))
				if r != nil {
					continue
				}
				total, _ := l.Open("")
				mu.Lock()
				peak = max(peak, total)
				mu.Unlock()
				release()
				release() // a second Close must not free another slot
			}
		}()
	}
	wg.Wait()
	if peak > limit {
		t.Errorf("peak of %d open connections over the limit %d", peak, limit)
	}
	if total, _ := l.Open(""); total != 0 {
		t.Errorf("%d connections still counted after every release", total)
	}
	if len(l.perIP) != 0 {
		t.Errorf("per-IP entries left: %v", l.perIP)
	}
}

func TestListenerRefusesAndReleases(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refusals []string
	var mu sync.Mutex
	l := &Conns{MaxPerIP: 1, OnRefuse: func(_ net.Conn, r *Refusal) {
		mu.Lock()
		refusals = append(refusals, r.Key)
		mu.Unlock()
	}}
	lln := l.Listener(ln)
	defer lln.Close()

	accept := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc, err := lln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	first := accept()
	if err := RefusalOf(first); err != nil {
		t.Fatalf("first connection refused: %v", err)
	}
	second := accept()
	var r *Refusal
	if err := RefusalOf(second); !errors.As(err, &r) || r.Key != KeyMaxConnectionsPerIP || r.Max != 1 {
		t.Fatalf("second connection: refusal %v, want %s (1)", err, KeyMaxConnectionsPerIP)
	}
	second.Close() // a refused connection holds no count
	if total, _ := l.Open("127.0.0.1"); total != 1 {
		t.Fatalf("open %d after closing the refused connection, want 1", total)
	}
	first.Close()
	first.Close()
	third := accept()
	if err := RefusalOf(third); err != nil {
		t.Fatalf("connection after the first closed: refused: %v", err)
	}
	third.Close()
	if total, _ := l.Open("127.0.0.1"); total != 0 {
		t.Fatalf("open %d after every close, want 0", total)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) != 1 || refusals[0] != KeyMaxConnectionsPerIP {
		t.Errorf("OnRefuse calls %q, want one %s", refusals, KeyMaxConnectionsPerIP)
	}
}

func TestConnWriteBuffers(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &Conn{Conn: a}
	done := make(chan []byte)
	go func() {
		got, _ := io.ReadAll(b)
		done <- got
	}()
	bufs := net.Buffers{[]byte("ab"), []byte("cd")}
	if n, err := c.WriteBuffers(&bufs); err != nil || n != 4 {
		t.Fatalf("WriteBuffers = %d, %v", n, err)
	}
	c.Close()
	select {
	case got := <-done:
		if string(got) != "abcd" {
			t.Errorf("read %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no data")
	}
}

func TestRefusalOfPlainConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := RefusalOf(a); err != nil {
		t.Errorf("plain conn: %v", err)
	}
	if err := RefusalOf(&Conn{Conn: a}); err != nil {
		t.Errorf("accepted conn: %v", err)
	}
}
