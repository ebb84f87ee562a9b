package flv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"sluice/pkg/av"
)

// SoundFormat values (high nibble of the first byte of an audio tag body).
const (
	SoundFormatMP3      = 2
	SoundFormatPCMA     = 7  // G.711 A-law
	SoundFormatPCMU     = 8  // G.711 mu-law
	SoundFormatExHeader = 9  // enhanced RTMP: FourCC audio header follows
	SoundFormatAAC      = 10 // AAC, with an AACPacketType byte
	SoundFormatOpus     = 13 // Opus as lal and other Chinese servers send it: raw packets after one header byte
)

// AACPacketType values (second byte of an AAC audio tag body).
const (
	AACSeqHeader = 0 // AudioSpecificConfig
	AACRaw       = 1 // raw AAC frame
)

// Legacy video CodecID values (low nibble of the first byte of a video tag body).
const (
	CodecIDAVC  = 7
	CodecIDHEVC = 12 // not in the Adobe spec; the convention of lal, SRS and other Chinese servers
)

// Video FrameType values (bits 4..6 of the first byte of a video tag body).
const (
	FrameTypeKey          = 1
	FrameTypeInter        = 2
	FrameTypeDisposable   = 3
	FrameTypeGeneratedKey = 4
	FrameTypeCommand      = 5 // video info / command frame: one command byte, no video data
)

// AVCPacketType values (second byte of a legacy AVC/HEVC video tag body).
const (
	AVCSeqHeader = 0 // decoder configuration record
	AVCNALU      = 1 // length-prefixed NAL units, after an SI24 composition time
	AVCEndOfSeq  = 2 // end of sequence, no data
)

// ExVideoHeader is the flag bit in the first byte of an enhanced-RTMP video tag body.
const ExVideoHeader = 0x80

// Enhanced-RTMP VideoPacketType values (low nibble of the first byte when ExVideoHeader is set).
const (
	PacketTypeSequenceStart        = 0
	PacketTypeCodedFrames          = 1 // has an SI24 composition time for avc1/hvc1/vvc1
	PacketTypeSequenceEnd          = 2
	PacketTypeCodedFramesX         = 3 // composition time is zero and not sent
	PacketTypeMetadata             = 4
	PacketTypeMPEG2TSSequenceStart = 5
	PacketTypeMultitrack           = 6
	PacketTypeModEx                = 7
)

// Enhanced-RTMP AudioPacketType values (low nibble of the first byte when SoundFormat is SoundFormatExHeader).
const (
	AudioPacketTypeSequenceStart      = 0
	AudioPacketTypeCodedFrames        = 1
	AudioPacketTypeSequenceEnd        = 2
	AudioPacketTypeMultichannelConfig = 4
	AudioPacketTypeMultitrack         = 5
	AudioPacketTypeModEx              = 7
)

// multitrackManyCodecs is the AvMultitrackType whose tracks each carry their own FourCC.
const multitrackManyCodecs = 2

// FourCC values of enhanced RTMP, as big-endian uint32.
const (
	FourCCAVC  = 'a'<<24 | 'v'<<16 | 'c'<<8 | '1'
	FourCCHEVC = 'h'<<24 | 'v'<<16 | 'c'<<8 | '1'
	FourCCVVC  = 'v'<<24 | 'v'<<16 | 'c'<<8 | '1'
	FourCCAV1  = 'a'<<24 | 'v'<<16 | '0'<<8 | '1'
	FourCCVP9  = 'v'<<24 | 'p'<<16 | '0'<<8 | '9'
	FourCCVP8  = 'v'<<24 | 'p'<<16 | '0'<<8 | '8'
	FourCCAAC  = 'm'<<24 | 'p'<<16 | '4'<<8 | 'a'
	FourCCOpus = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's'
	FourCCMP3  = '.'<<24 | 'm'<<16 | 'p'<<8 | '3'
	FourCCFLAC = 'f'<<24 | 'L'<<16 | 'a'<<8 | 'C'
	FourCCAC3  = 'a'<<24 | 'c'<<16 | '-'<<8 | '3'
	FourCCEAC3 = 'e'<<24 | 'c'<<16 | '-'<<8 | '3'
)

