package flv

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"sluice/pkg/av"
)

// Seeds for these fuzz targets live in testdata/fuzz/<FuzzName>/.

func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small MaxTagSize keeps mutated DataSize fields from making every
		// run allocate a large body; TestReaderRoundTrip covers big tags.
		const maxTagSize = 64 << 10
		r := NewReader(bytes.NewReader(data))
		r.MaxTagSize = maxTagSize
		if _, _, err := r.ReadHeader(); err != nil {
			checkErr(t, "ReadHeader", err)
			// Try the same bytes as a headerless tag stream.
			r = NewReader(bytes.NewReader(data))
			r.MaxTagSize = maxTagSize
		}
		for range 1000 {
			h, body, err := r.ReadTag()
			if err != nil {
				checkErr(t, "ReadTag", err)
				return
			}
			if len(body) != int(h.DataSize) || h.DataSize > r.MaxTagSize {
				t.Fatalf("header %+v with %d-byte body", h, len(body))
			}
			tag := AppendTag(nil, h.Type, h.Timestamp, body)
			if h2, err := ParseTagHeader(tag); err != nil || h2 != (TagHeader{h.Type, h.DataSize, h.Timestamp, 0}) {
				t.Fatalf("round trip of %+v gave %+v, %v", h, h2, err)
			}
			checkPacket(t, h.Type, h.Timestamp, body)
		}
	})
}

func FuzzPacketFromTag(f *testing.F) {
	f.Fuzz(func(t *testing.T, tagType uint8, timestamp uint32, body []byte) {
		checkPacket(t, tagType, timestamp, body)
	})
}

func FuzzParseVideoConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, hevc bool, data []byte) {
		codec := av.CodecH264
		if hevc {
			codec = av.CodecH265
		}
		checkVideoConfig(t, codec, data)
	})
}

// checkErr fails unless err is io.EOF or one of this package's errors.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != io.EOF && !strings.HasPrefix(err.Error(), "flv: ") {
		t.Fatalf("%s: error without flv prefix: %v", what, err)
	}
}

// checkPacket runs PacketFromTag and the parsers a consumer would apply to
// its result, and checks the invariants of what they return.
func checkPacket(t *testing.T, tagType uint8, timestamp uint32, body []byte) {
	t.Helper()
	p, err := PacketFromTag(tagType, timestamp, body)
	if err != nil {
		checkErr(t, "PacketFromTag", err)
		return
	}
	if uint8(p.Kind) != tagType || p.Timestamp != int64(timestamp) {
		t.Fatalf("kind %v timestamp %d from tag type %d timestamp %d", p.Kind, p.Timestamp, tagType, timestamp)
	}
	if p.DataOffset < 0 || p.DataOffset > len(body) {
		t.Fatalf("DataOffset %d outside %d-byte body", p.DataOffset, len(body))
	}
	if len(p.Payload) != len(body) || (len(body) > 0 && &p.Payload[0] != &body[0]) {
		t.Fatal("Payload is not the body")
	}
	if p.KeyFrame && p.SeqHeader {
		t.Fatal("packet is both key frame and sequence header")
	}
	if p.Kind != av.KindVideo && (p.KeyFrame || p.CTS != 0) {
		t.Fatalf("%v packet with KeyFrame %v CTS %d", p.Kind, p.KeyFrame, p.CTS)
	}
	if p.CTS < -1<<23 || p.CTS >= 1<<23 {
		t.Fatalf("CTS %d outside SI24", p.CTS)
	}
	data := p.Data()
	switch {
	case p.SeqHeader && (p.Codec == av.CodecH264 || p.Codec == av.CodecH265):
		checkVideoConfig(t, p.Codec, data)
	case p.SeqHeader && p.Codec == av.CodecAAC:
		if c, err := ParseAudioConfig(data); err != nil {
			checkErr(t, "ParseAudioConfig", err)
		} else if c.SampleRate <= 0 || c.Channels < 0 || c.Channels > 8 {
			t.Fatalf("audio config %+v", c)
		}
	case p.Codec == av.CodecH264 || p.Codec == av.CodecH265:
		for size := 1; size <= 4; size++ {
			total := 0
			err := SplitNALUs(data, size, func(n []byte) {
				if len(n) == 0 || len(n) > len(data) {
					t.Fatalf("NAL unit of %d bytes from %d bytes", len(n), len(data))
				}
				total += size + len(n)
			})
			if err != nil {
				checkErr(t, "SplitNALUs", err)
			} else if total > len(data) {
				t.Fatalf("NAL units cover %d of %d bytes", total, len(data))
			}
		}
	}
}

// checkVideoConfig runs ParseVideoConfig and checks its result.
func checkVideoConfig(t *testing.T, codec av.Codec, data []byte) {
	t.Helper()
	c, err := ParseVideoConfig(codec, data)
	if err != nil {
		checkErr(t, "ParseVideoConfig", err)
		return
	}
	if c.Codec != codec || len(c.SPS) == 0 || c.NALULengthSize < 1 || c.NALULengthSize > 4 ||
		c.Width <= 0 || c.Height <= 0 || c.Width > maxDimension || c.Height > maxDimension {
		t.Fatalf("bad config %+v", c)
	}
	if codec == av.CodecH264 && len(c.VPS) != 0 {
		t.Fatal("H.264 config with VPS")
	}
	total := 0
	for _, sets := range [][][]byte{c.VPS, c.SPS, c.PPS} {
		for _, n := range sets {
			total += 2 + len(n)
		}
	}
	if total > len(data) {
		t.Fatalf("parameter sets of %d bytes from a %d-byte record", total, len(data))
	}
}
