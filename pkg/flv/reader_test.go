package flv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"sluice/pkg/av"
)

// mediaDir holds the shared test streams (see its README.md).
const mediaDir = "../../../shared/media"

func openMedia(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(mediaDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not available", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type testTag struct {
	typ  uint8
	ts   uint32
	body []byte
}

func buildFile(hasAudio, hasVideo bool, tags ...testTag) []byte {
	b := AppendFileHeader(nil, hasAudio, hasVideo)
	for _, t := range tags {
		b = AppendTag(b, t.typ, t.ts, t.body)
	}
	return b
}

func TestReaderRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0x27, 0x01, 0, 0, 0}, 500000) // 2.5 MB, over readChunk
	tags := []testTag{
		{TagScript, 0, []byte{0x02, 0x00, 0x0a}},
		{TagVideo, 0, unhex(t, avcSeqHeaderBody)},
		{TagAudio, 0, []byte{0xaf, 0x00, 0x12, 0x10}},
		{TagAudio, 23, []byte{0xaf, 0x01, 0x21}},
		{TagVideo, 40, big},
		{TagAudio, 0x01000005, []byte{}},
	}
	file := buildFile(true, true, tags...)
	// One byte per Read exercises every partial-read path.
	for _, name := range []string{"whole", "onebyte"} {
		t.Run(name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(file)
			if name == "onebyte" {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src)
			a, v, err := r.ReadHeader()
			if err != nil || !a || !v {
				t.Fatalf("ReadHeader = %v, %v, %v", a, v, err)
			}
			for i, want := range tags {
				h, body, err := r.ReadTag()
				if err != nil {
					t.Fatalf("tag %d: %v", i, err)
				}
				if h != (TagHeader{Type: want.typ, DataSize: uint32(len(want.body)), Timestamp: want.ts}) {
					t.Errorf("tag %d header %+v", i, h)
				}
				if !bytes.Equal(body, want.body) {
					t.Errorf("tag %d body differs (%d vs %d bytes)", i, len(body), len(want.body))
				}
			}
			if _, _, err := r.ReadTag(); err != io.EOF {
				t.Errorf("after last tag: err = %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderBodyIsFresh(t *testing.T) {
	file := buildFile(false, true, testTag{TagVideo, 0, []byte{1, 2, 3}}, testTag{TagVideo, 0, []byte{4, 5, 6}})
	r := NewReader(bytes.NewReader(file))
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	_, b1, _ := r.ReadTag()
	_, b2, _ := r.ReadTag()
	if !bytes.Equal(b1, []byte{1, 2, 3}) || !bytes.Equal(b2, []byte{4, 5, 6}) {
		t.Errorf("bodies % x, % x", b1, b2)
	}
}

func TestReaderErrors(t *testing.T) {
	good := buildFile(true, false, testTag{TagAudio, 0, []byte{0xaf, 0x01, 0x21}})
	hdrEnd := FileHeaderSize
	tests := []struct {
		name       string
		in         []byte
		maxTagSize uint32
		headerErr  string // "" = header OK
		tagErr     string // "" = first tag OK; "EOF" = io.EOF
		unexpected bool   // tag error wraps io.ErrUnexpectedEOF
	}{
		{"empty", nil, 0, "EOF", "", false},
		{"bad signature", append([]byte("FLX"), good[3:]...), 0, "bad file signature", "", false},
		{"bad version", append([]byte("FLV\x02"), good[4:]...), 0, "version 2", "", false},
		{"DataOffset too small", append([]byte("FLV\x01\x04\x00\x00\x00\x08"), good[9:]...), 0, "DataOffset 8", "", false},
		{"DataOffset huge", append([]byte("FLV\x01\x04\xff\xff\xff\xff"), good[9:]...), 0, "DataOffset", "", false},
		{"short header", good[:5], 0, "file header", "", false},
		{"no PreviousTagSize0", good[:11], 0, "PreviousTagSize0", "", false},
		{"header only", good[:hdrEnd], 0, "", "EOF", false},
		{"partial tag header", good[:hdrEnd+5], 0, "", "tag header", true},
		{"partial body", good[:hdrEnd+12], 0, "", "body of tag type 8 (3 bytes)", true},
		{"partial PreviousTagSize", good[:len(good)-2], 0, "", "PreviousTagSize", true},
		{"missing last PreviousTagSize", good[:len(good)-4], 0, "", "", false},
		{"complete", good, 0, "", "", false},
		{"over MaxTagSize", good, 2, "", "3 bytes exceeds MaxTagSize 2", false},
		{"at MaxTagSize", good, 3, "", "", false},
		{"filter bit", append(append([]byte{}, good[:hdrEnd]...), 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, "", "Filter", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in))
			if tt.maxTagSize != 0 {
				r.MaxTagSize = tt.maxTagSize
			}
			_, _, err := r.ReadHeader()
			if !matchErr(t, "ReadHeader", err, tt.headerErr) || tt.headerErr != "" {
				return
			}
			_, _, err = r.ReadTag()
			if !matchErr(t, "ReadTag", err, tt.tagErr) {
				return
			}
			if tt.unexpected != errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = %v", err, !tt.unexpected)
			}
		})
	}
}

// matchErr checks err against want ("" = nil, "EOF" = exactly io.EOF,
// otherwise a substring of an "flv: " error) and reports whether it matched.
func matchErr(t *testing.T, what string, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want == "EOF" && err != io.EOF:
		t.Errorf("%s: err = %v, want io.EOF", what, err)
	case want != "" && want != "EOF" && (err == nil || !strings.HasPrefix(err.Error(), "flv: ") || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: err = %v, want one containing %q", what, err, want)
	default:
		return true
	}
	return false
}

