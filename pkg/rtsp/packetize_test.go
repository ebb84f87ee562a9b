package rtsp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// pzBytes returns n pseudo-random bytes starting with head. It never has
// two zero bytes in a row: gortsplib's H.264 and H.265 decoders split
// reassembled NAL units at start codes, which emulation prevention keeps
// out of real NAL units.
func pzBytes(seed uint64, n int, head ...byte) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
		if i > 0 && b[i] == 0 && b[i-1] == 0 {
			b[i] = 1
		}
	}
	copy(b, head)
	return b
}

// pzWithin reports whether sub lies within one of src's slices.
func pzWithin(sub []byte, src [][]byte) bool {
	a := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	for _, s := range src {
		b := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
		if len(sub) > 0 && a >= b && a+uintptr(len(sub)) <= b+uintptr(len(s)) {
			return true
		}
	}
	return false
}

func pzClone(src [][]byte) [][]byte {
	c := make([][]byte, len(src))
	for i, s := range src {
		c[i] = bytes.Clone(s)
	}
	return c
}

// pzCheck checks the packets p made of src: headers, consecutive sequence
// numbers from seq0, marker on the last only, size limit, and payloads
// made of fresh payload headers followed by one slice aliasing src.
func pzCheck(t *testing.T, p *packetizer, seq0 uint16, ts uint32, pkts []rtpOut, src [][]byte) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no packets")
	}
	for i, pkt := range pkts {
		h := pkt.hdr
		if h.Version != 2 || h.PayloadType != p.payloadType || h.Timestamp != ts || h.SSRC != 0 || h.Padding || h.Extension {
			t.Fatalf("packet %d: header %+v", i, h)
		}
		if want := seq0 + uint16(i); h.SequenceNumber != want {
			t.Fatalf("packet %d: sequence number %d, want %d", i, h.SequenceNumber, want)
		}
		if h.Marker != (i == len(pkts)-1) {
			t.Fatalf("packet %d of %d: marker %v", i, len(pkts), h.Marker)
		}
		if n := pkt.payloadLen(); n > p.maxPayload || n != len(pkt.appendPayload(nil)) {
			t.Fatalf("packet %d: payloadLen %d, appended %d, limit %d", i, n, len(pkt.appendPayload(nil)), p.maxPayload)
		}
		last := len(pkt.payload) - 1
		for j, s := range pkt.payload {
			if j < last && (len(s) == 0 || len(s) > 4 || pzWithin(s, src)) {
				t.Fatalf("packet %d: slice %d (%d bytes) is not a fresh payload header", i, j, len(s))
			}
			if j == last && !pzWithin(s, src) {
				t.Fatalf("packet %d: media slice %d (%d bytes) does not alias the source", i, j, len(s))
			}
		}
	}
	if want := seq0 + uint16(len(pkts)); p.seq != want {
		t.Fatalf("next sequence number %d, want %d", p.seq, want)
	}
}

// pzRoundTrip packetizes each access unit with pack, checks the packets
// and that the source is unchanged, and wants decode to return the access
// unit from its last packet and more before. It returns the packet counts.
func pzRoundTrip(t *testing.T, p *packetizer, aus [][][]byte, pack func(*packetizer, [][]byte, uint32) []rtpOut,
	decode func(*rtp.Packet) ([][]byte, error), more error) []int {
	t.Helper()
	var counts []int
	for i, au := range aus {
		ts := uint32(90000 + 3000*i)
		seq0, before := p.seq, pzClone(au)
		pkts := pack(p, au, ts)
		pzCheck(t, p, seq0, ts, pkts, au)
		for j := range au {
			if !bytes.Equal(au[j], before[j]) {
				t.Fatalf("access unit %d: packetizing modified slice %d", i, j)
			}
		}
		for j, pkt := range pkts {
			got, err := decode(&rtp.Packet{Header: pkt.hdr, Payload: pkt.appendPayload(nil)})
			if j < len(pkts)-1 {
				if !errors.Is(err, more) {
					t.Fatalf("access unit %d, packet %d of %d: %v, %d units", i, j, len(pkts), err, len(got))
				}
				continue
			}
			if err != nil {
				t.Fatalf("access unit %d, last packet: %v", i, err)
			}
			if len(got) != len(au) {
				t.Fatalf("access unit %d: decoded %d units, want %d", i, len(got), len(au))
			}
			for k := range au {
				if !bytes.Equal(got[k], au[k]) {
					t.Fatalf("access unit %d: unit %d differs (%d bytes, want %d)", i, k, len(got[k]), len(au[k]))
				}
			}
		}
		counts = append(counts, len(pkts))
	}
	return counts
}

