package mpegts

// A small, independent MPEG-TS parser used to check the Muxer's output. It
// validates more than a player would (marker bits, stuffing bytes, CRCs) so
// that tests can fail on subtle encoding errors.

import (
	"errors"
	"fmt"
)

// tsPkt is one parsed TS packet.
type tsPkt struct {
	Index      int // position in the input, in packets
	PID        uint16
	PUSI       bool
	CC         byte
	HasPayload bool
	HasAF      bool
	AFLen      int // adaptation_field_length
	AFFlags    byte
	RAI        bool
	HasPCR     bool
	PCRBase    uint64
	PCRExt     uint16
	Stuffing   int // 0xFF stuffing bytes at the end of the adaptation field
	Payload    []byte
}

// parseTSPacket parses one 188-byte packet.
func parseTSPacket(b []byte) (tsPkt, error) {
	var p tsPkt
	if len(b) != PacketSize {
		return p, fmt.Errorf("packet of %d bytes", len(b))
	}
	if b[0] != 0x47 {
		return p, fmt.Errorf("sync byte 0x%02x", b[0])
	}
	if b[1]&0x80 != 0 {
		return p, errors.New("transport_error_indicator set")
	}
	p.PUSI = b[1]&0x40 != 0
	p.PID = uint16(b[1]&0x1F)<<8 | uint16(b[2])
	if b[3]&0xC0 != 0 {
		return p, errors.New("scrambled")
	}
	afc := b[3] >> 4 & 0x03
	if afc == 0 {
		return p, errors.New("reserved adaptation_field_control 0")
	}
	p.CC = b[3] & 0x0F
	pos := 4
	if afc&0x02 != 0 {
		p.HasAF = true
		l := int(b[4])
		p.AFLen = l
		if afc == 2 && l != 183 {
			return p, fmt.Errorf("adaptation field only, length %d", l)
		}
		if afc == 3 && l > 182 {
			return p, fmt.Errorf("adaptation field length %d with payload", l)
		}
		af := b[5 : 5+l]
		if l > 0 {
			p.AFFlags = af[0]
			p.RAI = af[0]&0x40 != 0
			i := 1
			if af[0]&0x10 != 0 {
				if l < 7 {
					return p, fmt.Errorf("PCR flag with adaptation field length %d", l)
				}
				p.HasPCR = true
				c := af[1:7]
				p.PCRBase = uint64(c[0])<<25 | uint64(c[1])<<17 | uint64(c[2])<<9 | uint64(c[3])<<1 | uint64(c[4])>>7
				if c[4]&0x7E != 0x7E {
					return p, errors.New("PCR reserved bits not set")
				}
				p.PCRExt = uint16(c[4]&0x01)<<8 | uint16(c[5])
				i = 7
			}
			if af[0]&0x0F != 0 {
				// OPCR, splicing, private data, extension: not produced by
				// the Muxer; skip the rest without validating it.
				i = l
			}
			for ; i < l; i++ {
				if af[i] != 0xFF {
					return p, fmt.Errorf("stuffing byte 0x%02x", af[i])
				}
				p.Stuffing++
			}
		}
		pos = 5 + l
	}
	if afc&0x01 != 0 {
		p.HasPayload = true
		p.Payload = b[pos:]
	}
	return p, nil
}

// parseTS splits b into packets.
func parseTS(b []byte) ([]tsPkt, error) {
	if len(b)%PacketSize != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of %d", len(b), PacketSize)
	}
	pkts := make([]tsPkt, 0, len(b)/PacketSize)
	for i := 0; i < len(b); i += PacketSize {
		p, err := parseTSPacket(b[i : i+PacketSize])
		if err != nil {
			return pkts, fmt.Errorf("packet %d: %w", i/PacketSize, err)
		}
		p.Index = i / PacketSize
		pkts = append(pkts, p)
	}
	return pkts, nil
}

// checkCC checks that the continuity counter of every PID advances by one
// per packet with payload and stays for packets without.
func checkCC(pkts []tsPkt) error {
	last := map[uint16]byte{}
	for _, p := range pkts {
		prev, ok := last[p.PID]
		last[p.PID] = p.CC
		if !ok {
			continue
		}
		want := prev
		if p.HasPayload {
			want = (prev + 1) & 0x0F
		}
		if p.CC != want {
			return fmt.Errorf("packet %d PID 0x%x: continuity counter %d, want %d", p.Index, p.PID, p.CC, want)
		}
	}
	return nil
}

