package rtsp

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/pion/rtp"
)

// This file packetizes access units into RTP without copying media bytes:
// each packet's payload is a list of slices that alias the source access
// unit, plus the few payload-header bytes made here. gortsplib's encoders
// copy every NAL unit fragment into a fresh payload instead.

// rtpMaxPayload is the payload size gortsplib's encoders default to: a
// 1500-byte MTU less the IP, UDP, RTP and SRTP overheads.
const rtpMaxPayload = 1450

// Bits of the FU header (RFC 6184 §5.8, RFC 7798 §4.4.3).
const (
	fuStart = 0x80
	fuEnd   = 0x40
)

// rtpOut is one RTP packet of an access unit: its header and its payload as
// slices, each either payload-header bytes made here or a sub-slice of the
// source (never copied, never modified). Slices may be shared between the
// packets of one access unit, so treat all of them as read-only.
type rtpOut struct {
	hdr     rtp.Header
	payload [][]byte
}

func (p *rtpOut) payloadLen() int {
	n := 0
	for _, b := range p.payload {
		n += len(b)
	}
	return n
}

// appendPayload appends the payload bytes, contiguous, to b.
func (p *rtpOut) appendPayload(b []byte) []byte {
	for _, s := range p.payload {
		b = append(b, s...)
	}
	return b
}

// packet is p with its payload joined, for gortsplib's stream.
func (p *rtpOut) packet() *rtp.Packet {
	return &rtp.Packet{Header: p.hdr, Payload: p.appendPayload(make([]byte, 0, p.payloadLen()))}
}

// packetizer numbers and packetizes the access units of one track. Each
// call returns freshly allocated packets (three allocations per access
// unit, whatever its size), so the caller may keep or share them after the
// next call.
type packetizer struct {
	payloadType uint8
	// maxPayload is the payload size limit, payload headers included; it
	// must exceed 4, the longest payload header.
	maxPayload int
	seq        uint16 // sequence number of the next packet
}

// newPacketizer starts the sequence numbers at a random value, as RFC 3550
// §5.1 asks.
func newPacketizer(payloadType uint8) *packetizer {
	return &packetizer{payloadType: payloadType, maxPayload: rtpMaxPayload, seq: uint16(rand.Uint32())}
}

// naluFU is how a codec fragments a NAL unit too big for one packet.
type naluFU struct {
	minLen int // shorter NAL units are skipped
	hdrLen int // NAL unit header bytes, replaced in fragments by the FU's
	fuLen  int // payload header bytes of a fragment
	// header writes the fuLen payload-header bytes of a fragment of nalu
	// to dst; se is fuStart, fuEnd or 0.
	header func(dst, nalu []byte, se byte)
}

var (
	h264FU = naluFU{minLen: 1, hdrLen: 1, fuLen: 2, header: func(dst, nalu []byte, se byte) {
		dst[0] = nalu[0]&0xe0 | 28 // FU indicator: F and NRI of the NAL unit, type FU-A
		dst[1] = se | nalu[0]&0x1f
	}}
	h265FU = naluFU{minLen: 2, hdrLen: 2, fuLen: 3, header: func(dst, nalu []byte, se byte) {
		dst[0] = nalu[0]&0x81 | 49<<1 // PayloadHdr: F and LayerId of the NAL unit, type FU
		dst[1] = nalu[1]
		dst[2] = se | (nalu[0]>>1)&0x3f
	}}
)

// h264 packetizes an access unit in RFC 6184 packetization mode 1, with
// single NAL unit packets and FU-A (no STAP-A, which would need a copy).
func (p *packetizer) h264(nalus [][]byte, ts uint32) []rtpOut {
	return p.video(nalus, ts, &h264FU)
}

// h265 packetizes an access unit as RFC 7798 single NAL unit packets and
// FUs, without DONL (sprop-max-don-diff 0).
func (p *packetizer) h265(nalus [][]byte, ts uint32) []rtpOut {
	return p.video(nalus, ts, &h265FU)
}

