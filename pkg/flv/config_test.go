package flv

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"

	"sluice/pkg/av"
)

// avcSeqHeaderBody is the first video tag body of h264_aac_360p.flv
// (x264 High profile, 640x360): tag header 17 00 000000, then the
// AVCDecoderConfigurationRecord with its 4-byte High-profile extension.
const avcSeqHeaderBody = "17 00 000000" +
	"01 64001e ff e1 001a 6764001eacd940a02ff97011000003000100000300320f162d96" +
	"01 0004 68efbcb0" +
	"fdf8f800"

// avcRecordCoreLen is the length of the record up to the end of the PPS.
const avcRecordCoreLen = 6 + 2 + 26 + 1 + 2 + 4

func avcRecord(t testing.TB) []byte {
	return unhex(t, avcSeqHeaderBody)[5:]
}

// hevcRecord returns the hvcC box content of h265_aac_360p.mp4 (x265 Main,
// 640x360, arrays VPS, SPS, PPS and a prefix SEI).
func hevcRecord(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/hevc_640x360.hvcc")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nalArray is one array of an HEVC decoder configuration record.
type nalArray struct {
	typ   byte
	nalus [][]byte
}

// buildHVCC builds an HEVCDecoderConfigurationRecord with the given
// configurationVersion, NAL unit length size and arrays.
func buildHVCC(version byte, lengthSize int, arrays ...nalArray) []byte {
	b := []byte{
		version,
		0x01,                   // profile space 0, tier 0, profile Main
		0x60, 0x00, 0x00, 0x00, // compatibility flags
		0x90, 0x00, 0x00, 0x00, 0x00, 0x00, // constraint flags
		0x5d,       // level 3.1
		0xf0, 0x00, // min_spatial_segmentation_idc
		0xfc,       // parallelismType
		0xfd,       // chroma 4:2:0
		0xf8, 0xf8, // bit depths 8
		0x00, 0x00, // avgFrameRate
		0x0c | byte(lengthSize-1),
		byte(len(arrays)),
	}
	for _, a := range arrays {
		b = append(b, 0x80|a.typ)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.nalus)))
		for _, n := range a.nalus {
			b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
			b = append(b, n...)
		}
	}
	return b
}

