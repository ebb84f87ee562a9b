package mpegts

import (
	"bytes"
	"slices"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/substructs"

	"sluice/pkg/av"
)

// Hand-computed sections (CRC included). The PAT and the H.264+AAC and
// H.265+AAC PMTs are byte for byte the fixed headers of nginx-rtmp-module
// and lal, an independent source for the CRC values.
const (
	patSection    = "00 b0 0d 00 01 c1 00 00 00 01 f0 01 2e 70 19 05"
	pmtH264AAC    = "02 b0 17 00 01 c1 00 00 e1 00 f0 00 1b e1 00 f0 00 0f e1 01 f0 00 2f 44 b9 9b"
	pmtH265AAC    = "02 b0 17 00 01 c1 00 00 e1 00 f0 00 24 e1 00 f0 00 0f e1 01 f0 00 c7 72 b7 cb"
	pmtH265       = "02 b0 12 00 01 c1 00 00 e1 00 f0 00 24 e1 00 f0 00 2f 00 6e e7"
	pmtAAC        = "02 b0 12 00 01 c1 00 00 e1 01 f0 00 0f e1 01 f0 00 ec e2 b0 94"
	pmtOpusStereo = "02 b0 1c 00 01 c1 00 00 e1 01 f0 00 06 e1 01 f0 0a 05 04 4f 70 75 73 7f 02 80 02 cc 21 3d 58"
	pmtH264       = "02 b0 12 00 01 c1 00 00 e1 00 f0 00 1b e1 00 f0 00 15 bd 4d 56"
	pmtH264AACv1  = "02 b0 17 00 01 c3 00 00 e1 00 f0 00 1b e1 00 f0 00 0f e1 01 f0 00 00 e2 db 21"
	pmtH265AACv1  = "02 b0 17 00 01 c3 00 00 e1 00 f0 00 24 e1 00 f0 00 0f e1 01 f0 00 e8 d4 d5 71"
)

func TestCRCTableMatchesBitwise(t *testing.T) {
	for _, s := range []string{patSection, pmtH264AAC, pmtOpusStereo} {
		b := unhex(t, s)
		body := b[:len(b)-4]
		if got, want := crc32MPEG2(body), crcBitwise(body); got != want {
			t.Errorf("table CRC %08x, bitwise %08x", got, want)
		}
		if got := crcBitwise(body); !bytes.Equal(b[len(b)-4:], []byte{byte(got >> 24), byte(got >> 16), byte(got >> 8), byte(got)}) {
			t.Errorf("hand-computed CRC % x, bitwise gives %08x", b[len(b)-4:], got)
		}
	}
	if crcBitwise(unhex(t, patSection)) != 0 {
		t.Error("CRC over a section including its CRC is not 0")
	}
}

func TestPSIH264AAC(t *testing.T) {
	m := NewMuxer(nil)
	if m.PSI() != nil {
		t.Fatal("PSI before any track")
	}
	for _, p := range []*av.Packet{videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)), aacSeq(testASC)} {
		if out := m.Mux(p); out != nil {
			t.Fatalf("sequence header produced %d bytes", len(out))
		}
	}
	// Before any Mux output PSI uses counter 15, so that the first
	// PAT/PMT from Mux (counter 0) follows continuously.
	if got, want := m.PSI(), append(psiPacket(t, PIDPAT, 15, patSection), psiPacket(t, PIDPMT, 15, pmtH264AAC)...); !bytes.Equal(got, want) {
		t.Fatalf("PSI before output:\n got % x\nwant % x", got, want)
	}
	out := m.Mux(videoFrame(av.CodecH264, 0, 0, true, seqBytes([]byte{0x65}, 10)))
	if got, want := out[:PacketSize], psiPacket(t, PIDPAT, 0, patSection); !bytes.Equal(got, want) {
		t.Errorf("PAT:\n got % x\nwant % x", got, want)
	}
	if got, want := out[PacketSize:2*PacketSize], psiPacket(t, PIDPMT, 0, pmtH264AAC); !bytes.Equal(got, want) {
		t.Errorf("PMT:\n got % x\nwant % x", got, want)
	}
	if got := m.PSI(); !bytes.Equal(got, out[:2*PacketSize]) {
		t.Errorf("PSI after one PAT/PMT is not a replay of it:\n got % x\nwant % x", got, out[:2*PacketSize])
	}
	out2 := m.Mux(videoFrame(av.CodecH264, 40, 0, true, seqBytes([]byte{0x65}, 10)))
	if got, want := out2[:2*PacketSize], append(psiPacket(t, PIDPAT, 1, patSection), psiPacket(t, PIDPMT, 1, pmtH264AAC)...); !bytes.Equal(got, want) {
		t.Errorf("second PAT/PMT:\n got % x\nwant % x", got, want)
	}
}

