package rtmp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// The keys are spelled out again here so the tests do not trust the package's copies.
var (
	testFPKey  = []byte("Genuine Adobe Flash Player 001\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae")
	testFMSKey = []byte("Genuine Adobe Flash Media Server 001\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae")
)

// testDigestPos computes the digest position: scheme 0 reads bytes 8..11 and
// adds 12, scheme 1 reads bytes 772..775 and adds 776.
func testDigestPos(b []byte, scheme int) int {
	at, base := 8, 12
	if scheme == 1 {
		at, base = 772, 776
	}
	return (int(b[at])+int(b[at+1])+int(b[at+2])+int(b[at+3]))%728 + base
}

func testHMAC(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// testBlockDigestOK checks the digest embedded in a C1/S1 block.
func testBlockDigestOK(b []byte, scheme int, key []byte) ([]byte, bool) {
	pos := testDigestPos(b, scheme)
	want := testHMAC(key, b[:pos], b[pos+32:])
	return b[pos : pos+32], bytes.Equal(want, b[pos:pos+32])
}

// testResponseOK checks an S2/C2 block keyed by the peer's digest.
func testResponseOK(b []byte, fullKey, peerDigest []byte) bool {
	return bytes.Equal(testHMAC(testHMAC(fullKey, peerDigest), b[:1504]), b[1504:])
}

// scriptedConn feeds a fixed input and records every Write call.
type scriptedConn struct {
	in     io.Reader
	writes [][]byte
}

func (c *scriptedConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

// recordingConn records everything read from and written to a net.Conn.
type recordingConn struct {
	net.Conn
	mu        sync.Mutex
	read, wrt bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.wrt.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func randomBlock(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, 1536)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestServerHandshakeSimple(t *testing.T) {
	c1 := randomBlock(1)
	binary.BigEndian.PutUint32(c1[0:4], 12345)
	binary.BigEndian.PutUint32(c1[4:8], 0) // zero version: simple handshake
	c2 := randomBlock(2)
	in := append(append([]byte{3}, c1...), c2...)
	conn := &scriptedConn{in: bytes.NewReader(in)}
	if err := ServerHandshake(conn); err != nil {
		t.Fatalf("ServerHandshake: %v", err)
	}
	if len(conn.writes) != 1 {
		t.Fatalf("server made %d Write calls, want 1", len(conn.writes))
	}
	out := conn.writes[0]
	if len(out) != 1+2*1536 {
		t.Fatalf("S0+S1+S2 is %d bytes", len(out))
	}
	if out[0] != 3 {
		t.Fatalf("S0 = %d, want 3", out[0])
	}
	s1, s2 := out[1:1537], out[1537:]
	if v := binary.BigEndian.Uint32(s1[4:8]); v != 0 {
		t.Fatalf("simple S1 version field = %#x, want 0", v)
	}
	if !bytes.Equal(s2, c1) {
		t.Fatal("S2 does not echo C1")
	}
}

func TestServerHandshakeNonZeroVersionWithoutDigest(t *testing.T) {
	// A non-zero version but no valid digest falls back to the simple handshake.
	c1 := randomBlock(3)
	binary.BigEndian.PutUint32(c1[4:8], 0x09007c02)
	in := append(append([]byte{3}, c1...), make([]byte, 1536)...)
	conn := &scriptedConn{in: bytes.NewReader(in)}
	if err := ServerHandshake(conn); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(conn.writes[0][1537:], c1) {
		t.Fatal("S2 does not echo C1")
	}
}

// TestServerHandshakeComplexSchemes builds digest C1s by hand at both offset
// schemes and checks S1 and S2 independently.
func TestServerHandshakeComplexSchemes(t *testing.T) {
	for scheme := 0; scheme <= 1; scheme++ {
		for seed := uint64(10); seed < 20; seed++ {
			c1 := randomBlock(seed)
			binary.BigEndian.PutUint32(c1[4:8], 0x80000702)
			pos := testDigestPos(c1, scheme)
			clientDigest := testHMAC(testFPKey[:30], c1[:pos], c1[pos+32:])
			copy(c1[pos:], clientDigest)

			in := append(append([]byte{3}, c1...), make([]byte, 1536)...)
			conn := &scriptedConn{in: bytes.NewReader(in)}
			if err := ServerHandshake(conn); err != nil {
				t.Fatal(err)
			}
			out := conn.writes[0]
			s1, s2 := out[1:1537], out[1537:]
			if binary.BigEndian.Uint32(s1[4:8]) == 0 {
				t.Fatalf("scheme %d: complex S1 has a zero version field", scheme)
			}
			if _, ok := testBlockDigestOK(s1, scheme, testFMSKey[:36]); !ok {
				t.Fatalf("scheme %d seed %d: S1 digest invalid at the client's scheme", scheme, seed)
			}
			if !testResponseOK(s2, testFMSKey, clientDigest) {
				t.Fatalf("scheme %d seed %d: S2 digest invalid", scheme, seed)
			}
			if bytes.Equal(s2, c1) {
				t.Fatalf("scheme %d: S2 echoes C1 in a complex handshake", scheme)
			}
		}
	}
}

func runPipeHandshake(t *testing.T, complex bool) (clientSide *recordingConn) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(5 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	rec := &recordingConn{Conn: a}
	errc := make(chan error, 1)
	go func() { errc <- ServerHandshake(b) }()
	if err := ClientHandshake(rec, complex); err != nil {
		t.Fatalf("ClientHandshake(%v): %v", complex, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("ServerHandshake: %v", err)
	}
	return rec
}

func TestHandshakeComplexOverPipe(t *testing.T) {
	rec := runPipeHandshake(t, true)
	sent, got := rec.wrt.Bytes(), rec.read.Bytes()
	if len(sent) != 1+2*1536 || len(got) != 1+2*1536 {
		t.Fatalf("client sent %d bytes, received %d", len(sent), len(got))
	}
	c1, c2 := sent[1:1537], sent[1537:]
	s1, s2 := got[1:1537], got[1537:]
	if sent[0] != 3 || got[0] != 3 {
		t.Fatalf("C0 = %d, S0 = %d", sent[0], got[0])
	}
	if binary.BigEndian.Uint32(c1[4:8]) == 0 {
		t.Fatal("complex C1 has zero version")
	}
	clientDigest, ok := testBlockDigestOK(c1, 0, testFPKey[:30])
	if !ok {
		t.Fatal("C1 digest invalid at scheme 0")
	}
	serverDigest, ok := testBlockDigestOK(s1, 0, testFMSKey[:36])
	if !ok {
		t.Fatal("S1 digest invalid at scheme 0")
	}
	if !testResponseOK(s2, testFMSKey, clientDigest) {
		t.Fatal("S2 digest invalid")
	}
	if !testResponseOK(c2, testFPKey, serverDigest) {
		t.Fatal("C2 digest invalid")
	}
}

func TestHandshakeSimpleOverPipe(t *testing.T) {
	rec := runPipeHandshake(t, false)
	sent, got := rec.wrt.Bytes(), rec.read.Bytes()
	c1, c2 := sent[1:1537], sent[1537:]
	s1, s2 := got[1:1537], got[1537:]
	if binary.BigEndian.Uint32(c1[4:8]) != 0 {
		t.Fatal("simple C1 has a non-zero version")
	}
	if !bytes.Equal(s2, c1) {
		t.Fatal("S2 does not echo C1")
	}
	if !bytes.Equal(c2, s1) {
		t.Fatal("C2 does not echo S1")
	}
}

func TestClientHandshakeComplexAgainstSimpleServer(t *testing.T) {
	// S1 with a zero version field: no digest required, C2 echoes S1.
	s1 := randomBlock(30)
	binary.BigEndian.PutUint32(s1[4:8], 0)
	in := append(append([]byte{3}, s1...), randomBlock(31)...)
	conn := &scriptedConn{in: bytes.NewReader(in)}
	if err := ClientHandshake(conn, true); err != nil {
		t.Fatal(err)
	}
	if len(conn.writes) != 2 || !bytes.Equal(conn.writes[1], s1) {
		t.Fatal("C2 does not echo S1")
	}
}

func TestClientHandshakeBadServerDigest(t *testing.T) {
	s1 := randomBlock(32)
	binary.BigEndian.PutUint32(s1[4:8], 0x04050001)
	in := append(append([]byte{3}, s1...), randomBlock(33)...)
	err := ClientHandshake(&scriptedConn{in: bytes.NewReader(in)}, true)
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("err = %v, want a digest error", err)
	}
	// The simple client does not care.
	if err := ClientHandshake(&scriptedConn{in: bytes.NewReader(in)}, false); err != nil {
		t.Fatal(err)
	}
}

func TestServerHandshakeTruncated(t *testing.T) {
	c0c1 := append([]byte{3}, randomBlock(4)...)
	for _, n := range []int{0, 1, 2, 700, 1536} {
		err := ServerHandshake(&scriptedConn{in: bytes.NewReader(c0c1[:n])})
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			t.Fatalf("C0C1 truncated to %d bytes: err = %v", n, err)
		}
	}
	// Complete C0C1 but truncated C2.
	in := append(bytes.Clone(c0c1), make([]byte, 100)...)
	if err := ServerHandshake(&scriptedConn{in: bytes.NewReader(in)}); err == nil || !strings.Contains(err.Error(), "C2") {
		t.Fatalf("truncated C2: err = %v", err)
	}
	// Client side: truncated S1.
	if err := ClientHandshake(&scriptedConn{in: bytes.NewReader(c0c1[:900])}, true); err == nil {
		t.Fatal("truncated S1 accepted")
	}
}

func TestServerHandshakeBadVersion(t *testing.T) {
	in := append([]byte{'A'}, randomBlock(5)...)
	conn := &scriptedConn{in: bytes.NewReader(in)}
	err := ServerHandshake(conn)
	if err == nil || !strings.Contains(err.Error(), "0x41") {
		t.Fatalf("err = %v, want it to name 0x41", err)
	}
	if len(conn.writes) != 0 {
		t.Fatal("server answered a bad C0")
	}
	in[0] = 6 // RTMPE is not supported either
	if err := ServerHandshake(&scriptedConn{in: bytes.NewReader(in)}); err == nil {
		t.Fatal("C0 = 6 accepted")
	}
}

// FuzzServerHandshake feeds arbitrary C0C1C2 bytes to the server.
func FuzzServerHandshake(f *testing.F) {
	simple := append([]byte{3}, randomBlock(40)...)
	binary.BigEndian.PutUint32(simple[5:9], 0)
	f.Add(append(bytes.Clone(simple), make([]byte, 1536)...))
	f.Add([]byte{3})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	c1 := randomBlock(41)
	binary.BigEndian.PutUint32(c1[4:8], 0x80000702)
	pos := testDigestPos(c1, 1)
	copy(c1[pos:], testHMAC(testFPKey[:30], c1[:pos], c1[pos+32:]))
	f.Add(append(append([]byte{3}, c1...), make([]byte, 1536)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &scriptedConn{in: bytes.NewReader(data)}
		err := ServerHandshake(conn)
		if len(data) < 1+2*1536 && err == nil {
			t.Fatalf("handshake of %d bytes succeeded", len(data))
		}
		if len(conn.writes) > 1 {
			t.Fatalf("%d writes", len(conn.writes))
		}
		if len(conn.writes) == 1 {
			out := conn.writes[0]
			if len(out) != 1+2*1536 || out[0] != 3 {
				t.Fatalf("bad S0S1S2 of %d bytes", len(out))
			}
		}
	})
}