// pzVideo is what the video tests need of a codec.
type pzVideo struct {
	name          string
	hdrLen, fuLen int
	heads         [2][]byte // NAL unit headers, the second with other F/NRI or layer bits
	pack          func(*packetizer, [][]byte, uint32) []rtpOut
	decoder       func(t *testing.T) (func(*rtp.Packet) ([][]byte, error), error)
}

var pzVideos = []pzVideo{
	{
		name: "H264", hdrLen: 1, fuLen: 2,
		heads: [2][]byte{{0x65}, {0x01}},
		pack:  (*packetizer).h264,
		decoder: func(t *testing.T) (func(*rtp.Packet) ([][]byte, error), error) {
			d, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			return d.Decode, rtph264.ErrMorePacketsNeeded
		},
	},
	{
		name: "H265", hdrLen: 2, fuLen: 3,
		heads: [2][]byte{{0x26, 0x01}, {0x03, 0x09}},
		pack:  (*packetizer).h265,
		decoder: func(t *testing.T) (func(*rtp.Packet) ([][]byte, error), error) {
			d, err := (&format.H265{PayloadTyp: 96}).CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			return d.Decode, rtph265.ErrMorePacketsNeeded
		},
	},
}

func TestPacketizeVideoRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range pzVideos {
		h0, h1 := c.heads[0], c.heads[1]
		avail := rtpMaxPayload - c.fuLen
		fus := func(n int) int { return ceilDiv(n-c.hdrLen, avail) }
		cases := []struct {
			name string
			seq  uint16
			aus  [][][]byte
			want []int // packets per access unit
		}{
			{"small", 7, [][][]byte{{pzBytes(1, 30, h0...), pzBytes(2, 8, h1...), pzBytes(3, 1000, h0...)}}, []int{3}},
			{"at limit", 7, [][][]byte{{pzBytes(4, rtpMaxPayload, h0...)}}, []int{1}},
			{"one over", 7, [][][]byte{{pzBytes(5, rtpMaxPayload+1, h1...)}}, []int{2}},
			{"full last fragment", 7, [][][]byte{{pzBytes(6, c.hdrLen+3*avail, h0...)}}, []int{3}},
			{"large among small", 7, [][][]byte{{pzBytes(7, 20, h0...), pzBytes(8, 100_000, h1...), pzBytes(9, 500, h0...)}},
				[]int{2 + fus(100_000)}},
			{"sequence across wrap", 65500, [][][]byte{
				{pzBytes(10, 40, h0...), pzBytes(11, 60_000, h0...)},
				{pzBytes(12, 3000, h1...)},
				{pzBytes(13, 100_000, h1...), pzBytes(14, 9, h0...)},
				{pzBytes(15, 200, h0...)},
			}, []int{1 + fus(60_000), fus(3000), fus(100_000) + 1, 1}},
		}
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := &packetizer{payloadType: 96, maxPayload: rtpMaxPayload, seq: tc.seq}
				decode, more := c.decoder(t)
				got := pzRoundTrip(t, p, tc.aus, c.pack, decode, more)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("packets per access unit %v, want %v", got, tc.want)
				}
			})
		}
	}
}