// PacketFromTag parses one tag body (equivalently an RTMP audio, video or
// AMF0 data message body) into an av.Packet whose Payload is body itself,
// not a copy.
//
// Audio: AAC (DataOffset 2, AACPacketType 0 marks the SeqHeader), G.711
// A-law/mu-law, MP3 and lal-style Opus (DataOffset 1); enhanced-RTMP audio
// (SoundFormat 9) maps FourCC mp4a/Opus/.mp3 to AAC/Opus/MP3 with
// DataOffset after the FourCC; any other format is av.CodecOther with
// DataOffset 1.
//
// Video: legacy CodecID 7 (H.264) and 12 (H.265) with AVCPacketType and SI24
// composition time (DataOffset 5); enhanced-RTMP (bit 0x80) FourCC headers,
// where avc1 and hvc1 map to H.264 and H.265 and everything else, as well as
// multitrack messages, to av.CodecOther; other legacy codec ids are
// av.CodecOther with DataOffset 1. SeqHeader is set for decoder
// configuration only, KeyFrame only for coded key frames (never for
// sequence headers). Messages that carry no coded media (end of sequence,
// command frames, enhanced Metadata and MPEG2TSSequenceStart) keep their
// Kind and Codec but have DataOffset = len(body), so Data() is empty.
//
// Script data: av.KindData with DataOffset 0.
//
// A body too short for the header its first bytes announce is an error.
func PacketFromTag(tagType uint8, timestamp uint32, body []byte) (av.Packet, error) {
	switch tagType {
	case TagAudio:
		return audioPacket(timestamp, body)
	case TagVideo:
		return videoPacket(timestamp, body)
	case TagScript:
		return av.Packet{Kind: av.KindData, Timestamp: int64(timestamp), Payload: body}, nil
	}
	return av.Packet{}, fmt.Errorf("flv: unknown tag type %d (%d-byte body)", tagType, len(body))
}

func tooShort(what string, have, need int) error {
	return fmt.Errorf("flv: %s tag body too short: %d bytes, need %d", what, have, need)
}

func audioPacket(ts uint32, body []byte) (av.Packet, error) {
	p := av.Packet{Kind: av.KindAudio, Timestamp: int64(ts), Payload: body, DataOffset: 1}
	if len(body) < 1 {
		return av.Packet{}, tooShort("audio", 0, 1)
	}
	switch body[0] >> 4 {
	case SoundFormatAAC:
		if len(body) < 2 {
			return av.Packet{}, tooShort("audio (AAC)", len(body), 2)
		}
		p.Codec = av.CodecAAC
		p.SeqHeader = body[1] == AACSeqHeader
		p.DataOffset = 2
	case SoundFormatPCMA:
		p.Codec = av.CodecPCMA
	case SoundFormatPCMU:
		p.Codec = av.CodecPCMU
	case SoundFormatMP3:
		p.Codec = av.CodecMP3
	case SoundFormatOpus:
		p.Codec = av.CodecOpus
	case SoundFormatExHeader:
		return exAudioPacket(p)
	default:
		p.Codec = av.CodecOther
	}
	return p, nil
}

