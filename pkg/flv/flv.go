// Package flv reads and writes the FLV container (file header, tag headers,
// PreviousTagSize fields) and parses FLV tag bodies, which are also RTMP
// message bodies, into av.Packet values.
//
// It follows the Adobe FLV specification v10.1 and the enhanced-RTMP (E-RTMP)
// extensions for FourCC-signalled codecs. Codec bitstreams (SPS,
// AudioSpecificConfig) are decoded with mediacommon.
package flv

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// HeaderSize is the size of the FLV file header without PreviousTagSize0.
const HeaderSize = 9

// TagHeaderSize is the size of an FLV tag header.
const TagHeaderSize = 11

// prevTagSizeLen is the size of a PreviousTagSize field.
const prevTagSizeLen = 4

// FileHeaderSize is the size AppendFileHeader appends: the 9-byte header plus PreviousTagSize0.
const FileHeaderSize = HeaderSize + prevTagSizeLen

// MaxDataSize is the largest tag body an FLV tag header can describe (24-bit DataSize).
const MaxDataSize = 1<<24 - 1

// Tag types (the TagType field of a tag header, equal to the RTMP message type ids).
const (
	TagAudio  = 8
	TagVideo  = 9
	TagScript = 18
)

// Type flags of the FLV file header.
const (
	flagVideo = 0x01
	flagAudio = 0x04
)

// AppendFileHeader appends the 9-byte FLV header with the given audio/video
// flags followed by PreviousTagSize0 (13 bytes in all) to dst.
func AppendFileHeader(dst []byte, hasAudio, hasVideo bool) []byte {
	var flags byte
	if hasAudio {
		flags |= flagAudio
	}
	if hasVideo {
		flags |= flagVideo
	}
	return append(dst, 'F', 'L', 'V', 1, flags, 0, 0, 0, HeaderSize, 0, 0, 0, 0)
}

// TagHeader is the 11-byte header in front of every FLV tag body.
type TagHeader struct {
	// Type is the tag type: TagAudio, TagVideo or TagScript.
	Type uint8
	// DataSize is the length of the tag body in bytes.
	DataSize uint32
	// Timestamp is the tag time in milliseconds, including the extended byte.
	Timestamp uint32
	// StreamID is always 0 in conforming files.
	StreamID uint32
}

// ParseTagHeader decodes an 11-byte tag header from the start of b. It
// rejects tags with the Filter bit (encrypted tags, which are not supported)
// or a nonzero reserved bit, since both indicate a tag this package cannot
// interpret or a stream that is out of sync.
func ParseTagHeader(b []byte) (TagHeader, error) {
	if len(b) < TagHeaderSize {
		return TagHeader{}, fmt.Errorf("flv: tag header needs %d bytes, have %d", TagHeaderSize, len(b))
	}
	if b[0]&0xc0 != 0 {
		return TagHeader{}, fmt.Errorf("flv: tag header reserved bits set (first byte 0x%02x)", b[0])
	}
	if b[0]&0x20 != 0 {
		return TagHeader{}, fmt.Errorf("flv: encrypted tag (Filter bit set, first byte 0x%02x) not supported", b[0])
	}
	return TagHeader{
		Type:      b[0] & 0x1f,
		DataSize:  be24(b[1:]),
		Timestamp: be24(b[4:]) | uint32(b[7])<<24,
		StreamID:  be24(b[8:]),
	}, nil
}

// AppendTagHeader appends the 11-byte encoding of h to dst (the Filter and
// reserved bits are written as zero, DataSize and StreamID are truncated to
// 24 bits).
func AppendTagHeader(dst []byte, h TagHeader) []byte {
	ts := h.Timestamp
	return append(dst,
		h.Type&0x1f,
		byte(h.DataSize>>16), byte(h.DataSize>>8), byte(h.DataSize),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24),
		byte(h.StreamID>>16), byte(h.StreamID>>8), byte(h.StreamID))
}

// TagSize returns the number of bytes AppendTag appends for a body of bodyLen
// bytes: tag header, body and PreviousTagSize.
func TagSize(bodyLen int) int {
	return TagHeaderSize + bodyLen + prevTagSizeLen
}

// AppendTag appends a complete tag (header, body and the PreviousTagSize of
// 11+len(body)) to dst; it does not allocate when dst has enough spare
// capacity. It panics if body is longer than MaxDataSize, which no RTMP
// message can be.
func AppendTag(dst []byte, tagType uint8, timestamp uint32, body []byte) []byte {
	if len(body) > MaxDataSize {
		panic(fmt.Sprintf("flv: tag body of %d bytes exceeds the 24-bit DataSize limit", len(body)))
	}
	dst = slices.Grow(dst, TagSize(len(body)))
	dst = AppendTagHeader(dst, TagHeader{Type: tagType, DataSize: uint32(len(body)), Timestamp: timestamp})
	dst = append(dst, body...)
	return binary.BigEndian.AppendUint32(dst, uint32(TagHeaderSize+len(body)))
}

func be24(b []byte) uint32 {
	_ = b[2]
	return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
}

// si24 decodes a big-endian signed 24-bit integer.
func si24(b []byte) int32 {
	return int32(be24(b)<<8) >> 8
}
