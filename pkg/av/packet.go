// Package av is the media model shared by every protocol: packets, codec ids
// and track information.
//
// A Packet carries its media in the form of an RTMP message body (the body of
// an FLV tag): the FLV audio or video tag header followed by the codec data,
// or AMF0 for script data. Every input protocol produces this form and every
// output muxer reads it, so RTMP and FLV output need no transcoding of the
// payload and other muxers find the codec data at Packet.Data().
package av

import "fmt"

// Kind says whether a packet is audio, video or script data.
type Kind uint8

// Packet kinds. Their values are the RTMP message type ids.
const (
	KindAudio Kind = 8
	KindVideo Kind = 9
	KindData  Kind = 18
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	case KindData:
		return "data"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Codec identifies the codec of an audio or video packet.
type Codec uint8

// Codecs Sluice knows by name. CodecOther covers anything that only passes
// through (RTMP and FLV carry it, other formats leave it out).
const (
	CodecNone Codec = iota
	CodecH264
	CodecH265
	CodecAAC
	CodecPCMA
	CodecPCMU
	CodecOpus
	CodecMP3
	CodecOther
)

// String returns the codec name as lal's stat JSON spells it ("" for none).
func (c Codec) String() string {
	switch c {
	case CodecH264:
		return "H264"
	case CodecH265:
		return "H265"
	case CodecAAC:
		return "AAC"
	case CodecPCMA:
		return "PCMA"
	case CodecPCMU:
		return "PCMU"
	case CodecOpus:
		return "OPUS"
	case CodecMP3:
		return "MP3"
	case CodecOther:
		return "OTHER"
	}
	return ""
}

// Packet is one audio frame, one video access unit or one script-data message.
type Packet struct {
	Kind  Kind
	Codec Codec
	// Timestamp is the decode time in milliseconds (the RTMP/FLV clock).
	Timestamp int64
	// CTS is the composition time offset in milliseconds (PTS = Timestamp + CTS).
	CTS int32
	// KeyFrame marks a video random access point (IDR).
	KeyFrame bool
	// SeqHeader marks decoder configuration: AVC/HEVC configuration record or
	// AAC AudioSpecificConfig.
	SeqHeader bool
	// Payload is the RTMP message body: FLV tag header plus codec data.
	Payload []byte
	// DataOffset is where the codec data starts inside Payload.
	DataOffset int
}

// Data returns the codec data: length-prefixed NAL units for H.264/H.265,
// a raw AAC frame or AudioSpecificConfig, G.711 samples, AMF0 for script data.
func (p *Packet) Data() []byte {
	if p.DataOffset > len(p.Payload) {
		return nil
	}
	return p.Payload[p.DataOffset:]
}

// PTS returns the presentation time in milliseconds.
func (p *Packet) PTS() int64 { return p.Timestamp + int64(p.CTS) }

// TrackInfo describes the audio and video of a stream, as far as it is known.
type TrackInfo struct {
	VideoCodec  Codec
	Width       int
	Height      int
	AudioCodec  Codec
	SampleRate  int
	Channels    int
	VideoConfig []byte // AVC/HEVC decoder configuration record, if seen
	AudioConfig []byte // AAC AudioSpecificConfig, if seen
}