func TestPSIH265Only(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH265, hvcC(testVPS265, testSPS265, testPPS265)))
	want := append(psiPacket(t, PIDPAT, 15, patSection), psiPacket(t, PIDPMT, 15, pmtH265)...)
	if got := m.PSI(); !bytes.Equal(got, want) {
		t.Fatalf("PSI:\n got % x\nwant % x", got, want)
	}
	m.Mux(aacSeq(testASC))
	// Version 1 now: the track set changed.
	want = append(psiPacket(t, PIDPAT, 15, patSection), psiPacket(t, PIDPMT, 15, pmtH265AACv1)...)
	if got := m.PSI(); !bytes.Equal(got, want) {
		t.Fatalf("PSI v1:\n got % x\nwant % x", got, want)
	}
}

func TestPSIAACOnly(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(aacSeq(testASC))
	out := m.Mux(aacFrame(0, []byte{1, 2, 3}))
	want := append(psiPacket(t, PIDPAT, 0, patSection), psiPacket(t, PIDPMT, 0, pmtAAC)...)
	if !bytes.Equal(out[:2*PacketSize], want) {
		t.Fatalf("PSI:\n got % x\nwant % x", out[:2*PacketSize], want)
	}
}

func TestPSIOpus(t *testing.T) {
	m := NewMuxer(nil)
	out := m.Mux(audioPkt(av.CodecOpus, 0, []byte{0xFC, 1, 2}))
	want := append(psiPacket(t, PIDPAT, 0, patSection), psiPacket(t, PIDPMT, 0, pmtOpusStereo)...)
	if !bytes.Equal(out[:2*PacketSize], want) {
		t.Fatalf("PSI:\n got % x\nwant % x", out[:2*PacketSize], want)
	}
	st := mustDemux(t, out)
	desc := st.PMTs[0].Streams[0].Desc
	var oad substructs.OpusAudioDescriptor
	if err := oad.Unmarshal(desc[9:]); err != nil || oad.ChannelCount() != 2 {
		t.Fatalf("opus_audio_descriptor: %v, %d channels", err, oad.ChannelCount())
	}
	pes := st.PES[PIDAudio][0]
	if pes.StreamID != streamIDPrivate {
		t.Errorf("Opus stream_id 0x%x", pes.StreamID)
	}
	var au substructs.OpusAccessUnit
	if n, err := au.Unmarshal(pes.Data); err != nil || n != len(pes.Data) || !bytes.Equal(au.Packet, []byte{0xFC, 1, 2}) {
		t.Fatalf("Opus access unit: n=%d err=%v packet=% x", n, err, au.Packet)
	}

	// A mono OpusHead changes the descriptor and the PMT version.
	head := []byte{'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 1, 0x38, 1, 0x80, 0xBB, 0, 0, 0, 0, 0}
	m.Mux(&av.Packet{Kind: av.KindAudio, Codec: av.CodecOpus, SeqHeader: true, Payload: head})
	st = mustDemux(t, m.Mux(audioPkt(av.CodecOpus, 20, bytes.Repeat([]byte{7}, 600))))
	if len(st.PMTs) != 1 || st.PMTs[0].Version != 1 || st.PMTs[0].Streams[0].Desc[9] != 1 {
		t.Fatalf("PMT after mono OpusHead: %+v", st.PMTs)
	}
	if n, err := au.Unmarshal(st.PES[PIDAudio][0].Data); err != nil || n != 2+3+600 || len(au.Packet) != 600 {
		t.Fatalf("Opus access unit of 600 bytes: n=%d err=%v", n, err)
	}
}

func TestPMTVersionChanges(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	st := mustDemux(t, m.Mux(videoFrame(av.CodecH264, 0, 0, true, []byte{0x65, 1})))
	if len(st.PMTs) != 1 || st.PMTs[0].Version != 0 || len(st.PMTs[0].Streams) != 1 {
		t.Fatalf("first PMT %+v", st.PMTs)
	}
	if got, want := m.PSI()[PacketSize:], psiPacket(t, PIDPMT, 0, pmtH264); !bytes.Equal(got, want) {
		t.Fatalf("video-only PMT:\n got % x\nwant % x", got, want)
	}
	// The same configuration again changes nothing.
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	if out := m.Mux(videoFrame(av.CodecH264, 40, 0, false, []byte{0x41, 1})); len(out)/PacketSize != 1 {
		t.Fatalf("P frame after identical sequence header has %d packets", len(out)/PacketSize)
	}
	// Audio appears: PAT/PMT version 1 before the next output, even a P frame.
	m.Mux(aacSeq(testASC))
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH264, 80, 0, false, []byte{0x41, 2})))
	if len(st.PMTs) != 1 || st.PMTs[0].Version != 1 || len(st.PMTs[0].Streams) != 2 || st.PMTs[0].PCRPID != PIDVideo {
		t.Fatalf("PMT after audio appeared: %+v", st.PMTs)
	}
	if got, want := m.PSI()[PacketSize:], psiPacket(t, PIDPMT, 1, pmtH264AACv1); !bytes.Equal(got, want) {
		t.Fatalf("PMT v1:\n got % x\nwant % x", got, want)
	}
	// Switch to H.265: version 2.
	m.Mux(videoSeq(av.CodecH265, hvcC(testVPS265, testSPS265, testPPS265)))
	if out := m.Mux(videoFrame(av.CodecH264, 120, 0, true, []byte{0x65, 1})); out != nil {
		t.Fatal("H.264 frame muxed after switch to H.265")
	}
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH265, 120, 0, true, []byte{0x26, 0x01, 0xAF})))
	if len(st.PMTs) != 1 || st.PMTs[0].Version != 2 || st.PMTs[0].Streams[0].Type != streamTypeH265 {
		t.Fatalf("PMT after H.265 switch: %+v", st.PMTs)
	}
}