// exAudioPacket parses an enhanced-RTMP audio header (SoundFormat 9).
func exAudioPacket(p av.Packet) (av.Packet, error) {
	body := p.Payload
	pt, pos, err := skipModEx(body, 1, body[0]&0x0f, AudioPacketTypeModEx, "audio (enhanced)")
	if err != nil {
		return av.Packet{}, err
	}
	if pt == AudioPacketTypeMultitrack {
		pt, pos, err = multitrackHeader(body, pos, "audio (enhanced multitrack)")
		if err != nil {
			return av.Packet{}, err
		}
		p.Codec = av.CodecOther
		p.SeqHeader = pt == AudioPacketTypeSequenceStart
		p.DataOffset = pos
		return p, nil
	}
	if len(body) < pos+4 {
		return av.Packet{}, tooShort("audio (enhanced)", len(body), pos+4)
	}
	switch binary.BigEndian.Uint32(body[pos:]) {
	case FourCCAAC:
		p.Codec = av.CodecAAC
	case FourCCOpus:
		p.Codec = av.CodecOpus
	case FourCCMP3:
		p.Codec = av.CodecMP3
	default:
		p.Codec = av.CodecOther
	}
	pos += 4
	switch pt {
	case AudioPacketTypeSequenceStart:
		p.SeqHeader = true
		p.DataOffset = pos
	case AudioPacketTypeCodedFrames:
		p.DataOffset = pos
	default:
		p.DataOffset = len(body)
	}
	return p, nil
}

func videoPacket(ts uint32, body []byte) (av.Packet, error) {
	p := av.Packet{Kind: av.KindVideo, Timestamp: int64(ts), Payload: body}
	if len(body) < 1 {
		return av.Packet{}, tooShort("video", 0, 1)
	}
	if body[0]&ExVideoHeader != 0 {
		return exVideoPacket(p)
	}
	frameType := body[0] >> 4
	what := "video (AVC)"
	switch body[0] & 0x0f {
	case CodecIDAVC:
		p.Codec = av.CodecH264
	case CodecIDHEVC:
		p.Codec = av.CodecH265
		what = "video (HEVC)"
	default:
		p.Codec = av.CodecOther
		p.KeyFrame = frameType == FrameTypeKey
		p.DataOffset = 1
		return p, nil
	}
	if frameType == FrameTypeCommand {
		if len(body) < 2 {
			return av.Packet{}, tooShort(what+" command", len(body), 2)
		}
		p.DataOffset = len(body)
		return p, nil
	}
	if len(body) < 5 {
		return av.Packet{}, tooShort(what, len(body), 5)
	}
	switch body[1] {
	case AVCSeqHeader:
		p.SeqHeader = true
		p.DataOffset = 5
	case AVCNALU:
		p.KeyFrame = frameType == FrameTypeKey
		p.CTS = si24(body[2:])
		p.DataOffset = 5
	default: // end of sequence or unknown: no media
		p.DataOffset = len(body)
	}
	return p, nil
}

// exVideoPacket parses an enhanced-RTMP video header (bit 0x80 set).
func exVideoPacket(p av.Packet) (av.Packet, error) {
	const what = "video (enhanced)"
	body := p.Payload
	frameType := (body[0] >> 4) & 0x07
	pt, pos, err := skipModEx(body, 1, body[0]&0x0f, PacketTypeModEx, what)
	if err != nil {
		return av.Packet{}, err
	}
	if pt != PacketTypeMetadata && frameType == FrameTypeCommand {
		// One VideoCommand byte, no FourCC and no video data.
		if len(body) < pos+1 {
			return av.Packet{}, tooShort(what+" command", len(body), pos+1)
		}
		p.Codec = av.CodecOther
		p.DataOffset = len(body)
		return p, nil
	}
	if pt == PacketTypeMultitrack {
		pt, pos, err = multitrackHeader(body, pos, what+" multitrack")
		if err != nil {
			return av.Packet{}, err
		}
		p.Codec = av.CodecOther
		p.SeqHeader = pt == PacketTypeSequenceStart
		p.KeyFrame = frameType == FrameTypeKey && (pt == PacketTypeCodedFrames || pt == PacketTypeCodedFramesX)
		p.DataOffset = pos
		return p, nil
	}
	if len(body) < pos+4 {
		return av.Packet{}, tooShort(what, len(body), pos+4)
	}
	fourCC := binary.BigEndian.Uint32(body[pos:])
	pos += 4
	switch fourCC {
	case FourCCAVC:
		p.Codec = av.CodecH264
	case FourCCHEVC:
		p.Codec = av.CodecH265
	default:
		p.Codec = av.CodecOther
	}
	switch pt {
	case PacketTypeSequenceStart:
		p.SeqHeader = true
		p.DataOffset = pos
	case PacketTypeCodedFrames:
		if fourCC == FourCCAVC || fourCC == FourCCHEVC || fourCC == FourCCVVC {
			if len(body) < pos+3 {
				return av.Packet{}, tooShort(what+" coded frames", len(body), pos+3)
			}
			p.CTS = si24(body[pos:])
			pos += 3
		}
		p.KeyFrame = frameType == FrameTypeKey
		p.DataOffset = pos
	case PacketTypeCodedFramesX:
		p.KeyFrame = frameType == FrameTypeKey
		p.DataOffset = pos
	default: // SequenceEnd, Metadata, MPEG2TSSequenceStart, reserved: no coded media
		p.DataOffset = len(body)
	}
	return p, nil
}

