package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// This file turns what an RTSP publisher sends (RTP packets, depacketised
// into access units by gortsplib's format decoders) into av.Packets: RTMP
// message bodies, as flv.PacketFromTag parses them. H.265 uses the legacy
// CodecID 12 form, as lal does when it builds RTMP from RTSP.

// errUnsupported marks a media whose codec has no RTMP/FLV form in Sluice.
var errUnsupported = errors.New("codec has no RTMP/FLV form in Sluice")

// Media clocks.
const (
	videoClock = 90000
	opusClock  = 48000
	g711Clock  = 8000
)

// FLV audio tag header bytes Sluice writes: SoundFormat in the high nibble,
// then rate, size and channel bits as ffmpeg's FLV muxer sets them.
const (
	audioHeaderAAC  = flv.SoundFormatAAC<<4 | 0x0f  // 0xAF, as every AAC writer
	audioHeaderPCMA = flv.SoundFormatPCMA<<4 | 0x02 // "special" rate, 16-bit, mono
	audioHeaderPCMU = flv.SoundFormatPCMU<<4 | 0x02
	audioHeaderOpus = flv.SoundFormatOpus<<4 | 0x0f
)

// presentationDelayMS is added to every presentation time of a publisher
// (audio timestamps and video PTS; video DTS are left as they are). The
// DTS extractor starts a stream with B-frames at DTS = PTS and has to let
// DTS creep past PTS by a few ms until it has learned the reordering; the
// delay keeps every DTS at or below its PTS, as FLV, TS and their decoders
// require (a file muxed by ffmpeg has the same offset, e.g. CTS 80 ms).
const presentationDelayMS = 100

// timeBaseMS is where a publisher's timeline starts: the H.265 DTS
// extractor puts the first frames' DTS before their PTS, and the first PTS
// is 0, so without it a stream with B-frames would start at a negative DTS.
const timeBaseMS = 1000

// ticksToMS converts a time in clock ticks (≥ -timeBaseMS) to milliseconds
// on the publisher's timeline.
func ticksToMS(t int64, clock int) int64 {
	ms := t * 1000 / int64(clock)
	if t < 0 && t*1000%int64(clock) != 0 {
		ms-- // floor
	}
	return ms + timeBaseMS
}

// maxRepairMS bounds the backward step strictlyIncreasing repairs: a track
// whose time goes back further than this has a discontinuity in its source,
// which is passed on as it is rather than squeezed into 1 ms steps.
const maxRepairMS = 1000

// strictlyIncreasing keeps the millisecond timestamps (DTS) of one track
// strictly increasing. Two units less than 1 ms apart in their RTP clock
// land on the same millisecond, and FLV and TS players refuse a repeated
// DTS ("non monotonically increasing dts"). Sources do send such pairs: at
// each loop of `ffmpeg -stream_loop`, a file whose last AAC frame is cut
// short is followed by the next loop's first frame 1 sample (23 µs at 44.1
// kHz) later; the H.264/H.265 DTS extractors may repeat a DTS, or step it by
// less than 1 ms, while they learn the reordering. Each unit is moved no
// further than the previous one's time plus 1 ms, so the track does not
// drift.
type strictlyIncreasing struct {
	last    int64
	started bool
}

// next returns ts, or the previous timestamp plus 1 ms when ts is not after
// it by at least that (and not more than maxRepairMS before it).
func (s *strictlyIncreasing) next(ts int64) int64 {
	if s.started && ts <= s.last && s.last-ts <= maxRepairMS {
		ts = s.last + 1
	}
	s.last, s.started = ts, true
	return ts
}

// peek returns what next(ts) would, without recording it: the time of a
// sequence header sent just before the unit at ts.
func (s *strictlyIncreasing) peek(ts int64) int64 {
	c := *s
	return c.next(ts)
}

// inputTrack converts the RTP packets of one published media into av.Packets.
type inputTrack struct {
	media  *description.Media
	format format.Format
	codec  av.Codec
	// handle decodes one RTP packet whose presentation time is pts (in the
	// format's clock, from ServerSession.PacketPTS) and emits the packets
	// it completes.
	handle func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error
}

