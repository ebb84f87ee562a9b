// Package mpegts turns the av.Packets of one stream into MPEG transport stream
// packets (ISO/IEC 13818-1) whose bytes are shared unchanged by every TS
// consumer of the stream: HTTP-TS and WebSocket-TS subscribers, HLS and
// recording.
//
// The layout follows lal: PAT on PID 0, PMT on PID 0x1001 (program 1), video
// on 0x100, audio on 0x101; H.264 (0x1B), H.265 (0x24), AAC as ADTS (0x0F),
// Opus as private data (0x06) with the 'Opus' registration descriptor, and
// MPEG-1/2 audio (0x03/0x04) for MP3. G.711 and other codecs are left out.
// PAT and PMT precede every video key frame, so the output of a key frame is
// a join point, and the PCR is the DTS of each video PES (of each audio PES
// in an audio-only stream).
package mpegts

import (
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg1audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// PacketSize is the size of a TS packet.
const PacketSize = 188

// PIDs used by the Muxer (lal's layout).
const (
	PIDPAT   = 0x0000 // program association table
	PIDPMT   = 0x1001 // program map table of program 1
	PIDVideo = 0x0100 // the video elementary stream
	PIDAudio = 0x0101 // the audio elementary stream
)

// PES stream ids.
const (
	streamIDVideo   = 0xE0
	streamIDAudio   = 0xC0
	streamIDPrivate = 0xBD // private_stream_1, used for Opus
)

// psiAudioInterval is the maximum number of audio frames between two PAT/PMT
// pairs in an audio-only stream.
const psiAudioInterval = 40

// maxADTSFrame is the largest frame (header included) an ADTS header can describe.
const maxADTSFrame = 1<<13 - 1

// Access unit delimiters inserted in front of every video access unit, with
// their start codes: H.264 primary_pic_type 7 (any slice type) and H.265
// pic_type 2 (any slice type).
var (
	audH264 = []byte{0, 0, 0, 1, 0x09, 0xF0}
	audH265 = []byte{0, 0, 0, 1, 0x46, 0x01, 0x50}
)

// startCode precedes every NAL unit in the Annex B output.
var startCode = []byte{0, 0, 0, 1}

// Muxer converts the packets of one stream into TS packets. Its output is
// deterministic: the same packet sequence always yields the same bytes, and
// all of its state (continuity counters, PMT version, stored decoder
// configuration) is state every consumer of the output shares. A Muxer is not
// safe for concurrent use.
type Muxer struct {
	log func(msg string)
	// loggedVideo and loggedAudio have bit c set once codec c was reported.
	loggedVideo, loggedAudio uint64

	tracks     tracks
	psiBuilt   bool
	pmtVersion byte
	// pmtSent is set once the current PMT left the Muxer; only a change
	// after that needs a new version.
	pmtSent  bool
	pat, pmt [maxPayload]byte
	// psiPending asks for PAT+PMT before the next output (the tracks changed).
	psiPending bool
	// audioSincePSI counts audio PES packets since the last PAT+PMT.
	audioSincePSI int

	// Continuity counters: the next value to use on each PID.
	ccPAT, ccPMT, ccVideo, ccAudio byte

	videoCodec av.Codec // codec of the video track (H.264 or H.265)
	// paramSets holds the VPS, SPS and PPS of the last video sequence
	// header in Annex B form, inserted before key frames.
	paramSets  []byte
	lengthSize int // NALU length size of the video track

	audioCodec   av.Codec // codec of the audio track (AAC, Opus, MP3)
	adts         [7]byte  // ADTS header template from the AudioSpecificConfig
	opusChannels byte     // Opus channel_config_code from the last OpusHead
}

// NewMuxer returns a Muxer for one stream. log, which may be nil, is called
// once for each codec the Muxer has to leave out.
func NewMuxer(log func(msg string)) *Muxer {
	m := &Muxer{log: log, opusChannels: 2}
	buildPAT(&m.pat)
	return m
}

// Mux returns the TS packets (a multiple of 188 bytes) for pkt, or nil when
// the packet produces no output (sequence headers, script data, packets of a
// codec that is left out, packets before their decoder configuration,
// malformed packets). The returned slice is freshly allocated per call and
// never modified afterwards.
func (m *Muxer) Mux(pkt *av.Packet) []byte {
	if pkt == nil || pkt.DataOffset < 0 {
		return nil
	}
	switch pkt.Kind {
	case av.KindVideo:
		return m.muxVideo(pkt)
	case av.KindAudio:
		return m.muxAudio(pkt)
	}
	return nil
}

// PSI returns a PAT+PMT pair (2×188 bytes) for the current tracks, or nil if
// no track is known yet. It is meant only as the first bytes for a
// subscriber that joins an audio-only stream; video subscribers join at a key
// frame, whose Mux output starts with PAT+PMT.
//
// Continuity counters: PSI does not advance them. It stamps each packet with
// the counter of the last PAT/PMT that Mux emitted (the next one minus 1), so
// for the joining subscriber, which never saw that packet, the next PAT/PMT
// from Mux follows with a continuous counter. To a consumer that did see the
// previous PAT/PMT the result would read as a duplicate packet, which is why
// these bytes must never be inserted into the shared stream itself.
func (m *Muxer) PSI() []byte {
	if !m.psiBuilt {
		return nil
	}
	m.pmtSent = true
	out := make([]byte, 2*PacketSize)
	putPSIPacket(out, PIDPAT, m.ccPAT-1, &m.pat)
	putPSIPacket(out[PacketSize:], PIDPMT, m.ccPMT-1, &m.pmt)
	return out
}

// writePSI writes PAT+PMT into b (2×188 bytes) and advances their counters.
// JoinHeader returns PSI(): the PAT and PMT a subscriber joining an
// audio-only stream gets before its first frame.
func (m *Muxer) JoinHeader() []byte { return m.PSI() }

func (m *Muxer) writePSI(b []byte) {
	putPSIPacket(b, PIDPAT, m.ccPAT, &m.pat)
	putPSIPacket(b[PacketSize:], PIDPMT, m.ccPMT, &m.pmt)
	m.ccPAT = (m.ccPAT + 1) & 0x0F
	m.ccPMT = (m.ccPMT + 1) & 0x0F
	m.psiPending = false
	m.pmtSent = true
	m.audioSincePSI = 0
}

// setTracks records the track set; when it changed, the PMT is rebuilt (with
// a new version if the previous one was already sent) and PAT+PMT are sent
// before the next output.
func (m *Muxer) setTracks(t tracks) {
	if m.psiBuilt && t == m.tracks {
		return
	}
	if m.psiBuilt && m.pmtSent {
		m.pmtVersion = (m.pmtVersion + 1) & 0x1F
	}
	m.pmtSent = false
	m.tracks = t
	buildPMT(&m.pmt, t, m.pmtVersion)
	m.psiBuilt = true
	m.psiPending = true
}

// leaveOut reports, once per kind and codec, that a codec is not muxed;
// reason replaces the default explanation if not empty.
func (m *Muxer) leaveOut(kind av.Kind, codec av.Codec, reason string) {
	logged := &m.loggedAudio
	if kind == av.KindVideo {
		logged = &m.loggedVideo
	}
	bit := uint64(1) << (codec & 63)
	if *logged&bit != 0 {
		return
	}
	*logged |= bit
	if m.log == nil {
		return
	}
	name := codec.String()
	if name == "" {
		name = fmt.Sprintf("codec(%d)", uint8(codec))
	}
	if reason == "" {
		reason = "has no MPEG-TS mapping"
	}
	m.log(fmt.Sprintf("mpegts: %s codec %s %s, track left out", kind, name, reason))
}

// ---- video ----

func isH264(codec av.Codec) bool { return codec == av.CodecH264 }

// NALU types of interest.
const (
	h264IDR = 5
	h264SPS = 7
	h264PPS = 8
	h264AUD = 9

	h265IRAPFirst = 16 // BLA_W_LP
	h265IRAPLast  = 23 // RSV_IRAP_VCL23
	h265VPS       = 32
	h265SPS       = 33
	h265PPS       = 34
	h265AUD       = 35
)

// auInfo describes a length-prefixed access unit.
type auInfo struct {
	size     int  // Annex B bytes of the kept NALUs (start codes included)
	nalus    int  // kept NALUs (not counting a leading AUD)
	firstAUD bool // the AU starts with an AUD, which is kept
	irap     bool // the AU has an IDR/IRAP slice
	vps      bool
	sps      bool
	pps      bool
}

func (m *Muxer) muxVideo(pkt *av.Packet) []byte {
	if pkt.Codec != av.CodecH264 && pkt.Codec != av.CodecH265 {
		m.leaveOut(av.KindVideo, pkt.Codec, "")
		return nil
	}
	data := pkt.Data()
	if pkt.SeqHeader {
		m.setVideoConfig(pkt.Codec, data)
		return nil
	}
	if pkt.Codec != m.videoCodec || len(data) == 0 {
		return nil // no sequence header yet (or of another codec)
	}

	codec := m.videoCodec
	var info auInfo
	seen := false
	err := flv.SplitNALUs(data, m.lengthSize, func(n []byte) {
		if len(n) == 0 {
			return
		}
		first := !seen
		seen = true
		if isH264(codec) {
			switch n[0] & 0x1F {
			case h264AUD:
				if first {
					info.firstAUD = true
					info.size += len(startCode) + len(n)
				}
				return
			case h264IDR:
				info.irap = true
			case h264SPS:
				info.sps = true
			case h264PPS:
				info.pps = true
			}
		} else {
			switch t := (n[0] >> 1) & 0x3F; {
			case t == h265AUD:
				if first {
					info.firstAUD = true
					info.size += len(startCode) + len(n)
				}
				return
			case t >= h265IRAPFirst && t <= h265IRAPLast:
				info.irap = true
			case t == h265VPS:
				info.vps = true
			case t == h265SPS:
				info.sps = true
			case t == h265PPS:
				info.pps = true
			}
		}
		info.nalus++
		info.size += len(startCode) + len(n)
	})
	if err != nil || info.nalus == 0 {
		return nil
	}

	aud := audH264
	if !isH264(codec) {
		aud = audH265
	}
	esSize := info.size
	if !info.firstAUD {
		esSize += len(aud)
	}
	key := pkt.KeyFrame || info.irap
	carries := info.sps && info.pps && (isH264(codec) || info.vps)
	insert := key && !carries && len(m.paramSets) > 0
	if insert {
		esSize += len(m.paramSets)
	}

	dts := uint64(pkt.Timestamp * 90)
	pts := uint64(pkt.PTS() * 90)
	withDTS := pts&mask33 != dts&mask33
	var hdr [19]byte
	hdrLen := putPESHeader(&hdr, streamIDVideo, 0, pts, withDTS, dts)

	total := hdrLen + esSize
	psi := key || m.psiPending
	size := pesPacketCount(total, true) * PacketSize
	if psi {
		size += 2 * PacketSize
	}
	out := make([]byte, size)
	w := tsWriter{buf: out}
	if psi {
		m.writePSI(out)
		w.pos = 2 * PacketSize
	}
	w.startPES(PIDVideo, &m.ccVideo, total, true, dts, key)
	w.write(hdr[:hdrLen])
	if !info.firstAUD {
		w.write(aud)
		if insert {
			w.write(m.paramSets)
		}
	}
	seen = false
	_ = flv.SplitNALUs(data, m.lengthSize, func(n []byte) {
		if len(n) == 0 {
			return
		}
		first := !seen
		seen = true
		var isAUD bool
		if isH264(codec) {
			isAUD = n[0]&0x1F == h264AUD
		} else {
			isAUD = (n[0]>>1)&0x3F == h265AUD
		}
		if isAUD && !first {
			return
		}
		w.write(startCode)
		w.write(n)
		if isAUD && insert {
			w.write(m.paramSets)
		}
	})
	return out
}

// setVideoConfig stores the parameter sets of a video sequence header and
// makes codec the video track. A header that does not parse is ignored.
func (m *Muxer) setVideoConfig(codec av.Codec, data []byte) {
	cfg, err := flv.ParseVideoConfig(codec, data)
	if err != nil || cfg.NALULengthSize < 1 || cfg.NALULengthSize > 4 {
		return
	}
	size := 0
	for _, sets := range [][][]byte{cfg.VPS, cfg.SPS, cfg.PPS} {
		for _, n := range sets {
			if len(n) > 0 {
				size += len(startCode) + len(n)
			}
		}
	}
	ps := make([]byte, 0, size)
	sets := [][][]byte{cfg.SPS, cfg.PPS}
	if codec == av.CodecH265 {
		sets = [][][]byte{cfg.VPS, cfg.SPS, cfg.PPS}
	}
	for _, s := range sets {
		for _, n := range s {
			if len(n) > 0 {
				ps = append(ps, startCode...)
				ps = append(ps, n...)
			}
		}
	}
	m.paramSets = ps
	m.lengthSize = cfg.NALULengthSize
	m.videoCodec = codec
	t := m.tracks
	t.video = streamTypeH264
	if codec == av.CodecH265 {
		t.video = streamTypeH265
	}
	m.setTracks(t)
}

// ---- audio ----

func (m *Muxer) muxAudio(pkt *av.Packet) []byte {
	data := pkt.Data()
	var streamID byte
	var prefix [2 + 1 + maxADTSFrame/255]byte // ADTS header or Opus control header
	var prefixLen int
	switch pkt.Codec {
	case av.CodecAAC:
		if pkt.SeqHeader {
			m.setAudioConfig(data)
			return nil
		}
		if m.audioCodec != av.CodecAAC || len(data) == 0 || 7+len(data) > maxADTSFrame {
			return nil
		}
		streamID = streamIDAudio
		frameLen := 7 + len(data)
		copy(prefix[:], m.adts[:])
		prefix[3] = prefix[3]&0xFC | byte(frameLen>>11)&0x03
		prefix[4] = byte(frameLen >> 3)
		prefix[5] = prefix[5]&0x1F | byte(frameLen&0x07)<<5
		prefixLen = 7

	case av.CodecOpus:
		if pkt.SeqHeader {
			var h opus.IDHeader
			if h.Unmarshal(data) == nil && h.ChannelCount >= 1 && h.ChannelCount <= 8 {
				m.opusChannels = h.ChannelCount
			}
			if m.audioCodec == av.CodecOpus {
				m.setTracks(tracks{video: m.tracks.video, audio: streamTypePrivate, opusChannels: m.opusChannels})
			}
			return nil
		}
		if len(data) == 0 || len(data) > maxADTSFrame {
			return nil
		}
		if m.audioCodec != av.CodecOpus {
			m.audioCodec = av.CodecOpus
			m.setTracks(tracks{video: m.tracks.video, audio: streamTypePrivate, opusChannels: m.opusChannels})
		}
		streamID = streamIDPrivate
		// opus_control_header: prefix 0x3FF, no trim, no extension, then
		// au_size as a run of 0xFF bytes and a final byte below 0xFF.
		prefix[0], prefix[1] = 0x7F, 0xE0
		prefixLen = 2
		for n := len(data); ; n -= 255 {
			if n < 255 {
				prefix[prefixLen] = byte(n)
				prefixLen++
				break
			}
			prefix[prefixLen] = 0xFF
			prefixLen++
		}

	case av.CodecMP3:
		if len(data) == 0 {
			return nil
		}
		if m.audioCodec != av.CodecMP3 {
			var h mpeg1audio.FrameHeader
			if h.Unmarshal(data) != nil {
				return nil
			}
			st := byte(streamTypeMPEG1Audio)
			if h.MPEG2 {
				st = streamTypeMPEG2Audio
			}
			m.audioCodec = av.CodecMP3
			m.setTracks(tracks{video: m.tracks.video, audio: st})
		}
		streamID = streamIDAudio

	default:
		m.leaveOut(av.KindAudio, pkt.Codec, "")
		return nil
	}

	pts := uint64(pkt.PTS() * 90)
	esSize := prefixLen + len(data)
	var hdr [19]byte
	pesLen := 8 + esSize // flags, header length, PTS, data
	if pesLen > 0xFFFF {
		pesLen = 0
	}
	hdrLen := putPESHeader(&hdr, streamID, pesLen, pts, false, 0)
	total := hdrLen + esSize

	audioOnly := m.tracks.video == 0
	psi := m.psiPending || (audioOnly && m.audioSincePSI >= psiAudioInterval)
	size := pesPacketCount(total, audioOnly) * PacketSize
	if psi {
		size += 2 * PacketSize
	}
	out := make([]byte, size)
	w := tsWriter{buf: out}
	if psi {
		m.writePSI(out)
		w.pos = 2 * PacketSize
	}
	m.audioSincePSI++
	w.startPES(PIDAudio, &m.ccAudio, total, audioOnly, pts, audioOnly)
	w.write(hdr[:hdrLen])
	w.write(prefix[:prefixLen])
	w.write(data)
	return out
}

// adtsSampleRates lists the sampling frequencies by sampling_frequency_index.
var adtsSampleRates = [...]int{
	96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
}

// setAudioConfig derives the ADTS header from an AudioSpecificConfig and makes
// AAC the audio track. An AudioSpecificConfig that ADTS cannot express leaves
// the audio track out.
func (m *Muxer) setAudioConfig(asc []byte) {
	var p mpeg4audio.ADTSPacket
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(asc); err == nil {
		// For HE-AAC (SBR/PS) Unmarshal reports the AAC-LC core and its
		// sample rate, which is what ADTS signals.
		p = mpeg4audio.ADTSPacket{Type: c.Type, SampleRate: c.SampleRate, ChannelConfig: c.ChannelConfig}
	} else if len(asc) >= 2 {
		// Object types mediacommon does not parse (AAC Main, SSR, LTP)
		// still fit ADTS, whose profile field is the object type minus 1.
		ot := asc[0] >> 3
		sfi := int(asc[0]&0x07)<<1 | int(asc[1]>>7)
		if ch := (asc[1] >> 3) & 0x0F; ot >= 1 && ot <= 4 && sfi < len(adtsSampleRates) && ch <= 7 {
			p = mpeg4audio.ADTSPacket{
				Type:          mpeg4audio.ObjectType(ot),
				SampleRate:    adtsSampleRates[sfi],
				ChannelConfig: ch,
			}
		}
	}
	hdr, err := mpeg4audio.ADTSPackets{&p}.Marshal()
	if err != nil || len(hdr) != 7 {
		m.leaveOut(av.KindAudio, av.CodecAAC, fmt.Sprintf("config %x cannot be carried in ADTS", asc[:min(len(asc), 16)]))
		return
	}
	copy(m.adts[:], hdr)
	m.audioCodec = av.CodecAAC
	m.setTracks(tracks{video: m.tracks.video, audio: streamTypeAAC})
}
