package mpegts

// Stream types of the PMT (ISO/IEC 13818-1 Table 2-34).
const (
	streamTypeMPEG1Audio = 0x03
	streamTypeMPEG2Audio = 0x04
	streamTypePrivate    = 0x06 // PES private data (Opus, with descriptors)
	streamTypeAAC        = 0x0F // ISO/IEC 13818-7 audio with ADTS transport syntax
	streamTypeH264       = 0x1B
	streamTypeH265       = 0x24
)

// programNumber is the only program of the stream.
const programNumber = 1

// transportStreamID is the transport_stream_id of the PAT.
const transportStreamID = 1

// tracks is the set of elementary streams the PMT announces; comparing two
// values tells whether the PMT must change.
type tracks struct {
	video byte // stream type of the video track, 0 if none
	audio byte // stream type of the audio track, 0 if none
	// opusChannels is the channel_config_code of the Opus audio descriptor,
	// used when the audio track is Opus.
	opusChannels byte
}

func (t tracks) empty() bool { return t.video == 0 && t.audio == 0 }

// pcrPID returns the PID that carries the PCR: video if present, else audio.
func (t tracks) pcrPID() uint16 {
	if t.video != 0 {
		return PIDVideo
	}
	return PIDAudio
}

// buildPAT writes the payload of the PAT packet (pointer field, section,
// 0xFF filling) into p.
func buildPAT(p *[maxPayload]byte) {
	s := p[1:]
	p[0] = 0 // pointer_field
	s[0] = 0x00
	s[1] = 0xB0 // section_syntax_indicator, '0', reserved; section_length bits 11..8 = 0
	s[2] = 13   // section_length: 5 header bytes, one program (4), CRC (4)
	s[3] = byte(transportStreamID >> 8)
	s[4] = byte(transportStreamID)
	s[5] = 0xC1 // reserved, version 0, current_next_indicator
	s[6] = 0    // section_number
	s[7] = 0    // last_section_number
	s[8] = byte(programNumber >> 8)
	s[9] = byte(programNumber)
	s[10] = 0xE0 | byte(PIDPMT>>8)
	s[11] = byte(PIDPMT & 0xFF)
	finishSection(p, 12)
}

// buildPMT writes the payload of the PMT packet for t with the given version
// (5 bits) into p.
func buildPMT(p *[maxPayload]byte, t tracks, version byte) {
	s := p[1:]
	p[0] = 0 // pointer_field
	s[0] = 0x02
	s[3] = byte(programNumber >> 8)
	s[4] = byte(programNumber)
	s[5] = 0xC1 | (version&0x1F)<<1
	s[6] = 0
	s[7] = 0
	pcr := t.pcrPID()
	s[8] = 0xE0 | byte(pcr>>8)
	s[9] = byte(pcr)
	s[10] = 0xF0 // reserved, program_info_length = 0
	s[11] = 0x00
	n := 12
	if t.video != 0 {
		n += putES(s[n:], t.video, PIDVideo, nil)
	}
	switch t.audio {
	case 0:
	case streamTypePrivate:
		// Opus: registration descriptor 'Opus' and the DVB extension
		// descriptor carrying the opus_audio_descriptor (ETSI TS Opus
		// 0.1.3-draft), as ffmpeg writes them.
		desc := [...]byte{
			0x05, 4, 'O', 'p', 'u', 's',
			0x7F, 2, 0x80, t.opusChannels,
		}
		n += putES(s[n:], t.audio, PIDAudio, desc[:])
	default:
		n += putES(s[n:], t.audio, PIDAudio, nil)
	}
	sectionLength := n - 3 + 4
	s[1] = 0xB0 | byte(sectionLength>>8)
	s[2] = byte(sectionLength)
	finishSection(p, n)
}

// putES writes one elementary stream entry of the PMT and returns its size.
func putES(b []byte, streamType byte, pid uint16, desc []byte) int {
	b[0] = streamType
	b[1] = 0xE0 | byte(pid>>8)
	b[2] = byte(pid)
	b[3] = 0xF0 | byte(len(desc)>>8)
	b[4] = byte(len(desc))
	return 5 + copy(b[5:], desc)
}

// finishSection appends the CRC to the section of n bytes that starts after
// the pointer field of p and fills the rest of p with 0xFF.
func finishSection(p *[maxPayload]byte, n int) {
	s := p[1:]
	crc := crc32MPEG2(s[:n])
	s[n] = byte(crc >> 24)
	s[n+1] = byte(crc >> 16)
	s[n+2] = byte(crc >> 8)
	s[n+3] = byte(crc)
	for i := n + 4; i < len(s); i++ {
		s[i] = 0xFF
	}
}

// putPSIPacket writes one TS packet carrying the PSI payload p on pid with
// continuity counter cc into b.
func putPSIPacket(b []byte, pid uint16, cc byte, p *[maxPayload]byte) {
	b[0] = 0x47
	b[1] = 0x40 | byte(pid>>8)&0x1F // payload_unit_start_indicator
	b[2] = byte(pid)
	b[3] = 0x10 | cc&0x0F
	copy(b[tsHeaderSize:PacketSize], p[:])
}
