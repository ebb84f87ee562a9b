package httpstream

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestWebsocketAccept checks the handshake answer against the example of
// RFC 6455 §1.3.
func TestWebsocketAccept(t *testing.T) {
	if got, want := websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Fatalf("websocketAccept = %q, want %q", got, want)
	}
}

// TestAppendFrameHeader checks the three length encodings of RFC 6455 §5.2
// at their boundaries, with hand-computed bytes.
func TestAppendFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x82, 0x00}},
		{1, []byte{0x82, 0x01}},
		{125, []byte{0x82, 0x7D}},
		{126, []byte{0x82, 0x7E, 0x00, 0x7E}},
		{1000, []byte{0x82, 0x7E, 0x03, 0xE8}},
		{65535, []byte{0x82, 0x7E, 0xFF, 0xFF}},
		{65536, []byte{0x82, 0x7F, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00}},
		{1 << 24, []byte{0x82, 0x7F, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00}},
	} {
		if got := appendFrameHeader(nil, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("appendFrameHeader(nil, %d) = % x, want % x", tc.n, got, tc.want)
		}
		if len(tc.want) > maxFrameHeader {
			t.Errorf("header of %d bytes is longer than maxFrameHeader %d", len(tc.want), maxFrameHeader)
		}
		// Appends: what dst held stays.
		got := appendFrameHeader([]byte("head"), tc.n)
		if !bytes.Equal(got, append([]byte("head"), tc.want...)) {
			t.Errorf("appendFrameHeader(\"head\", %d) = % x", tc.n, got)
		}
	}
}

// frameSizes are buffer sizes around every frame header length boundary.
var frameSizes = []int{0, 1, 125, 126, 127, 300, 65535, 65536, 70000}

func testBuffers(n int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		size := frameSizes[i%len(frameSizes)]
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i + j)
		}
		bufs[i] = b
	}
	return bufs
}

// checkFramed checks that out is header, buffer, header, buffer... for bufs,
// that every buffer is the caller's own (not a copy) and that each header is
// a full-capacity slice, so that nothing appended to one can overwrite the
// next.
func checkFramed(t *testing.T, out [][]byte, bufs [][]byte) {
	t.Helper()
	if len(out) != 2*len(bufs) {
		t.Fatalf("frameAll gave %d slices for %d buffers, want %d", len(out), len(bufs), 2*len(bufs))
	}
	for i, b := range bufs {
		h, p := out[2*i], out[2*i+1]
		if want := appendFrameHeader(nil, len(b)); !bytes.Equal(h, want) {
			t.Fatalf("header %d = % x, want % x (buffer of %d bytes)", i, h, want, len(b))
		}
		if cap(h) != len(h) {
			t.Errorf("header %d has capacity %d beyond its length %d", i, cap(h), len(h))
		}
		if len(p) != len(b) || (len(b) > 0 && &p[0] != &b[0]) {
			t.Fatalf("slice %d is not buffer %d itself", 2*i+1, i)
		}
	}
}

// TestFrameAll: the headers stay valid as more are appended (their array is
// sized up front), and a reused output and header array cost no allocation.
func TestFrameAll(t *testing.T) {
	bufs := testBuffers(300)
	for _, start := range []struct {
		name    string
		headers []byte
	}{
		{"nil", nil},
		{"too small", make([]byte, 0, 3)},
		{"large enough", make([]byte, 0, 300*maxFrameHeader)},
	} {
		t.Run(start.name, func(t *testing.T) {
			out, headers := frameAll(nil, start.headers, bufs, nil)
			checkFramed(t, out, bufs)
			// The header of the first buffer, taken before the other 299
			// were appended, is unchanged.
			if want := appendFrameHeader(nil, len(bufs[0])); !bytes.Equal(out[0], want) {
				t.Errorf("first header = % x after appending the others, want % x", out[0], want)
			}
			if cap(headers) < len(bufs)*maxFrameHeader {
				t.Errorf("headers capacity %d < %d", cap(headers), len(bufs)*maxFrameHeader)
			}
		})
	}

	// Reuse with fewer buffers, then more, within the capacity: no
	// allocation, and the result is right each time.
	out, headers := frameAll(nil, nil, bufs, nil)
	small := bufs[5:17]
	out, headers = frameAll(out[:0], headers, small, nil)
	checkFramed(t, out, small)
	allocs := testing.AllocsPerRun(100, func() {
		out, headers = frameAll(out[:0], headers, bufs, nil)
	})
	if allocs != 0 {
		t.Errorf("frameAll with enough capacity: %v allocations per run, want 0", allocs)
	}
	checkFramed(t, out, bufs)

	// More buffers than the capacity: the header array is replaced up front
	// and all headers are right.
	more := testBuffers(700)
	out, _ = frameAll(out[:0], headers, more, nil)
	checkFramed(t, out, more)
}

