// Package httpflv is HTTP-FLV (and WebSocket-FLV): the FLV tags every FLV
// subscriber of a stream shares, and the file header each one starts with.
// The HTTP session itself is package httpstream's.
package httpflv

import (
	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/httpstream"
)

// ContentType is the Content-Type of an HTTP-FLV response.
const ContentType = "video/x-flv"

// Suffix is the URL suffix of HTTP-FLV streams.
const Suffix = ".flv"

// Muxer encodes packets as the FLV tags shared by every FLV subscriber of a
// stream. Metadata goes out without @setDataFrame.
type Muxer struct{}

// Mux returns the FLV tag (with its PreviousTagSize) of pkt.
func (Muxer) Mux(pkt *av.Packet) []byte {
	payload := pkt.Payload
	switch pkt.Kind {
	case av.KindAudio, av.KindVideo:
	case av.KindData:
		payload = flv.StripSetDataFrame(payload)
	default:
		return nil
	}
	dst := make([]byte, 0, flv.TagSize(len(payload)))
	return flv.AppendTag(dst, uint8(pkt.Kind), uint32(pkt.Timestamp), payload)
}

// Start returns the FLV file header a subscriber gets first, with the
// audio/video flags of the stream as far as they are known.
func Start(sub httpstream.Subscription) []byte {
	hasAudio, hasVideo := sub.Tracks()
	return flv.AppendFileHeader(nil, hasAudio, hasVideo)
}
