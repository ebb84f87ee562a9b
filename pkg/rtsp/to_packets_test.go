package rtsp

import (
	"bytes"
	"os"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// roundTrip checks that flv.PacketFromTag parses pkt's body back into the
// same packet.
func roundTrip(t *testing.T, pkt *av.Packet) {
	t.Helper()
	tagType := uint8(flv.TagVideo)
	if pkt.Kind == av.KindAudio {
		tagType = flv.TagAudio
	}
	got, err := flv.PacketFromTag(tagType, uint32(pkt.Timestamp), pkt.Payload)
	if err != nil {
		t.Fatalf("PacketFromTag(% x...): %v", pkt.Payload[:min(len(pkt.Payload), 8)], err)
	}
	if got.Kind != pkt.Kind || got.Codec != pkt.Codec || got.SeqHeader != pkt.SeqHeader || got.KeyFrame != pkt.KeyFrame ||
		got.CTS != pkt.CTS || got.DataOffset != pkt.DataOffset || got.Timestamp != pkt.Timestamp {
		t.Errorf("round trip: got %+v, want %+v", got, *pkt)
	}
}

// flvAccessUnits reads the video tags of an FLV file: the AVC decoder
// configuration and each frame's NAL units, DTS and PTS in ms.
type flvFrame struct {
	nalus    [][]byte
	dts, pts int64
	key      bool
}

func readFLVVideo(t *testing.T, path string) (*flv.VideoConfig, []flvFrame) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var vc *flv.VideoConfig
	var frames []flvFrame
	for {
		h, body, err := r.ReadTag()
		if err != nil {
			break
		}
		if h.Type != flv.TagVideo {
			continue
		}
		p, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			t.Fatal(err)
		}
		if p.SeqHeader {
			if vc, err = flv.ParseVideoConfig(p.Codec, p.Data()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var au [][]byte
		if err := flv.SplitNALUs(p.Data(), vc.NALULengthSize, func(n []byte) { au = append(au, bytes.Clone(n)) }); err != nil {
			t.Fatal(err)
		}
		if len(au) == 0 {
			continue // end of sequence
		}
		frames = append(frames, flvFrame{nalus: au, dts: p.Timestamp, pts: p.PTS(), key: p.KeyFrame})
	}
	if vc == nil || len(frames) == 0 {
		t.Fatalf("%s: no H.264 video", path)
	}
	return vc, frames
}

// TestH264ConverterBFrames feeds the access units of an x264 stream with
// B-frames (3 in a row), presentation times only, as RTSP gives them: the
// packets must keep the PTS (plus the fixed presentation delay), get a
// monotonic DTS never above the PTS, start with the sequence header, mark
// the IDRs, and parse back with flv.PacketFromTag.
func TestH264ConverterBFrames(t *testing.T) {
	vc, frames := readFLVVideo(t, "testdata/bframes_64x64.flv")
	c := newH264Converter(vc.SPS[0], vc.PPS[0])
	var out []*av.Packet
	emit := func(p *av.Packet) { out = append(out, p) }
	for _, fr := range frames {
		// RTSP time is 90 kHz and starts anywhere; shift so the first PTS is 0.
		pts := (fr.pts - frames[0].pts) * 90
		if err := c.AccessUnit(fr.nalus, pts, emit); err != nil {
			t.Fatalf("AccessUnit: %v", err)
		}
	}
	if len(out) != len(frames)+1 {
		t.Fatalf("got %d packets for %d frames, want frames + 1 sequence header", len(out), len(frames))
	}
	if !out[0].SeqHeader {
		t.Fatalf("first packet is not the sequence header: %+v", out[0])
	}
	got, err := flv.ParseVideoConfig(av.CodecH264, out[0].Data())
	if err != nil || got.Width != 64 || got.Height != 64 || !bytes.Equal(got.SPS[0], vc.SPS[0]) || !bytes.Equal(got.PPS[0], vc.PPS[0]) {
		t.Errorf("sequence header parses to %+v, %v; want the stream's SPS/PPS, 64x64", got, err)
	}
	roundTrip(t, out[0])
	prevDTS := int64(-1)
	reordered := false
	for i, p := range out[1:] {
		fr := frames[i]
		roundTrip(t, p)
		wantPTS := fr.pts - frames[0].pts + presentationDelayMS + timeBaseMS
		if p.PTS() != wantPTS {
			t.Errorf("frame %d: PTS %d, want %d", i, p.PTS(), wantPTS)
		}
		if p.Timestamp <= prevDTS {
			t.Errorf("frame %d: DTS %d after %d: not increasing", i, p.Timestamp, prevDTS)
		}
		if p.CTS < 0 {
			t.Errorf("frame %d: negative CTS %d", i, p.CTS)
		}
		if p.KeyFrame != fr.key {
			t.Errorf("frame %d: key %v, want %v", i, p.KeyFrame, fr.key)
		}
		reordered = reordered || (i > 0 && p.PTS() < out[i].PTS())
		prevDTS = p.Timestamp
		var nalus [][]byte
		if err := flv.SplitNALUs(p.Data(), 4, func(n []byte) { nalus = append(nalus, n) }); err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		for _, n := range fr.nalus {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
			default:
				want = append(want, n)
			}
		}
		if len(nalus) != len(want) {
			t.Errorf("frame %d: %d NAL units, want %d", i, len(nalus), len(want))
		}
	}
	if !reordered {
		t.Error("the test stream has no B-frames")
	}
}

