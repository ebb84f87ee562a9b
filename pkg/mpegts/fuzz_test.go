package mpegts

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"sluice/pkg/av"
)

// FuzzParseTS checks that the test parser never panics and that what it
// accepts is self-consistent.
func FuzzParseTS(f *testing.F) {
	for _, s := range fuzzTSSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := parseTS(b)
		if err == nil {
			_ = checkCC(pkts)
			for _, p := range pkts {
				if len(p.Payload) > maxPayload || (p.HasPayload && 4+1+p.AFLen+len(p.Payload) != PacketSize && p.HasAF) {
					t.Fatalf("packet %d: payload %d with adaptation field %d", p.Index, len(p.Payload), p.AFLen)
				}
			}
		}
		st, err := demux(b)
		if err != nil {
			return
		}
		for pid, units := range st.PES {
			for _, u := range units {
				if u.PID != pid || u.PTS > mask33 || u.DTS > mask33 {
					t.Fatalf("PES %+v", u)
				}
			}
		}
		for _, p := range st.PMTs {
			for _, e := range p.Streams {
				if e.PID > 0x1FFF {
					t.Fatalf("PID 0x%x", e.PID)
				}
			}
		}
	})
}

// fuzzTSSeeds returns Muxer output for a few streams (also written to
// testdata/fuzz/FuzzParseTS by TestWriteFuzzSeeds).
func fuzzTSSeeds(tb testing.TB) [][]byte {
	m := NewMuxer(nil)
	m.Mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
	m.Mux(aacSeq(testASC))
	key := m.Mux(videoFrame(av.CodecH264, 0, 80, true, []byte{0x06, 5, 1}, seqBytes([]byte{0x65}, 500)))
	audio := m.Mux(aacFrame(10, seqBytes(nil, 300)))
	p := m.Mux(videoFrame(av.CodecH264, 40, 0, false, seqBytes([]byte{0x41}, 150)))
	a := NewMuxer(nil)
	a.Mux(aacSeq(testASC))
	aonly := a.Mux(aacFrame(0, seqBytes(nil, 20)))
	o := NewMuxer(nil)
	opus := o.Mux(audioPkt(av.CodecOpus, 0, seqBytes([]byte{0xFC}, 300)))
	return [][]byte{key, bytes.Join([][]byte{key, audio, p}, nil), aonly, opus, {0x47, 0x1F, 0xFF, 0x10}}
}

// fuzzPacket builds an av.Packet from fuzzer-chosen fields.
func fuzzPacket(kind, codec, flags uint8, ts int64, cts int32, payload []byte) *av.Packet {
	kinds := [...]av.Kind{av.KindAudio, av.KindVideo, av.KindData}
	off := int(flags >> 2 % 8) // 0..6, 7 means -1
	if off == 7 {
		off = -1
	}
	return &av.Packet{
		Kind:       kinds[int(kind)%len(kinds)],
		Codec:      av.Codec(codec % 10),
		Timestamp:  ts,
		CTS:        cts,
		KeyFrame:   flags&1 != 0,
		SeqHeader:  flags&2 != 0,
		Payload:    payload,
		DataOffset: off,
	}
}

// FuzzMux feeds fuzzer-chosen packets to a Muxer that already knows some
// tracks (setup bits: 1 H.264, 2 H.265, 4 AAC, 8 Opus). The Muxer must not
// panic, and all of its output must be valid TS for the test parser with
// continuous counters.
type fuzzMuxSeed struct {
	name                      string
	setup, kind, codec, flags uint8
	ts                        int64
	cts                       int32
	payload, payload2         []byte
}

func fuzzMuxSeeds() []fuzzMuxSeed {
	return []fuzzMuxSeed{
		{"h264_key", 5, 1, 1, 1, 0, 80, lengthPrefixed([]byte{0x65, 1, 2}, []byte{0x09, 0xF0}), []byte{}},
		{"h265_key", 6, 1, 2, 1, 1 << 40, -5, lengthPrefixed([]byte{0x26, 1, 2}), []byte{1, 2, 3}},
		{"aac", 4, 0, 3, 0, -1, 0, []byte{0x21, 0x10, 5}, []byte{0x12, 0x10}},
		{"opus_head", 0, 0, 6, 2, 100, 0, []byte("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"), []byte{0xFC, 0xFF}},
		{"avc_seq", 1, 1, 1, 3, 0, 0, avcC(testSPS264, testPPS264), bytes.Repeat([]byte{0, 0, 0, 200}, 60)},
		{"mp3", 0, 0, 7, 0, 0, 0, []byte{0xFF, 0xFB, 0x90, 0x64, 0}, []byte{1}},
	}
}

func FuzzMux(f *testing.F) {
	for _, s := range fuzzMuxSeeds() {
		f.Add(s.setup, s.kind, s.codec, s.flags, s.ts, s.cts, s.payload, s.payload2)
	}
	f.Fuzz(func(t *testing.T, setup, kind, codec, flags uint8, ts int64, cts int32, payload, payload2 []byte) {
		m := NewMuxer(func(string) {})
		var all []byte
		mux := func(p *av.Packet) {
			out := m.Mux(p)
			if len(out)%PacketSize != 0 {
				t.Fatalf("output of %d bytes", len(out))
			}
			all = append(all, out...)
		}
		if setup&1 != 0 {
			mux(videoSeq(av.CodecH264, avcC(testSPS264, testPPS264)))
		}
		if setup&2 != 0 {
			mux(videoSeq(av.CodecH265, hvcC(testVPS265, testSPS265, testPPS265)))
		}
		if setup&4 != 0 {
			mux(aacSeq(testASC))
		}
		if setup&8 != 0 {
			mux(audioPkt(av.CodecOpus, 0, []byte{0xFC, 1}))
		}
		p1 := fuzzPacket(kind, codec, flags, ts, cts, payload)
		mux(p1)
		p2 := fuzzPacket(kind, codec, flags^1, ts+40, cts, payload2)
		p2.SeqHeader = false
		mux(p2)
		mux(p1)
		if psi := m.PSI(); psi != nil {
			if _, err := demux(psi); err != nil {
				t.Fatalf("PSI(): %v", err)
			}
		}
		st, err := demux(all)
		if err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if err := checkCC(st.Pkts); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWriteFuzzSeeds writes the FuzzParseTS and FuzzMux seed corpora when
// MPEGTS_WRITE_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MPEGTS_WRITE_SEEDS") == "" {
		t.Skip("set MPEGTS_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzParseTS")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseTS")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"keyframe", "av_sequence", "audio_only", "opus", "short"}
	for i, s := range fuzzTSSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
		if err := os.WriteFile(filepath.Join(dir, "seed_"+names[i]), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir = filepath.Join("testdata", "fuzz", "FuzzMux")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzMuxSeeds() {
		body := fmt.Sprintf("go test fuzz v1\nbyte(%d)\nbyte(%d)\nbyte(%d)\nbyte(%d)\nint64(%d)\nint32(%d)\n[]byte(%s)\n[]byte(%s)\n",
			s.setup, s.kind, s.codec, s.flags, s.ts, s.cts, strconv.Quote(string(s.payload)), strconv.Quote(string(s.payload2)))
		if err := os.WriteFile(filepath.Join(dir, "seed_"+s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
