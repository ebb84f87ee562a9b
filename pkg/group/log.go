package group

import "sluice/pkg/av"

// maxFormats bounds the number of output formats a Manager can serve.
const maxFormats = 8

// Frame is one packet of a stream together with its encodings: the bytes of
// each active output format, made once and shared by every subscriber of
// that format. A Frame is immutable once appended to a group's log, except
// that a format's bytes are filled in exactly once, when the format first
// becomes active in the group, before any reader of that format exists.
type Frame struct {
	seq     uint64
	offset  uint64 // stream bytes appended before this frame
	arrival int64  // when the frame was appended, on the Manager's clock
	Packet  *av.Packet
	data    [maxFormats][]byte
	seg     *segments // bytes kept as slices: see segments; else nil
}

// segments are the bytes of a frame kept as slices: its input when it was
// written with WriteSegments (nil: pkt.Payload whole), and the encoding of
// each active format whose muxer is a SegmentMuxer.
type segments struct {
	in  [][]byte
	out [maxFormats][][]byte
}

func (fr *Frame) size() uint64 {
	if fr.seg == nil || fr.seg.in == nil {
		return uint64(len(fr.Packet.Payload))
	}
	n := 0
	for _, b := range fr.seg.in {
		n += len(b)
	}
	return uint64(n)
}

// mux fills in the frame's bytes in format f.
func (fr *Frame) mux(f Format, m Muxer) {
	if sm, ok := m.(SegmentMuxer); ok {
		if fr.seg == nil {
			fr.seg = &segments{}
		}
		fr.seg.out[f] = sm.MuxSegments(fr.Packet, fr.seg.in)
		return
	}
	fr.data[f] = m.Mux(fr.Packet)
}

// appendBytes appends the frame's bytes in format f to dst.
func (fr *Frame) appendBytes(dst [][]byte, f Format) [][]byte {
	if fr.seg != nil && fr.seg.out[f] != nil {
		return append(dst, fr.seg.out[f]...)
	}
	if b := fr.data[f]; b != nil {
		dst = append(dst, b)
	}
	return dst
}

// frameLog is a ring of the most recent frames of a stream, addressed by a
// monotonically increasing sequence number. Subscribers are cursors into it:
// appending a frame costs the same whatever the number of subscribers.
type frameLog struct {
	ring  []*Frame // len is a power of two
	tail  uint64   // seq of the oldest retained frame
	head  uint64   // seq the next appended frame gets
	bytes uint64   // total stream bytes appended so far
}

func newFrameLog() *frameLog {
	return &frameLog{ring: make([]*Frame, 64)}
}

func (l *frameLog) len() int { return int(l.head - l.tail) }

func (l *frameLog) at(seq uint64) *Frame {
	return l.ring[seq&uint64(len(l.ring)-1)]
}

func (l *frameLog) append(fr *Frame) {
	if l.len() == len(l.ring) {
		l.grow()
	}
	fr.seq = l.head
	fr.offset = l.bytes
	l.ring[l.head&uint64(len(l.ring)-1)] = fr
	l.head++
	l.bytes += fr.size()
}

func (l *frameLog) grow() {
	ring := make([]*Frame, 2*len(l.ring))
	for s := l.tail; s < l.head; s++ {
		ring[s&uint64(len(ring)-1)] = l.at(s)
	}
	l.ring = ring
}

func (l *frameLog) evictOldest() {
	l.ring[l.tail&uint64(len(l.ring)-1)] = nil
	l.tail++
}

// retainedBytes is the stream bytes held from seq on.
func (l *frameLog) bytesFrom(seq uint64) uint64 {
	if seq >= l.head {
		return 0
	}
	return l.bytes - l.at(seq).offset
}

// reset drops every retained frame; sequence numbers keep counting up so
// that subscriber cursors stay valid.
func (l *frameLog) reset() {
	for l.tail < l.head {
		l.evictOldest()
	}
	if len(l.ring) > 64 {
		l.ring = make([]*Frame, 64)
	}
}
