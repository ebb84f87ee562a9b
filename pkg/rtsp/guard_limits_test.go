package rtsp

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestScannerHeads checks the request-head tracking the guard's timeouts
// rely on, byte by byte: inside a head until its empty line, then not.
func TestScannerHeads(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  string
		heads int
		in    bool // inside a head at the end
	}{
		{"partial request line", "OPTIONS rtsp://h/a RT", 0, true},
		{"partial header", "OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n", 0, true},
		{"complete", "OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n", 1, false},
		{"with body", "ANNOUNCE rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nab", 1, false},
		{"second started", "OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\nOP", 1, true},
		{"interleaved frame", "$\x00\x00\x02ab", 0, false},
		{"http tunnel head", "GET /a HTTP/1.0\r\nx-sessioncookie: 1\r\n", 0, true},
		{"http tunnel complete", "GET /a HTTP/1.0\r\nx-sessioncookie: 1\r\n\r\n", 1, false},
		{"http tunnel cr split", "POST /a HTTP/1.0\r\n\r\r\n\r\n", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Scanner
			for i := range len(tc.data) {
				if _, bad := s.Feed([]byte{tc.data[i]}); bad != nil {
					t.Fatalf("malformed at %d: %+v", i, bad)
				}
			}
			if s.heads != tc.heads || s.inHead() != tc.in {
				t.Errorf("heads %d, in head %v; want %d, %v", s.heads, s.inHead(), tc.heads, tc.in)
			}
		})
	}
}

// guardPair accepts one connection through a guardListener configured by l
// and returns the client end and the guarded server end.
func guardPair(t *testing.T, l guardListener) (client net.Conn, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l.Listener = ln
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

type retryErr struct{}

func (retryErr) Error() string          { return "limits.max_connections (1) reached" }
func (retryErr) RetryAfterSeconds() int { return 7 }

func TestGuardRefusedConnection(t *testing.T) {
	released := 0
	client, server := guardPair(t, guardListener{serverName: "test",
		admit: func(net.Conn) (func(), error) { return func() { released++ }, retryErr{} }})
	go client.Write([]byte("DESCRIBE rtsp://h/a RTSP/1.0\r\nCSeq: 4\r\n\r\n"))
	buf := make([]byte, 256)
	if n, err := server.Read(buf); n != 0 || !errors.Is(err, errRefused) {
		t.Fatalf("Read = %d, %v; want 0, errRefused (nothing passed on)", n, err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(io.LimitReader(client, 1024))
	for _, want := range []string{"RTSP/1.0 503 Service Unavailable\r\n", "CSeq: 4\r\n", "Retry-After: 7\r\n", "limits.max_connections"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("answer %q lacks %q", got, want)
		}
	}
	server.Close()
	server.Close()
	if released != 1 {
		t.Errorf("released %d times, want once", released)
	}
}

func TestGuardHeadDeadlines(t *testing.T) {
	_, server := guardPair(t, guardListener{serverName: "test",
		firstRequest: 200 * time.Millisecond, header: 200 * time.Millisecond})
	// gortsplib's own, later deadline does not extend the head's.
	server.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 256)
	start := time.Now()
	if _, err := server.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent connection: %v, want a timeout", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("the first-request deadline did not apply")
	}

	client2, server2 := guardPair(t, guardListener{serverName: "test",
		firstRequest: time.Minute, header: 200 * time.Millisecond})
	client2.Write([]byte("OPTIONS rtsp://h/a RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
	if _, err := io.ReadAtLeast(server2, buf, 1); err != nil {
		t.Fatal(err)
	}
	// Between requests only gortsplib's deadline applies...
	server2.SetReadDeadline(time.Now().Add(time.Minute))
	client2.Write([]byte("OPT"))
	// ...and a started head gets the header timeout.
	if _, err := server2.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := server2.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("slow second head: %v, want a timeout", err)
	}
}
