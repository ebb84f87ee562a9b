package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"sluice/pkg/flv"
)

// rawcopy is the baseline server: it replays an FLV file at real-time pace
// and writes the same bytes to every HTTP client, with no protocol work
// beyond an HTTP response head. Each tag becomes one shared chunk; a client
// is a goroutine with a cursor into the shared log of chunks, written with
// one writev per batch. A joiner gets the FLV header, the sequence headers
// and the chunks since the latest keyframe (a GOP cache, as Sluice's), so
// that both servers do the same work per subscriber.
type rawcopy struct {
	m *mediaFile

	mu       sync.RWMutex
	ring     [rawRing][]byte
	head     uint64 // seq of the next chunk
	gopStart uint64 // seq of the latest keyframe chunk
	headers  [][]byte
	wake     chan struct{}
}

const (
	rawRing  = 4096 // chunks kept (about a minute at 68 tags/s)
	rawBatch = 128  // chunks per writev
)

const rawResponseHead = "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

func newRawcopy(m *mediaFile) *rawcopy {
	return &rawcopy{m: m, wake: make(chan struct{})}
}

// feed replays the file into the log until ctx ends.
func (rc *rawcopy) feed(ctx context.Context) error {
	return rc.m.play(ctx, true, func(t *fileTag, ts uint32) error {
		chunk := flv.AppendTag(nil, t.typ, ts, t.body)
		rc.mu.Lock()
		if t.header {
			rc.headers = append(rc.headers, chunk)
		} else {
			if t.media {
				if _, key := videoKind(t.body); key {
					rc.gopStart = rc.head
				}
			}
			rc.ring[rc.head%rawRing] = chunk
			rc.head++
		}
		close(rc.wake)
		rc.wake = make(chan struct{})
		rc.mu.Unlock()
		return nil
	})
}

// serve accepts clients until the listener closes.
func (rc *rawcopy) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go rc.client(c)
	}
}

// client serves one connection: it reads the request head (whatever it
// asks for), then streams.
func (rc *rawcopy) client(c net.Conn) {
	defer c.Close()
	var req [2048]byte
	n := 0
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(req[:n], []byte("\r\n\r\n")) {
		if n == len(req) {
			return
		}
		k, err := c.Read(req[n:])
		if err != nil {
			return
		}
		n += k
	}
	rc.mu.RLock()
	out := make([][]byte, 0, rawBatch+8)
	out = append(out, []byte(rawResponseHead), rc.m.fileHeader)
	out = append(out, rc.headers...)
	cursor := rc.gopStart
	rc.mu.RUnlock()
	for {
		rc.mu.RLock()
		if rc.head > rawRing && cursor < rc.head-rawRing {
			rc.mu.RUnlock()
			return // too slow: its chunks are gone
		}
		for ; cursor < rc.head && len(out) < cap(out); cursor++ {
			out = append(out, rc.ring[cursor%rawRing])
		}
		wake := rc.wake
		rc.mu.RUnlock()
		if len(out) == 0 {
			<-wake
			continue
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		bufs := net.Buffers(out)
		_, err := bufs.WriteTo(c)
		clear(out)
		out = out[:0]
		if err != nil {
			return
		}
	}
}
