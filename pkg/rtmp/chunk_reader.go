package rtmp

import (
	"encoding/binary"
	"fmt"
	"io"
)

// RTMP message type ids.
const (
	TypeSetChunkSize     uint8 = 1  // protocol control: Set Chunk Size
	TypeAbort            uint8 = 2  // protocol control: Abort Message
	TypeAck              uint8 = 3  // protocol control: Acknowledgement
	TypeUserControl      uint8 = 4  // user control message
	TypeWindowAckSize    uint8 = 5  // protocol control: Window Acknowledgement Size
	TypeSetPeerBandwidth uint8 = 6  // protocol control: Set Peer Bandwidth
	TypeAudio            uint8 = 8  // audio data
	TypeVideo            uint8 = 9  // video data
	TypeDataAMF3         uint8 = 15 // data message, AMF3
	TypeSharedObjectAMF3 uint8 = 16 // shared object message, AMF3
	TypeCommandAMF3      uint8 = 17 // command message, AMF3
	TypeDataAMF0         uint8 = 18 // data message, AMF0
	TypeSharedObjectAMF0 uint8 = 19 // shared object message, AMF0
	TypeCommandAMF0      uint8 = 20 // command message, AMF0
	TypeAggregate        uint8 = 22 // aggregate message
)

const (
	defaultChunkSize       = 128      // chunk size in force until Set Chunk Size
	maxMessageLength       = 0xFFFFFF // largest length a 24-bit message header field can carry
	extendedTimestampMark  = 0xFFFFFF // timestamp field value announcing an extended timestamp
	maxCSID                = 65599    // largest chunk stream id a 3-byte basic header can carry
	defaultMaxChunkSize    = 16 << 20
	defaultMaxChunkStreams = 64
	initialPayloadCap      = 16 << 10 // most payload capacity reserved before its data arrives
)

// Message is one complete RTMP message.
type Message struct {
	CSID      uint32
	TypeID    uint8
	StreamID  uint32
	Timestamp uint32 // absolute (deltas accumulated), extended timestamps applied
	Payload   []byte // freshly allocated, owned by the caller
}

// ReaderLimits bounds what a ChunkReader accepts from its peer. A chunk stream
// id is remembered for the life of the reader (later fmt 1/2/3 headers refer
// back to it), so MaxChunkStreams bounds the distinct ids, csid 2 included,
// that a peer may ever use.
type ReaderLimits struct {
	MaxChunkSize    uint32 // largest Set Chunk Size accepted from the peer (0 → 16 MiB)
	MaxMessageSize  uint32 // largest message length accepted (0 → 16 MiB - 1, the 24-bit max)
	MaxChunkStreams int    // most distinct chunk stream ids kept open at once (0 → 64)
}

// chunkStream is the state of one chunk stream id.
type chunkStream struct {
	csid      uint32
	timestamp uint32 // absolute timestamp of the current (or last) message
	delta     uint32 // timestamp delta reused by a fmt 3 chunk that starts a message
	length    uint32
	streamID  uint32
	typeID    uint8
	extended  bool   // the last fmt 0/1/2 header used an extended timestamp
	payload   []byte // partial message; nil when no message is in progress
	inMessage bool   // a message is in progress (payload may still be nil for length 0)
	hasHeader bool   // a fmt 0 header has been seen, so fmt 1/2/3 have something to refer to
}

// ChunkReader reassembles RTMP messages from a chunk stream. It is not safe
// for concurrent use, and must not be used again after ReadMessage returns an error.
type ChunkReader struct {
	r         io.Reader
	lim       ReaderLimits
	chunkSize uint32
	low       []*chunkStream // csid 2..63, grown to the highest one used (players use a few)
	high      map[uint32]*chunkStream
	nstreams  int
	scratch   [16]byte
}

// NewChunkReader returns a ChunkReader reading chunks from r with the given limits;
// zero limit fields take their documented defaults.
func NewChunkReader(r io.Reader, lim ReaderLimits) *ChunkReader {
	if lim.MaxChunkSize == 0 {
		lim.MaxChunkSize = defaultMaxChunkSize
	}
	if lim.MaxMessageSize == 0 || lim.MaxMessageSize > maxMessageLength {
		lim.MaxMessageSize = maxMessageLength
	}
	if lim.MaxChunkStreams <= 0 {
		lim.MaxChunkStreams = defaultMaxChunkStreams
	}
	return &ChunkReader{r: r, lim: lim, chunkSize: defaultChunkSize}
}