// crcBitwise is a bit-at-a-time CRC-32/MPEG-2, independent of the table
// the Muxer uses.
func crcBitwise(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, v := range b {
		for i := 7; i >= 0; i-- {
			bit := uint32(v>>i&1) ^ crc>>31
			crc <<= 1
			if bit != 0 {
				crc ^= 0x04C11DB7
			}
		}
	}
	return crc
}

// parseSection extracts the PSI section that starts in the payload of a
// packet with payload_unit_start_indicator and checks its CRC.
func parseSection(payload []byte) ([]byte, error) {
	if len(payload) < 1 {
		return nil, errors.New("empty PSI payload")
	}
	ptr := int(payload[0])
	if 1+ptr+3 > len(payload) {
		return nil, errors.New("pointer field past the payload")
	}
	s := payload[1+ptr:]
	if s[1]&0x80 == 0 {
		return nil, errors.New("section_syntax_indicator not set")
	}
	n := int(s[1]&0x0F)<<8 | int(s[2])
	if n < 9 || 3+n > len(s) {
		return nil, fmt.Errorf("section_length %d", n)
	}
	s = s[:3+n]
	if crcBitwise(s) != 0 {
		return nil, fmt.Errorf("CRC mismatch (stored %x, computed %x)", s[len(s)-4:], crcBitwise(s[:len(s)-4]))
	}
	for _, v := range payload[1+ptr+len(s):] {
		if v != 0xFF {
			return nil, errors.New("PSI filling byte is not 0xFF")
		}
	}
	return s, nil
}

type esInfo struct {
	Type byte
	PID  uint16
	Desc []byte
}

type pmtInfo struct {
	Program uint16
	Version byte
	PCRPID  uint16
	Streams []esInfo
}

// parsePAT returns the program→PMT PID map of a PAT section.
func parsePAT(s []byte) (map[uint16]uint16, error) {
	if s[0] != 0x00 {
		return nil, fmt.Errorf("PAT table_id 0x%02x", s[0])
	}
	if len(s) < 12 || (len(s)-12)%4 != 0 {
		return nil, fmt.Errorf("PAT of %d bytes", len(s))
	}
	m := map[uint16]uint16{}
	for i := 8; i+4 <= len(s)-4; i += 4 {
		m[uint16(s[i])<<8|uint16(s[i+1])] = uint16(s[i+2]&0x1F)<<8 | uint16(s[i+3])
	}
	return m, nil
}

// parsePMT decodes a PMT section.
func parsePMT(s []byte) (pmtInfo, error) {
	var p pmtInfo
	if s[0] != 0x02 {
		return p, fmt.Errorf("PMT table_id 0x%02x", s[0])
	}
	if len(s) < 16 {
		return p, fmt.Errorf("PMT of %d bytes", len(s))
	}
	p.Program = uint16(s[3])<<8 | uint16(s[4])
	p.Version = s[5] >> 1 & 0x1F
	p.PCRPID = uint16(s[8]&0x1F)<<8 | uint16(s[9])
	infoLen := int(s[10]&0x0F)<<8 | int(s[11])
	i := 12 + infoLen
	end := len(s) - 4
	for i < end {
		if i+5 > end {
			return p, errors.New("truncated ES entry")
		}
		e := esInfo{Type: s[i], PID: uint16(s[i+1]&0x1F)<<8 | uint16(s[i+2])}
		n := int(s[i+3]&0x0F)<<8 | int(s[i+4])
		if i+5+n > end {
			return p, errors.New("ES_info past the section")
		}
		e.Desc = s[i+5 : i+5+n]
		p.Streams = append(p.Streams, e)
		i += 5 + n
	}
	return p, nil
}

// pesUnit is one reassembled PES packet.
type pesUnit struct {
	PID       uint16
	FirstPkt  int // index of the TS packet with payload_unit_start_indicator
	StreamID  byte
	Length    int // PES_packet_length
	DataAlign bool
	PTS, DTS  int64 // -1 if absent
	Data      []byte
	// From the first TS packet of the PES.
	HasPCR  bool
	PCRBase uint64
	RAI     bool
}

// parseTimestamp decodes a 5-byte PTS/DTS field and checks prefix and markers.
func parseTimestamp(b []byte, prefix byte) (int64, error) {
	if b[0]>>4 != prefix {
		return 0, fmt.Errorf("timestamp prefix %x, want %x", b[0]>>4, prefix)
	}
	if b[0]&1 != 1 || b[2]&1 != 1 || b[4]&1 != 1 {
		return 0, errors.New("timestamp marker bit missing")
	}
	return int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1), nil
}

