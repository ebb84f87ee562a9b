// Package httpflv is HTTP-FLV (and WebSocket-FLV): the FLV tags every FLV
// subscriber of a stream shares, and the file header each one starts with.
// The HTTP session itself is package httpstream's.
package httpflv

import (
	"encoding/binary"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/httpstream"
)

// ContentType is the Content-Type of an HTTP-FLV response.
const ContentType = "video/x-flv"

// Suffix is the URL suffix of HTTP-FLV streams.
const Suffix = ".flv"

// Muxer encodes packets as the FLV tags shared by every FLV subscriber of a
// stream. Metadata goes out without @setDataFrame.
type Muxer struct{}

// Mux returns the FLV tag (with its PreviousTagSize) of pkt.
func (Muxer) Mux(pkt *av.Packet) []byte {
	payload := pkt.Payload
	switch pkt.Kind {
	case av.KindAudio, av.KindVideo:
	case av.KindData:
		payload = flv.StripSetDataFrame(payload)
	default:
		return nil
	}
	dst := make([]byte, 0, flv.TagSize(len(payload)))
	return flv.AppendTag(dst, uint8(pkt.Kind), uint32(pkt.Timestamp), payload)
}

// MuxSegments returns the FLV tag of a video packet as slices: its header,
// the packet's bytes (not copied: the stream's group keeps them anyway) and
// its PreviousTagSize. A small tag (audio, metadata) is one copied slice:
// every slice is an iovec of every player's writev, and those bytes are few.
func (m Muxer) MuxSegments(pkt *av.Packet, in [][]byte) [][]byte {
	media := pkt.Kind == av.KindAudio || pkt.Kind == av.KindVideo
	if !media || (in == nil && len(pkt.Payload) <= copyMax) {
		if b := m.Mux(pkt); b != nil {
			return [][]byte{b}
		}
		return nil
	}
	if in == nil {
		in = [][]byte{pkt.Payload}
	}
	n := 0
	for _, b := range in {
		n += len(b)
	}
	if n > flv.MaxDataSize {
		return nil // no RTMP message is this long
	}
	t := &tagSlices{}
	flv.AppendTagHeader(t.head[:0], flv.TagHeader{Type: uint8(pkt.Kind), DataSize: uint32(n), Timestamp: uint32(pkt.Timestamp)})
	binary.BigEndian.PutUint32(t.tail[:], uint32(flv.TagHeaderSize+n))
	if len(in) == 1 {
		t.list = [3][]byte{t.head[:], in[0], t.tail[:]}
		return t.list[:]
	}
	return append(append([][]byte{t.head[:]}, in...), t.tail[:])
}

// TagLen is the length of the FLV tag whose header starts first (header,
// body, PreviousTagSize): a WebSocket-FLV message is one tag
// (httpstream.Handler.MessageSize).
func TagLen(first []byte) int {
	h, err := flv.ParseTagHeader(first)
	if err != nil {
		return len(first)
	}
	return flv.TagSize(int(h.DataSize))
}

// copyMax is the largest payload MuxSegments copies into one slice.
const copyMax = 1024

// tagSlices is one tag's slices and its own bytes, in one allocation.
type tagSlices struct {
	list [3][]byte
	head [flv.TagHeaderSize]byte
	tail [4]byte
}

// Start returns the FLV file header a subscriber gets first, with the
// audio/video flags of the stream as far as they are known.
func Start(sub httpstream.Subscription) []byte {
	hasAudio, hasVideo := sub.Tracks()
	return flv.AppendFileHeader(nil, hasAudio, hasVideo)
}