func TestReaderSkipsHeaderExtension(t *testing.T) {
	file := []byte("FLV\x01\x05\x00\x00\x00\x0cXYZ\x00\x00\x00\x00")
	file = AppendTag(file, TagScript, 7, []byte{0x02})
	r := NewReader(bytes.NewReader(file))
	if a, v, err := r.ReadHeader(); err != nil || !a || !v {
		t.Fatalf("ReadHeader = %v %v %v", a, v, err)
	}
	h, body, err := r.ReadTag()
	if err != nil || h.Type != TagScript || h.Timestamp != 7 || !bytes.Equal(body, []byte{0x02}) {
		t.Fatalf("ReadTag = %+v % x %v", h, body, err)
	}
}

func TestReaderHeaderFlags(t *testing.T) {
	tests := []struct {
		file         string
		audio, video bool
	}{
		{"h264_aac_360p.flv", true, true},
		{"h264_only_360p.flv", false, true},
		{"aac_only.flv", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := NewReader(openMedia(t, tt.file))
			a, v, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			if a != tt.audio || v != tt.video {
				t.Errorf("hasAudio, hasVideo = %v, %v, want %v, %v", a, v, tt.audio, tt.video)
			}
			// The whole file reads and parses.
			for {
				h, body, err := r.ReadTag()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if (h.Type == TagAudio && !tt.audio) || (h.Type == TagVideo && !tt.video) {
					t.Errorf("unexpected tag type %d", h.Type)
				}
				if _, err := PacketFromTag(h.Type, h.Timestamp, body); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestReaderRealFile(t *testing.T) {
	r := NewReader(openMedia(t, "h264_aac_360p.flv"))
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var (
		videoTags, videoFrames, audioTags, audioFrames, scriptTags int
		firstVideo, firstAudio                                     *av.Packet
		keyFrames                                                  []int // video frame indices
		firstKeyCTS                                                int32
		vcfg                                                       *VideoConfig
		acfg                                                       *AudioConfig
		lastTS                                                     = map[av.Kind]int64{}
		eos                                                        int
	)
	for {
		h, body, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.StreamID != 0 {
			t.Errorf("StreamID %d", h.StreamID)
		}
		p, err := PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			t.Fatal(err)
		}
		if p.Timestamp < lastTS[p.Kind] {
			t.Errorf("%v timestamp went back from %d to %d", p.Kind, lastTS[p.Kind], p.Timestamp)
		}
		lastTS[p.Kind] = p.Timestamp
		switch p.Kind {
		case av.KindData:
			scriptTags++
			if IsSetDataFrame(p.Payload) {
				t.Error("FLV file script tag has @setDataFrame")
			}
		case av.KindVideo:
			videoTags++
			if firstVideo == nil {
				firstVideo = &p
			}
			if p.Codec != av.CodecH264 {
				t.Fatalf("video codec %v", p.Codec)
			}
			switch {
			case p.SeqHeader:
				if vcfg, err = ParseVideoConfig(p.Codec, p.Data()); err != nil {
					t.Fatal(err)
				}
			case len(p.Data()) == 0:
				eos++
			default:
				if p.KeyFrame {
					if len(keyFrames) == 0 {
						firstKeyCTS = p.CTS
					}
					keyFrames = append(keyFrames, videoFrames)
				}
				videoFrames++
				var n int
				if err := SplitNALUs(p.Data(), vcfg.NALULengthSize, func([]byte) { n++ }); err != nil || n == 0 {
					t.Fatalf("frame %d: %d NAL units, %v", videoFrames, n, err)
				}
			}
		case av.KindAudio:
			audioTags++
			if firstAudio == nil {
				firstAudio = &p
			}
			if p.Codec != av.CodecAAC {
				t.Fatalf("audio codec %v", p.Codec)
			}
			if p.SeqHeader {
				if acfg, err = ParseAudioConfig(p.Data()); err != nil {
					t.Fatal(err)
				}
			} else {
				audioFrames++
			}
		}
	}
	// 250 frames, the AVC sequence header and the end-of-sequence tag
	// ffmpeg writes at the end.
	if videoFrames != 250 || videoTags != 252 || eos != 1 {
		t.Errorf("video: %d frames in %d tags with %d end-of-sequence, want 250 in 252 with 1", videoFrames, videoTags, eos)
	}
	if audioFrames != 432 || audioTags != 433 {
		t.Errorf("audio: %d frames in %d tags, want 432 in 433", audioFrames, audioTags)
	}
	if scriptTags != 1 {
		t.Errorf("%d script tags, want 1", scriptTags)
	}
	if firstVideo == nil || !firstVideo.SeqHeader || firstVideo.KeyFrame {
		t.Errorf("first video packet %+v is not an AVC sequence header", firstVideo)
	}
	if firstAudio == nil || !firstAudio.SeqHeader {
		t.Errorf("first audio packet %+v is not an AAC sequence header", firstAudio)
	}
	if vcfg == nil || vcfg.Width != 640 || vcfg.Height != 360 || vcfg.NALULengthSize != 4 || len(vcfg.SPS) != 1 || len(vcfg.PPS) != 1 {
		t.Errorf("video config %+v, want 640x360", vcfg)
	}
	if acfg == nil || acfg.SampleRate != 44100 || acfg.Channels != 2 || acfg.ObjectType != 2 {
		t.Errorf("audio config %+v, want 44100 Hz 2 channels AAC-LC", acfg)
	}
	if want := []int{0, 50, 100, 150, 200}; !slices.Equal(keyFrames, want) {
		t.Errorf("key frames at %v, want %v", keyFrames, want)
	}
	if firstKeyCTS != 80 {
		t.Errorf("first key frame CTS %d, want 80", firstKeyCTS)
	}
}
