package flv

import (
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"sluice/pkg/av"
)

// HEVC NAL unit types of parameter sets.
const (
	hevcNALUVPS = 32
	hevcNALUSPS = 33
	hevcNALUPPS = 34
)

// maxDimension bounds the width and height ParseVideoConfig accepts from an SPS.
const maxDimension = 1 << 16

// VideoConfig is the content of an AVC or HEVC decoder configuration record.
type VideoConfig struct {
	// Codec is av.CodecH264 or av.CodecH265.
	Codec av.Codec
	// Width and Height are the cropped picture size from the first SPS.
	Width, Height int
	// VPS, SPS and PPS are the parameter set NAL units (VPS only for H.265),
	// copied out of the record.
	VPS, SPS, PPS [][]byte
	// NALULengthSize is the size in bytes (1..4) of the NAL unit length
	// prefixes in the codec's coded frames.
	NALULengthSize int
}

// ParseVideoConfig parses the codec data of a video SeqHeader packet
// (pkt.Data()): an AVCDecoderConfigurationRecord for av.CodecH264 or an
// HEVCDecoderConfigurationRecord for av.CodecH265. At least one SPS is
// required; the picture size comes from the first one. Parameter sets are
// copied, so the result does not alias data.
func ParseVideoConfig(codec av.Codec, data []byte) (*VideoConfig, error) {
	var (
		c   *VideoConfig
		err error
	)
	switch codec {
	case av.CodecH264:
		c, err = parseAVCConfig(data)
	case av.CodecH265:
		c, err = parseHEVCConfig(data)
	default:
		return nil, fmt.Errorf("flv: no decoder configuration record parser for codec %q", codec.String())
	}
	if err != nil {
		return nil, err
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > maxDimension || c.Height > maxDimension {
		return nil, fmt.Errorf("flv: %s SPS gives implausible picture size %dx%d", codec, c.Width, c.Height)
	}
	return c, nil
}

// configReader reads big-endian fields from a configuration record with
// bounds checks; the first failure sticks.
type configReader struct {
	b    []byte
	pos  int
	what string
	err  error
}

func (r *configReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if len(r.b)-r.pos < n {
		r.err = fmt.Errorf("flv: %s truncated: need %d bytes at offset %d, have %d", r.what, n, r.pos, len(r.b))
		return false
	}
	return true
}

func (r *configReader) u8() int {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.pos]
	r.pos++
	return int(v)
}

func (r *configReader) u16() int {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.pos:])
	r.pos += 2
	return int(v)
}

func (r *configReader) skip(n int) {
	if r.need(n) {
		r.pos += n
	}
}

// nalu reads a NAL unit with a 16-bit length prefix and returns a copy.
func (r *configReader) nalu() []byte {
	n := r.u16()
	if !r.need(n) {
		return nil
	}
	v := make([]byte, n)
	copy(v, r.b[r.pos:])
	r.pos += n
	return v
}