// parsePES decodes a complete PES packet.
func parsePES(b []byte) (pesUnit, error) {
	u := pesUnit{PTS: -1, DTS: -1}
	if len(b) < 9 {
		return u, fmt.Errorf("PES of %d bytes", len(b))
	}
	if b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return u, errors.New("no PES start code")
	}
	u.StreamID = b[3]
	u.Length = int(b[4])<<8 | int(b[5])
	if u.Length != 0 && u.Length != len(b)-6 {
		return u, fmt.Errorf("PES_packet_length %d, have %d bytes", u.Length, len(b)-6)
	}
	if b[6]>>6 != 0x02 {
		return u, errors.New("PES header '10' bits missing")
	}
	u.DataAlign = b[6]&0x04 != 0
	flags := b[7] >> 6
	hl := int(b[8])
	if 9+hl > len(b) {
		return u, errors.New("PES header past the packet")
	}
	h := b[9 : 9+hl]
	var err error
	switch flags {
	case 0:
	case 2:
		if hl < 5 {
			return u, errors.New("short PTS")
		}
		if u.PTS, err = parseTimestamp(h[0:5], 0x2); err != nil {
			return u, err
		}
	case 3:
		if hl < 10 {
			return u, errors.New("short PTS/DTS")
		}
		if u.PTS, err = parseTimestamp(h[0:5], 0x3); err != nil {
			return u, err
		}
		if u.DTS, err = parseTimestamp(h[5:10], 0x1); err != nil {
			return u, err
		}
	default:
		return u, errors.New("forbidden PTS_DTS_flags 01")
	}
	u.Data = b[9+hl:]
	return u, nil
}

// tsStream is a demultiplexed transport stream.
type tsStream struct {
	Pkts []tsPkt
	PATs []map[uint16]uint16
	PMTs []pmtInfo
	// PATIndex holds the packet index of each PAT.
	PATIndex []int
	PES      map[uint16][]pesUnit
}

// demux parses b completely; PES packets are assembled from
// payload_unit_start_indicator to the next one on the same PID.
func demux(b []byte) (*tsStream, error) {
	pkts, err := parseTS(b)
	if err != nil {
		return nil, err
	}
	st := &tsStream{Pkts: pkts, PES: map[uint16][]pesUnit{}}
	type partial struct {
		first tsPkt
		buf   []byte
	}
	open := map[uint16]*partial{}
	flush := func(pid uint16) error {
		pp := open[pid]
		if pp == nil {
			return nil
		}
		delete(open, pid)
		u, err := parsePES(pp.buf)
		if err != nil {
			return fmt.Errorf("PES at packet %d: %w", pp.first.Index, err)
		}
		u.PID = pid
		u.FirstPkt = pp.first.Index
		u.HasPCR, u.PCRBase, u.RAI = pp.first.HasPCR, pp.first.PCRBase, pp.first.RAI
		st.PES[pid] = append(st.PES[pid], u)
		return nil
	}
	for _, p := range pkts {
		switch p.PID {
		case PIDPAT, PIDPMT:
			if !p.PUSI || !p.HasPayload {
				return nil, fmt.Errorf("packet %d: PSI packet without unit start", p.Index)
			}
			s, err := parseSection(p.Payload)
			if err != nil {
				return nil, fmt.Errorf("packet %d: %w", p.Index, err)
			}
			if p.PID == PIDPAT {
				m, err := parsePAT(s)
				if err != nil {
					return nil, err
				}
				st.PATs = append(st.PATs, m)
				st.PATIndex = append(st.PATIndex, p.Index)
			} else {
				m, err := parsePMT(s)
				if err != nil {
					return nil, err
				}
				st.PMTs = append(st.PMTs, m)
			}
			continue
		}
		if !p.HasPayload {
			continue
		}
		if p.PUSI {
			if err := flush(p.PID); err != nil {
				return nil, err
			}
			open[p.PID] = &partial{first: p}
		}
		if pp := open[p.PID]; pp != nil {
			pp.buf = append(pp.buf, p.Payload...)
		}
	}
	for pid := range open {
		if err := flush(pid); err != nil {
			return nil, err
		}
	}
	return st, nil
}
