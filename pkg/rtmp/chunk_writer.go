package rtmp

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// basicHeaderLen returns the length of the basic header for csid; it panics
// if csid is outside 2..65599, which is a programming error.
func basicHeaderLen(csid uint32) int {
	switch {
	case csid < 2 || csid > maxCSID:
		panic(fmt.Sprintf("rtmp: chunk stream id %d outside 2..%d", csid, maxCSID))
	case csid < 64:
		return 1
	case csid < 320:
		return 2
	default:
		return 3
	}
}

// appendBasicHeader appends a basic header of format fmt for csid.
func appendBasicHeader(dst []byte, format byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return append(dst, format<<6|byte(csid))
	case csid < 320:
		return append(dst, format<<6, byte(csid-64))
	default:
		c := csid - 64
		return append(dst, format<<6|1, byte(c), byte(c>>8))
	}
}

// ChunkedSize is the exact number of bytes AppendChunks will append. It panics
// on a csid outside 2..65599 or a chunkSize that is not positive.
func ChunkedSize(csid uint32, timestamp uint32, payloadLen int, chunkSize int) int {
	if chunkSize <= 0 {
		panic(fmt.Sprintf("rtmp: chunk size %d must be positive", chunkSize))
	}
	bh := basicHeaderLen(csid)
	ext := 0
	if timestamp >= extendedTimestampMark {
		ext = 4
	}
	chunks := 1
	if payloadLen > chunkSize {
		chunks = (payloadLen + chunkSize - 1) / chunkSize
	}
	return bh + 11 + ext + payloadLen + (chunks-1)*(bh+ext)
}

// AppendChunks appends one message as chunks: a fmt-0 chunk (absolute timestamp,
// extended when >= 0xFFFFFF) then fmt-3 continuation chunks (extended timestamp
// repeated in each when used), each with at most chunkSize payload bytes.
// It panics if csid is outside 2..65599, chunkSize is not positive or the payload
// is longer than 0xFFFFFF bytes; it allocates only if dst lacks capacity.
func AppendChunks(dst []byte, csid uint32, typeID uint8, streamID uint32, timestamp uint32, payload []byte, chunkSize int) []byte {
	if len(payload) > maxMessageLength {
		panic(fmt.Sprintf("rtmp: message payload of %d bytes exceeds the 24-bit length limit", len(payload)))
	}
	dst = slices.Grow(dst, ChunkedSize(csid, timestamp, len(payload), chunkSize))

	extended := timestamp >= extendedTimestampMark
	ts24 := timestamp
	if extended {
		ts24 = extendedTimestampMark
	}
	n := len(payload)
	dst = appendBasicHeader(dst, 0, csid)
	dst = append(dst,
		byte(ts24>>16), byte(ts24>>8), byte(ts24),
		byte(n>>16), byte(n>>8), byte(n),
		typeID)
	dst = binary.LittleEndian.AppendUint32(dst, streamID)
	if extended {
		dst = binary.BigEndian.AppendUint32(dst, timestamp)
	}
	first := min(n, chunkSize)
	dst = append(dst, payload[:first]...)
	for rest := payload[first:]; len(rest) > 0; {
		dst = appendBasicHeader(dst, 3, csid)
		if extended {
			dst = binary.BigEndian.AppendUint32(dst, timestamp)
		}
		k := min(len(rest), chunkSize)
		dst = append(dst, rest[:k]...)
		rest = rest[k:]
	}
	return dst
}