func TestPacketizeAACRoundTrip(t *testing.T) {
	t.Parallel()
	avail := rtpMaxPayload - 4
	au := func(seed uint64, n int) [][]byte { return [][]byte{pzBytes(seed, n, 0x21)} }
	cases := []struct {
		name string
		seq  uint16
		aus  [][][]byte
		want []int
	}{
		{"small", 3, [][][]byte{au(1, 1), au(2, 6), au(3, 371), au(4, 800)}, []int{1, 1, 1, 1}},
		{"at limit", 3, [][][]byte{au(5, avail)}, []int{1}},
		{"one over", 3, [][][]byte{au(6, avail+1)}, []int{2}},
		{"fragmented", 3, [][][]byte{au(7, 3000)}, []int{3}},
		{"largest", 3, [][][]byte{au(8, mpeg4audio.MaxAccessUnitSize)}, []int{4}},
		{"sequence across wrap", 65533, [][][]byte{au(9, 300), au(10, 4000), au(11, 2*avail), au(12, 5)}, []int{1, 3, 2, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &format.MPEG4Audio{
				PayloadTyp: 97, SizeLength: aacSizeLn, IndexLength: aacIdxLn, IndexDeltaLength: aacIdxLn,
				Config: &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelCount: 2},
			}
			d, err := f.CreateDecoder()
			if err != nil {
				t.Fatal(err)
			}
			p := &packetizer{payloadType: 97, maxPayload: rtpMaxPayload, seq: tc.seq}
			aac := func(p *packetizer, au [][]byte, ts uint32) []rtpOut { return p.aac(au[0], ts) }
			got := pzRoundTrip(t, p, tc.aus, aac, d.Decode, rtpmpeg4audio.ErrMorePacketsNeeded)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("packets per access unit %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPacketizeZeroCopy wants the media slices of the packets to be the
// source itself, in order: each whole NAL unit, or consecutive fragments
// covering all of a NAL unit but its header, or of an AAC access unit.
func TestPacketizeZeroCopy(t *testing.T) {
	t.Parallel()
	// next takes the next packet's media slice, which must start at
	// &src[off] and lie within src, and returns the offset after it.
	next := func(t *testing.T, pkts *[]rtpOut, src []byte, off int) int {
		t.Helper()
		if len(*pkts) == 0 {
			t.Fatal("too few packets")
		}
		pl := (*pkts)[0].payload
		*pkts = (*pkts)[1:]
		m := pl[len(pl)-1]
		if unsafe.SliceData(m) != &src[off] || off+len(m) > len(src) {
			t.Fatalf("media slice of %d bytes is not src[%d:]", len(m), off)
		}
		return off + len(m)
	}
	for _, c := range pzVideos {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := &packetizer{payloadType: 96, maxPayload: 100, seq: 1}
			au := [][]byte{pzBytes(1, 5, c.heads[0]...), pzBytes(2, 1000, c.heads[1]...), pzBytes(3, 100, c.heads[0]...), pzBytes(4, 101, c.heads[0]...)}
			pkts := c.pack(p, au, 0)
			for _, n := range au {
				if len(n) <= p.maxPayload {
					if len(pkts[0].payload) != 1 || next(t, &pkts, n, 0) != len(n) {
						t.Fatalf("NAL unit of %d bytes not sent whole", len(n))
					}
					continue
				}
				for off := c.hdrLen; off < len(n); {
					off = next(t, &pkts, n, off)
				}
			}
			if len(pkts) != 0 {
				t.Fatalf("%d packets left over", len(pkts))
			}
		})
	}
	t.Run("AAC", func(t *testing.T) {
		t.Parallel()
		p := &packetizer{payloadType: 97, maxPayload: 100, seq: 1}
		au := pzBytes(5, 1000, 0x21)
		pkts := p.aac(au, 0)
		for off := 0; off < len(au); {
			off = next(t, &pkts, au, off)
		}
		if len(pkts) != 0 {
			t.Fatalf("%d packets left over", len(pkts))
		}
	})
}

// TestPacketizeHeaders pins the payload headers on the wire, decoder aside.
func TestPacketizeHeaders(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		maxPayload int
		pack       func(p *packetizer) []rtpOut
		want       [][]byte // payload header of each packet
	}{
		{"H264 FU-A", 10, func(p *packetizer) []rtpOut { return p.h264([][]byte{pzBytes(1, 25, 0x65)}, 0) },
			[][]byte{{0x7c, 0x85}, {0x7c, 0x05}, {0x7c, 0x45}}},
		{"H264 FU-A NRI 0", 10, func(p *packetizer) []rtpOut { return p.h264([][]byte{pzBytes(1, 12, 0x01)}, 0) },
			[][]byte{{0x1c, 0x81}, {0x1c, 0x41}}},
		{"H265 FU", 10, func(p *packetizer) []rtpOut { return p.h265([][]byte{pzBytes(1, 23, 0x26, 0x01)}, 0) },
			[][]byte{{0x62, 0x01, 0x93}, {0x62, 0x01, 0x13}, {0x62, 0x01, 0x53}}},
		{"H265 FU layer 33", 10, func(p *packetizer) []rtpOut { return p.h265([][]byte{pzBytes(1, 11, 0x03, 0x09)}, 0) },
			[][]byte{{0x63, 0x09, 0x81}, {0x63, 0x09, 0x41}}},
		{"AAC", rtpMaxPayload, func(p *packetizer) []rtpOut { return p.aac(pzBytes(1, 1446, 0x21), 0) },
			[][]byte{{0x00, 0x10, 0x2d, 0x30}}},
		// Each fragment declares its own size (1446, 1446, 108), as
		// gortsplib's decoder needs.
		{"AAC fragments", rtpMaxPayload, func(p *packetizer) []rtpOut { return p.aac(pzBytes(1, 3000, 0x21), 0) },
			[][]byte{{0x00, 0x10, 0x2d, 0x30}, {0x00, 0x10, 0x2d, 0x30}, {0x00, 0x10, 0x03, 0x60}}},
		// Fragments stay within the 13-bit AU-size (8191), then 809.
		{"AAC size field limit", 1 << 14, func(p *packetizer) []rtpOut { return p.aac(pzBytes(1, 9000, 0x21), 0) },
			[][]byte{{0x00, 0x10, 0xff, 0xf8}, {0x00, 0x10, 0x19, 0x48}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &packetizer{payloadType: 96, maxPayload: tc.maxPayload}
			pkts := tc.pack(p)
			if len(pkts) != len(tc.want) {
				t.Fatalf("%d packets, want %d", len(pkts), len(tc.want))
			}
			for i, pkt := range pkts {
				if len(pkt.payload) != 2 || !bytes.Equal(pkt.payload[0], tc.want[i]) {
					t.Fatalf("packet %d: payload header % x, want % x", i, pkt.payload[0], tc.want[i])
				}
				if pkt.payloadLen() > p.maxPayload {
					t.Fatalf("packet %d: %d bytes", i, pkt.payloadLen())
				}
			}
		})
	}
}

func TestPacketizeSkipsEmpty(t *testing.T) {
	t.Parallel()
	p := &packetizer{payloadType: 96, maxPayload: rtpMaxPayload, seq: 9}
	if pkts := p.h264([][]byte{nil, {}}, 0); pkts != nil {
		t.Fatalf("H.264 of empty NAL units: %d packets", len(pkts))
	}
	if pkts := p.h265([][]byte{{0x26}, nil}, 0); pkts != nil {
		t.Fatalf("H.265 of 1-byte NAL units: %d packets", len(pkts))
	}
	if pkts := p.aac(nil, 0); pkts != nil {
		t.Fatalf("empty AAC access unit: %d packets", len(pkts))
	}
	if p.seq != 9 {
		t.Fatalf("sequence number moved to %d without packets", p.seq)
	}
	// An empty unit last must not take the marker away.
	nalu := pzBytes(1, 50, 0x65)
	pzCheck(t, p, 9, 0, p.h264([][]byte{{}, nalu, {}}, 0), [][]byte{nalu})
	hnalu := pzBytes(2, 50, 0x26, 0x01)
	pzCheck(t, p, 10, 0, p.h265([][]byte{hnalu, {0x02}}, 0), [][]byte{hnalu})
}

func TestPacketizeSequenceWrap(t *testing.T) {
	t.Parallel()
	p := &packetizer{payloadType: 96, maxPayload: 10, seq: 65533}
	var seqs []uint16
	for i := range 3 {
		au := pzBytes(uint64(i), 20, 0x65) // 3 FU-A packets
		for _, pkt := range p.h264([][]byte{au}, 0) {
			seqs = append(seqs, pkt.hdr.SequenceNumber)
		}
		for _, pkt := range p.aac(au, 0) { // 4 packets
			seqs = append(seqs, pkt.hdr.SequenceNumber)
		}
	}
	for i, s := range seqs {
		if want := uint16(65533 + i); s != want {
			t.Fatalf("packet %d: sequence number %d, want %d (all: %v)", i, s, want, seqs)
		}
	}
	if len(seqs) != 21 || p.seq != 18 {
		t.Fatalf("%d packets, next sequence number %d", len(seqs), p.seq)
	}
}

func TestPacketizeNew(t *testing.T) {
	t.Parallel()
	p := newPacketizer(97)
	if p.payloadType != 97 || p.maxPayload != rtpMaxPayload {
		t.Fatalf("%+v", p)
	}
	// Random starts: eight equal ones are as good as impossible.
	for range 7 {
		if newPacketizer(97).seq != p.seq {
			return
		}
	}
	t.Fatalf("sequence numbers always start at %d", p.seq)
}

// BenchmarkPacketizeH264 packetizes a 60 kB key frame with its parameter
// sets, against gortsplib's encoder, which copies the media bytes.
func BenchmarkPacketizeH264(b *testing.B) {
	au := [][]byte{pzBytes(1, 25, 0x67), pzBytes(2, 4, 0x68), pzBytes(3, 60_000, 0x65)}
	size := int64(len(au[0]) + len(au[1]) + len(au[2]))
	b.Run("zero-copy", func(b *testing.B) {
		p := newPacketizer(96)
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			p.h264(au, 0)
		}
	})
	b.Run("gortsplib", func(b *testing.B) {
		enc, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateEncoder()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			if _, err := enc.Encode(au); err != nil {
				b.Fatal(err)
			}
		}
	})
}