// TestVideoPESKeyFrame checks a key frame byte by byte: TS header, PCR
// adaptation field, PES header with PTS and DTS, AUD+SPS+PPS insertion and
// stuffing in the last packet.
func TestVideoPESKeyFrame(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	sei := []byte{0x06, 0x05, 0x01, 0xAA, 0x80}
	idr := seqBytes([]byte{0x65, 0x88}, 298) // 300 bytes
	out := m.Mux(videoFrame(av.CodecH264, 1000, 80, true, sei, idr))

	// PES: 19 header + AUD 6 + SPS 25 + PPS 8 + SEI 9 + IDR 304 = 371 bytes:
	// 176 in the first packet (after the 8-byte PCR adaptation field), 184,
	// then 11 bytes and 173 bytes of adaptation field in the third.
	if len(out) != 5*PacketSize {
		t.Fatalf("output of %d bytes, want %d", len(out), 5*PacketSize)
	}
	p := out[2*PacketSize:]
	wantFirst := unhex(t, `
		47 41 00 30
		07 50 00 00 af c8 7e 00
		00 00 01 e0 00 00 84 c0 0a
		31 00 05 f7 61
		11 00 05 bf 21
		00 00 00 01 09 f0
		00 00 00 01`)
	if !bytes.Equal(p[:len(wantFirst)], wantFirst) {
		t.Fatalf("first packet:\n got % x\nwant % x", p[:len(wantFirst)], wantFirst)
	}
	if got, want := p[PacketSize:PacketSize+4], unhex(t, "47 01 00 11"); !bytes.Equal(got, want) {
		t.Errorf("second packet header % x, want % x", got, want)
	}
	last := p[2*PacketSize : 3*PacketSize]
	wantLast := append(unhex(t, "47 01 00 32 ac 00"), bytes.Repeat([]byte{0xFF}, 171)...)
	wantLast = append(wantLast, idr[300-11:]...)
	if !bytes.Equal(last, wantLast) {
		t.Fatalf("last packet:\n got % x\nwant % x", last, wantLast)
	}

	st := mustDemux(t, out)
	if len(st.PES[PIDVideo]) != 1 {
		t.Fatalf("%d video PES", len(st.PES[PIDVideo]))
	}
	pes := st.PES[PIDVideo][0]
	if pes.PTS != 97200 || pes.DTS != 90000 || !pes.HasPCR || pes.PCRBase != 90000 || !pes.RAI || !pes.DataAlign || pes.Length != 0 {
		t.Errorf("PES %+v", pes)
	}
	wantES := annexB([]byte{0x09, 0xF0}, testSPS264, testPPS264, sei, idr)
	if !bytes.Equal(pes.Data, wantES) {
		t.Errorf("ES:\n got % x\nwant % x", pes.Data, wantES)
	}
	if st.Pkts[4].Stuffing != 171 {
		t.Errorf("stuffing %d", st.Pkts[4].Stuffing)
	}
}

