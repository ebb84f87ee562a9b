package flv

import (
	"bytes"
	"strings"
	"testing"

	"sluice/pkg/av"
)

// FourCCs in hex, for building enhanced-RTMP bodies.
const (
	hexHVC1 = " 68766331 "
	hexAVC1 = " 61766331 "
	hexAV01 = " 61763031 "
	hexVP09 = " 76703039 "
	hexMP4A = " 6d703461 "
	hexOpus = " 4f707573 "
	hexFLAC = " 664c6143 "
)

func TestPacketFromTag(t *testing.T) {
	type want struct {
		kind   av.Kind
		codec  av.Codec
		cts    int32
		key    bool
		seq    bool
		offset int
	}
	tests := []struct {
		name    string
		typ     uint8
		body    string
		want    want
		wantErr string // substring; errors must also start with "flv: "
	}{
		// Audio.
		{"AAC seq header", TagAudio, "af 00 1210", want{av.KindAudio, av.CodecAAC, 0, false, true, 2}, ""},
		{"AAC raw", TagAudio, "af 01 de020004", want{av.KindAudio, av.CodecAAC, 0, false, false, 2}, ""},
		{"AAC mono 22k raw", TagAudio, "a6 01 21", want{av.KindAudio, av.CodecAAC, 0, false, false, 2}, ""},
		{"AAC header only", TagAudio, "af 01", want{av.KindAudio, av.CodecAAC, 0, false, false, 2}, ""},
		{"AAC truncated", TagAudio, "af", want{}, "audio (AAC) tag body too short: 1 bytes, need 2"},
		{"PCMA", TagAudio, "72 d5d5d5", want{av.KindAudio, av.CodecPCMA, 0, false, false, 1}, ""},
		{"PCMU", TagAudio, "82 ffff", want{av.KindAudio, av.CodecPCMU, 0, false, false, 1}, ""},
		{"MP3", TagAudio, "2f fffb9064", want{av.KindAudio, av.CodecMP3, 0, false, false, 1}, ""},
		{"Opus lal style", TagAudio, "df 7801", want{av.KindAudio, av.CodecOpus, 0, false, false, 1}, ""},
		{"Speex passthrough", TagAudio, "b2 0011", want{av.KindAudio, av.CodecOther, 0, false, false, 1}, ""},
		{"Nellymoser passthrough", TagAudio, "62", want{av.KindAudio, av.CodecOther, 0, false, false, 1}, ""},
		{"audio empty", TagAudio, "", want{}, "audio tag body too short: 0 bytes, need 1"},
		{"ex audio mp4a seq start", TagAudio, "90" + hexMP4A + "1210", want{av.KindAudio, av.CodecAAC, 0, false, true, 5}, ""},
		{"ex audio Opus coded", TagAudio, "91" + hexOpus + "fc", want{av.KindAudio, av.CodecOpus, 0, false, false, 5}, ""},
		{"ex audio FLAC coded", TagAudio, "91" + hexFLAC + "fff8", want{av.KindAudio, av.CodecOther, 0, false, false, 5}, ""},
		{"ex audio sequence end", TagAudio, "92" + hexMP4A, want{av.KindAudio, av.CodecAAC, 0, false, false, 5}, ""},
		{"ex audio ModEx", TagAudio, "97 00 aa 01" + hexOpus + "fc", want{av.KindAudio, av.CodecOpus, 0, false, false, 8}, ""},
		{"ex audio multitrack", TagAudio, "95 00" + hexOpus + "00 4f707573", want{av.KindAudio, av.CodecOther, 0, false, true, 6}, ""},
		{"ex audio truncated FourCC", TagAudio, "90 6d7034", want{}, "audio (enhanced) tag body too short: 4 bytes, need 5"},
		{"ex audio truncated ModEx", TagAudio, "97 05 00", want{}, "audio (enhanced) ModEx tag body too short"},
		{"ex audio truncated multitrack", TagAudio, "95", want{}, "multitrack) tag body too short: 1 bytes, need 2"},

		// Legacy video.
		{"AVC seq header", TagVideo, "17 00 000000 0164001effe1", want{av.KindVideo, av.CodecH264, 0, false, true, 5}, ""},
		{"AVC key NALU positive CTS", TagVideo, "17 01 000050 00000002 09f0", want{av.KindVideo, av.CodecH264, 80, true, false, 5}, ""},
		{"AVC inter NALU negative CTS", TagVideo, "27 01 ffffd8 00000001 41", want{av.KindVideo, av.CodecH264, -40, false, false, 5}, ""},
		{"AVC key NALU CTS -1", TagVideo, "17 01 ffffff 00000001 65", want{av.KindVideo, av.CodecH264, -1, true, false, 5}, ""},
		{"AVC max positive CTS", TagVideo, "27 01 7fffff", want{av.KindVideo, av.CodecH264, 0x7fffff, false, false, 5}, ""},
		{"AVC min negative CTS", TagVideo, "27 01 800000", want{av.KindVideo, av.CodecH264, -0x800000, false, false, 5}, ""},
		{"AVC end of sequence", TagVideo, "17 02 000000", want{av.KindVideo, av.CodecH264, 0, false, false, 5}, ""},
		{"AVC command frame", TagVideo, "57 01", want{av.KindVideo, av.CodecH264, 0, false, false, 2}, ""},
		{"AVC truncated", TagVideo, "17 01 0000", want{}, "video (AVC) tag body too short: 4 bytes, need 5"},
		{"AVC header byte only", TagVideo, "27", want{}, "video (AVC) tag body too short: 1 bytes, need 5"},
		{"AVC command truncated", TagVideo, "57", want{}, "video (AVC) command tag body too short: 1 bytes, need 2"},
		{"HEVC codec 12 seq header", TagVideo, "1c 00 000000 01016000", want{av.KindVideo, av.CodecH265, 0, false, true, 5}, ""},
		{"HEVC codec 12 key", TagVideo, "1c 01 000028 00000002 2601", want{av.KindVideo, av.CodecH265, 40, true, false, 5}, ""},
		{"HEVC codec 12 inter", TagVideo, "2c 01 fffff6 00000002 0201", want{av.KindVideo, av.CodecH265, -10, false, false, 5}, ""},
		{"HEVC codec 12 truncated", TagVideo, "1c 00", want{}, "video (HEVC) tag body too short: 2 bytes, need 5"},
		{"VP6 key passthrough", TagVideo, "14 00 1234", want{av.KindVideo, av.CodecOther, 0, true, false, 1}, ""},
		{"H.263 inter passthrough", TagVideo, "22 0000", want{av.KindVideo, av.CodecOther, 0, false, false, 1}, ""},
		{"video empty", TagVideo, "", want{}, "video tag body too short: 0 bytes, need 1"},

		// Enhanced video.
		{"ex hvc1 SequenceStart", TagVideo, "90" + hexHVC1 + "0101", want{av.KindVideo, av.CodecH265, 0, false, true, 5}, ""},
		{"ex hvc1 CodedFrames key", TagVideo, "91" + hexHVC1 + "000050 00000002 2601", want{av.KindVideo, av.CodecH265, 80, true, false, 8}, ""},
		{"ex hvc1 CodedFrames inter negative CTS", TagVideo, "a1" + hexHVC1 + "ffffd8 00000002 0201", want{av.KindVideo, av.CodecH265, -40, false, false, 8}, ""},
		{"ex hvc1 CodedFramesX key", TagVideo, "93" + hexHVC1 + "00000002 2601", want{av.KindVideo, av.CodecH265, 0, true, false, 5}, ""},
		{"ex hvc1 CodedFramesX inter", TagVideo, "a3" + hexHVC1 + "00000002 0201", want{av.KindVideo, av.CodecH265, 0, false, false, 5}, ""},
		{"ex hvc1 SequenceEnd", TagVideo, "92" + hexHVC1, want{av.KindVideo, av.CodecH265, 0, false, false, 5}, ""},
		{"ex hvc1 Metadata", TagVideo, "84" + hexHVC1 + "02 0009 636f6c6f72496e666f", want{av.KindVideo, av.CodecH265, 0, false, false, 17}, ""},
		{"ex avc1 SequenceStart", TagVideo, "90" + hexAVC1 + "0164", want{av.KindVideo, av.CodecH264, 0, false, true, 5}, ""},
		{"ex avc1 CodedFrames", TagVideo, "a1" + hexAVC1 + "000028 00000001 41", want{av.KindVideo, av.CodecH264, 40, false, false, 8}, ""},
		{"ex av01 SequenceStart", TagVideo, "90" + hexAV01 + "81", want{av.KindVideo, av.CodecOther, 0, false, true, 5}, ""},
		{"ex av01 CodedFrames has no CTS", TagVideo, "91" + hexAV01 + "12000a", want{av.KindVideo, av.CodecOther, 0, true, false, 5}, ""},
		{"ex av01 MPEG2TSSequenceStart", TagVideo, "95" + hexAV01 + "80", want{av.KindVideo, av.CodecOther, 0, false, false, 6}, ""},
		{"ex vp09 CodedFramesX", TagVideo, "a3" + hexVP09 + "86", want{av.KindVideo, av.CodecOther, 0, false, false, 5}, ""},
		{"ex reserved packet type", TagVideo, "98" + hexHVC1 + "00", want{av.KindVideo, av.CodecH265, 0, false, false, 6}, ""},
		{"ex command frame", TagVideo, "d0 01", want{av.KindVideo, av.CodecOther, 0, false, false, 2}, ""},
		{"ex ModEx then CodedFrames", TagVideo, "97 02 aabbcc 01" + hexHVC1 + "000028 00000002 2601", want{av.KindVideo, av.CodecH265, 40, true, false, 13}, ""},
		{"ex ModEx 16-bit size", TagVideo, "97 ff 0000 aa 03" + hexAVC1 + "00000001 65", want{av.KindVideo, av.CodecH264, 0, true, false, 10}, ""},
		{"ex multitrack one track", TagVideo, "96 01" + hexHVC1 + "00 000028", want{av.KindVideo, av.CodecOther, 0, true, false, 6}, ""},
		{"ex multitrack many codecs seq start", TagVideo, "96 20" + hexHVC1 + "00 000004 01020304", want{av.KindVideo, av.CodecOther, 0, false, true, 2}, ""},
		{"ex truncated FourCC", TagVideo, "90 687663", want{}, "video (enhanced) tag body too short: 4 bytes, need 5"},
		{"ex truncated CTS", TagVideo, "91" + hexHVC1 + "0000", want{}, "video (enhanced) coded frames tag body too short: 7 bytes, need 8"},
		{"ex truncated ModEx size", TagVideo, "97", want{}, "video (enhanced) ModEx tag body too short: 1 bytes, need 2"},
		{"ex truncated ModEx data", TagVideo, "97 05 00", want{}, "video (enhanced) ModEx tag body too short: 3 bytes, need 9"},
		{"ex truncated ModEx 16-bit size", TagVideo, "97 ff 00", want{}, "video (enhanced) ModEx tag body too short: 3 bytes, need 4"},
		{"ex truncated command", TagVideo, "d0", want{}, "video (enhanced) command tag body too short: 1 bytes, need 2"},
		{"ex truncated multitrack", TagVideo, "96", want{}, "video (enhanced) multitrack tag body too short: 1 bytes, need 2"},
		{"ex truncated multitrack FourCC", TagVideo, "96 01 6876", want{}, "video (enhanced) multitrack tag body too short: 4 bytes, need 6"},

		// Script data.
		{"script onMetaData", TagScript, "02 000a 6f6e4d65746144617461 08 00000000 000009", want{av.KindData, av.CodecNone, 0, false, false, 0}, ""},
		{"script empty", TagScript, "", want{av.KindData, av.CodecNone, 0, false, false, 0}, ""},

		{"unknown tag type", 7, "00", want{}, "unknown tag type 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := unhex(t, tt.body)
			p, err := PacketFromTag(tt.typ, 1234, body)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, packet %+v; want error containing %q", p, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "flv: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %q, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{p.Kind, p.Codec, p.CTS, p.KeyFrame, p.SeqHeader, p.DataOffset}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if p.Timestamp != 1234 {
				t.Errorf("Timestamp = %d, want 1234", p.Timestamp)
			}
			if len(body) > 0 && &p.Payload[0] != &body[0] || len(p.Payload) != len(body) {
				t.Error("Payload is not the body itself")
			}
			if !bytes.Equal(p.Data(), body[p.DataOffset:]) {
				t.Errorf("Data() = % x", p.Data())
			}
		})
	}
}

