package rtsp

import (
	"bytes"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// This file turns av.Packets (RTMP message bodies) into RTP packets with
// gortsplib's format encoders, and builds the play description from what
// the packets tell about the tracks.

// Payload types of the formats Sluice describes itself.
const (
	ptVideo   = 96
	ptAudio   = 97
	ptPCMU    = 0
	ptPCMA    = 8
	aacSizeLn = 13
	aacIdxLn  = 3
)

// trackConfig is what a stream's packets have told about its tracks.
type trackConfig struct {
	videoCodec av.Codec // av.CodecH264, av.CodecH265 or av.CodecNone
	video      *flv.VideoConfig
	audioCodec av.Codec // av.CodecAAC, PCMA, PCMU, Opus or av.CodecNone
	asc        []byte   // AAC AudioSpecificConfig
	ascParsed  *mpeg4audio.AudioSpecificConfig
}

func (c *trackConfig) hasVideo() bool { return c.videoCodec != av.CodecNone && c.video != nil }
func (c *trackConfig) hasAudio() bool {
	return c.audioCodec != av.CodecNone && (c.audioCodec != av.CodecAAC || c.ascParsed != nil)
}

// outputTrack packetises the packets of one kind into RTP for one media.
type outputTrack struct {
	media  *description.Media
	format format.Format
	clock  int
	// encode returns the RTP packets of one av.Packet (nil for a packet
	// with nothing to send), their payloads aliasing its bytes; rtpTS is the
	// packet's RTP timestamp.
	encode func(pkt *av.Packet, rtpTS uint32) ([]rtpOut, error)
	// smooth makes AAC timestamps sample-exact: next is the expected RTP
	// time of the next access unit.
	smooth   bool
	next     int64
	haveNext bool
	// vp is the video track's NAL unit handling.
	vp *videoParams
	// Direct play (direct.go): the media's index in the description, the
	// packets and payload octets sent (RTCP sender reports), and when the
	// next report is due.
	idx             int
	packets, octets uint32
	srDue           bool
	lastSR          time.Time
}

// rtpTime converts a time in ms to the track's clock, making consecutive
// AAC access units exactly 1024 samples apart unless the ms timestamps run
// 20 ms or more ahead of that (a gap).
func (t *outputTrack) rtpTime(ms int64) int64 {
	ticks := ms * int64(t.clock) / 1000
	if t.smooth {
		// Ahead of the chain by 20 ms or more is a gap (a lost frame):
		// follow it. Behind it (by less than a second) is rounding or
		// jitter: stay on the chain, never step backwards.
		if d := ticks - t.next; t.haveNext && d < int64(t.clock)/50 && d > -int64(t.clock) {
			ticks = t.next
		}
		t.next, t.haveNext = ticks+mpeg4audio.SamplesPerAccessUnit, true
	}
	return ticks
}

// ntpTime is the wall-clock time of a time in the track's clock, on the
// stream's one mapping (base is the wall-clock time of media time 0), so
// that the RTCP sender reports of all tracks agree and players sync them.
func (t *outputTrack) ntpTime(base time.Time, ticks int64) time.Time {
	return base.Add(time.Duration(ticks * int64(time.Second) / int64(t.clock)))
}

// buildOutput makes the play description and its output tracks for cfg.
// When source (an RTSP publisher's description) has a media of the same
// codec, its format (payload type and parameters) is passed through, in the
// publisher's media order; otherwise the format is built from cfg.
func buildOutput(cfg *trackConfig, source *description.Session) (*description.Session, *outputTrack, *outputTrack, error) {
	var video, audio *outputTrack
	var err error
	var vf, af format.Format
	if cfg.hasVideo() {
		vf = videoFormat(cfg, source)
	}
	if cfg.hasAudio() {
		af = audioFormat(cfg, source)
	}
	desc := &description.Session{Title: "Sluice"}
	add := func(typ description.MediaType, f format.Format) (*outputTrack, error) {
		m := &description.Media{Type: typ, Formats: []format.Format{f}}
		desc.Medias = append(desc.Medias, m)
		return newOutputTrack(m, f, cfg)
	}
	audioFirst := false
	if source != nil && vf != nil && af != nil {
		for _, m := range source.Medias {
			if m.Type == description.MediaTypeAudio {
				audioFirst = true
				break
			}
			if m.Type == description.MediaTypeVideo {
				break
			}
		}
	}
	if audioFirst {
		if audio, err = add(description.MediaTypeAudio, af); err != nil {
			return nil, nil, nil, err
		}
	}
	if vf != nil {
		if video, err = add(description.MediaTypeVideo, vf); err != nil {
			return nil, nil, nil, err
		}
	}
	if af != nil && !audioFirst {
		if audio, err = add(description.MediaTypeAudio, af); err != nil {
			return nil, nil, nil, err
		}
	}
	if len(desc.Medias) == 0 {
		return nil, nil, nil, fmt.Errorf("no track RTSP can carry")
	}
	return desc, video, audio, nil
}

// sourceFormat returns the first format of source whose codec is codec.
func sourceFormat(source *description.Session, match func(format.Format) bool) format.Format {
	if source == nil {
		return nil
	}
	for _, m := range source.Medias {
		for _, f := range m.Formats {
			if match(f) {
				return f
			}
		}
	}
	return nil
}

func videoFormat(cfg *trackConfig, source *description.Session) format.Format {
	v := cfg.video
	switch cfg.videoCodec {
	case av.CodecH264:
		f := &format.H264{PayloadTyp: ptVideo, PacketizationMode: 1, SPS: v.SPS[0], PPS: first(v.PPS)}
		if s, ok := sourceFormat(source, func(f format.Format) bool { _, ok := f.(*format.H264); return ok }).(*format.H264); ok {
			f.PayloadTyp = s.PayloadTyp
		}
		return f
	case av.CodecH265:
		f := &format.H265{PayloadTyp: ptVideo, VPS: first(v.VPS), SPS: v.SPS[0], PPS: first(v.PPS)}
		if s, ok := sourceFormat(source, func(f format.Format) bool { _, ok := f.(*format.H265); return ok }).(*format.H265); ok {
			f.PayloadTyp = s.PayloadTyp
		}
		return f
	}
	return nil
}

func audioFormat(cfg *trackConfig, source *description.Session) format.Format {
	switch cfg.audioCodec {
	case av.CodecAAC:
		f := &format.MPEG4Audio{PayloadTyp: ptAudio, Config: cfg.ascParsed, SizeLength: aacSizeLn, IndexLength: aacIdxLn, IndexDeltaLength: aacIdxLn}
		if s, ok := sourceFormat(source, func(f format.Format) bool { _, ok := f.(*format.MPEG4Audio); return ok }).(*format.MPEG4Audio); ok {
			f.PayloadTyp, f.ProfileLevelID = s.PayloadTyp, s.ProfileLevelID
		}
		return f
	case av.CodecPCMA, av.CodecPCMU:
		mu := cfg.audioCodec == av.CodecPCMU
		f := &format.G711{PayloadTyp: ptPCMA, MULaw: mu, SampleRate: g711Clock, ChannelCount: 1}
		if mu {
			f.PayloadTyp = ptPCMU
		}
		if s, ok := sourceFormat(source, func(f format.Format) bool {
			g, ok := f.(*format.G711)
			return ok && g.MULaw == mu
		}).(*format.G711); ok {
			f.PayloadTyp = s.PayloadTyp
		}
		return f
	case av.CodecOpus:
		f := &format.Opus{PayloadTyp: ptAudio, ChannelCount: 2}
		if s, ok := sourceFormat(source, func(f format.Format) bool { _, ok := f.(*format.Opus); return ok }).(*format.Opus); ok {
			f.PayloadTyp, f.ChannelCount = s.PayloadTyp, s.ChannelCount
		}
		return f
	}
	return nil
}

func first(b [][]byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[0]
}

// newOutputTrack makes the encoder of one media.
func newOutputTrack(m *description.Media, f format.Format, cfg *trackConfig) (*outputTrack, error) {
	t := &outputTrack{media: m, format: f, clock: f.ClockRate()}
	switch f := f.(type) {
	case *format.H264:
		t.vp = &videoParams{lengthSize: cfg.video.NALULengthSize, sets: [][]byte{f.SPS, f.PPS}, codec: av.CodecH264}
		t.encode = t.videoEncoder(newPacketizer(f.PayloadTyp).h264)
	case *format.H265:
		t.vp = &videoParams{lengthSize: cfg.video.NALULengthSize, sets: [][]byte{f.VPS, f.SPS, f.PPS}, codec: av.CodecH265}
		t.encode = t.videoEncoder(newPacketizer(f.PayloadTyp).h265)
	case *format.MPEG4Audio:
		pz := newPacketizer(f.PayloadTyp)
		t.smooth = true
		t.encode = func(pkt *av.Packet, ts uint32) ([]rtpOut, error) {
			return pz.aac(pkt.Data(), ts), nil
		}
	case *format.G711:
		enc, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		t.encode = func(pkt *av.Packet, ts uint32) ([]rtpOut, error) {
			if len(pkt.Data()) == 0 {
				return nil, nil
			}
			pkts, err := enc.Encode(pkt.Data())
			return stamp(pkts, ts), err
		}
	case *format.Opus:
		enc, err := f.CreateEncoder()
		if err != nil {
			return nil, err
		}
		t.encode = func(pkt *av.Packet, ts uint32) ([]rtpOut, error) {
			if len(pkt.Data()) == 0 {
				return nil, nil
			}
			p, err := enc.Encode(pkt.Data())
			if err != nil {
				return nil, err
			}
			return stamp([]*rtp.Packet{p}, ts), nil
		}
	default:
		return nil, fmt.Errorf("no RTP encoder for %s", formatName(f))
	}
	return t, nil
}

// videoEncoder turns a video packet into RTP with an H.264 or H.265
// packetizer, after t.vp has rebuilt the access unit.
func (t *outputTrack) videoEncoder(packetize func([][]byte, uint32) []rtpOut) func(*av.Packet, uint32) ([]rtpOut, error) {
	return func(pkt *av.Packet, ts uint32) ([]rtpOut, error) {
		au, err := t.vp.accessUnit(pkt)
		if err != nil || len(au) == 0 {
			return nil, err
		}
		return packetize(au, ts), nil
	}
}

// stamp adds ts to the timestamps a gortsplib encoder set relative to the
// frame's start (G.711, Opus: small frames, copied once).
func stamp(pkts []*rtp.Packet, ts uint32) []rtpOut {
	out := make([]rtpOut, len(pkts))
	for i, p := range pkts {
		p.Timestamp += ts
		out[i] = rtpOut{hdr: p.Header, payload: [][]byte{p.Payload}}
	}
	return out
}

// videoParams turns an FLV video body into the NAL units of one access
// unit, without access unit delimiters, and with the parameter sets put in
// front of a key frame that does not carry them, so that a player joining
// there can decode without the SDP's.
type videoParams struct {
	lengthSize int
	sets       [][]byte // (VPS,) SPS, PPS
	codec      av.Codec
}

func (v *videoParams) accessUnit(pkt *av.Packet) ([][]byte, error) {
	var au [][]byte
	hasSets := false
	err := flv.SplitNALUs(pkt.Data(), v.lengthSize, func(n []byte) {
		if v.codec == av.CodecH264 {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeAccessUnitDelimiter:
				return
			case h264.NALUTypeSPS:
				hasSets = true
			}
		} else {
			if len(n) < 2 {
				return
			}
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_AUD_NUT:
				return
			case h265.NALUType_SPS_NUT:
				hasSets = true
			}
		}
		au = append(au, n)
	})
	if err != nil {
		return nil, err
	}
	if pkt.KeyFrame && !hasSets && len(au) > 0 {
		pre := make([][]byte, 0, len(v.sets)+len(au))
		for _, s := range v.sets {
			if len(s) > 0 {
				pre = append(pre, s)
			}
		}
		au = append(pre, au...)
	}
	return au, nil
}

// setParams replaces the parameter sets put in front of key frames.
func (v *videoParams) setParams(lengthSize int, sets [][]byte) {
	v.lengthSize = lengthSize
	v.sets = make([][]byte, len(sets))
	for i, s := range sets {
		v.sets[i] = bytes.Clone(s)
	}
}