// newInputTrack makes the converter of one published format; it returns
// errUnsupported (wrapped) for a codec Sluice cannot carry.
func newInputTrack(medi *description.Media, forma format.Format) (*inputTrack, error) {
	t := &inputTrack{media: medi, format: forma}
	switch f := forma.(type) {
	case *format.H264:
		t.codec = av.CodecH264
		if err := setVideoHandler(t); err != nil {
			return nil, err
		}
	case *format.H265:
		t.codec = av.CodecH265
		if err := setVideoHandler(t); err != nil {
			return nil, err
		}
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, fmt.Errorf("%w: MPEG-4 audio without a config", errUnsupported)
		}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		c, err := newAACConverter(f.Config)
		if err != nil {
			return nil, err
		}
		t.codec = av.CodecAAC
		t.handle = func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error {
			aus, err := dec.Decode(pkt)
			if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				return nil
			}
			if err != nil {
				return err
			}
			return c.AccessUnits(aus, pts, emit)
		}
	case *format.G711:
		if f.SampleRate != g711Clock || f.ChannelCount != 1 {
			return nil, fmt.Errorf("%w: G.711 at %d Hz, %d channels (only 8000 Hz mono has an FLV form)", errUnsupported, f.SampleRate, f.ChannelCount)
		}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		c := &simpleAudioConverter{codec: av.CodecPCMA, header: audioHeaderPCMA, clock: g711Clock}
		if f.MULaw {
			c.codec, c.header = av.CodecPCMU, audioHeaderPCMU
		}
		t.codec = c.codec
		t.handle = func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error {
			samples, err := dec.Decode(pkt)
			if err != nil {
				return err
			}
			c.Frame(samples, pts, emit)
			return nil
		}
	case *format.Opus:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		c := &simpleAudioConverter{codec: av.CodecOpus, header: audioHeaderOpus, clock: opusClock}
		t.codec = av.CodecOpus
		t.handle = func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error {
			frame, err := dec.Decode(pkt)
			if err != nil {
				return err
			}
			c.Frame(frame, pts, emit)
			return nil
		}
	default:
		return nil, fmt.Errorf("%w: %s", errUnsupported, formatName(forma))
	}
	return t, nil
}

// formatName names a format for log lines.
func formatName(f format.Format) string {
	if f == nil {
		return "none"
	}
	if r := f.RTPMap(); r != "" {
		return r
	}
	return fmt.Sprintf("payload type %d", f.PayloadType())
}

// setVideoHandler sets the handler of an H.264 or H.265 track: the RTP
// decoder, then the converter, with each access unit timed by auTimer (a
// unit that fits one RTP packet, as small B- and P-frames do, has that
// packet's time, not the previous unit's).
func setVideoHandler(t *inputTrack) error {
	switch f := t.format.(type) {
	case *format.H264:
		dec, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		c := newH264Converter(f.SPS, f.PPS)
		at := &auTimer{splitsOnTimestamp: true}
		t.handle = func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error {
			au, err := dec.Decode(pkt)
			switch {
			case errors.Is(err, rtph264.ErrMorePacketsNeeded):
				at.more(pkt, pts)
				return nil
			case errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious):
				return nil
			case err != nil:
				at.reset()
				return err
			}
			return c.AccessUnit(au, at.done(pkt, pts), emit)
		}
	case *format.H265:
		dec, err := f.CreateDecoder()
		if err != nil {
			return err
		}
		c := newH265Converter(f.VPS, f.SPS, f.PPS)
		at := &auTimer{}
		t.handle = func(pkt *rtp.Packet, pts int64, emit func(*av.Packet)) error {
			au, err := dec.Decode(pkt)
			switch {
			case errors.Is(err, rtph265.ErrMorePacketsNeeded):
				at.more(pkt, pts)
				return nil
			case errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious):
				return nil
			case err != nil:
				at.reset()
				return err
			}
			return c.AccessUnit(au, at.done(pkt, pts), emit)
		}
	}
	return nil
}

// auTimer gives the access units a video RTP decoder completes their
// presentation time. gortsplib's decoders complete a unit at a packet with
// the marker bit: the unit of that packet, whose time it has. The H.264
// decoder also completes one, for senders that set no marker bit, when a
// packet with another timestamp comes while it holds packets: then the unit
// is that of the packets held, and the new packet is held in turn.
type auTimer struct {
	splitsOnTimestamp bool // the decoder splits units at a timestamp change
	held              bool // the decoder holds packets of an unfinished unit
	heldTS            uint32
	heldPTS           int64
}