func TestSetDataFrame(t *testing.T) {
	meta := unhex(t, "02 000a 6f6e4d65746144617461 08 00000000 000009")
	prefixed := append(unhex(t, "02 000d 40736574446174614672616d65"), meta...)

	if IsSetDataFrame(meta) {
		t.Error("IsSetDataFrame(onMetaData body) = true")
	}
	if !IsSetDataFrame(prefixed) {
		t.Error("IsSetDataFrame(prefixed) = false")
	}
	if IsSetDataFrame(prefixed[:15]) {
		t.Error("IsSetDataFrame(truncated prefix) = true")
	}

	got := StripSetDataFrame(prefixed)
	if !bytes.Equal(got, meta) {
		t.Errorf("StripSetDataFrame = % x", got)
	}
	if &got[0] != &prefixed[16] {
		t.Error("StripSetDataFrame copied")
	}
	if got := StripSetDataFrame(meta); &got[0] != &meta[0] || len(got) != len(meta) {
		t.Error("StripSetDataFrame changed an unprefixed body")
	}
	if got := StripSetDataFrame(nil); got != nil {
		t.Error("StripSetDataFrame(nil) != nil")
	}

	added := AddSetDataFrame(meta)
	if !bytes.Equal(added, prefixed) {
		t.Errorf("AddSetDataFrame = % x", added)
	}
	again := AddSetDataFrame(prefixed)
	if !bytes.Equal(again, prefixed) {
		t.Errorf("AddSetDataFrame on a prefixed body = % x", again)
	}
	again[0] = 0xff
	if prefixed[0] != 0x02 {
		t.Error("AddSetDataFrame did not copy")
	}
	if !bytes.Equal(StripSetDataFrame(AddSetDataFrame(nil)), []byte{}) {
		t.Error("Add/Strip of empty body")
	}
}
