//go:build linux

package netx

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a connected loopback TCP pair: the server side (written
// through a Writer) and the client side.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); sc.Close() })
	// Small buffers so that the socket fills quickly.
	sc.(*net.TCPConn).SetWriteBuffer(16 << 10)
	cc.(*net.TCPConn).SetReadBuffer(16 << 10)
	return sc.(*net.TCPConn), cc.(*net.TCPConn)
}

// pattern returns n bytes of a recognisable sequence starting at seq.
func pattern(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((seq + i) * 7)
	}
	return b
}

func TestTryWriteFillsThenWriteAllFinishes(t *testing.T) {
	sc, cc := pair(t)
	w, err := New(sc)
	if err != nil {
		t.Fatal(err)
	}
	// 200 buffers of various sizes (more than one writev batch), 4 MiB in all.
	var bufs [][]byte
	var want []byte
	for i := 0; len(want) < 4<<20; i++ {
		b := pattern(len(want), 1+(i*7919)%60000)
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	orig := append([][]byte(nil), bufs...)
	n, err := w.TryWrite(bufs)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= len(want) {
		t.Fatalf("TryWrite wrote %d of %d bytes to a socket nobody reads: want a partial write", n, len(want))
	}
	for i := range bufs {
		if &bufs[i][0] != &orig[i][0] || len(bufs[i]) != len(orig[i]) {
			t.Fatal("TryWrite modified its argument")
		}
	}
	// Nobody reads: WriteAll of the rest times out.
	rest := Rest(nil, bufs, n)
	if got := Buffered(rest); got != len(want)-n {
		t.Fatalf("Rest holds %d bytes, want %d", got, len(want)-n)
	}
	m, err := w.WriteAll(rest, time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteAll to a full socket: %v, want a deadline error", err)
	}
	n += m
	// The reader drains: the rest goes through.
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(cc)
		got <- b
	}()
	m, err = w.WriteAll(Rest(nil, bufs, n), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n += m
	// A TryWrite after WriteAll must not see the old deadline.
	if m, err := w.TryWrite([][]byte{[]byte("end")}); err != nil || m != 3 {
		t.Fatalf("TryWrite after WriteAll: %d, %v", m, err)
	}
	sc.CloseWrite()
	b := <-got
	if n != len(want) || !bytes.Equal(b, append(want, "end"...)) {
		t.Fatalf("reader got %d bytes (writer counted %d), want the %d written in order", len(b), n, len(want)+3)
	}
}

func TestPeer(t *testing.T) {
	sc, cc := pair(t)
	w, err := New(sc)
	if err != nil {
		t.Fatal(err)
	}
	if closed, sent := w.Peer(); closed || sent {
		t.Fatalf("idle peer: closed %v sent %v", closed, sent)
	}
	cc.Write([]byte("x"))
	waitPeer(t, w, false, true)

	// A peer that closes without sending.
	sc, cc = pair(t)
	if w, err = New(sc); err != nil {
		t.Fatal(err)
	}
	cc.Close()
	waitPeer(t, w, true, false)
	sc.Close()
	if closed, _ := w.Peer(); !closed {
		t.Fatal("Peer on a closed connection: not closed")
	}
	if _, err := w.TryWrite([][]byte{[]byte("x")}); err == nil {
		t.Fatal("TryWrite on a closed connection succeeded")
	}
}

// waitPeer polls Peer until it reports closed (when closed) or sent.
func waitPeer(t *testing.T, w *Writer, closed, sent bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, s := w.Peer()
		if (closed && c) || (!closed && s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Peer = closed %v sent %v, waiting for closed %v sent %v", c, s, closed, sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRefusesOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := New(a); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New(pipe) = %v, want ErrUnsupported", err)
	}
}

func TestRest(t *testing.T) {
	bufs := [][]byte{[]byte("ab"), nil, []byte("cde"), []byte("f")}
	for n, want := range []string{"abcdef", "bcdef", "cdef", "def", "ef", "f", ""} {
		var got []byte
		for _, b := range Rest(nil, bufs, n) {
			got = append(got, b...)
		}
		if string(got) != want {
			t.Errorf("Rest(%d) = %q, want %q", n, got, want)
		}
	}
}

// BenchmarkTryWrite: no allocation per write.
func BenchmarkTryWrite(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, _ := net.Dial("tcp", ln.Addr().String())
	defer c.Close()
	w, _ := New(c)
	bufs := [][]byte{make([]byte, 400), make([]byte, 11000), make([]byte, 400)}
	b.ReportAllocs()
	for b.Loop() {
		n, err := w.TryWrite(bufs)
		if err != nil {
			b.Fatal(err)
		}
		if n < Buffered(bufs) {
			w.WriteAll(Rest(nil, bufs, n), time.Time{})
		}
	}
}

func TestWatcher(t *testing.T) {
	wt, err := NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Close()
	fired := make(chan string, 4)
	watch := func(name string) (*Writer, *net.TCPConn, uint64) {
		sc, cc := pair(t)
		w, err := New(sc)
		if err != nil {
			t.Fatal(err)
		}
		id, err := wt.Add(w, func() { fired <- name })
		if err != nil {
			t.Fatal(err)
		}
		return w, cc, id
	}
	_, closer, _ := watch("closer")
	_, sender, _ := watch("sender")
	quietW, _, quietID := watch("quiet")
	removedW, removed, removedID := watch("removed")
	wt.Remove(removedW, removedID)
	removed.Close()
	closer.Close()
	sender.Write([]byte("xyz"))
	got := map[string]bool{}
	for range 2 {
		select {
		case n := <-fired:
			got[n] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("fired: %v, want closer and sender", got)
		}
	}
	if !got["closer"] || !got["sender"] {
		t.Fatalf("fired %v", got)
	}
	sender.Write([]byte("more")) // one shot: no second call
	select {
	case n := <-fired:
		t.Fatalf("%s fired again or unexpectedly", n)
	case <-time.After(100 * time.Millisecond):
	}
	wt.Remove(quietW, quietID)
}
