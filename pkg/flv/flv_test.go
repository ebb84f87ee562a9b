package flv

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes a hex string that may contain spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestAppendFileHeader(t *testing.T) {
	tests := []struct {
		audio, video bool
		want         string
	}{
		{true, true, "46 4c 56 01 05 00 00 00 09 00 00 00 00"},
		{true, false, "46 4c 56 01 04 00 00 00 09 00 00 00 00"},
		{false, true, "46 4c 56 01 01 00 00 00 09 00 00 00 00"},
		{false, false, "46 4c 56 01 00 00 00 00 09 00 00 00 00"},
	}
	for _, tt := range tests {
		got := AppendFileHeader(nil, tt.audio, tt.video)
		if want := unhex(t, tt.want); !bytes.Equal(got, want) {
			t.Errorf("AppendFileHeader(nil, %v, %v) = % x, want % x", tt.audio, tt.video, got, want)
		}
		if len(got) != FileHeaderSize {
			t.Errorf("len = %d, want FileHeaderSize %d", len(got), FileHeaderSize)
		}
		// Appends after existing content.
		got = AppendFileHeader([]byte{0xaa}, tt.audio, tt.video)
		if got[0] != 0xaa || !bytes.Equal(got[1:], unhex(t, tt.want)) {
			t.Errorf("AppendFileHeader with prefix = % x", got)
		}
	}
}

func TestParseTagHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    TagHeader
		wantErr string
	}{
		{"audio", "08 00 00 07 00 00 39 00 00 00 00", TagHeader{Type: TagAudio, DataSize: 7, Timestamp: 57}, ""},
		{"video", "09 00 36 9d 00 00 28 00 00 00 00", TagHeader{Type: TagVideo, DataSize: 0x369d, Timestamp: 40}, ""},
		{"script", "12 00 01 25 00 00 00 00 00 00 00", TagHeader{Type: TagScript, DataSize: 293}, ""},
		{"extended timestamp", "09 00 00 02 02 03 04 01 00 00 00", TagHeader{Type: TagVideo, DataSize: 2, Timestamp: 0x01020304}, ""},
		{"max values", "09 ff ff ff ff ff ff ff 00 00 00", TagHeader{Type: TagVideo, DataSize: 0xffffff, Timestamp: 0xffffffff}, ""},
		{"stream id kept", "08 00 00 01 00 00 00 00 00 00 05", TagHeader{Type: TagAudio, DataSize: 1, StreamID: 5}, ""},
		{"extra bytes ignored", "08 00 00 01 00 00 00 00 00 00 00 ff ff", TagHeader{Type: TagAudio, DataSize: 1}, ""},
		{"filter bit", "28 00 00 01 00 00 00 00 00 00 00", TagHeader{}, "Filter"},
		{"reserved bits", "48 00 00 01 00 00 00 00 00 00 00", TagHeader{}, "reserved"},
		{"reserved bit 7", "89 00 00 01 00 00 00 00 00 00 00", TagHeader{}, "reserved"},
		{"short", "08 00 00 01 00 00 00 00 00 00", TagHeader{}, "11 bytes, have 10"},
		{"empty", "", TagHeader{}, "have 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTagHeader(unhex(t, tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "flv: ") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAppendTag(t *testing.T) {
	tests := []struct {
		name    string
		typ     uint8
		ts      uint32
		body    string
		want    string
		wantHdr TagHeader
	}{
		{"audio", TagAudio, 1000, "af 01 21", "08 000003 0003e8 00 000000 af0121 0000000e",
			TagHeader{Type: TagAudio, DataSize: 3, Timestamp: 1000}},
		{"video extended timestamp", TagVideo, 0x01020304, "aa bb", "09 000002 020304 01 000000 aabb 0000000d",
			TagHeader{Type: TagVideo, DataSize: 2, Timestamp: 0x01020304}},
		{"max timestamp", TagVideo, 0xffffffff, "17", "09 000001 ffffff ff 000000 17 0000000c",
			TagHeader{Type: TagVideo, DataSize: 1, Timestamp: 0xffffffff}},
		{"timestamp just below extension", TagAudio, 0x00ffffff, "af", "08 000001 ffffff 00 000000 af 0000000c",
			TagHeader{Type: TagAudio, DataSize: 1, Timestamp: 0xffffff}},
		{"empty script", TagScript, 0, "", "12 000000 000000 00 000000 0000000b",
			TagHeader{Type: TagScript}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := unhex(t, tt.body)
			got := AppendTag(nil, tt.typ, tt.ts, body)
			want := unhex(t, tt.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendTag = % x\nwant       % x", got, want)
			}
			if len(got) != TagSize(len(body)) {
				t.Errorf("len = %d, TagSize = %d", len(got), TagSize(len(body)))
			}
			h, err := ParseTagHeader(got)
			if err != nil {
				t.Fatal(err)
			}
			if h != tt.wantHdr {
				t.Errorf("round trip header %+v, want %+v", h, tt.wantHdr)
			}
			// Appending keeps what is already in dst.
			got2 := AppendTag([]byte{1, 2, 3}, tt.typ, tt.ts, body)
			if !bytes.Equal(got2[:3], []byte{1, 2, 3}) || !bytes.Equal(got2[3:], want) {
				t.Errorf("AppendTag after prefix = % x", got2)
			}
		})
	}
}

func TestTagSize(t *testing.T) {
	for _, n := range []int{0, 1, 10240} {
		if got, want := TagSize(n), 11+n+4; got != want {
			t.Errorf("TagSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestAppendTagZeroAlloc(t *testing.T) {
	body := make([]byte, 10240)
	dst := make([]byte, 0, TagSize(len(body)))
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendTag(dst[:0], TagVideo, 12345, body)
	})
	if allocs != 0 {
		t.Errorf("AppendTag with capacity allocates %v times, want 0", allocs)
	}
}

func TestAppendTagTooLarge(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AppendTag with a body over MaxDataSize did not panic")
		}
	}()
	AppendTag(nil, TagVideo, 0, make([]byte, MaxDataSize+1))
}

func BenchmarkAppendTag(b *testing.B) {
	body := make([]byte, 10*1024)
	dst := make([]byte, 0, TagSize(len(body)))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; b.Loop(); i++ {
		dst = AppendTag(dst[:0], TagVideo, uint32(i), body)
	}
	if len(dst) != TagSize(len(body)) {
		b.Fatal("bad length")
	}
}
