package mpegts

// tsHeaderSize is the size of a TS packet header without adaptation field.
const tsHeaderSize = 4

// maxPayload is the payload capacity of a TS packet without adaptation field.
const maxPayload = PacketSize - tsHeaderSize

// pcrFieldSize is the size of an adaptation field that carries a PCR:
// length byte, flags byte and the 6-byte PCR.
const pcrFieldSize = 8

// mask33 keeps the low 33 bits of a 90 kHz timestamp.
const mask33 = 1<<33 - 1

// pesPacketCount returns how many TS packets a PES of total bytes occupies
// when the first packet carries a PCR adaptation field (withPCR) or not.
func pesPacketCount(total int, withPCR bool) int {
	first := maxPayload
	if withPCR {
		first -= pcrFieldSize
	}
	if total <= first {
		return 1
	}
	return 1 + (total-first+maxPayload-1)/maxPayload
}

// tsWriter spreads one PES over consecutive 188-byte TS packets of buf. The
// PES size is known up front, so the stuffing lands in the adaptation field
// of the last packet and no byte is moved after it is written.
type tsWriter struct {
	buf  []byte
	pos  int    // write position in buf
	end  int    // end of the payload area of the current packet
	left int    // PES bytes not yet written
	pid  uint16 // PID of the PES
	cc   *uint8 // continuity counter of pid (next value to use)
}

// startPES writes the first TS packet header of a PES of total bytes at w.pos.
// If withPCR is set, the adaptation field carries pcr (a 33-bit 90 kHz value,
// extension 0) and, if rai is set, the random_access_indicator.
func (w *tsWriter) startPES(pid uint16, cc *uint8, total int, withPCR bool, pcr uint64, rai bool) {
	w.pid = pid
	w.cc = cc
	w.left = total
	w.packet(true, withPCR, pcr, rai)
}

// packet writes the header (and adaptation field) of the next TS packet of
// the PES and sets w.end to the end of its payload area.
func (w *tsWriter) packet(start, withPCR bool, pcr uint64, rai bool) {
	p := w.buf[w.pos : w.pos+PacketSize]
	afSize := 0
	if withPCR {
		afSize = pcrFieldSize
	}
	n := min(w.left, maxPayload-afSize)
	stuff := maxPayload - afSize - n
	afSize += stuff

	p[0] = 0x47
	p[1] = byte(w.pid>>8) & 0x1F
	if start {
		p[1] |= 0x40
	}
	p[2] = byte(w.pid)
	afc := byte(0x10) // payload only
	if afSize > 0 {
		afc = 0x30 // adaptation field followed by payload
	}
	p[3] = afc | *w.cc&0x0F
	*w.cc = (*w.cc + 1) & 0x0F

	if afSize > 0 {
		p[4] = byte(afSize - 1) // adaptation_field_length
		i := 5
		if afSize > 1 {
			flags := byte(0)
			if withPCR {
				flags |= 0x10
				if rai {
					flags |= 0x40
				}
			}
			p[5] = flags
			i = 6
			if withPCR {
				putPCR(p[6:12], pcr)
				i = 12
			}
			for ; i < tsHeaderSize+afSize; i++ {
				p[i] = 0xFF
			}
		}
	}
	w.pos += tsHeaderSize + afSize
	w.end = w.pos + n
}

// write appends b to the PES, starting new TS packets as needed.
func (w *tsWriter) write(b []byte) {
	for len(b) > 0 {
		if w.pos == w.end {
			w.packet(false, false, 0, false)
		}
		n := copy(w.buf[w.pos:w.end], b)
		w.pos += n
		w.left -= n
		b = b[n:]
	}
}

// putPCR encodes a PCR with base pcr (33 bits, 90 kHz) and extension 0.
func putPCR(b []byte, pcr uint64) {
	pcr &= mask33
	b[0] = byte(pcr >> 25)
	b[1] = byte(pcr >> 17)
	b[2] = byte(pcr >> 9)
	b[3] = byte(pcr >> 1)
	b[4] = byte(pcr<<7) | 0x7E // 6 reserved bits, extension bit 8
	b[5] = 0                   // extension bits 7..0
}

// putTimestamp encodes a 33-bit PTS or DTS with the 4-bit prefix
// ('0010' PTS only, '0011' PTS followed by DTS, '0001' DTS) and marker bits.
func putTimestamp(b []byte, prefix byte, ts uint64) {
	ts &= mask33
	b[0] = prefix<<4 | byte(ts>>29)&0x0E | 1
	b[1] = byte(ts >> 22)
	b[2] = byte(ts>>14) | 1
	b[3] = byte(ts >> 7)
	b[4] = byte(ts<<1) | 1
}

// putPESHeader writes a PES header with the optional header fields
// (data_alignment_indicator set) into b and returns its length: 14 bytes with
// PTS only, 19 with PTS and DTS. A length of 0 means unbounded.
func putPESHeader(b *[19]byte, streamID byte, pesLength int, pts uint64, withDTS bool, dts uint64) int {
	b[0], b[1], b[2] = 0, 0, 1
	b[3] = streamID
	b[4] = byte(pesLength >> 8)
	b[5] = byte(pesLength)
	b[6] = 0x84 // '10', data_alignment_indicator
	if withDTS {
		b[7] = 0xC0
		b[8] = 10
		putTimestamp(b[9:14], 0x3, pts)
		putTimestamp(b[14:19], 0x1, dts)
		return 19
	}
	b[7] = 0x80
	b[8] = 5
	putTimestamp(b[9:14], 0x2, pts)
	return 14
}
