// Package netx writes to TCP sockets without a goroutine waiting on each
// one: a write takes what the socket's buffer has room for right now and
// reports the rest, so one goroutine can serve many connections and only a
// connection that is actually full needs a goroutine to wait for it.
package netx

import (
	"errors"
	"net"
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