// TestVideoPESBFrame checks a non-key frame with CTS 80 ms.
func TestVideoPESBFrame(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	m.Mux(videoFrame(av.CodecH264, 0, 0, true, []byte{0x65, 0}))
	nal := []byte{0x41, 0x9A, 0x02}
	out := m.Mux(videoFrame(av.CodecH264, 40, 80, false, nal))
	if len(out) != PacketSize {
		t.Fatalf("%d bytes", len(out))
	}
	// PTS (40+80)*90 = 10800 = 0x2A30, DTS 40*90 = 3600 = 0xE10. PES: 19 +
	// AUD 6 + 7 = 32 bytes; adaptation field 184-32 = 152 bytes with the PCR.
	want := unhex(t, `
		47 41 00 31
		97 10 00 00 07 08 7e 00`)
	want = append(want, bytes.Repeat([]byte{0xFF}, 144)...)
	want = append(want, unhex(t, `
		00 00 01 e0 00 00 84 c0 0a
		31 00 01 54 61
		11 00 01 1c 21
		00 00 00 01 09 f0
		00 00 00 01 41 9a 02`)...)
	if !bytes.Equal(out, want) {
		t.Fatalf("B frame:\n got % x\nwant % x", out, want)
	}
	// PTS equal to DTS: PTS only.
	st := mustDemux(t, m.Mux(videoFrame(av.CodecH264, 80, 0, false, nal)))
	if pes := st.PES[PIDVideo][0]; pes.PTS != 7200 || pes.DTS != -1 || pes.RAI {
		t.Errorf("PES %+v", pes)
	}
}

func TestVideoAUDAndParameterSets(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	// The AU brings its own AUD and parameter sets: nothing is inserted,
	// the leading AUD is kept, a later one dropped.
	sps := append([]byte{}, testSPS264...)
	sps[len(sps)-1] ^= 0x01
	aud := []byte{0x09, 0x10}
	idr := []byte{0x65, 1, 2, 3}
	st := mustDemux(t, m.Mux(videoFrame(av.CodecH264, 0, 0, true, aud, sps, testPPS264, idr, []byte{0x09, 0x30}, []byte{0x0C, 0xFF})))
	if got, want := st.PES[PIDVideo][0].Data, annexB(aud, sps, testPPS264, idr, []byte{0x0C, 0xFF}); !bytes.Equal(got, want) {
		t.Errorf("AU with AUD and parameter sets:\n got % x\nwant % x", got, want)
	}
	// A leading AUD with a key frame that lacks parameter sets: they go right after the AUD.
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH264, 40, 0, true, aud, idr)))
	if got, want := st.PES[PIDVideo][0].Data, annexB(aud, testSPS264, testPPS264, idr); !bytes.Equal(got, want) {
		t.Errorf("AU with AUD:\n got % x\nwant % x", got, want)
	}
	// IDR slice in a packet not flagged as key frame: parameter sets too.
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH264, 80, 0, false, idr)))
	if got, want := st.PES[PIDVideo][0].Data, annexB([]byte{0x09, 0xF0}, testSPS264, testPPS264, idr); !bytes.Equal(got, want) || len(st.PATs) != 1 {
		t.Errorf("unflagged IDR:\n got % x\nwant % x", got, want)
	}
	// Only AUDs: nothing to mux.
	if out := m.Mux(videoFrame(av.CodecH264, 120, 0, false, aud, aud)); out != nil {
		t.Errorf("AUD-only AU produced %d bytes", len(out))
	}
	// Truncated NALU length: dropped.
	bad := videoFrame(av.CodecH264, 160, 0, false, []byte{0x41, 1, 2})
	bad.Payload = bad.Payload[:len(bad.Payload)-1]
	if out := m.Mux(bad); out != nil {
		t.Errorf("truncated AU produced %d bytes", len(out))
	}
}