// ChunkSize returns the chunk size the peer currently uses (128 until it sends Set Chunk Size).
func (r *ChunkReader) ChunkSize() uint32 { return r.chunkSize }

// stream returns the state of csid, creating it if allowed.
// SetReader makes the reader read from rd from now on (between messages:
// bytes buffered by the old reader are not carried over).
func (r *ChunkReader) SetReader(rd io.Reader) { r.r = rd }

func (r *ChunkReader) stream(csid uint32) (*chunkStream, error) {
	var cs *chunkStream
	if csid < 64 {
		if int(csid) < len(r.low) {
			cs = r.low[csid]
		}
	} else {
		cs = r.high[csid]
	}
	if cs != nil {
		return cs, nil
	}
	if r.nstreams >= r.lim.MaxChunkStreams {
		return nil, fmt.Errorf("rtmp: chunk stream id %d would exceed the limit of %d chunk streams", csid, r.lim.MaxChunkStreams)
	}
	cs = &chunkStream{csid: csid}
	if csid < 64 {
		if int(csid) >= len(r.low) {
			r.low = append(r.low, make([]*chunkStream, int(csid)+1-len(r.low))...)
		}
		r.low[csid] = cs
	} else {
		if r.high == nil {
			r.high = make(map[uint32]*chunkStream)
		}
		r.high[csid] = cs
	}
	r.nstreams++
	return cs, nil
}

// lookup returns the state of csid if it exists.
func (r *ChunkReader) lookup(csid uint32) *chunkStream {
	if csid < 64 {
		if int(csid) < len(r.low) {
			return r.low[csid]
		}
		return nil
	}
	return r.high[csid]
}

// read fills b from the underlying reader; where says what was being read.
func (r *ChunkReader) read(b []byte, csid uint32, where string) error {
	if _, err := io.ReadFull(r.r, b); err != nil {
		return fmt.Errorf("rtmp: reading %s on csid %d: %w", where, csid, noEOF(err))
	}
	return nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: the stream ended inside a chunk.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }

// ReadMessage returns the next complete message. Protocol control messages are
// returned too; Set Chunk Size and Abort have already been applied when returned.
// It returns io.EOF unwrapped if the stream ends cleanly between chunks.
func (r *ChunkReader) ReadMessage() (*Message, error) {
	for {
		m, err := r.readChunk()
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		switch m.TypeID {
		case TypeSetChunkSize:
			size, err := ParseUint32(m.Payload)
			if err != nil {
				return nil, fmt.Errorf("rtmp: Set Chunk Size on csid %d: %w", m.CSID, err)
			}
			size &= 0x7FFFFFFF // the top bit is reserved
			if size == 0 || size > r.lim.MaxChunkSize {
				return nil, fmt.Errorf("rtmp: Set Chunk Size %d on csid %d outside the accepted range 1..%d", size, m.CSID, r.lim.MaxChunkSize)
			}
			r.chunkSize = size
		case TypeAbort:
			csid, err := ParseUint32(m.Payload)
			if err != nil {
				return nil, fmt.Errorf("rtmp: Abort on csid %d: %w", m.CSID, err)
			}
			if cs := r.lookup(csid); cs != nil && cs.inMessage {
				cs.inMessage = false
				cs.payload = nil
			}
		}
		return m, nil
	}
}

