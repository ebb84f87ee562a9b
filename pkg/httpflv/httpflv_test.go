package httpflv

import (
	"bytes"
	"testing"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// TestMuxSegments: the FLV format's slices are its tags, byte for byte; a
// big audio or video packet's payload is not copied, a small one (at most
// copyMax bytes) and metadata are one slice.
func TestMuxSegments(t *testing.T) {
	body := bytes.Repeat([]byte{0x17, 1, 0, 0, 0, 9}, 2000)
	meta := append([]byte{2, 0, 10}, "onMetaData"...)
	meta = append(meta, bytes.Repeat([]byte{5}, 2000)...) // big, as metadata with many keys is
	for _, pkt := range []*av.Packet{
		{Kind: av.KindVideo, Timestamp: 0x12345678, Payload: body},
		{Kind: av.KindAudio, Timestamp: 21, Payload: body[:copyMax+1]},
		{Kind: av.KindAudio, Timestamp: 42, Payload: []byte{0xaf, 1, 0x21}},
		{Kind: av.KindVideo, Timestamp: 80, Payload: body[:copyMax]},
		{Kind: av.KindData, Payload: meta},
	} {
		want := Muxer{}.Mux(pkt)
		segs := Muxer{}.MuxSegments(pkt, nil)
		if !bytes.Equal(bytes.Join(segs, nil), want) {
			t.Errorf("%v of %d bytes: slices differ from the tag", pkt.Kind, len(pkt.Payload))
		}
		if n := TagLen(segs[0]); n != len(want) {
			t.Errorf("%v of %d bytes: TagLen %d, want %d", pkt.Kind, len(pkt.Payload), n, len(want))
		}
		if pkt.Kind == av.KindData || len(pkt.Payload) <= copyMax {
			if len(segs) != 1 {
				t.Errorf("%v of %d bytes in %d slices, want 1", pkt.Kind, len(pkt.Payload), len(segs))
			}
			continue
		}
		if h, err := flv.ParseTagHeader(segs[0]); err != nil || h.DataSize != uint32(len(pkt.Payload)) || h.Timestamp != uint32(pkt.Timestamp) {
			t.Errorf("%v: tag header %+v, %v", pkt.Kind, h, err)
		}
		if len(segs) != 3 || &segs[1][0] != &pkt.Payload[0] {
			t.Errorf("%v: %d slices, the payload copied or missing", pkt.Kind, len(segs))
		}
		split := Muxer{}.MuxSegments(pkt, [][]byte{pkt.Payload[:1], pkt.Payload[1:]})
		if !bytes.Equal(bytes.Join(split, nil), want) {
			t.Errorf("%v written as slices: differs from the tag", pkt.Kind)
		}
	}
}