func TestH265KeyFrame(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH265, hvcC(testVPS265, testSPS265, testPPS265)))
	idr := []byte{0x26, 0x01, 0xAF, 0x01} // IDR_W_RADL
	st := mustDemux(t, m.Mux(videoFrame(av.CodecH265, 0, 0, true, idr)))
	want := annexB([]byte{0x46, 0x01, 0x50}, testVPS265, testSPS265, testPPS265, idr)
	if got := st.PES[PIDVideo][0].Data; !bytes.Equal(got, want) {
		t.Errorf("H.265 key frame:\n got % x\nwant % x", got, want)
	}
	// CRA without key frame flag is an IRAP: parameter sets inserted.
	cra := []byte{0x2A, 0x01, 0x01}
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH265, 40, 0, false, cra)))
	if got := st.PES[PIDVideo][0].Data; !bytes.Equal(got, annexB([]byte{0x46, 0x01, 0x50}, testVPS265, testSPS265, testPPS265, cra)) {
		t.Errorf("H.265 CRA:\n got % x", got)
	}
	trail := []byte{0x02, 0x01, 0xD0}
	st = mustDemux(t, m.Mux(videoFrame(av.CodecH265, 80, 0, false, []byte{0x46, 0x01, 0x10}, trail)))
	if got := st.PES[PIDVideo][0].Data; !bytes.Equal(got, annexB([]byte{0x46, 0x01, 0x10}, trail)) {
		t.Errorf("H.265 P frame with AUD:\n got % x", got)
	}
}

func TestAudioPES(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(aacSeq(testASC))
	raw := []byte{0x21, 0x10, 0x05, 0x00, 0xA0, 0x19, 0x33, 0x87, 0x00, 0x70}
	out := m.Mux(aacFrame(1000, raw))
	if len(out) != 3*PacketSize {
		t.Fatalf("%d bytes", len(out))
	}
	// Audio-only: PCR (= PTS 90000) and random_access_indicator in the
	// first packet. PES: 14 + 7 + 10 = 31 bytes, PES_packet_length 25.
	p := out[2*PacketSize:]
	want := unhex(t, "47 41 01 30 98 50 00 00 af c8 7e 00")
	want = append(want, bytes.Repeat([]byte{0xFF}, 145)...)
	want = append(want, unhex(t, `
		00 00 01 c0 00 19 84 80 05
		21 00 05 bf 21
		ff f1 50 80 02 3f fc`)...)
	want = append(want, raw...)
	if !bytes.Equal(p, want) {
		t.Fatalf("audio PES:\n got % x\nwant % x", p, want)
	}
	st := mustDemux(t, out)
	var adts mpeg4audio.ADTSPackets
	if err := adts.Unmarshal(st.PES[PIDAudio][0].Data); err != nil {
		t.Fatal(err)
	}
	if len(adts) != 1 || adts[0].Type != mpeg4audio.ObjectTypeAACLC || adts[0].SampleRate != 44100 || adts[0].ChannelConfig != 2 || !bytes.Equal(adts[0].AU, raw) {
		t.Errorf("ADTS %+v", adts[0])
	}

	// With video present, audio carries no PCR and no PSI.
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	m.Mux(videoFrame(av.CodecH264, 1000, 0, true, []byte{0x65, 1}))
	st = mustDemux(t, m.Mux(aacFrame(1023, bytes.Repeat([]byte{1}, 400))))
	if len(st.PATs) != 0 || st.PES[PIDAudio][0].HasPCR || st.PES[PIDAudio][0].Length != 8+407 {
		t.Errorf("audio with video: %d PATs, PES %+v", len(st.PATs), st.PES[PIDAudio][0])
	}

	// HE-AAC (SBR, 22050 Hz core, signalled explicitly): ADTS carries the LC core.
	m2 := NewMuxer(nil)
	m2.Mux(aacSeq([]byte{0x2B, 0x92, 0x08, 0x00}))
	st = mustDemux(t, m2.Mux(aacFrame(0, raw)))
	adts = nil
	if err := adts.Unmarshal(st.PES[PIDAudio][0].Data); err != nil || adts[0].Type != mpeg4audio.ObjectTypeAACLC || adts[0].SampleRate != 22050 {
		t.Errorf("HE-AAC ADTS: %v %+v", err, adts)
	}
	// AAC Main is not parsed by mediacommon but fits ADTS (profile 0).
	m3 := NewMuxer(nil)
	m3.Mux(aacSeq([]byte{0x0A, 0x10}))
	if out := m3.Mux(aacFrame(0, raw)); out == nil || out[2*PacketSize+4+153+14+2] != 0x10 {
		t.Errorf("AAC Main ADTS: % x", out)
	}
}

