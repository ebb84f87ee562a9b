package rtsp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"sluice/pkg/av"
)

// TestOutputRoundTrip packetises H.264 and AAC packets and depacketises
// them with gortsplib's decoders: the same access units come back, a key
// frame with the parameter sets in front.
func TestOutputRoundTrip(t *testing.T) {
	vc, frames := readFLVVideo(t, "testdata/bframes_64x64.flv")
	conf := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}
	asc, _ := conf.Marshal()
	cfg := &trackConfig{videoCodec: av.CodecH264, video: vc, audioCodec: av.CodecAAC, asc: asc, ascParsed: conf}
	desc, video, audio, err := buildOutput(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Medias) != 2 || desc.Medias[0].Type != description.MediaTypeVideo {
		t.Fatalf("description %+v", desc.Medias)
	}
	h := video.format.(*format.H264)
	if !bytes.Equal(h.SPS, vc.SPS[0]) || h.PacketizationMode != 1 {
		t.Errorf("H.264 format %+v", h)
	}

	// Video: convert the frames to packets, then to RTP and back.
	conv := newH264Converter(vc.SPS[0], vc.PPS[0])
	var pkts []*av.Packet
	for _, fr := range frames[:5] {
		if err := conv.AccessUnit(fr.nalus, fr.pts*90, func(p *av.Packet) { pkts = append(pkts, p) }); err != nil {
			t.Fatal(err)
		}
	}
	dec, err := h.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, p := range pkts {
		if p.SeqHeader {
			continue
		}
		rps, err := video.encode(p, uint32(p.PTS()*90))
		if err != nil {
			t.Fatal(err)
		}
		var au [][]byte
		for _, rp := range rps {
			if rp.hdr.Timestamp != uint32(p.PTS()*90) {
				t.Errorf("RTP timestamp %d, want %d", rp.hdr.Timestamp, p.PTS()*90)
			}
			au, err = dec.Decode(rp.packet())
			if err != nil && !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
				t.Fatal(err)
			}
		}
		want := frames[i].nalus
		if p.KeyFrame {
			want = append([][]byte{vc.SPS[0], vc.PPS[0]}, want...)
		}
		if len(au) != len(want) {
			t.Fatalf("frame %d: %d NAL units back, want %d", i, len(au), len(want))
		}
		for k := range au {
			if !bytes.Equal(au[k], want[k]) {
				t.Errorf("frame %d NAL unit %d differs", i, k)
			}
		}
		i++
	}

	// Audio: AAC access units, sample-exact timestamps.
	adec, err := audio.format.(*format.MPEG4Audio).CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var prev int64
	for n := range 5 {
		ms := int64(n) * 1024 * 1000 / 48000 // rounded down: 21, 42, 64...
		p := &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ms, Payload: []byte{0xaf, 1, byte(n), 2, 3}, DataOffset: 2}
		ticks := audio.rtpTime(ms)
		if n > 0 && ticks-prev != 1024 {
			t.Errorf("AAC RTP step %d, want 1024", ticks-prev)
		}
		prev = ticks
		rps, err := audio.encode(p, uint32(ticks))
		if err != nil || len(rps) != 1 {
			t.Fatalf("encode: %v (%d packets)", err, len(rps))
		}
		aus, err := adec.Decode(rps[0].packet())
		if err != nil || len(aus) != 1 || !bytes.Equal(aus[0], p.Data()) {
			t.Errorf("AAC back: %q, %v", aus, err)
		}
	}
}

// TestOutputPassesSourceFormats keeps an RTSP publisher's payload types and
// media order.
func TestOutputPassesSourceFormats(t *testing.T) {
	vc, _ := readFLVVideo(t, "testdata/bframes_64x64.flv")
	source := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1}}},
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 100, PacketizationMode: 1}}},
	}}
	cfg := &trackConfig{videoCodec: av.CodecH264, video: vc, audioCodec: av.CodecPCMA}
	desc, video, audio, err := buildOutput(cfg, source)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Medias[0].Type != description.MediaTypeAudio || video.format.PayloadType() != 100 || audio.format.PayloadType() != 8 {
		t.Errorf("got %v first, video PT %d, audio PT %d", desc.Medias[0].Type, video.format.PayloadType(), audio.format.PayloadType())
	}
	if h := video.format.(*format.H264); !bytes.Equal(h.SPS, vc.SPS[0]) {
		t.Error("the SPS known from the stream is not in the description")
	}
}
