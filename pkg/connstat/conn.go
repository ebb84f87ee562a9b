// Package connstat counts the bytes that cross a network connection.
package connstat

import (
	"net"
	"sync/atomic"
)

// Conn is a net.Conn that counts the bytes read and written through it.
// Writes through net.Buffers keep using writev: WriteBuffers forwards to the
// underlying connection's own buffers path.
type Conn struct {
	net.Conn
	read    atomic.Uint64
	written atomic.Uint64
}

// New wraps c.
func New(c net.Conn) *Conn { return &Conn{Conn: c} }

// Read reads from the connection and counts the bytes.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(uint64(n))
	return n, err
}

// Write writes to the connection and counts the bytes.
func (c *Conn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(uint64(n))
	return n, err
}

// WriteBuffers writes bufs with one writev where the connection supports it
// and counts the bytes. bufs is consumed as net.Buffers.WriteTo does.
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	var n int64
	var err error
	if bw, ok := c.Conn.(interface {
		WriteBuffers(*net.Buffers) (int64, error)
	}); ok {
		// A wrapper (e.g. a counted connection) that forwards to its own
		// connection's writev.
		n, err = bw.WriteBuffers(bufs)
	} else {
		n, err = bufs.WriteTo(c.Conn)
	}
	c.written.Add(uint64(n))
	return n, err
}

// ReadBytes returns the number of bytes read so far.
func (c *Conn) ReadBytes() uint64 { return c.read.Load() }

// WrittenBytes returns the number of bytes written so far.
func (c *Conn) WrittenBytes() uint64 { return c.written.Load() }

// AddWritten counts n bytes written by other means (e.g. straight to the
// socket by a non-blocking writer).
func (c *Conn) AddWritten(n int) { c.written.Add(uint64(n)) }

// TransparentConn returns the wrapped connection: Conn only counts, bytes
// pass through unchanged (see netx.New).
func (c *Conn) TransparentConn() net.Conn { return c.Conn }

// AddRead counts n bytes read by other means (e.g. a hijacked HTTP
// connection's buffered request bytes).
func (c *Conn) AddRead(n int) { c.read.Add(uint64(n)) }