// more records a packet the decoder kept (ErrMorePacketsNeeded). While it
// holds packets of one unit, a fragment of the next with another timestamp
// is kept aside and leaves the held unit's time as it is.
func (a *auTimer) more(pkt *rtp.Packet, pts int64) {
	if !a.held {
		a.held, a.heldTS, a.heldPTS = true, pkt.Timestamp, pts
	}
}

// done returns the time of the unit the decoder completed at pkt.
func (a *auTimer) done(pkt *rtp.Packet, pts int64) int64 {
	if a.splitsOnTimestamp && a.held && pkt.Timestamp != a.heldTS {
		t := a.heldPTS
		a.heldTS, a.heldPTS = pkt.Timestamp, pts // pkt is held now
		return t
	}
	a.held = false
	return pts
}

// reset forgets the held unit after a decoding error.
func (a *auTimer) reset() { a.held = false }

// ---------------------------------------------------------------------------
// H.264

// h264Converter turns H.264 access units into FLV video bodies, keeping the
// AVC sequence header current with the SPS and PPS seen in the SDP or in band.
type h264Converter struct {
	sps, pps []byte
	dirty    bool // parameter sets changed since the last sequence header
	started  bool // a random access unit went through the DTS extractor
	dts      h264.DTSExtractor
	dtsMS    strictlyIncreasing // kept across restarts
}

func newH264Converter(sps, pps []byte) *h264Converter {
	c := &h264Converter{sps: bytes.Clone(sps), pps: bytes.Clone(pps), dirty: true}
	c.dts.Initialize()
	return c
}

// AccessUnit converts one access unit whose presentation time is pts (90
// kHz). Units before the first IDR, and units for which no SPS and PPS are
// known, are dropped.
func (c *h264Converter) AccessUnit(au [][]byte, pts int64, emit func(*av.Packet)) error {
	if pts < 0 {
		return nil
	}
	frame := make([][]byte, 0, len(au))
	idr := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			if !bytes.Equal(n, c.sps) {
				c.sps, c.dirty = bytes.Clone(n), true
			}
		case h264.NALUTypePPS:
			if !bytes.Equal(n, c.pps) {
				c.pps, c.dirty = bytes.Clone(n), true
			}
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
		case h264.NALUTypeIDR:
			idr = true
			frame = append(frame, n)
		default:
			frame = append(frame, n)
		}
	}
	if len(frame) == 0 || len(c.sps) == 0 || len(c.pps) == 0 {
		return nil
	}
	if !c.started && !idr {
		return nil
	}
	// The extractor reads the SPS from the unit itself.
	dts, err := c.dts.Extract(append([][]byte{c.sps}, frame...), pts)
	if err != nil {
		c.restart()
		return fmt.Errorf("H.264 DTS: %w (waiting for the next IDR)", err)
	}
	c.started = true
	if c.dirty {
		rec, err := AVCConfigRecord(c.sps, c.pps)
		if err != nil {
			c.restart()
			return err
		}
		emit(videoSeqHeader(flv.CodecIDAVC, av.CodecH264, c.dtsMS.peek(ticksToMS(dts, videoClock)), rec))
		c.dirty = false
	}
	emit(videoFrame(flv.CodecIDAVC, av.CodecH264, idr, c.dtsMS.next(ticksToMS(dts, videoClock)), ticksToMS(pts, videoClock), frame))
	return nil
}

func (c *h264Converter) restart() {
	c.started = false
	c.dts = h264.DTSExtractor{}
	c.dts.Initialize()
}

// AVCConfigRecord builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.3.3.1) with 4-byte NAL unit lengths from one SPS and one PPS.
func AVCConfigRecord(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || len(pps) == 0 || len(sps) > 0xffff || len(pps) > 0xffff {
		return nil, fmt.Errorf("H.264 parameter sets too short or too long (SPS %d bytes, PPS %d bytes)", len(sps), len(pps))
	}
	b := make([]byte, 0, 11+len(sps)+len(pps))
	b = append(b, 1, sps[1], sps[2], sps[3], 0xff, 0xe1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...), nil
}

// ---------------------------------------------------------------------------
// H.265

// h265Converter is h264Converter for H.265 (VPS, SPS and PPS).
type h265Converter struct {
	vps, sps, pps []byte
	dirty         bool
	started       bool
	dts           h265.DTSExtractor
	dtsMS         strictlyIncreasing // kept across restarts
}

func newH265Converter(vps, sps, pps []byte) *h265Converter {
	c := &h265Converter{vps: bytes.Clone(vps), sps: bytes.Clone(sps), pps: bytes.Clone(pps), dirty: true}
	c.dts.Initialize()
	return c
}