func TestAudioOnlyPSIInterval(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(aacSeq(testASC))
	var all []byte
	for i := range 100 {
		out := m.Mux(aacFrame(int64(i*23), []byte{byte(i), 1, 2, 3}))
		hasPSI := out[0] == 0x47 && out[1] == 0x40 && out[2] == 0x00
		if want := i%psiAudioInterval == 0; hasPSI != want {
			t.Errorf("frame %d: PSI %v, want %v", i, hasPSI, want)
		}
		all = append(all, out...)
	}
	st := mustDemux(t, all)
	if err := checkCC(st.Pkts); err != nil {
		t.Fatal(err)
	}
	for i, pes := range st.PES[PIDAudio] {
		if !pes.HasPCR || pes.PCRBase != uint64(i*23*90) || pes.PTS != int64(i*23*90) {
			t.Fatalf("audio PES %d: %+v", i, pes)
		}
	}
}

// TestPSIJoin checks that a subscriber joining an audio-only stream with
// PSI() sees continuous counters on every PID, across the next PAT/PMT.
func TestPSIJoin(t *testing.T) {
	for _, join := range []int{0, 1, 5, 39, 40, 41} {
		m := NewMuxer(nil)
		m.Mux(aacSeq(testASC))
		var sub []byte
		for i := range 90 {
			if i == join {
				sub = append(sub, m.PSI()...)
			}
			out := m.Mux(aacFrame(int64(i*23), []byte{byte(i), 1, 2, 3}))
			if i >= join {
				sub = append(sub, out...)
			}
		}
		st := mustDemux(t, sub)
		if err := checkCC(st.Pkts); err != nil {
			t.Errorf("join at %d: %v", join, err)
		}
		if st.Pkts[0].PID != PIDPAT || st.Pkts[1].PID != PIDPMT {
			t.Errorf("join at %d: starts with PID 0x%x", join, st.Pkts[0].PID)
		}
	}
}