// skipModEx skips enhanced-RTMP ModEx blocks starting at pos while the packet
// type is modEx and returns the final packet type and position.
func skipModEx(body []byte, pos int, pt, modEx uint8, what string) (uint8, int, error) {
	for pt == modEx {
		if len(body) < pos+1 {
			return 0, 0, tooShort(what+" ModEx", len(body), pos+1)
		}
		size := int(body[pos]) + 1
		pos++
		if size == 256 {
			if len(body) < pos+2 {
				return 0, 0, tooShort(what+" ModEx", len(body), pos+2)
			}
			size = int(binary.BigEndian.Uint16(body[pos:])) + 1
			pos += 2
		}
		pos += size // modExData
		if len(body) < pos+1 {
			return 0, 0, tooShort(what+" ModEx", len(body), pos+1)
		}
		pt = body[pos] & 0x0f // high nibble: modExType
		pos++
	}
	return pt, pos, nil
}

// multitrackHeader reads the AvMultitrackType/PacketType byte at pos and the
// shared FourCC that follows unless every track has its own.
func multitrackHeader(body []byte, pos int, what string) (uint8, int, error) {
	if len(body) < pos+1 {
		return 0, 0, tooShort(what, len(body), pos+1)
	}
	mt, pt := body[pos]>>4, body[pos]&0x0f
	pos++
	if mt != multitrackManyCodecs {
		if len(body) < pos+4 {
			return 0, 0, tooShort(what, len(body), pos+4)
		}
		pos += 4
	}
	return pt, pos, nil
}

// setDataFrame is the AMF0 string "@setDataFrame" that publishers put in
// front of onMetaData.
var setDataFrame = []byte{0x02, 0x00, 0x0d, '@', 's', 'e', 't', 'D', 'a', 't', 'a', 'F', 'r', 'a', 'm', 'e'}

// IsSetDataFrame reports whether a script body starts with the AMF0 string "@setDataFrame".
func IsSetDataFrame(body []byte) bool {
	return bytes.HasPrefix(body, setDataFrame)
}

// StripSetDataFrame returns body without a leading AMF0 "@setDataFrame"
// string, as a subslice of body; a body without it is returned unchanged.
func StripSetDataFrame(body []byte) []byte {
	if IsSetDataFrame(body) {
		return body[len(setDataFrame):]
	}
	return body
}

// AddSetDataFrame returns a new slice holding the AMF0 string
// "@setDataFrame" followed by body; if body already starts with it, the new
// slice is a plain copy of body.
func AddSetDataFrame(body []byte) []byte {
	if IsSetDataFrame(body) {
		return bytes.Clone(body)
	}
	out := make([]byte, 0, len(setDataFrame)+len(body))
	out = append(out, setDataFrame...)
	return append(out, body...)
}