// isH265Key reports an IRAP picture (BLA, IDR or CRA).
func isH265Key(t h265.NALUType) bool {
	return t >= h265.NALUType_BLA_W_LP && t <= h265.NALUType_CRA_NUT
}

// AccessUnit converts one access unit whose presentation time is pts (90 kHz).
func (c *h265Converter) AccessUnit(au [][]byte, pts int64, emit func(*av.Packet)) error {
	if pts < 0 {
		return nil
	}
	frame := make([][]byte, 0, len(au))
	key := false
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch t := h265.NALUType((n[0] >> 1) & 0x3f); {
		case t == h265.NALUType_VPS_NUT:
			if !bytes.Equal(n, c.vps) {
				c.vps, c.dirty = bytes.Clone(n), true
			}
		case t == h265.NALUType_SPS_NUT:
			if !bytes.Equal(n, c.sps) {
				c.sps, c.dirty = bytes.Clone(n), true
			}
		case t == h265.NALUType_PPS_NUT:
			if !bytes.Equal(n, c.pps) {
				c.pps, c.dirty = bytes.Clone(n), true
			}
		case t == h265.NALUType_AUD_NUT:
		case isH265Key(t):
			key = true
			frame = append(frame, n)
		default:
			frame = append(frame, n)
		}
	}
	if len(frame) == 0 || len(c.vps) == 0 || len(c.sps) == 0 || len(c.pps) == 0 {
		return nil
	}
	if !c.started && !key {
		return nil
	}
	dts, err := c.dts.Extract(append([][]byte{c.vps, c.sps, c.pps}, frame...), pts)
	if err != nil {
		c.restart()
		return fmt.Errorf("H.265 DTS: %w (waiting for the next random access picture)", err)
	}
	c.started = true
	if c.dirty {
		rec, err := HEVCConfigRecord(c.vps, c.sps, c.pps)
		if err != nil {
			c.restart()
			return err
		}
		emit(videoSeqHeader(flv.CodecIDHEVC, av.CodecH265, c.dtsMS.peek(ticksToMS(dts, videoClock)), rec))
		c.dirty = false
	}
	emit(videoFrame(flv.CodecIDHEVC, av.CodecH265, key, c.dtsMS.next(ticksToMS(dts, videoClock)), ticksToMS(pts, videoClock), frame))
	return nil
}

func (c *h265Converter) restart() {
	c.started = false
	c.dts = h265.DTSExtractor{}
	c.dts.Initialize()
}

// HEVCConfigRecord builds an HEVCDecoderConfigurationRecord (ISO/IEC
// 14496-15 8.3.3.1) with 4-byte NAL unit lengths from one VPS, SPS and PPS.
// The profile, tier and level bytes are copied from the SPS.
func HEVCConfigRecord(vps, sps, pps []byte) ([]byte, error) {
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("parsing H.265 SPS: %w", err)
	}
	for _, n := range [][]byte{vps, sps, pps} {
		if len(n) == 0 || len(n) > 0xffff {
			return nil, fmt.Errorf("H.265 parameter set of %d bytes", len(n))
		}
	}
	// NAL header (2 bytes), VPS id / max sub-layers / temporal id nesting
	// (1 byte), then the 12 bytes of general_profile_tier_level.
	rbsp := h264.EmulationPreventionRemove(sps)
	if len(rbsp) < 15 {
		return nil, fmt.Errorf("H.265 SPS too short (%d bytes)", len(rbsp))
	}
	b := make([]byte, 0, 23+3*5+len(vps)+len(sps)+len(pps))
	b = append(b, 1)
	b = append(b, rbsp[3:15]...)
	b = append(b,
		0xf0, 0x00, // min_spatial_segmentation_idc 0
		0xfc,                           // parallelismType 0
		0xfc|byte(s.ChromaFormatIdc&3), // chromaFormat
		0xf8|byte(s.BitDepthLumaMinus8&7),
		0xf8|byte(s.BitDepthChromaMinus8&7),
		0, 0, // avgFrameRate
	)
	nested := byte(0)
	if s.TemporalIDNestingFlag {
		nested = 1
	}
	// constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
	b = append(b, (s.MaxSubLayersMinus1+1)&7<<3|nested<<2|3)
	b = append(b, 3) // numOfArrays
	for _, a := range []struct {
		typ  h265.NALUType
		nalu []byte
	}{{h265.NALUType_VPS_NUT, vps}, {h265.NALUType_SPS_NUT, sps}, {h265.NALUType_PPS_NUT, pps}} {
		b = append(b, 0x80|byte(a.typ)) // array_completeness 1
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.nalu)))
		b = append(b, a.nalu...)
	}
	return b, nil
}

