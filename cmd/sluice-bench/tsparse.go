package main

import "errors"

const (
	tsPacketSize = 188
	tsSync       = 0x47
	mask33       = 1<<33 - 1
)

// tsReader walks an MPEG-TS stream packet by packet: PAT → PMT → the video
// PID (or the first audio PID when the program has no video), whose PES
// headers give the frame times (DTS, else PTS) and whose keyframes are told
// by the random_access_indicator or, failing that, by the NAL unit types at
// the start of the PES payload.
type tsReader struct {
	pmtPID    int // -1 until the PAT is seen
	mediaPID  int // -1 until the PMT is seen
	mediaIsAV bool
	hevc      bool
	last      int64 // last unwrapped timestamp, 90 kHz
	have      bool
	resyncs   int
}

func newTSReader() *tsReader { return &tsReader{pmtPID: -1, mediaPID: -1} }

// readTS reads the stream until an error.
func readTS(in *input, st *subStat) error {
	br := in.br
	t := newTSReader()
	for {
		p, err := br.Peek(tsPacketSize)
		if err != nil {
			return err
		}
		if p[0] != tsSync {
			// Lost sync: skip to the next sync byte.
			t.resyncs++
			if t.resyncs > 1000 {
				return errors.New("ts: cannot find packet sync")
			}
			br.Discard(1)
			continue
		}
		t.packet(p, st)
		br.Discard(tsPacketSize)
	}
}

// unwrap extends a 33-bit timestamp to 64 bits, following the previous one.
func (t *tsReader) unwrap(ts uint64) int64 {
	if !t.have {
		t.have = true
		t.last = int64(ts)
		return t.last
	}
	d := int64((ts - uint64(t.last)) & mask33)
	if d >= 1<<32 { // a step backwards
		d -= 1 << 33
	}
	t.last += d
	return t.last
}

// packet handles one 188-byte packet.
func (t *tsReader) packet(p []byte, st *subStat) {
	pusi := p[1]&0x40 != 0
	pid := int(p[1]&0x1f)<<8 | int(p[2])
	afc := (p[3] >> 4) & 3
	off := 4
	rai := false
	if afc&2 != 0 {
		afLen := int(p[4])
		if afLen > 0 {
			rai = p[5]&0x40 != 0
		}
		off = 5 + afLen
	}
	if afc&1 == 0 || off >= tsPacketSize {
		return
	}
	payload := p[off:]
	switch {
	case pid == 0 && pusi:
		t.parsePAT(payload)
	case pid == t.pmtPID && pusi:
		t.parsePMT(payload)
	case pid == t.mediaPID && pusi:
		ts, data, ok := pesTime(payload)
		if !ok {
			return
		}
		ticks := t.unwrap(ts)
		if t.mediaIsAV {
			st.onVideo(ticks, rai || keyNAL(data, t.hevc))
		} else {
			st.onAudio(ticks)
		}
	}
}

// section returns the PSI section that starts in a PUSI payload (after the
// pointer field), bounded by its section_length.
func section(payload []byte) []byte {
	if len(payload) < 1 {
		return nil
	}
	ptr := int(payload[0])
	if 1+ptr+3 > len(payload) {
		return nil
	}
	s := payload[1+ptr:]
	n := 3 + (int(s[1]&0x0f)<<8 | int(s[2]))
	if n > len(s) {
		return nil
	}
	return s[:n]
}

func (t *tsReader) parsePAT(payload []byte) {
	s := section(payload)
	if len(s) < 12 || s[0] != 0x00 {
		return
	}
	// Programs from byte 8 to the CRC.
	for i := 8; i+4 <= len(s)-4; i += 4 {
		prog := int(s[i])<<8 | int(s[i+1])
		if prog != 0 {
			t.pmtPID = int(s[i+2]&0x1f)<<8 | int(s[i+3])
			return
		}
	}
}

func (t *tsReader) parsePMT(payload []byte) {
	s := section(payload)
	if len(s) < 16 || s[0] != 0x02 {
		return
	}
	infoLen := int(s[10]&0x0f)<<8 | int(s[11])
	audio := -1
	for i := 12 + infoLen; i+5 <= len(s)-4; {
		typ := s[i]
		pid := int(s[i+1]&0x1f)<<8 | int(s[i+2])
		esLen := int(s[i+3]&0x0f)<<8 | int(s[i+4])
		switch typ {
		case 0x1b, 0x24, 0x10, 0x02, 0x01: // H.264, H.265, MPEG-4 part 2, MPEG-2/1 video
			t.mediaPID, t.mediaIsAV, t.hevc = pid, true, typ == 0x24
			return
		case 0x0f, 0x11, 0x03, 0x04, 0x06:
			if audio < 0 {
				audio = pid
			}
		}
		i += 5 + esLen
	}
	if audio >= 0 {
		t.mediaPID, t.mediaIsAV = audio, false
	}
}

// pesTime parses the PES header at the start of payload and returns its DTS
// (or its PTS when it has no DTS) and the PES payload bytes in this packet.
func pesTime(b []byte) (ts uint64, data []byte, ok bool) {
	if len(b) < 14 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return 0, nil, false
	}
	flags := b[7] >> 6
	hdrLen := int(b[8])
	if 9+hdrLen > len(b) {
		return 0, nil, false
	}
	switch flags {
	case 2:
		ts = pesTimestamp(b[9:14])
	case 3:
		if len(b) < 19 {
			return 0, nil, false
		}
		ts = pesTimestamp(b[14:19])
	default:
		return 0, nil, false
	}
	return ts, b[9+hdrLen:], true
}

// pesTimestamp decodes the 5-byte PTS/DTS field.
func pesTimestamp(b []byte) uint64 {
	return uint64(b[0]>>1&0x07)<<30 | uint64(b[1])<<22 | uint64(b[2]>>1)<<15 | uint64(b[3])<<7 | uint64(b[4]>>1)
}

// keyNAL says whether the Annex-B bytes at the start of an access unit hold
// an IDR/IRAP slice or a parameter set (which only precede keyframes in the
// streams a server relays).
func keyNAL(b []byte, hevc bool) bool {
	for i := 0; i+3 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		h := b[i+3]
		if hevc {
			typ := (h >> 1) & 0x3f
			if (typ >= 16 && typ <= 21) || (typ >= 32 && typ <= 34) {
				return true
			}
		} else {
			typ := h & 0x1f
			if typ == 5 || typ == 7 {
				return true
			}
		}
		i += 2
	}
	return false
}