func TestParseVideoConfigAVC(t *testing.T) {
	rec := avcRecord(t)
	c, err := ParseVideoConfig(av.CodecH264, rec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Codec != av.CodecH264 || c.Width != 640 || c.Height != 360 || c.NALULengthSize != 4 {
		t.Errorf("got codec %v %dx%d length size %d, want H264 640x360 4", c.Codec, c.Width, c.Height, c.NALULengthSize)
	}
	if len(c.VPS) != 0 || len(c.SPS) != 1 || len(c.PPS) != 1 {
		t.Fatalf("got %d VPS, %d SPS, %d PPS, want 0, 1, 1", len(c.VPS), len(c.SPS), len(c.PPS))
	}
	if !bytes.Equal(c.SPS[0], rec[8:8+26]) || !bytes.Equal(c.PPS[0], unhex(t, "68efbcb0")) {
		t.Errorf("SPS % x, PPS % x", c.SPS[0], c.PPS[0])
	}
	// The result must not alias the input.
	clear(rec)
	if c.SPS[0][0] != 0x67 || c.PPS[0][0] != 0x68 {
		t.Error("parameter sets alias the input")
	}

	// Without the optional High-profile extension.
	if _, err := ParseVideoConfig(av.CodecH264, avcRecord(t)[:avcRecordCoreLen]); err != nil {
		t.Errorf("record without extension: %v", err)
	}
	// Every shorter prefix is truncated.
	full := avcRecord(t)
	for n := range avcRecordCoreLen {
		if _, err := ParseVideoConfig(av.CodecH264, full[:n]); err == nil || !strings.HasPrefix(err.Error(), "flv: ") {
			t.Errorf("prefix of %d bytes: err = %v", n, err)
		}
	}
	// Two-byte NAL unit lengths.
	rec = avcRecord(t)
	rec[4] = 0xfd
	if c, err := ParseVideoConfig(av.CodecH264, rec); err != nil || c.NALULengthSize != 2 {
		t.Errorf("lengthSizeMinusOne 1: %v, %+v", err, c)
	}
}

func TestParseVideoConfigAVCErrors(t *testing.T) {
	sps := "001a 6764001eacd940a02ff97011000003000100000300320f162d96"
	tests := []struct {
		name, rec, wantErr string
		codec              av.Codec
	}{
		{"version 0", "00 64001e ff e1" + sps + "01 0004 68efbcb0", "version 0", av.CodecH264},
		{"no SPS", "01 64001e ff e0 01 0004 68efbcb0", "no SPS", av.CodecH264},
		{"SPS length past end", "01 64001e ff e1 00ff 6764", "truncated", av.CodecH264},
		{"broken SPS", "01 64001e ff e1 0002 67ff 01 0004 68efbcb0", "H.264 SPS", av.CodecH264},
		{"PPS where SPS expected", "01 64001e ff e1 0004 68efbcb0 00", "H.264 SPS", av.CodecH264},
		{"unsupported codec", "01 64001e ff e1" + sps + "01 0004 68efbcb0", "codec \"AAC\"", av.CodecAAC},
		{"no codec", "01", "codec \"\"", av.CodecNone},
		{"empty", "", "truncated", av.CodecH264},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseVideoConfig(tt.codec, unhex(t, tt.rec))
			if err == nil || !strings.HasPrefix(err.Error(), "flv: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseVideoConfigHEVC(t *testing.T) {
	rec := hevcRecord(t)
	c, err := ParseVideoConfig(av.CodecH265, rec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Codec != av.CodecH265 || c.Width != 640 || c.Height != 360 || c.NALULengthSize != 4 {
		t.Errorf("got codec %v %dx%d length size %d, want H265 640x360 4", c.Codec, c.Width, c.Height, c.NALULengthSize)
	}
	if len(c.VPS) != 1 || len(c.SPS) != 1 || len(c.PPS) != 1 {
		t.Fatalf("got %d VPS, %d SPS, %d PPS, want 1 each (SEI array ignored)", len(c.VPS), len(c.SPS), len(c.PPS))
	}
	for _, x := range []struct {
		name string
		nalu []byte
		typ  byte
	}{{"VPS", c.VPS[0], 32}, {"SPS", c.SPS[0], 33}, {"PPS", c.PPS[0], 34}} {
		if got := x.nalu[0] >> 1 & 0x3f; got != x.typ {
			t.Errorf("%s has NAL type %d, want %d", x.name, got, x.typ)
		}
	}
	// Any truncation fails: the record declares four arrays.
	for n := range len(rec) {
		if _, err := ParseVideoConfig(av.CodecH265, rec[:n]); err == nil {
			t.Fatalf("prefix of %d of %d bytes parsed", n, len(rec))
		}
	}

	// A record built here: version 0 (as early encoders wrote), 2-byte
	// lengths, arrays in unusual order, two PPS and an unknown array.
	built := buildHVCC(0, 2,
		nalArray{34, [][]byte{c.PPS[0], c.PPS[0]}},
		nalArray{39, [][]byte{{0x4e, 0x01, 0x05}}},
		nalArray{33, [][]byte{c.SPS[0]}},
		nalArray{32, [][]byte{c.VPS[0]}},
	)
	c2, err := ParseVideoConfig(av.CodecH265, built)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Width != 640 || c2.Height != 360 || c2.NALULengthSize != 2 || len(c2.PPS) != 2 || len(c2.SPS) != 1 || len(c2.VPS) != 1 {
		t.Errorf("built record: %dx%d length %d, %d VPS %d SPS %d PPS", c2.Width, c2.Height, c2.NALULengthSize, len(c2.VPS), len(c2.SPS), len(c2.PPS))
	}
	if !bytes.Equal(c2.SPS[0], c.SPS[0]) || !bytes.Equal(c2.VPS[0], c.VPS[0]) {
		t.Error("built record parameter sets differ")
	}

	// Errors.
	if _, err := ParseVideoConfig(av.CodecH265, buildHVCC(1, 4, nalArray{32, [][]byte{c.VPS[0]}}, nalArray{34, [][]byte{c.PPS[0]}})); err == nil || !strings.Contains(err.Error(), "no SPS") {
		t.Errorf("record without SPS: err = %v", err)
	}
	if _, err := ParseVideoConfig(av.CodecH265, buildHVCC(1, 4, nalArray{33, [][]byte{c.PPS[0]}})); err == nil || !strings.Contains(err.Error(), "H.265 SPS") {
		t.Errorf("record with a PPS as SPS: err = %v", err)
	}
	if _, err := ParseVideoConfig(av.CodecH265, buildHVCC(1, 4, nalArray{33, [][]byte{c.SPS[0][:6]}})); err == nil || !strings.Contains(err.Error(), "H.265 SPS") {
		t.Errorf("record with a cut SPS: err = %v", err)
	}
	// An AVC record is not an HEVC record.
	if _, err := ParseVideoConfig(av.CodecH265, avcRecord(t)); err == nil {
		t.Error("AVC record parsed as HEVC")
	}
}

func TestParseAudioConfig(t *testing.T) {
	tests := []struct {
		name, in string
		want     AudioConfig
		wantErr  string
	}{
		{"LC 44.1k stereo", "1210", AudioConfig{44100, 2, 2}, ""},
		{"LC 44.1k stereo with sync extension", "121056e500", AudioConfig{44100, 2, 2}, ""},
		{"LC 48k stereo", "1190", AudioConfig{48000, 2, 2}, ""},
		{"LC 8k mono", "1588", AudioConfig{8000, 1, 2}, ""},
		{"LC 7.1", "1238", AudioConfig{44100, 8, 2}, ""},
		{"LC explicit 96k", "1780bb8010", AudioConfig{96000, 2, 2}, ""},
		{"HE-AAC explicit SBR", "2b118800", AudioConfig{48000, 2, 5}, ""},
		{"HE-AACv2 explicit PS", "eb098800", AudioConfig{48000, 2, 29}, ""},
		{"AAC Main unsupported", "0a10", AudioConfig{}, "unsupported object type"},
		{"reserved rate index", "1690", AudioConfig{}, "sample rate"},
		{"explicit rate 0 (fuzz finding)", "1780000030", AudioConfig{}, "sample rate of 0 Hz"},
		{"truncated", "12", AudioConfig{}, "AudioSpecificConfig"},
		{"empty", "", AudioConfig{}, "AudioSpecificConfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseAudioConfig(unhex(t, tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "flv: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *c != tt.want {
				t.Errorf("got %+v, want %+v", *c, tt.want)
			}
		})
	}
}

func TestSplitNALUs(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		lengthSize int
		want       []string
		wantErr    string
	}{
		{"4-byte", "00000002 0910 00000003 658880", 4, []string{"0910", "658880"}, ""},
		{"2-byte", "0002 0910 0001 41", 2, []string{"0910", "41"}, ""},
		{"1-byte", "02 0910 01 41", 1, []string{"0910", "41"}, ""},
		{"3-byte", "000002 0910", 3, []string{"0910"}, ""},
		{"zero-length skipped", "00000000 00000001 41", 4, []string{"41"}, ""},
		{"empty", "", 4, nil, ""},
		{"length past end", "00000002 0910 00000005 6588", 4, []string{"0910"}, "runs past the end"},
		{"huge length", "ffffffff 00", 4, nil, "runs past the end"},
		{"trailing bytes", "00000001 41 0000", 4, []string{"41"}, "trailing"},
		{"length size 0", "00", 0, nil, "length size 0"},
		{"length size 5", "00", 5, nil, "length size 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := unhex(t, tt.in)
			var got []string
			err := SplitNALUs(data, tt.lengthSize, func(n []byte) {
				if len(n) > 0 && !sliceWithin(n, data) {
					t.Error("NAL unit does not alias the input")
				}
				got = append(got, hexString(n))
			})
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "flv: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

// sliceWithin reports whether s lies inside the backing array of data.
func sliceWithin(s, data []byte) bool {
	for i := range data {
		if &data[i] == &s[0] {
			return i+len(s) <= len(data)
		}
	}
	return false
}