// video sends each NAL unit that fits whole and fragments the others. It
// sizes everything first so that the packets, their slice lists and all the
// FU headers take one allocation each.
func (p *packetizer) video(nalus [][]byte, ts uint32, fu *naluFU) []rtpOut {
	avail := p.maxPayload - fu.fuLen
	packets, parts, hdrs := 0, 0, 0
	for _, n := range nalus {
		switch {
		case len(n) < fu.minLen:
		case len(n) <= p.maxPayload:
			packets++
			parts++
		default:
			k := ceilDiv(len(n)-fu.hdrLen, avail)
			packets += k
			parts += 2 * k
			hdrs += 3 * fu.fuLen
		}
	}
	if packets == 0 {
		return nil
	}
	out := make([]rtpOut, 0, packets)
	part := make([][]byte, parts)
	hdr := make([]byte, hdrs)
	for _, n := range nalus {
		if len(n) < fu.minLen {
			continue
		}
		if len(n) <= p.maxPayload {
			part[0] = n
			out = p.add(out, ts, part[:1:1])
			part = part[1:]
			continue
		}
		// Only the S and E bits differ between fragments: the middle ones
		// share one header. A NAL unit that does not fit takes at least
		// two fragments, so first and last are distinct packets.
		first, mid, last := hdr[:fu.fuLen], hdr[fu.fuLen:2*fu.fuLen], hdr[2*fu.fuLen:3*fu.fuLen]
		hdr = hdr[3*fu.fuLen:]
		fu.header(first, n, fuStart)
		fu.header(mid, n, 0)
		fu.header(last, n, fuEnd)
		for i, body := 0, n[fu.hdrLen:]; len(body) > 0; i++ {
			frag := body[:min(avail, len(body))]
			body = body[len(frag):]
			h := mid
			switch {
			case i == 0:
				h = first
			case len(body) == 0:
				h = last
			}
			part[0], part[1] = h, frag
			out = p.add(out, ts, part[:2:2])
			part = part[2:]
		}
	}
	out[len(out)-1].hdr.Marker = true
	return out
}

// aac packetizes one AAC access unit in RFC 3640 AAC-hbr mode (sizeLength
// 13, indexLength 3), one access unit per packet, fragmented when it does
// not fit.
//
// In a fragment, the AU-size is the size of that fragment, not of the
// whole access unit as RFC 3640 §3.2.1.1 has it: gortsplib's decoder
// (v5.6.4) takes AU-size bytes from each fragment and rejects a packet
// shorter than its AU-size, and this is also what its encoder, which
// Sluice used before, sends. Players that follow the RFC (FFmpeg) cannot
// reassemble such fragments; AAC access units bigger than a packet are
// rare (more than two channels, or stereo near the maximum bit rate).
func (p *packetizer) aac(au []byte, ts uint32) []rtpOut {
	if len(au) == 0 {
		return nil
	}
	const hdrLen = 4 // AU-headers-length and one AU-header
	avail := min(p.maxPayload-hdrLen, 1<<aacSizeLn-1)
	k := ceilDiv(len(au), avail)
	out := make([]rtpOut, 0, k)
	part := make([][]byte, 2*k)
	hdr := make([]byte, 2*hdrLen)
	full, last := hdr[:hdrLen], hdr[hdrLen:]
	aacHeader(full, avail)
	aacHeader(last, len(au)-(k-1)*avail)
	for i := range k {
		h, frag := full, au[i*avail:min((i+1)*avail, len(au))]
		if i == k-1 {
			h = last
		}
		part[0], part[1] = h, frag
		out = p.add(out, ts, part[:2:2])
		part = part[2:]
	}
	out[k-1].hdr.Marker = true
	return out
}

// aacHeader writes the AU-headers-length (in bits) and the one AU-header,
// AU-size then a zero AU-Index, of a packet carrying size bytes.
func aacHeader(dst []byte, size int) {
	binary.BigEndian.PutUint16(dst, aacSizeLn+aacIdxLn)
	binary.BigEndian.PutUint16(dst[2:], uint16(size<<aacIdxLn))
}

// add appends the next packet of the track to out.
func (p *packetizer) add(out []rtpOut, ts uint32, payload [][]byte) []rtpOut {
	out = append(out, rtpOut{
		hdr: rtp.Header{
			Version:        2,
			PayloadType:    p.payloadType,
			SequenceNumber: p.seq,
			Timestamp:      ts,
		},
		payload: payload,
	})
	p.seq++
	return out
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