// TestFrameAllUnits: with a size, a run of buffers making one unit (an FLV
// tag as header, body, trailer) is one frame, the buffers themselves after
// its header; a buffer that is a unit alone stays one.
func TestFrameAllUnits(t *testing.T) {
	// Units: a 1-byte length then that many bytes, in any split.
	size := func(first []byte) int { return 1 + int(first[0]) }
	bufs := [][]byte{{3}, {'a', 'b'}, {'c'}, {2, 'x', 'y'}, {200}, bytes.Repeat([]byte{'z'}, 200)}
	out, _ := frameAll(nil, nil, bufs, size)
	wantRuns := [][][]byte{bufs[0:3], bufs[3:4], bufs[4:6]}
	k := 0
	for i, run := range wantRuns {
		n := 0
		for _, b := range run {
			n += len(b)
		}
		if k >= len(out) || !bytes.Equal(out[k], appendFrameHeader(nil, n)) {
			t.Fatalf("unit %d: no header for %d bytes at slice %d of %d", i, n, k, len(out))
		}
		k++
		for j, b := range run {
			if k >= len(out) || &out[k][0] != &b[0] {
				t.Fatalf("unit %d buffer %d is not the caller's", i, j)
			}
			k++
		}
	}
	if k != len(out) {
		t.Errorf("%d slices, want %d", len(out), k)
	}
}

// ---------------------------------------------------------------------------
// readWebSocket

// clientFrame builds a client frame: fin set, the opcode, masked with a
// fixed key (the payload is masked as RFC 6455 §5.3 says).
func clientFrame(opcode byte, masked bool, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	maskBit := byte(0)
	if masked {
		maskBit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{0x37, 0xFA, 0x21, 0x3D}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// runRead runs readWebSocket on r and fails if it does not return within 5 s.
func runRead(t *testing.T, r io.Reader) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		readWebSocket(r)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("readWebSocket did not return within 5 s")
	}
}

// TestReadWebSocket: which client input ends the read loop, and how much of
// the input it consumed by then.
func TestReadWebSocket(t *testing.T) {
	trailer := []byte("TRAILER")
	closeFrame := clientFrame(0x8, true, []byte{0x03, 0xE8})
	max16 := clientFrame(0x2, true, make([]byte, 0xFFFF))[:4] // 126 form, length 65535: allowed
	for _, tc := range []struct {
		name string
		in   []byte
		// left is how many bytes of in are still unread when it returns.
		left int
	}{
		{"empty", nil, 0},
		{"one byte", []byte{0x88}, 0},
		{"close frame", concat(closeFrame, trailer), len(closeFrame) - 2 + len(trailer)},
		{"close frame without mask", concat([]byte{0x88, 0x00}, trailer), len(trailer)},
		{"unmasked binary frame", concat(clientFrame(0x2, false, []byte("hello")), trailer), 5 + len(trailer)},
		{"unmasked text after a masked ping", concat(clientFrame(0x9, true, []byte("p")), clientFrame(0x1, false, []byte("x")), trailer),
			1 + len(trailer)},
		{"oversize 64-bit length", concat([]byte{0x82, 0xFF}, binary.BigEndian.AppendUint64(nil, maxClientFrame+1), trailer),
			len(trailer)},
		{"huge 64-bit length", concat([]byte{0x82, 0xFF}, binary.BigEndian.AppendUint64(nil, 1<<63), trailer), len(trailer)},
		{"truncated 16-bit length", []byte{0x82, 0xFE, 0x01}, 0},
		{"truncated 64-bit length", []byte{0x82, 0xFF, 0, 0, 0}, 0},
		{"truncated mask", []byte{0x82, 0x85, 1, 2}, 0},
		{"truncated payload (EOF)", clientFrame(0x2, true, []byte("hello"))[:8], 0},
		{"masked frames then EOF", concat(clientFrame(0x9, true, nil), clientFrame(0x1, true, []byte("text")),
			clientFrame(0xA, true, []byte("pong")), clientFrame(0x2, true, make([]byte, 300))), 0},
		{"masked frames then close", concat(clientFrame(0x9, true, []byte("ping")), clientFrame(0x1, true, []byte("text")),
			clientFrame(0x2, true, make([]byte, 70)), clientFrame(0x0, true, []byte("cont")), closeFrame, trailer),
			len(closeFrame) - 2 + len(trailer)},
		{"largest allowed frame then close", concat(clientFrame(0x2, true, make([]byte, maxClientFrame)), closeFrame, trailer),
			len(closeFrame) - 2 + len(trailer)},
		{"16-bit length 65535 truncated", max16, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader(tc.in)
			runRead(t, r)
			if r.Len() != tc.left {
				t.Errorf("returned with %d bytes unread, want %d", r.Len(), tc.left)
			}
		})
	}
}

