// Package netx writes to TCP sockets without a goroutine waiting on each
// one: a write takes what the socket's buffer has room for right now and
// reports the rest, so one goroutine can serve many connections and only a
// connection that is actually full needs a goroutine to wait for it.
package netx

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrUnsupported is returned by New for connections that cannot be written
// this way (TLS, pipes, other operating systems).
var ErrUnsupported = errors.New("netx: connection does not support non-blocking writes")

// Buffered sums the lengths of bufs.
func Buffered(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// Rest returns the part of bufs after the first n bytes, appended to dst:
// the slice headers are copied, the bytes are shared.
func Rest(dst, bufs [][]byte, n int) [][]byte {
	for _, b := range bufs {
		if n >= len(b) {
			n -= len(b)
			continue
		}
		dst = append(dst, b[n:])
		n = 0
	}
	return dst
}

// Transparent is a connection wrapper that passes bytes through unchanged
// (counting, limiting): New looks through it to the TCP connection. A
// wrapper that transforms bytes (TLS) must not implement it.
type Transparent interface {
	TransparentConn() net.Conn
}

// tcpConn finds the *net.TCPConn under transparent wrappers.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	for range 8 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v, true
		case Transparent:
			c = v.TransparentConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// Pusher is the sink of one connection in push delivery (group.Sub.Push):
// Deliver writes what the socket takes now, and when the socket is full a
// goroutine writes the rest, waiting for room, then calls Resume. Only the
// slice headers of the rest are kept; the bytes are the caller's shared,
// immutable ones.
type Pusher struct {
	W       *Writer
	Timeout time.Duration // bound of the wait for room
	// Mu, when set, is held around every write: the connection's other
	// writers (control messages) take it too, so that no message is cut.
	// A full socket keeps it until the rest is written.
	Mu      *sync.Mutex
	Written func(n int)     // counts the bytes written
	Resume  func()          // the rest is written: deliver again
	Fail    func(err error) // a write failed: end the session

	kept    [][]byte
	flushes sync.WaitGroup
}

// Deliver writes bufs without waiting; it reports whether all of it went
// (false: the rest is being written, do not deliver until Resume).
func (p *Pusher) Deliver(bufs [][]byte) bool {
	if p.Mu != nil && !p.Mu.TryLock() {
		// Another writer has the connection: all of it waits for it.
		p.keep(bufs, 0, false)
		return false
	}
	n, err := p.W.TryWrite(bufs)
	p.Written(n)
	if err != nil || n == Buffered(bufs) {
		if p.Mu != nil {
			p.Mu.Unlock()
		}
		if err != nil {
			p.Fail(err)
		}
		return true
	}
	p.keep(bufs, n, true)
	return false
}

// keep hands the rest of bufs after n bytes to a flush goroutine; locked
// says whether Mu is held already (handed over to the flush).
func (p *Pusher) keep(bufs [][]byte, n int, locked bool) {
	p.kept = Rest(p.kept[:0], bufs, n)
	p.flushes.Add(1)
	go p.flush(locked)
}

func (p *Pusher) flush(locked bool) {
	defer p.flushes.Done()
	if p.Mu != nil && !locked {
		p.Mu.Lock()
	}
	n, err := p.W.WriteAll(p.kept, time.Now().Add(p.Timeout))
	if p.Mu != nil {
		p.Mu.Unlock()
	}
	p.Written(n)
	p.kept = nil
	if err != nil {
		p.Fail(err)
		return
	}
	p.Resume()
}

// Wait waits for a flush goroutine that is running.
func (p *Pusher) Wait() { p.flushes.Wait() }

// LazyWatcher is a Watcher started on first use (Get) and stopped by
// Close, after which Get fails. Its zero value is ready.
type LazyWatcher struct {
	mu     sync.Mutex
	w      *Watcher
	closed bool
}

// Get returns the watcher, starting it if needed.
func (l *LazyWatcher) Get() (*Watcher, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if l.w == nil {
		w, err := NewWatcher()
		if err != nil {
			return nil, err
		}
		l.w = w
	}
	return l.w, nil
}

// Close stops the watcher if it was started.
func (l *LazyWatcher) Close() {
	l.mu.Lock()
	w := l.w
	l.w, l.closed = nil, true
	l.mu.Unlock()
	if w != nil {
		w.Close()
	}
}
