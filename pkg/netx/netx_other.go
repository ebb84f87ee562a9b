//go:build !linux

package netx

import (
	"net"
	"time"
)

// Writer is not available on this operating system: New always fails and
// callers keep a goroutine per connection.
type Writer struct{}

// New returns ErrUnsupported.
func New(net.Conn) (*Writer, error) { return nil, ErrUnsupported }

// TryWrite is never called (New fails).
func (w *Writer) TryWrite([][]byte) (int, error) { return 0, ErrUnsupported }

// WriteAll is never called (New fails).
func (w *Writer) WriteAll([][]byte, time.Time) (int, error) { return 0, ErrUnsupported }

// Peer is never called (New fails).
func (w *Writer) Peer() (closed, sent bool) { return true, false }

// Watcher is not available on this operating system.
type Watcher struct{}

// NewWatcher returns ErrUnsupported.
func NewWatcher() (*Watcher, error) { return nil, ErrUnsupported }

// Add is never called (NewWatcher fails).
func (w *Watcher) Add(*Writer, func()) (uint64, error) { return 0, ErrUnsupported }

// Remove is never called (NewWatcher fails).
func (w *Watcher) Remove(*Writer, uint64) {}

// Close is never called (NewWatcher fails).
func (w *Watcher) Close() {}