// TestReadWebSocketKeepsReading: on a live connection, masked control and
// data frames do not end the loop; a close frame does.
func TestReadWebSocketKeepsReading(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		readWebSocket(pr)
	}()
	for _, f := range [][]byte{
		clientFrame(0x9, true, []byte("ping")),
		clientFrame(0x1, true, []byte("some text")),
		clientFrame(0x2, true, make([]byte, 1000)),
	} {
		// A pipe write returns once the reader has taken all of it.
		if _, err := pw.Write(f); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	select {
	case <-done:
		t.Fatal("readWebSocket returned after masked ping, text and binary frames")
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := pw.Write(clientFrame(0x8, true, nil)[:2]); err != nil {
		t.Fatalf("write close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("readWebSocket did not return on a close frame")
	}
}

// FuzzReadWebSocket: arbitrary client bytes end readWebSocket (the input
// runs out at worst), without a panic, and it never reads more than the
// input nor calls Read more than the input size warrants.
func FuzzReadWebSocket(f *testing.F) {
	f.Add([]byte{})
	f.Add(clientFrame(0x8, true, []byte{0x03, 0xE8}))
	f.Add(concat(clientFrame(0x9, true, []byte("ping")), clientFrame(0x1, true, []byte("text")), clientFrame(0x8, true, nil)))
	f.Add(clientFrame(0x2, true, make([]byte, 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			t.Skip("input larger than 1 MiB")
		}
		r := &countingReader{r: bytes.NewReader(data)}
		readWebSocket(r)
		if r.n > len(data) {
			t.Fatalf("read %d bytes of %d", r.n, len(data))
		}
		// Every frame costs at least 2 bytes and a handful of reads.
		if max := 8*len(data) + 8; r.calls > max {
			t.Fatalf("%d Read calls for %d bytes of input", r.calls, len(data))
		}
	})
}

type countingReader struct {
	r        io.Reader
	n, calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.calls++
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// ---------------------------------------------------------------------------
// websocketKey

func TestWebsocketKey(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	type hdr = map[string][]string
	for _, tc := range []struct {
		name    string
		h       hdr
		upgrade bool
		err     bool
	}{
		{"no upgrade headers", hdr{}, false, false},
		{"plain keep-alive", hdr{"Connection": {"keep-alive"}}, false, false},
		{"Connection upgrade without Upgrade", hdr{"Connection": {"Upgrade"}, "Sec-Websocket-Key": {key}}, false, false},
		{"Upgrade without Connection upgrade", hdr{"Connection": {"keep-alive"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {key}}, false, false},
		{"Upgrade to another protocol", hdr{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}}, false, false},
		{"Firefox style", hdr{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {key},
			"Sec-Websocket-Version": {"13"}}, true, false},
		{"mixed case, no version", hdr{"Connection": {"UPGRADE"}, "Upgrade": {"WebSocket"}, "Sec-Websocket-Key": {key}}, true, false},
		{"Connection in two header lines", hdr{"Connection": {"keep-alive", "upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Key": {key}, "Sec-Websocket-Version": {"13"}}, true, false},
		{"missing key", hdr{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}}, false, true},
		{"key not base64", hdr{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"not a key!"}}, false, true},
		{"key of 15 bytes", hdr{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"AAAAAAAAAAAAAAAAAAAA"}}, false, true},
		{"version 8", hdr{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {key},
			"Sec-Websocket-Version": {"8"}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://example.com/live/x.flv", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tc.h {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			gotKey, upgrade, err := websocketKey(r)
			if (err != nil) != tc.err {
				t.Fatalf("error = %v, want error %v", err, tc.err)
			}
			if upgrade != tc.upgrade {
				t.Errorf("upgrade = %v, want %v", upgrade, tc.upgrade)
			}
			switch {
			case upgrade && gotKey != key:
				t.Errorf("key = %q, want %q", gotKey, key)
			case !upgrade && gotKey != "":
				t.Errorf("key = %q without an upgrade", gotKey)
			}
		})
	}
}