// ---------------------------------------------------------------------------
// FLV video bodies

func videoSeqHeader(codecID byte, codec av.Codec, ts int64, record []byte) *av.Packet {
	body := make([]byte, 5, 5+len(record))
	body[0] = flv.FrameTypeKey<<4 | codecID
	body[1] = flv.AVCSeqHeader
	body = append(body, record...)
	return &av.Packet{Kind: av.KindVideo, Codec: codec, Timestamp: ts, SeqHeader: true, Payload: body, DataOffset: 5}
}

func videoFrame(codecID byte, codec av.Codec, key bool, dtsMS, ptsMS int64, nalus [][]byte) *av.Packet {
	size := 5
	for _, n := range nalus {
		size += 4 + len(n)
	}
	body := make([]byte, 5, size)
	frameType := byte(flv.FrameTypeInter)
	if key {
		frameType = flv.FrameTypeKey
	}
	ptsMS += presentationDelayMS
	if ptsMS < dtsMS {
		ptsMS = dtsMS
	}
	cts := int32(ptsMS - dtsMS)
	body[0] = frameType<<4 | codecID
	body[1] = flv.AVCNALU
	body[2], body[3], body[4] = byte(cts>>16), byte(cts>>8), byte(cts)
	for _, n := range nalus {
		body = binary.BigEndian.AppendUint32(body, uint32(len(n)))
		body = append(body, n...)
	}
	return &av.Packet{Kind: av.KindVideo, Codec: codec, Timestamp: dtsMS, CTS: cts, KeyFrame: key, Payload: body, DataOffset: 5}
}

// ---------------------------------------------------------------------------
// Audio

// aacConverter turns AAC access units (mpeg4-generic) into FLV AAC bodies,
// sending the AudioSpecificConfig as the sequence header first.
type aacConverter struct {
	asc  []byte
	rate int
	sent bool
	ts   strictlyIncreasing
}

func newAACConverter(conf *mpeg4audio.AudioSpecificConfig) (*aacConverter, error) {
	asc, err := conf.Marshal()
	if err != nil {
		return nil, fmt.Errorf("AAC config: %w", err)
	}
	if conf.SampleRate <= 0 {
		return nil, fmt.Errorf("AAC config with sample rate %d", conf.SampleRate)
	}
	return &aacConverter{asc: asc, rate: conf.SampleRate}, nil
}

// AccessUnits converts the access units of one RTP packet; pts is the
// first one's time at the sample rate, each next one is 1024 samples later.
func (c *aacConverter) AccessUnits(aus [][]byte, pts int64, emit func(*av.Packet)) error {
	if pts < 0 {
		return nil
	}
	for i, au := range aus {
		if len(au) == 0 {
			continue
		}
		ts := c.ts.next(ticksToMS(pts+int64(i)*mpeg4audio.SamplesPerAccessUnit, c.rate) + presentationDelayMS)
		if !c.sent {
			body := append([]byte{audioHeaderAAC, flv.AACSeqHeader}, c.asc...)
			emit(&av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, SeqHeader: true, Payload: body, DataOffset: 2})
			c.sent = true
		}
		body := make([]byte, 2, 2+len(au))
		body[0], body[1] = audioHeaderAAC, flv.AACRaw
		emit(&av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, Payload: append(body, au...), DataOffset: 2})
	}
	return nil
}

// simpleAudioConverter turns G.711 sample blocks or Opus packets into FLV
// bodies of one header byte and the data.
type simpleAudioConverter struct {
	codec  av.Codec
	header byte
	clock  int
	ts     strictlyIncreasing
}

// Frame converts one frame whose time is pts in the codec's clock.
func (c *simpleAudioConverter) Frame(data []byte, pts int64, emit func(*av.Packet)) {
	if pts < 0 || len(data) == 0 {
		return
	}
	body := make([]byte, 1, 1+len(data))
	body[0] = c.header
	ts := c.ts.next(ticksToMS(pts, c.clock) + presentationDelayMS)
	emit(&av.Packet{Kind: av.KindAudio, Codec: c.codec, Timestamp: ts, Payload: append(body, data...), DataOffset: 1})
}
