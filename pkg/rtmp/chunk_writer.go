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
	checkChunking(payload, chunkSize)
	dst = slices.Grow(dst, ChunkedSize(csid, timestamp, len(payload), chunkSize))
	first := min(len(payload), chunkSize)
	dst = appendFirstChunkHeader(dst, csid, typeID, streamID, timestamp, len(payload))
	dst = append(dst, payload[:first]...)
	for rest := payload[first:]; len(rest) > 0; {
		k := min(len(rest), chunkSize)
		dst = append(appendContinuationHeader(dst, csid, timestamp), rest[:k]...)
		rest = rest[k:]
	}
	return dst
}

// ChunkSlices returns the chunks of one message as AppendChunks makes them,
// as slices: their headers, in one array made here, around the payload's
// chunk-sized pieces, which are the payload itself (not copied).
func ChunkSlices(csid uint32, typeID uint8, streamID uint32, timestamp uint32, payload []byte, chunkSize int) [][]byte {
	checkChunking(payload, chunkSize)
	headers := make([]byte, 0, ChunkedSize(csid, timestamp, len(payload), chunkSize)-len(payload))
	out := make([][]byte, 0, 2*max(1, (len(payload)+chunkSize-1)/chunkSize))
	first := min(len(payload), chunkSize)
	headers = appendFirstChunkHeader(headers, csid, typeID, streamID, timestamp, len(payload))
	out = append(out, headers, payload[:first])
	for rest := payload[first:]; len(rest) > 0; {
		k := min(len(rest), chunkSize)
		at := len(headers)
		headers = appendContinuationHeader(headers, csid, timestamp)
		out = append(out, headers[at:], rest[:k])
		rest = rest[k:]
	}
	return out
}

// checkChunking panics on a payload longer than a message can be or a chunk
// size that is not positive: programming errors.
func checkChunking(payload []byte, chunkSize int) {
	if len(payload) > maxMessageLength {
		panic(fmt.Sprintf("rtmp: message payload of %d bytes exceeds the 24-bit length limit", len(payload)))
	}
	if chunkSize <= 0 {
		panic(fmt.Sprintf("rtmp: chunk size %d must be positive", chunkSize))
	}
}

// appendFirstChunkHeader appends the header of a message's fmt-0 chunk: the
// absolute timestamp, extended when >= 0xFFFFFF.
func appendFirstChunkHeader(dst []byte, csid uint32, typeID uint8, streamID, timestamp uint32, n int) []byte {
	ts24 := min(timestamp, extendedTimestampMark)
	dst = appendBasicHeader(dst, 0, csid)
	dst = append(dst,
		byte(ts24>>16), byte(ts24>>8), byte(ts24),
		byte(n>>16), byte(n>>8), byte(n),
		typeID)
	dst = binary.LittleEndian.AppendUint32(dst, streamID)
	if timestamp >= extendedTimestampMark {
		dst = binary.BigEndian.AppendUint32(dst, timestamp)
	}
	return dst
}

// appendContinuationHeader appends the header of a fmt-3 continuation
// chunk, with the extended timestamp repeated when the message has one.
func appendContinuationHeader(dst []byte, csid uint32, timestamp uint32) []byte {
	dst = appendBasicHeader(dst, 3, csid)
	if timestamp >= extendedTimestampMark {
		dst = binary.BigEndian.AppendUint32(dst, timestamp)
	}
	return dst
}