// readChunk reads one chunk and returns the message it completes, if any.
func (r *ChunkReader) readChunk() (*Message, error) {
	h := r.scratch[:]
	// Basic header.
	if _, err := io.ReadFull(r.r, h[:1]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("rtmp: reading chunk basic header: %w", err)
	}
	format := h[0] >> 6
	csid := uint32(h[0] & 0x3F)
	switch csid {
	case 0:
		if _, err := io.ReadFull(r.r, h[1:2]); err != nil {
			return nil, fmt.Errorf("rtmp: reading 2-byte chunk basic header: %w", noEOF(err))
		}
		csid = 64 + uint32(h[1])
	case 1:
		if _, err := io.ReadFull(r.r, h[1:3]); err != nil {
			return nil, fmt.Errorf("rtmp: reading 3-byte chunk basic header: %w", noEOF(err))
		}
		csid = 64 + uint32(h[1]) + uint32(h[2])<<8
	}

	cs, err := r.stream(csid)
	if err != nil {
		return nil, err
	}

	// Message header.
	switch format {
	case 0, 1, 2:
		if cs.inMessage {
			return nil, fmt.Errorf("rtmp: fmt %d chunk on csid %d while a message is incomplete (%d of %d bytes received)", format, csid, len(cs.payload), cs.length)
		}
		if format != 0 && !cs.hasHeader {
			return nil, fmt.Errorf("rtmp: fmt %d chunk on csid %d with no previous header", format, csid)
		}
		hlen := [3]int{11, 7, 3}[format]
		if err := r.read(h[:hlen], csid, "message header"); err != nil {
			return nil, err
		}
		ts := uint24(h[0:3])
		if format <= 1 {
			length := uint24(h[3:6])
			if length > r.lim.MaxMessageSize {
				return nil, fmt.Errorf("rtmp: message length %d exceeds limit %d on csid %d", length, r.lim.MaxMessageSize, csid)
			}
			cs.length = length
			cs.typeID = h[6]
		}
		if format == 0 {
			cs.streamID = binary.LittleEndian.Uint32(h[7:11])
		}
		cs.extended = ts == extendedTimestampMark
		if cs.extended {
			if err := r.read(h[:4], csid, "extended timestamp"); err != nil {
				return nil, err
			}
			ts = binary.BigEndian.Uint32(h[:4])
		}
		if format == 0 {
			cs.timestamp = ts
		} else {
			cs.timestamp += ts
		}
		// A later fmt 3 chunk starting a new message reuses this value as its delta.
		cs.delta = ts
		cs.hasHeader = true
		r.startMessage(cs)
	case 3:
		if !cs.hasHeader {
			return nil, fmt.Errorf("rtmp: fmt 3 chunk on csid %d with no previous header", csid)
		}
		if cs.extended {
			// Repeated on every fmt 3 chunk of a stream whose header used it.
			if err := r.read(h[:4], csid, "extended timestamp"); err != nil {
				return nil, err
			}
			if !cs.inMessage {
				cs.delta = binary.BigEndian.Uint32(h[:4])
			}
		}
		if !cs.inMessage {
			cs.timestamp += cs.delta
			r.startMessage(cs)
		}
	}

	// Chunk payload. It is read in segments into a buffer that grows
	// geometrically, so memory follows the bytes actually received rather
	// than the length the peer declared.
	for n := min(cs.length-uint32(len(cs.payload)), r.chunkSize); n > 0; {
		have := uint32(len(cs.payload))
		if uint32(cap(cs.payload)) == have {
			cs.payload = growPayload(cs.payload, cs.length)
		}
		k := min(n, uint32(cap(cs.payload))-have)
		cs.payload = cs.payload[:have+k]
		if err := r.read(cs.payload[have:], csid, "chunk payload"); err != nil {
			return nil, err
		}
		n -= k
	}
	if uint32(len(cs.payload)) < cs.length {
		return nil, nil
	}
	m := &Message{
		CSID:      csid,
		TypeID:    cs.typeID,
		StreamID:  cs.streamID,
		Timestamp: cs.timestamp,
		Payload:   cs.payload,
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	cs.payload = nil
	cs.inMessage = false
	return m, nil
}

// startMessage begins a message on cs; its buffer is allocated when data arrives.
func (r *ChunkReader) startMessage(cs *chunkStream) {
	cs.inMessage = true
	cs.payload = nil
}

// growPayload returns p with more capacity: initialPayloadCap at first, then
// double, never more than total.
func growPayload(p []byte, total uint32) []byte {
	newCap := min(max(uint32(cap(p))*2, initialPayloadCap), total)
	q := make([]byte, len(p), newCap)
	copy(q, p)
	return q
}
