package mpegts

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"

	"sluice/pkg/av"
)

// unhex decodes hex with optional spaces and newlines.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// Parameter sets that mediacommon parses: H.264 352x288 (High), H.265 1920x1080 (Main).
var (
	testSPS264 = []byte{
		0x67, 0x64, 0x00, 0x0c, 0xac, 0x3b, 0x50, 0xb0,
		0x4b, 0x42, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00,
		0x00, 0x03, 0x00, 0x3d, 0x08,
	}
	testPPS264 = []byte{0x68, 0xee, 0x3c, 0x80}
	testVPS265 = []byte{
		0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90,
		0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x78, 0x95, 0x98, 0x09,
	}
	testSPS265 = []byte{
		0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03,
		0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
		0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5,
		0x96, 0x66, 0x69, 0x24, 0xca, 0xe0, 0x10, 0x00,
		0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01,
		0xe0, 0x80,
	}
	testPPS265 = []byte{0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40}
	// AAC-LC, 44100 Hz, stereo.
	testASC = []byte{0x12, 0x10}
)

// avcC builds an AVCDecoderConfigurationRecord with 4-byte NALU lengths.
func avcC(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xFF, 0xE1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

// hvcC builds an HEVCDecoderConfigurationRecord with 4-byte NALU lengths.
func hvcC(vps, sps, pps []byte) []byte {
	b := make([]byte, 21)
	b[0] = 1
	b = append(b, 0x0F, 3) // lengthSizeMinusOne = 3, numOfArrays
	for _, n := range [][]byte{vps, sps, pps} {
		b = append(b, 0x80|(n[0]>>1)&0x3F)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	return b
}

// lengthPrefixed joins NAL units with 4-byte length prefixes.
func lengthPrefixed(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

// annexB joins NAL units with 4-byte start codes.
func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

// videoSeq returns a video sequence header packet in FLV form.
func videoSeq(codec av.Codec, record []byte) *av.Packet {
	id := byte(7)
	if codec == av.CodecH265 {
		id = 12
	}
	payload := append([]byte{0x10 | id, 0, 0, 0, 0}, record...)
	return &av.Packet{Kind: av.KindVideo, Codec: codec, SeqHeader: true, Payload: payload, DataOffset: 5}
}

// videoFrame returns a coded video packet in FLV form.
func videoFrame(codec av.Codec, ts int64, cts int32, key bool, nalus ...[]byte) *av.Packet {
	id := byte(7)
	if codec == av.CodecH265 {
		id = 12
	}
	ft := byte(0x20)
	if key {
		ft = 0x10
	}
	payload := append([]byte{ft | id, 1, byte(cts >> 16), byte(cts >> 8), byte(cts)}, lengthPrefixed(nalus...)...)
	return &av.Packet{Kind: av.KindVideo, Codec: codec, Timestamp: ts, CTS: cts, KeyFrame: key, Payload: payload, DataOffset: 5}
}

// aacSeq returns an AAC sequence header packet.
func aacSeq(asc []byte) *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, SeqHeader: true, Payload: append([]byte{0xAF, 0}, asc...), DataOffset: 2}
}

// aacFrame returns a raw AAC frame packet.
func aacFrame(ts int64, raw []byte) *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, Payload: append([]byte{0xAF, 1}, raw...), DataOffset: 2}
}

// audioPkt returns an audio packet of another codec with a 1-byte FLV header.
func audioPkt(codec av.Codec, ts int64, data []byte) *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: codec, Timestamp: ts, Payload: append([]byte{0}, data...), DataOffset: 1}
}

// seqBytes returns n bytes 0, 1, 2, ... (mod 256) after prefix.
func seqBytes(prefix []byte, n int) []byte {
	b := append([]byte(nil), prefix...)
	for i := range n {
		b = append(b, byte(i))
	}
	return b
}

// psiPacket builds the expected TS packet for a PSI section.
func psiPacket(t testing.TB, pid uint16, cc byte, section string) []byte {
	t.Helper()
	p := []byte{0x47, 0x40 | byte(pid>>8), byte(pid), 0x10 | cc, 0x00}
	p = append(p, unhex(t, section)...)
	return append(p, bytes.Repeat([]byte{0xFF}, PacketSize-len(p))...)
}

// mustDemux demuxes b and fails the test on error.
func mustDemux(t testing.TB, b []byte) *tsStream {
	t.Helper()
	st, err := demux(b)
	if err != nil {
		t.Fatalf("demux: %v", err)
	}
	return st
}