// TestH264ConverterWaitsForIDRAndInBandSets drops units until an IDR and
// takes SPS/PPS that arrive in band (cameras without sprop-parameter-sets),
// sending a new sequence header when they change.
func TestH264ConverterWaitsForIDRAndInBandSets(t *testing.T) {
	vc, frames := readFLVVideo(t, "testdata/bframes_64x64.flv")
	c := newH264Converter(nil, nil)
	var out []*av.Packet
	emit := func(p *av.Packet) { out = append(out, p) }
	// A non-IDR first, and no parameter sets known: dropped.
	if err := c.AccessUnit(frames[1].nalus, 0, emit); err != nil || len(out) != 0 {
		t.Fatalf("unit before any parameter set: %d packets, %v", len(out), err)
	}
	withSets := append([][]byte{vc.SPS[0], vc.PPS[0]}, frames[0].nalus...)
	if err := c.AccessUnit(withSets, 3600, emit); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || !out[0].SeqHeader || !out[1].KeyFrame {
		t.Fatalf("got %d packets %+v, want a sequence header and a key frame", len(out), out)
	}
	// The same sets again: no new sequence header.
	if err := c.AccessUnit(withSets, 3600*2, emit); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[2].SeqHeader {
		t.Fatalf("repeated sets gave a new sequence header")
	}
	// A changed PPS: a new one.
	pps := append(bytes.Clone(vc.PPS[0]), 0x80)
	if err := c.AccessUnit(append([][]byte{pps}, frames[0].nalus...), 3600*3, emit); err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 || !out[3].SeqHeader {
		t.Fatalf("changed PPS: got %d packets, want a new sequence header", len(out))
	}
}

// splitAnnexB splits an Annex-B byte stream into access units at each AUD.
func splitAnnexB(t *testing.T, b []byte) [][][]byte {
	t.Helper()
	var nalus [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 {
			break
		}
		b = b[i+3:]
		j := bytes.Index(b, []byte{0, 0, 1})
		n := b
		if j >= 0 {
			n = b[:j]
			b = b[j:]
		} else {
			b = nil
		}
		nalus = append(nalus, bytes.TrimRight(n, "\x00"))
	}
	var aus [][][]byte
	for _, n := range nalus {
		if h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT || aus == nil {
			aus = append(aus, nil)
		}
		aus[len(aus)-1] = append(aus[len(aus)-1], n)
	}
	return aus
}

