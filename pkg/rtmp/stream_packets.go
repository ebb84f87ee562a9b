package rtmp

import (
	"fmt"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// This file is where RTMP messages and av.Packets meet: messages from a
// publisher become packets, and packets become the chunk bytes every RTMP
// subscriber shares.

// OutChunkSize is the chunk size Sluice announces and uses for everything it
// sends (lal uses the same).
const OutChunkSize = 4096

// Chunk stream ids of outgoing messages (as lal).
const (
	csidControl = 2
	csidCommand = 3
	csidData    = 5
	csidAudio   = 6
	csidVideo   = 7
)

// mediaStreamID is the message stream id of the one stream a connection has.
const mediaStreamID = 1

// packetFromMessage turns an audio, video or data message into a packet.
// The packet keeps msg.Payload without copying.
func packetFromMessage(typeID uint8, timestamp uint32, payload []byte) (*av.Packet, error) {
	pkt, err := flv.PacketFromTag(typeID, timestamp, payload)
	if err != nil {
		return nil, fmt.Errorf("rtmp: %w", err)
	}
	return &pkt, nil
}

// Muxer encodes packets as the RTMP chunks sent to every subscriber of a
// stream: one fmt-0 chunk with the absolute timestamp, continuation chunks of
// OutChunkSize, message stream id 1. Metadata goes out without @setDataFrame.
type Muxer struct{}

// Mux returns the chunk bytes of pkt.
func (Muxer) Mux(pkt *av.Packet) []byte { return muxChunks(pkt, false) }

// PushMuxer encodes packets as the chunks a relay push sends to another
// server: as Muxer, but metadata goes out with @setDataFrame, as publishers
// send it. Every push target of a stream shares these bytes.
type PushMuxer struct{}

// Mux returns the chunk bytes of pkt.
func (PushMuxer) Mux(pkt *av.Packet) []byte { return muxChunks(pkt, true) }

func muxChunks(pkt *av.Packet, setDataFrame bool) []byte {
	payload := pkt.Payload
	var csid uint32
	switch pkt.Kind {
	case av.KindAudio:
		csid = csidAudio
	case av.KindVideo:
		csid = csidVideo
	case av.KindData:
		csid = csidData
		payload = flv.StripSetDataFrame(payload)
		if setDataFrame {
			payload = flv.AddSetDataFrame(payload)
		}
	default:
		return nil
	}
	ts := uint32(pkt.Timestamp)
	dst := make([]byte, 0, ChunkedSize(csid, ts, len(payload), OutChunkSize))
	return AppendChunks(dst, csid, uint8(pkt.Kind), mediaStreamID, ts, payload, OutChunkSize)
}
