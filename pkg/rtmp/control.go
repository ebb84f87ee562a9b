package rtmp

import (
	"encoding/binary"
	"fmt"
)

// User control event types.
const (
	EventStreamBegin      uint16 = 0 // stream became functional; arg: message stream id
	EventStreamEOF        uint16 = 1 // playback ended; arg: message stream id
	EventStreamDry        uint16 = 2 // no more data on the stream; arg: message stream id
	EventSetBufferLength  uint16 = 3 // client buffer length; args: message stream id, milliseconds
	EventStreamIsRecorded uint16 = 4 // the stream is recorded; arg: message stream id
	EventPingRequest      uint16 = 6 // ping from the server; arg: timestamp
	EventPingResponse     uint16 = 7 // answer to a ping; arg: the request's timestamp
)

// Protocol control messages travel on chunk stream 2, message stream 0.
const (
	controlCSID      = 2
	controlChunkSize = defaultChunkSize // control payloads are at most 10 bytes
)

// appendControl appends a complete protocol control message with a payload of up to 12 bytes.
func appendControl(dst []byte, typeID uint8, payload []byte) []byte {
	return AppendChunks(dst, controlCSID, typeID, 0, 0, payload, controlChunkSize)
}

func appendControlUint32(dst []byte, typeID uint8, v uint32) []byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], v)
	return appendControl(dst, typeID, p[:])
}

// AppendSetChunkSize appends a complete Set Chunk Size message (csid 2, message stream 0).
func AppendSetChunkSize(dst []byte, size uint32) []byte {
	return appendControlUint32(dst, TypeSetChunkSize, size&0x7FFFFFFF)
}

// AppendAbort appends a complete Abort Message for chunk stream csid.
func AppendAbort(dst []byte, csid uint32) []byte {
	return appendControlUint32(dst, TypeAbort, csid)
}

// AppendAck appends a complete Acknowledgement carrying the sequence number (bytes received so far).
func AppendAck(dst []byte, seq uint32) []byte {
	return appendControlUint32(dst, TypeAck, seq)
}

// AppendWindowAckSize appends a complete Window Acknowledgement Size message.
func AppendWindowAckSize(dst []byte, size uint32) []byte {
	return appendControlUint32(dst, TypeWindowAckSize, size)
}

// AppendSetPeerBandwidth appends a complete Set Peer Bandwidth message (limitType 0 hard, 1 soft, 2 dynamic).
func AppendSetPeerBandwidth(dst []byte, size uint32, limitType uint8) []byte {
	var p [5]byte
	binary.BigEndian.PutUint32(p[:4], size)
	p[4] = limitType
	return appendControl(dst, TypeSetPeerBandwidth, p[:])
}

// AppendUserControl appends a complete User Control message with the event type
// followed by each data value as 4 big-endian bytes (at most 2 values are used).
func AppendUserControl(dst []byte, event uint16, data ...uint32) []byte {
	var p [10]byte
	binary.BigEndian.PutUint16(p[:2], event)
	n := 2
	for _, d := range data {
		if n+4 > len(p) {
			break
		}
		binary.BigEndian.PutUint32(p[n:], d)
		n += 4
	}
	return appendControl(dst, TypeUserControl, p[:n])
}

// ParseUserControl returns the event type and the first 4-byte argument (and the second if present)
// of a User Control message payload.
func ParseUserControl(payload []byte) (event uint16, arg1, arg2 uint32, err error) {
	if len(payload) < 2 {
		return 0, 0, 0, fmt.Errorf("rtmp: user control payload of %d bytes is shorter than the 2-byte event type", len(payload))
	}
	event = binary.BigEndian.Uint16(payload)
	args := payload[2:]
	need := 0
	switch event {
	case EventStreamBegin, EventStreamEOF, EventStreamDry, EventStreamIsRecorded, EventPingRequest, EventPingResponse:
		need = 4
	case EventSetBufferLength:
		need = 8
	}
	if len(args) < need || (len(args) > 0 && len(args) < 4) {
		return event, 0, 0, fmt.Errorf("rtmp: user control event %d has %d argument bytes, want at least %d", event, len(args), max(need, 4))
	}
	if len(args) >= 4 {
		arg1 = binary.BigEndian.Uint32(args)
	}
	if len(args) >= 8 {
		arg2 = binary.BigEndian.Uint32(args[4:])
	}
	return event, arg1, arg2, nil
}

// ParseUint32 reads the 4-byte big-endian value of a Set Chunk Size, Window Ack Size, Ack or Abort payload.
func ParseUint32(payload []byte) (uint32, error) {
	if len(payload) < 4 {
		return 0, fmt.Errorf("rtmp: control payload of %d bytes is shorter than 4", len(payload))
	}
	return binary.BigEndian.Uint32(payload), nil
}

// SplitAggregate calls fn for each sub-message of an aggregate message (type 22):
// each has an 11-byte FLV tag header, the body and a 4-byte back pointer. Sub-message
// timestamps are rebased so the first gets msg.Timestamp. It stops at the first
// error from fn and returns it; truncated or malformed input returns an error.
func SplitAggregate(msg *Message, fn func(typeID uint8, timestamp uint32, body []byte) error) error {
	p := msg.Payload
	off := 0
	var base uint32
	for i := 0; off < len(p); i++ {
		if len(p)-off < 11 {
			return fmt.Errorf("rtmp: aggregate sub-message %d header truncated at offset %d (%d of 11 bytes)", i, off, len(p)-off)
		}
		h := p[off : off+11]
		typeID := h[0]
		size := int(uint24(h[1:4]))
		ts := uint24(h[4:7]) | uint32(h[7])<<24
		off += 11
		if len(p)-off < size+4 {
			return fmt.Errorf("rtmp: aggregate sub-message %d body of %d bytes plus back pointer truncated at offset %d (%d bytes remain)", i, size, off, len(p)-off)
		}
		body := p[off : off+size : off+size]
		off += size + 4
		if i == 0 {
			base = ts
		}
		if err := fn(typeID, msg.Timestamp+(ts-base), body); err != nil {
			return err
		}
	}
	return nil
}