// convertHEVCFile runs testdata/h265_64x64.hevc through the H.265
// converter, its access units step 90 kHz ticks apart, and returns the
// units and the packets.
func convertHEVCFile(t *testing.T, step int64) (aus [][][]byte, out []*av.Packet) {
	t.Helper()
	data, err := os.ReadFile("testdata/h265_64x64.hevc")
	if err != nil {
		t.Fatal(err)
	}
	aus = splitAnnexB(t, data)
	c := newH265Converter(nil, nil, nil)
	for i, au := range aus {
		if err := c.AccessUnit(au, int64(i)*step, func(p *av.Packet) { out = append(out, p) }); err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
	}
	return aus, out
}

// TestH265Converter converts an x265 stream with in-band VPS/SPS/PPS into
// legacy CodecID 12 packets with an HEVCDecoderConfigurationRecord that
// flv.ParseVideoConfig reads back.
func TestH265Converter(t *testing.T) {
	aus, out := convertHEVCFile(t, 3600)
	if len(out) != len(aus)+1 || !out[0].SeqHeader {
		t.Fatalf("got %d packets for %d units, want a sequence header first", len(out), len(aus))
	}
	vc, err := flv.ParseVideoConfig(av.CodecH265, out[0].Data())
	if err != nil || vc.Width != 64 || vc.Height != 64 || len(vc.VPS) != 1 || len(vc.SPS) != 1 || len(vc.PPS) != 1 || vc.NALULengthSize != 4 {
		t.Fatalf("HEVC record parses to %+v, %v", vc, err)
	}
	if out[0].Payload[0] != flv.FrameTypeKey<<4|flv.CodecIDHEVC {
		t.Errorf("sequence header byte %#x, want legacy CodecID 12", out[0].Payload[0])
	}
	keys := 0
	for i, p := range out {
		roundTrip(t, p)
		if p.KeyFrame {
			keys++
		}
		if i > 0 && p.Timestamp != int64(i-1)*40+timeBaseMS {
			t.Errorf("unit %d: DTS %d, want %d", i-1, p.Timestamp, int64(i-1)*40+timeBaseMS)
		}
	}
	if keys != 2 {
		t.Errorf("%d key frames, want 2 (keyint 6, 12 frames)", keys)
	}
}

// TestHEVCConfigRecordOfShippedRecord rebuilds the record of a real HEVC
// stream from its parameter sets: same sets, same profile bytes.
func TestHEVCConfigRecordOfShippedRecord(t *testing.T) {
	orig, err := os.ReadFile("../flv/testdata/hevc_640x360.hvcc")
	if err != nil {
		t.Fatal(err)
	}
	vc, err := flv.ParseVideoConfig(av.CodecH265, orig)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := HEVCConfigRecord(vc.VPS[0], vc.SPS[0], vc.PPS[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec[1:13], orig[1:13]) {
		t.Errorf("profile/tier/level bytes % x, want % x", rec[1:13], orig[1:13])
	}
	got, err := flv.ParseVideoConfig(av.CodecH265, rec)
	if err != nil || got.Width != 640 || got.Height != 360 || !bytes.Equal(got.SPS[0], vc.SPS[0]) {
		t.Errorf("rebuilt record parses to %+v, %v", got, err)
	}
}

// TestAudioConverters checks AAC, G.711 and Opus bodies.
func TestAudioConverters(t *testing.T) {
	conf := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelCount: 2}
	c, err := newAACConverter(conf)
	if err != nil {
		t.Fatal(err)
	}
	var out []*av.Packet
	emit := func(p *av.Packet) { out = append(out, p) }
	if err := c.AccessUnits([][]byte{{1, 2, 3}, {4, 5}}, 44100, emit); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || !out[0].SeqHeader || out[1].SeqHeader {
		t.Fatalf("AAC: %+v", out)
	}
	ac, err := flv.ParseAudioConfig(out[0].Data())
	if err != nil || ac.SampleRate != 44100 || ac.Channels != 2 {
		t.Errorf("AAC sequence header parses to %+v, %v", ac, err)
	}
	if out[1].Timestamp != 1000+presentationDelayMS+timeBaseMS || out[2].Timestamp != 1000+1024*1000/44100+presentationDelayMS+timeBaseMS {
		t.Errorf("AAC timestamps %d, %d", out[1].Timestamp, out[2].Timestamp)
	}
	if !bytes.Equal(out[2].Data(), []byte{4, 5}) {
		t.Errorf("AAC data % x", out[2].Data())
	}
	for _, p := range out {
		roundTrip(t, p)
	}

	for _, tc := range []struct {
		f     format.Format
		codec av.Codec
		pts   int64
		ms    int64
	}{
		{&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1}, av.CodecPCMA, 8000, 1000},
		{&format.G711{PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1}, av.CodecPCMU, 4000, 500},
		{&format.Opus{PayloadTyp: 111, ChannelCount: 2}, av.CodecOpus, 48000, 1000},
	} {
		m := &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{tc.f}}
		tr, err := newInputTrack(m, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []*av.Packet
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: tc.f.PayloadType(), Marker: true}, Payload: []byte{9, 8, 7, 6}}
		if err := tr.handle(pkt, tc.pts, func(p *av.Packet) { got = append(got, p) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Codec != tc.codec || got[0].Timestamp != tc.ms+presentationDelayMS+timeBaseMS || !bytes.Equal(got[0].Data(), pkt.Payload) {
			t.Errorf("%v: got %+v", tc.codec, got)
			continue
		}
		roundTrip(t, got[0])
	}
}