// parseAVCConfig parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
func parseAVCConfig(data []byte) (*VideoConfig, error) {
	r := &configReader{b: data, what: "AVC decoder configuration record"}
	version := r.u8()
	r.skip(3) // profile, profile compatibility, level
	lengthSize := r.u8()&0x03 + 1
	numSPS := r.u8() & 0x1f
	if r.err != nil {
		return nil, r.err
	}
	if version != 1 {
		return nil, fmt.Errorf("flv: AVC decoder configuration record version %d, want 1", version)
	}
	c := &VideoConfig{Codec: av.CodecH264, NALULengthSize: lengthSize}
	for range numSPS {
		c.SPS = append(c.SPS, r.nalu())
	}
	numPPS := r.u8()
	for range numPPS {
		c.PPS = append(c.PPS, r.nalu())
	}
	// Trailing High-profile extension fields (chroma format, bit depths,
	// SPS extensions) are not needed and are ignored.
	if r.err != nil {
		return nil, r.err
	}
	if len(c.SPS) == 0 {
		return nil, fmt.Errorf("flv: AVC decoder configuration record has no SPS")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(c.SPS[0]); err != nil {
		return nil, fmt.Errorf("flv: parsing H.264 SPS: %w", err)
	}
	c.Width, c.Height = sps.Width(), sps.Height()
	return c, nil
}

// parseHEVCConfig parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
func parseHEVCConfig(data []byte) (*VideoConfig, error) {
	r := &configReader{b: data, what: "HEVC decoder configuration record"}
	// configurationVersion (not checked: early encoders wrote 0), profile
	// space/tier/idc, 32 compatibility flags, 48 constraint flags, level,
	// min_spatial_segmentation, parallelismType, chromaFormat, bit depths,
	// avgFrameRate: 21 bytes in all.
	r.skip(21)
	lengthSize := r.u8()&0x03 + 1
	numArrays := r.u8()
	if r.err != nil {
		return nil, r.err
	}
	c := &VideoConfig{Codec: av.CodecH265, NALULengthSize: lengthSize}
	for range numArrays {
		typ := r.u8() & 0x3f
		n := r.u16()
		for range n {
			nalu := r.nalu()
			if r.err != nil {
				return nil, r.err
			}
			switch typ {
			case hevcNALUVPS:
				c.VPS = append(c.VPS, nalu)
			case hevcNALUSPS:
				c.SPS = append(c.SPS, nalu)
			case hevcNALUPPS:
				c.PPS = append(c.PPS, nalu)
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(c.SPS) == 0 {
		return nil, fmt.Errorf("flv: HEVC decoder configuration record has no SPS")
	}
	var sps h265.SPS
	if err := sps.Unmarshal(c.SPS[0]); err != nil {
		return nil, fmt.Errorf("flv: parsing H.265 SPS: %w", err)
	}
	c.Width, c.Height = sps.Width(), sps.Height()
	return c, nil
}

// AudioConfig is the content of an AAC AudioSpecificConfig.
type AudioConfig struct {
	// SampleRate is the output sample rate in Hz (the SBR rate for HE-AAC).
	SampleRate int
	// Channels is the channel count from the channel configuration; 0 means
	// the layout is given by a program config element.
	Channels int
	// ObjectType is the signalled audio object type: 2 for AAC-LC, 5 for
	// HE-AAC (SBR), 29 for HE-AACv2 (PS).
	ObjectType int
}

// ParseAudioConfig parses an AAC AudioSpecificConfig (pkt.Data() of an AAC
// SeqHeader packet) with mediacommon, which supports the AAC-LC, SBR and PS
// object types.
func ParseAudioConfig(data []byte) (*AudioConfig, error) {
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("flv: parsing AAC AudioSpecificConfig (% x): %w", data[:min(len(data), 8)], err)
	}
	if asc.SampleRate <= 0 {
		// An explicit (index 15) rate of 0: nothing can be timed or decoded.
		return nil, fmt.Errorf("flv: AAC AudioSpecificConfig (% x) gives a sample rate of %d Hz", data[:min(len(data), 8)], asc.SampleRate)
	}
	c := &AudioConfig{SampleRate: asc.SampleRate, ObjectType: int(asc.Type)}
	switch {
	case asc.ChannelConfig >= 1 && asc.ChannelConfig <= 6:
		c.Channels = int(asc.ChannelConfig)
	case asc.ChannelConfig == 7:
		c.Channels = 8
	}
	if asc.ExtensionType == mpeg4audio.ObjectTypeSBR || asc.ExtensionType == mpeg4audio.ObjectTypePS {
		c.ObjectType = int(asc.ExtensionType)
		if asc.ExtensionSampleRate > 0 {
			c.SampleRate = asc.ExtensionSampleRate
		}
		if asc.ExtensionType == mpeg4audio.ObjectTypePS && c.Channels == 1 {
			c.Channels = 2 // parametric stereo decodes a mono core to stereo
		}
	}
	return c, nil
}

// SplitNALUs calls fn for each NAL unit in data, which holds NAL units each
// preceded by a big-endian length of lengthSize bytes (1..4), as in AVCC/HVCC
// coded frames. The slices passed to fn alias data; zero-length units are
// skipped. It returns an error, after the units before it were delivered, if
// a length runs past the end of data.
func SplitNALUs(data []byte, lengthSize int, fn func(nalu []byte)) error {
	if lengthSize < 1 || lengthSize > 4 {
		return fmt.Errorf("flv: NAL unit length size %d, want 1..4", lengthSize)
	}
	for pos := 0; pos < len(data); {
		if len(data)-pos < lengthSize {
			return fmt.Errorf("flv: %d trailing bytes at offset %d, too few for a %d-byte NAL unit length", len(data)-pos, pos, lengthSize)
		}
		var n uint64
		for _, b := range data[pos : pos+lengthSize] {
			n = n<<8 | uint64(b)
		}
		pos += lengthSize
		if n > uint64(len(data)-pos) {
			return fmt.Errorf("flv: NAL unit length %d at offset %d runs past the end (%d bytes left)", n, pos-lengthSize, len(data)-pos)
		}
		if n > 0 {
			fn(data[pos : pos+int(n)])
		}
		pos += int(n)
	}
	return nil
}