func TestLeftOutCodecs(t *testing.T) {
	var logs []string
	m := NewMuxer(func(s string) { logs = append(logs, s) })
	for i := range 3 {
		if out := m.Mux(audioPkt(av.CodecPCMA, int64(i), []byte{1, 2})); out != nil {
			t.Fatal("PCMA muxed")
		}
		m.Mux(audioPkt(av.CodecPCMU, int64(i), []byte{1, 2}))
		m.Mux(&av.Packet{Kind: av.KindVideo, Codec: av.CodecOther, Payload: []byte{0x17, 1}, DataOffset: 1})
		m.Mux(&av.Packet{Kind: av.KindData, Payload: []byte{2, 0, 1, 'x'}})
	}
	want := []string{
		"mpegts: audio codec PCMA has no MPEG-TS mapping, track left out",
		"mpegts: audio codec PCMU has no MPEG-TS mapping, track left out",
		"mpegts: video codec OTHER has no MPEG-TS mapping, track left out",
	}
	if !slices.Equal(logs, want) {
		t.Errorf("logs %q", logs)
	}
	if m.PSI() != nil {
		t.Error("PSI without tracks")
	}
	// Packets before their sequence header are dropped silently.
	if m.Mux(aacFrame(0, []byte{1})) != nil || m.Mux(videoFrame(av.CodecH264, 0, 0, true, []byte{0x65})) != nil {
		t.Error("frame before sequence header muxed")
	}
	// An AudioSpecificConfig ADTS cannot carry (explicit 7000 Hz rate) is reported.
	m.Mux(aacSeq([]byte{0x17, 0x80, 0x0D, 0xAC, 0x10}))
	if len(logs) != 4 || logs[3][:27] != "mpegts: audio codec AAC con" {
		t.Errorf("logs %q", logs)
	}
	// nil logger
	NewMuxer(nil).Mux(audioPkt(av.CodecPCMA, 0, []byte{1}))
}

func TestMP3(t *testing.T) {
	// MPEG-1 Layer III, 128 kbit/s, 44100 Hz: stream type 3.
	frame := append([]byte{0xFF, 0xFB, 0x90, 0x64}, make([]byte, 413)...)
	m := NewMuxer(nil)
	st := mustDemux(t, m.Mux(audioPkt(av.CodecMP3, 0, frame)))
	if len(st.PMTs) != 1 || st.PMTs[0].Streams[0].Type != streamTypeMPEG1Audio {
		t.Fatalf("PMT %+v", st.PMTs)
	}
	if pes := st.PES[PIDAudio][0]; pes.StreamID != streamIDAudio || !bytes.Equal(pes.Data, frame) {
		t.Errorf("MP3 PES %+v", pes)
	}
	// MPEG-2 Layer III 22050 Hz: stream type 4.
	m = NewMuxer(nil)
	if m.Mux(audioPkt(av.CodecMP3, 0, []byte{1, 2, 3, 4, 5})) != nil {
		t.Error("MP3 without frame header muxed")
	}
	st = mustDemux(t, m.Mux(audioPkt(av.CodecMP3, 0, append([]byte{0xFF, 0xF3, 0x90, 0x64}, make([]byte, 200)...))))
	if st.PMTs[0].Streams[0].Type != streamTypeMPEG2Audio {
		t.Errorf("PMT %+v", st.PMTs)
	}
}

// muxSequence feeds a synthetic H.264+AAC stream with two GOPs of large
// frames and returns the output per packet and the index of the second key
// frame's output.
func muxSequence(t *testing.T, m *Muxer) (outs [][]byte, secondKey int) {
	t.Helper()
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	m.Mux(aacSeq(testASC))
	secondKey = -1
	for i := range 60 {
		ts := int64(i * 40)
		key := i%25 == 0
		nal := []byte{0x41}
		if key {
			nal = []byte{0x65}
		}
		size := 100 + i*137%3000
		if key {
			size = 9000 + i
		}
		if key && i > 0 && secondKey < 0 {
			secondKey = len(outs)
		}
		outs = append(outs, m.Mux(videoFrame(av.CodecH264, ts, int32(i%3)*40, key, seqBytes(nal, size))))
		if i%2 == 0 {
			outs = append(outs, m.Mux(aacFrame(ts+3, seqBytes(nil, 200+i))))
		}
	}
	return outs, secondKey
}