// TestUnsupportedInput leaves out codecs that have no FLV form.
func TestUnsupportedInput(t *testing.T) {
	for _, f := range []format.Format{
		&format.VP8{PayloadTyp: 96},
		&format.G711{PayloadTyp: 96, SampleRate: 16000, ChannelCount: 1},
		&format.LPCM{PayloadTyp: 96, BitDepth: 16, SampleRate: 44100, ChannelCount: 2},
	} {
		if _, err := newInputTrack(&description.Media{Formats: []format.Format{f}}, f); err == nil {
			t.Errorf("%s accepted", formatName(f))
		}
	}
}

// FuzzVideoConverters feeds publisher-controlled NAL units (2-byte length
// prefixes in data) to the H.264 and H.265 converters: nothing panics, and
// every packet they emit parses back with flv.PacketFromTag.
func FuzzVideoConverters(f *testing.F) {
	f.Add([]byte{0, 4, 0x67, 0x42, 0x00, 0x1e, 0, 2, 0x68, 0xce, 0, 3, 0x65, 0x88, 0x84})
	f.Add([]byte{0, 3, 0x40, 0x01, 0x0c, 0, 3, 0x42, 0x01, 0x01, 0, 3, 0x44, 0x01, 0xc1, 0, 3, 0x26, 0x01, 0xaf})
	if b, err := os.ReadFile("testdata/h265_64x64.hevc"); err == nil {
		var seed []byte
		for _, au := range splitAnnexB(&testing.T{}, b)[:2] {
			for _, n := range au {
				seed = append(seed, byte(len(n)>>8), byte(len(n)))
				seed = append(seed, n...)
			}
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var nalus [][]byte
		for len(data) >= 2 {
			n := int(data[0])<<8 | int(data[1])
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			nalus = append(nalus, data[:n])
			data = data[n:]
		}
		check := func(p *av.Packet) {
			tagType := uint8(flv.TagVideo)
			got, err := flv.PacketFromTag(tagType, uint32(p.Timestamp), p.Payload)
			if err != nil || got.Codec != p.Codec || got.SeqHeader != p.SeqHeader || got.KeyFrame != p.KeyFrame || got.CTS != p.CTS {
				t.Fatalf("emitted %+v parses to %+v, %v", p, got, err)
			}
		}
		c4 := newH264Converter(nil, nil)
		c5 := newH265Converter(nil, nil, nil)
		for i := range 3 {
			// Each unit twice in a row, as one access unit then per NAL unit.
			_ = c4.AccessUnit(nalus, int64(i)*3600, check)
			_ = c5.AccessUnit(nalus, int64(i)*3600, check)
			for _, n := range nalus {
				_ = c4.AccessUnit([][]byte{n}, int64(i)*3600+1800, check)
				_ = c5.AccessUnit([][]byte{n}, int64(i)*3600+1800, check)
			}
		}
	})
}
