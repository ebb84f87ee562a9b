package httpflv

import (
	"bytes"
	"testing"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// TestMuxSegments: the FLV format's slices are its tags, byte for byte, with
// an audio or video packet's payload not copied; metadata is one slice.
func TestMuxSegments(t *testing.T) {
	body := bytes.Repeat([]byte{0x17, 1, 0, 0, 0, 9}, 2000)
	for _, pkt := range []*av.Packet{
		{Kind: av.KindVideo, Timestamp: 0x12345678, Payload: body},
		{Kind: av.KindAudio, Timestamp: 21, Payload: []byte{0xaf, 1, 0x21}},
		{Kind: av.KindData, Payload: []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'}},
	} {
		want := Muxer{}.Mux(pkt)
		segs := Muxer{}.MuxSegments(pkt, nil)
		if !bytes.Equal(bytes.Join(segs, nil), want) {
			t.Errorf("%v: slices differ from the tag", pkt.Kind)
		}
		if h, err := flv.ParseTagHeader(segs[0]); err != nil || h.DataSize != uint32(len(pkt.Payload)) || h.Timestamp != uint32(pkt.Timestamp) {
			t.Errorf("%v: tag header %+v, %v", pkt.Kind, h, err)
		}
		if n := TagLen(segs[0]); n != len(want) {
			t.Errorf("%v: TagLen %d, want %d", pkt.Kind, n, len(want))
		}
		if pkt.Kind == av.KindData {
			if len(segs) != 1 {
				t.Errorf("metadata in %d slices", len(segs))
			}
			continue
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