func TestContinuityCounters(t *testing.T) {
	m := NewMuxer(nil)
	outs, secondKey := muxSequence(t, m)
	all := slices.Concat(outs...)
	st := mustDemux(t, all)
	if err := checkCC(st.Pkts); err != nil {
		t.Fatal(err)
	}
	if len(st.PES[PIDVideo]) != 60 || len(st.PES[PIDAudio]) != 30 {
		t.Fatalf("%d video, %d audio PES", len(st.PES[PIDVideo]), len(st.PES[PIDAudio]))
	}
	if len(st.PATs) != 3 || len(st.PMTs) != 3 {
		t.Errorf("%d PATs, %d PMTs, want one per key frame", len(st.PATs), len(st.PMTs))
	}
	for i, pes := range st.PES[PIDVideo] {
		if !pes.HasPCR || pes.PCRBase != uint64(i*40*90) || pes.DTS != -1 && pes.DTS != int64(i*40*90) {
			t.Fatalf("video PES %d: %+v", i, pes)
		}
		if pes.RAI != (i%25 == 0) {
			t.Errorf("video PES %d: RAI %v", i, pes.RAI)
		}
	}
	// Every packet with stuffing is the last of its PES.
	for i, p := range st.Pkts {
		if p.Stuffing > 0 || (p.HasAF && !p.HasPCR) {
			if i+1 < len(st.Pkts) && st.Pkts[i+1].PID == p.PID && !st.Pkts[i+1].PUSI {
				t.Fatalf("packet %d has stuffing but is not the last of its PES", i)
			}
		}
	}

	// Late joiner: a subscriber starting at the output of the second key
	// frame (the GOP-cache join point) sees PAT first and continuous counters.
	join := slices.Concat(outs[secondKey:]...)
	st = mustDemux(t, join)
	if st.Pkts[0].PID != PIDPAT || st.Pkts[1].PID != PIDPMT || st.Pkts[2].PID != PIDVideo || !st.Pkts[2].RAI {
		t.Fatalf("join point starts with PIDs 0x%x 0x%x 0x%x", st.Pkts[0].PID, st.Pkts[1].PID, st.Pkts[2].PID)
	}
	if err := checkCC(st.Pkts); err != nil {
		t.Fatal(err)
	}
}

func TestDeterministicAndImmutable(t *testing.T) {
	outs1, _ := muxSequence(t, NewMuxer(nil))
	snapshot := make([][]byte, len(outs1))
	for i, o := range outs1 {
		snapshot[i] = slices.Clone(o)
	}
	outs2, _ := muxSequence(t, NewMuxer(nil))
	for i := range outs1 {
		if !bytes.Equal(outs1[i], outs2[i]) {
			t.Fatalf("output %d differs between two muxers", i)
		}
		if !bytes.Equal(outs1[i], snapshot[i]) {
			t.Fatalf("output %d modified after return", i)
		}
		if len(outs1[i])%PacketSize != 0 || cap(outs1[i]) != len(outs1[i]) {
			t.Fatalf("output %d: len %d cap %d", i, len(outs1[i]), cap(outs1[i]))
		}
	}
}

func TestTimestampWrap(t *testing.T) {
	m := NewMuxer(nil)
	m.Mux(aacSeq(testASC))
	// 2^33 / 90 ms is about 26.5 hours; 95443718 ms * 90 wraps to 20.
	st := mustDemux(t, m.Mux(aacFrame(95443718, []byte{1})))
	if pes := st.PES[PIDAudio][0]; pes.PTS != (95443718*90)&mask33 || pes.PCRBase != uint64(pes.PTS) {
		t.Errorf("PES %+v", pes)
	}
	// Negative timestamps wrap too.
	st = mustDemux(t, m.Mux(aacFrame(-1, []byte{1})))
	if pes := st.PES[PIDAudio][0]; pes.PTS != (1<<33)-90 {
		t.Errorf("PES %+v", pes)
	}
}

func TestPESPacketCount(t *testing.T) {
	for total := 1; total < 2000; total++ {
		for _, pcr := range []bool{false, true} {
			n := pesPacketCount(total, pcr)
			buf := make([]byte, n*PacketSize)
			var cc byte
			w := tsWriter{buf: buf}
			w.startPES(PIDVideo, &cc, total, pcr, 0, false)
			w.write(seqBytes(nil, total))
			if w.pos != len(buf) || w.left != 0 {
				t.Fatalf("total %d pcr %v: wrote %d of %d bytes", total, pcr, w.pos, len(buf))
			}
			pkts, err := parseTS(buf)
			if err != nil {
				t.Fatalf("total %d pcr %v: %v", total, pcr, err)
			}
			var data []byte
			for _, p := range pkts {
				data = append(data, p.Payload...)
			}
			if !bytes.Equal(data, seqBytes(nil, total)) {
				t.Fatalf("total %d pcr %v: payload differs", total, pcr)
			}
		}
	}
}
