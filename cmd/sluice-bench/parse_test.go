package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"sluice/pkg/flv"
	"sluice/pkg/rtmp"
)

func TestPercentile(t *testing.T) {
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing should be NaN")
	}
	v := sortedCopy([]float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10})
	for _, c := range []struct{ p, want float64 }{{0, 1}, {1, 1}, {10, 1}, {11, 2}, {50, 5}, {90, 9}, {99, 10}, {100, 10}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	big := make([]float64, 1000)
	for i := range big {
		big[i] = float64(i + 1)
	}
	if got := percentile(big, 99); got != 990 {
		t.Errorf("p99 of 1..1000 = %v, want 990", got)
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("p99 of one = %v", got)
	}
}

func TestMediaClock(t *testing.T) {
	var c mediaClock
	for _, ts := range []int64{1000, 4600, 3600, 8200, 8200, 8200 + 2*ticksPerSecond, 8200 + 2*ticksPerSecond + 3600} {
		c.add(ts)
	}
	// 1000→4600 (3600), 4600→8200 (3600, the backward 3600 ignored), a 2 s gap, then 3600.
	if c.total != 3*3600 || c.gaps != 1 {
		t.Errorf("total %d gaps %d, want %d and 1", c.total, c.gaps, 3*3600)
	}
}

// flvStream builds an FLV stream: script, sequence headers, then frames.
func flvStream() []byte {
	b := flv.AppendFileHeader(nil, true, true)
	b = flv.AppendTag(b, flv.TagScript, 0, []byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'})
	b = flv.AppendTag(b, flv.TagVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 2, 3})                       // AVC sequence header
	b = flv.AppendTag(b, flv.TagAudio, 0, []byte{0xaf, 0, 0x12, 0x10})                             // AAC sequence header
	b = flv.AppendTag(b, flv.TagVideo, 0, append([]byte{0x17, 1, 0, 0, 0}, make([]byte, 3000)...)) // keyframe
	b = flv.AppendTag(b, flv.TagAudio, 23, []byte{0xaf, 1, 9, 9})
	b = flv.AppendTag(b, flv.TagVideo, 40, []byte{0x27, 1, 0, 0, 0, 7})
	b = flv.AppendTag(b, flv.TagAudio, 46, []byte{0xaf, 1, 9, 9})
	b = flv.AppendTag(b, flv.TagVideo, 80, []byte{0x27, 1, 0, 0, 0, 7})
	// Extended timestamp byte: 0x01000000 + 120 ms would be far away; keep it continuous instead.
	b = flv.AppendTag(b, flv.TagVideo, 120, []byte{0x27, 1})
	return b
}

func TestReadFLV(t *testing.T) {
	data := flvStream()
	for _, name := range []string{"whole", "one byte at a time"} {
		var r io.Reader = bytes.NewReader(data)
		if name != "whole" {
			r = iotest.OneByteReader(r)
		}
		st := &subStat{reqAt: time.Now()}
		var frames []uint32
		err := readFLV(&input{br: bufio.NewReaderSize(r, 16)}, st, func(ts uint32) { frames = append(frames, ts) })
		if err != io.EOF {
			t.Fatalf("%s: err %v, want io.EOF", name, err)
		}
		if got := st.media.Load(); got != 120*90 {
			t.Errorf("%s: media %d ticks, want %d", name, got, 120*90)
		}
		if st.firstKey.Load() <= 0 {
			t.Errorf("%s: no first keyframe recorded", name)
		}
		if want := []uint32{0, 40, 80, 120}; !equalU32(frames, want) {
			t.Errorf("%s: video frames %v, want %v", name, frames, want)
		}
	}
}

func TestReadFLVOutOfSync(t *testing.T) {
	data := append(flv.AppendFileHeader(nil, true, true), 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	if err := readFLV(&input{br: bufio.NewReader(bytes.NewReader(data))}, &subStat{}, nil); err == nil || err == io.EOF {
		t.Fatalf("err %v, want an out-of-sync error", err)
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestVideoKind(t *testing.T) {
	for _, c := range []struct {
		name       string
		b          []byte
		media, key bool
	}{
		{"avc key", []byte{0x17, 1, 0, 0, 0}, true, true},
		{"avc inter", []byte{0x27, 1, 0, 0, 0}, true, false},
		{"avc seq header", []byte{0x17, 0, 0, 0, 0}, false, false},
		{"avc end of seq", []byte{0x17, 2, 0, 0, 0}, false, false},
		{"hevc key", []byte{0x1c, 1, 0, 0, 0}, true, true},
		{"command frame", []byte{0x57, 0}, false, false},
		{"vp6 key", []byte{0x14, 0}, true, true},
		{"enhanced key coded", []byte{0x80 | 0x10 | 1, 'h', 'v', 'c', '1'}, true, true},
		{"enhanced inter codedX", []byte{0x80 | 0x20 | 3, 'a', 'v', '0', '1'}, true, false},
		{"enhanced seq start", []byte{0x80 | 0x10 | 0, 'h', 'v', 'c', '1'}, false, false},
		{"empty", nil, false, false},
	} {
		media, key := videoKind(c.b)
		if media != c.media || key != c.key {
			t.Errorf("%s: media %v key %v, want %v %v", c.name, media, key, c.media, c.key)
		}
	}
	if audioMedia([]byte{0xaf, 0}) || !audioMedia([]byte{0xaf, 1}) || !audioMedia([]byte{0x72}) {
		t.Error("audioMedia misclassifies AAC header/raw or G.711")
	}
}

// rtmpBytes builds a server-to-client chunk stream.
func rtmpBytes() []byte {
	var b []byte
	// Play.Start-like command, chunk size 128.
	b = rtmp.AppendChunks(b, 5, rtmp.TypeCommandAMF0, 1, 0, []byte{2, 0, 8, 'o', 'n', 'S', 't', 'a', 't', 'u', 's', 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, 128)
	b = rtmp.AppendWindowAckSize(b, 1000)
	b = rtmp.AppendSetChunkSize(b, 4096)
	b = rtmp.AppendChunks(b, 7, rtmp.TypeVideo, 1, 0, []byte{0x17, 0, 0, 0, 0, 1, 2}, 4096)
	b = rtmp.AppendChunks(b, 6, rtmp.TypeAudio, 1, 0, []byte{0xaf, 0, 0x12, 0x10}, 4096)
	b = rtmp.AppendChunks(b, 7, rtmp.TypeVideo, 1, 0, append([]byte{0x17, 1, 0, 0, 0}, make([]byte, 10000)...), 4096)
	b = rtmp.AppendUserControl(b, rtmp.EventPingRequest, 77)
	b = rtmp.AppendChunks(b, 6, rtmp.TypeAudio, 1, 23, []byte{0xaf, 1, 5}, 4096)
	b = rtmp.AppendChunks(b, 7, rtmp.TypeVideo, 1, 40, []byte{0x27, 1, 0, 0, 0, 9}, 4096)
	// fmt 1 (delta 40, new length) and fmt 3 starting a new message (delta 40 again).
	b = append(b, 1<<6|7, 0, 0, 40, 0, 0, 6, rtmp.TypeVideo, 0x27, 1, 0, 0, 0, 9)
	b = append(b, 3<<6|7, 0x27, 1, 0, 0, 0, 9)
	// Extended timestamp: the AppendChunks output carries it on every chunk.
	b = rtmp.AppendChunks(b, 7, rtmp.TypeVideo, 1, 0x1000000, append([]byte{0x27, 1, 0, 0, 0}, make([]byte, 5000)...), 4096)
	return b
}

func TestRTMPReader(t *testing.T) {
	data := rtmpBytes()
	for _, name := range []string{"whole", "one byte at a time"} {
		var r io.Reader = bytes.NewReader(data)
		if name != "whole" {
			r = iotest.OneByteReader(r)
		}
		var out bytes.Buffer
		var read uint64
		rr := newRTMPReader(&input{br: bufio.NewReaderSize(r, 16)}, func() uint64 { read += 1000; return read }, &out)
		cs, err := rr.readMessage()
		if err != nil || cs.typeID != rtmp.TypeCommandAMF0 || !bytes.HasPrefix(cs.payload, []byte{2, 0, 8, 'o', 'n'}) {
			t.Fatalf("%s: first message %+v, %v", name, cs, err)
		}
		st := &subStat{reqAt: time.Now()}
		var frames []uint32
		err = readRTMPMedia(rr, st, func(ts uint32) { frames = append(frames, ts) })
		if err != io.EOF {
			t.Fatalf("%s: err %v, want io.EOF", name, err)
		}
		if rr.chunkSize != 4096 || rr.peerWin != 1000 {
			t.Errorf("%s: chunk size %d window %d", name, rr.chunkSize, rr.peerWin)
		}
		if want := []uint32{0, 40, 80, 120, 0x1000000}; !equalU32(frames, want) {
			t.Errorf("%s: video frames %v, want %v", name, frames, want)
		}
		if st.firstKey.Load() <= 0 {
			t.Errorf("%s: no keyframe", name)
		}
		// Ping answered, acknowledgements sent.
		cr := rtmp.NewChunkReader(&out, rtmp.ReaderLimits{})
		var pong, acks int
		for {
			m, err := cr.ReadMessage()
			if err != nil {
				break
			}
			switch m.TypeID {
			case rtmp.TypeUserControl:
				ev, arg, _, _ := rtmp.ParseUserControl(m.Payload)
				if ev == rtmp.EventPingResponse && arg == 77 {
					pong++
				}
			case rtmp.TypeAck:
				acks++
			}
		}
		if pong != 1 || acks == 0 {
			t.Errorf("%s: %d ping responses and %d acks written", name, pong, acks)
		}
	}
}

func TestWalkAggregate(t *testing.T) {
	var agg []byte
	agg = flv.AppendTag(agg, flv.TagVideo, 1000, []byte{0x17, 1, 0, 0, 0})
	agg = flv.AppendTag(agg, flv.TagAudio, 1010, []byte{0xaf, 1})
	agg = flv.AppendTag(agg, flv.TagVideo, 1040, []byte{0x27, 1, 0, 0, 0})
	st := &subStat{reqAt: time.Now()}
	var frames []uint32
	if err := walkAggregate(agg, 5000, st, func(ts uint32) { frames = append(frames, ts) }); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{5000, 5040}; !equalU32(frames, want) {
		t.Errorf("frames %v, want %v", frames, want)
	}
}

// tsPacket builds one 188-byte TS packet; af is the adaptation field body
// (nil: none), the payload is padded by stuffing in the adaptation field.
func tsPacket(pid int, pusi, rai bool, payload []byte) []byte {
	p := make([]byte, 4, tsPacketSize)
	p[0] = tsSync
	p[1] = byte(pid>>8) & 0x1f
	if pusi {
		p[1] |= 0x40
	}
	p[2] = byte(pid)
	need := tsPacketSize - 4 - len(payload)
	if need > 0 || rai {
		p[3] = 0x30
		afLen := max(need-1, 1)
		p = append(p, byte(afLen))
		flags := byte(0)
		if rai {
			flags = 0x40
		}
		p = append(p, flags)
		for len(p) < 5+afLen {
			p = append(p, 0xff)
		}
	} else {
		p[3] = 0x10
	}
	p = append(p, payload...)
	return p[:tsPacketSize]
}

func putTimestamp(b []byte, marker byte, ts uint64) {
	b[0] = marker<<4 | byte(ts>>29)&0x0e | 1
	b[1] = byte(ts >> 22)
	b[2] = byte(ts>>14) | 1
	b[3] = byte(ts >> 7)
	b[4] = byte(ts<<1) | 1
}

// pes returns a PES header with PTS (and DTS when dts >= 0) plus data.
func pes(streamID byte, pts uint64, dts int64, data []byte) []byte {
	h := []byte{0, 0, 1, streamID, 0, 0, 0x80, 0x80, 5}
	if dts >= 0 {
		h[7], h[8] = 0xc0, 10
	}
	h = append(h, make([]byte, int(h[8]))...)
	if dts >= 0 {
		putTimestamp(h[9:], 3, pts)
		putTimestamp(h[14:], 1, uint64(dts))
	} else {
		putTimestamp(h[9:], 2, pts)
	}
	return append(h, data...)
}

func psi(tableID byte, body []byte) []byte {
	n := 5 + len(body) + 4
	s := []byte{0, tableID, 0xb0 | byte(n>>8), byte(n), 0, 1, 0xc1, 0, 0}
	s = append(s, body...)
	return append(s, 0, 0, 0, 0) // CRC not checked
}

func tsStream(base uint64) []byte {
	var b []byte
	b = append(b, tsPacket(0, true, false, psi(0x00, []byte{0, 1, 0xf0, 0x01}))...)      // program 1 → PMT PID 0x1001
	b = append(b, tsPacket(0x1001, true, false, psi(0x02, []byte{0xe1, 0x00, 0xf0, 0x00, // PCR PID 0x100, no program info
		0x0f, 0xe1, 0x01, 0xf0, 0x00, // AAC on 0x101
		0x1b, 0xe1, 0x00, 0xf0, 0x00}))...) // H.264 on 0x100
	idr := []byte{0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x65, 1}
	b = append(b, tsPacket(0x100, true, true, pes(0xe0, base+7200, int64(base), idr))...)
	b = append(b, tsPacket(0x100, false, false, bytes.Repeat([]byte{7}, 184))...)
	b = append(b, tsPacket(0x101, true, false, pes(0xc0, base+1000, -1, []byte{0xff, 0xf1}))...)
	for i := uint64(1); i <= 3; i++ {
		ts := (base + i*3600) & mask33
		b = append(b, tsPacket(0x100, true, false, pes(0xe0, (ts+7200)&mask33, int64(ts), []byte{0, 0, 1, 0x41, 1}))...)
	}
	return b
}

func TestReadTS(t *testing.T) {
	for _, base := range []uint64{90000, mask33 - 5000} { // the second wraps the 33-bit clock
		st := &subStat{reqAt: time.Now()}
		err := readTS(&input{br: bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(tsStream(base))), 200)}, st)
		if err != io.EOF {
			t.Fatalf("base %d: err %v", base, err)
		}
		if got := st.media.Load(); got != 3*3600 {
			t.Errorf("base %d: media %d ticks, want %d", base, got, 3*3600)
		}
		if st.firstKey.Load() <= 0 {
			t.Errorf("base %d: no keyframe", base)
		}
		if st.gaps.Load() != 0 {
			t.Errorf("base %d: %d gaps", base, st.gaps.Load())
		}
	}
}

func TestReadTSKeyWithoutRAI(t *testing.T) {
	// The same stream with the random_access_indicator cleared: the keyframe
	// is found by its NAL units.
	b := tsStream(0)
	p := b[2*tsPacketSize : 3*tsPacketSize]
	p[5] &^= 0x40
	st := &subStat{reqAt: time.Now()}
	readTS(&input{br: bufio.NewReader(bytes.NewReader(b))}, st)
	if st.firstKey.Load() <= 0 {
		t.Error("keyframe not found from its NAL units")
	}
}

func TestPESTime(t *testing.T) {
	ts, data, ok := pesTime(pes(0xe0, 123456789, -1, []byte{1, 2}))
	if !ok || ts != 123456789 || !bytes.Equal(data, []byte{1, 2}) {
		t.Errorf("PTS only: %d %v %v", ts, data, ok)
	}
	ts, _, ok = pesTime(pes(0xe0, 1<<32+5, 1<<32, nil))
	if !ok || ts != 1<<32 {
		t.Errorf("PTS+DTS: %d %v, want the DTS %d", ts, ok, uint64(1<<32))
	}
	if _, _, ok := pesTime([]byte{0, 0, 2, 0xe0}); ok {
		t.Error("bad start code accepted")
	}
}

func rtpPacket(marker bool, seq uint16, ts uint32, payload []byte) []byte {
	p := make([]byte, 12)
	p[0] = 0x80
	p[1] = 96
	if marker {
		p[1] |= 0x80
	}
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], 0x1234)
	return append(p, payload...)
}

func interleaved(ch byte, p []byte) []byte {
	return append([]byte{'$', ch, byte(len(p) >> 8), byte(len(p))}, p...)
}

func TestReadInterleaved(t *testing.T) {
	var b []byte
	base := uint32(0xffffffff - 3000) // wraps
	// Keyframe in FU-A fragments: start (IDR), middle, end with marker.
	b = append(b, interleaved(0, rtpPacket(false, 1, base, []byte{0x7c, 0x85, 1, 2}))...)
	b = append(b, interleaved(2, rtpPacket(true, 1, 999, []byte{0x21}))...) // audio track: ignored
	b = append(b, interleaved(0, rtpPacket(false, 2, base, []byte{0x7c, 0x05, 3}))...)
	b = append(b, interleaved(0, rtpPacket(true, 3, base, []byte{0x7c, 0x45, 4}))...)
	// An RTSP response (to a keepalive) between packets.
	b = append(b, "RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nabcd"...)
	for i := uint32(1); i <= 3; i++ {
		b = append(b, interleaved(0, rtpPacket(true, uint16(3+i), base+i*3600, make([]byte, 1500)))...)
	}
	br := bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(b)), 128)
	c := &rtspClient{in: &input{br: br}, br: br, mediaCh: 0, mediaRate: 90000, mediaIsAV: true, timeout: time.Minute}
	st := &subStat{reqAt: time.Now()}
	if err := c.readInterleaved(st, nil); err != io.EOF {
		t.Fatalf("err %v", err)
	}
	if got := st.media.Load(); got != 3*3600 {
		t.Errorf("media %d ticks, want %d", got, 3*3600)
	}
	if st.firstKey.Load() <= 0 {
		t.Error("no keyframe")
	}
}

func TestRTPClockRate(t *testing.T) {
	c := rtpClock{rate: 44100}
	c.ticks(1000)
	if got := c.ticks(1000+44100) - 1000*ticksPerSecond/44100; got != ticksPerSecond {
		t.Errorf("one second at 44.1 kHz = %d ticks, want %d", got, ticksPerSecond)
	}
}

func TestParseRTP(t *testing.T) {
	p := rtpPacket(true, 7, 0xdeadbeef, []byte{0x65})
	h, ok := parseRTP(p)
	if !ok || !h.marker || h.timestamp != 0xdeadbeef || h.payloadOff != 12 {
		t.Errorf("plain: %+v %v", h, ok)
	}
	// Two CSRCs and a one-word extension.
	q := rtpPacket(false, 7, 5, nil)
	q[0] |= 0x10 | 2
	q = append(q, make([]byte, 8)...)           // CSRCs
	q = append(q, 0xbe, 0xde, 0, 1, 1, 2, 3, 4) // extension header + 1 word
	q = append(q, 0x41)
	h, ok = parseRTP(q)
	if !ok || h.marker || h.payloadOff != 12+8+8 || q[h.payloadOff] != 0x41 {
		t.Errorf("csrc+ext: %+v %v", h, ok)
	}
	if _, ok := parseRTP([]byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); ok {
		t.Error("version 1 accepted")
	}
}

func TestRTPKeyStart(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		hevc bool
		want bool
	}{
		{"h264 idr", []byte{0x65}, false, true},
		{"h264 sps", []byte{0x67}, false, true},
		{"h264 non-idr", []byte{0x41}, false, false},
		{"h264 stap-a sps", []byte{0x78, 0, 5, 0x67}, false, true},
		{"h264 fu-a idr start", []byte{0x7c, 0x85}, false, true},
		{"h264 fu-a idr middle", []byte{0x7c, 0x05}, false, false},
		{"h265 idr_w_radl", []byte{19 << 1, 1}, true, true},
		{"h265 trail", []byte{1 << 1, 1}, true, false},
		{"h265 ap vps", []byte{48 << 1, 1, 0, 10, 32 << 1, 1}, true, true},
		{"h265 fu cra start", []byte{49 << 1, 1, 0x80 | 21}, true, true},
		{"h265 fu cra middle", []byte{49 << 1, 1, 21}, true, false},
	} {
		if got := rtpKeyStart(c.p, c.hevc); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSDPAndControl(t *testing.T) {
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Stream\r\nt=0 0\r\na=control:*\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:rtsp://h/live/x/trackID=1\r\n"
	sess, tracks := parseSDP(sdp)
	if sess != "*" || len(tracks) != 2 {
		t.Fatalf("session %q, %d tracks", sess, len(tracks))
	}
	if v := tracks[0]; v.media != "video" || v.codec != "H264" || v.rate != 90000 || v.control != "trackID=0" {
		t.Errorf("video %+v", v)
	}
	if a := tracks[1]; a.media != "audio" || a.codec != "MPEG4-GENERIC" || a.rate != 44100 {
		t.Errorf("audio %+v", a)
	}
	for _, c := range []struct{ base, ctl, want string }{
		{"rtsp://h/live/x", "trackID=0", "rtsp://h/live/x/trackID=0"},
		{"rtsp://h/live/x/", "trackID=0", "rtsp://h/live/x/trackID=0"},
		{"rtsp://h/live/x", "*", "rtsp://h/live/x"},
		{"rtsp://h/live/x", "", "rtsp://h/live/x"},
		{"rtsp://h/live/x", "rtsp://o/y", "rtsp://o/y"},
	} {
		if got := controlURL(c.base, c.ctl); got != c.want {
			t.Errorf("controlURL(%q, %q) = %q, want %q", c.base, c.ctl, got, c.want)
		}
	}
	if ch, ok := interleavedOf("RTP/AVP/TCP;unicast;interleaved=4-5;ssrc=1"); !ok || ch != 4 {
		t.Errorf("interleavedOf: %d %v", ch, ok)
	}
}

func TestRTSPResponse(t *testing.T) {
	in := "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Base: rtsp://h/x/\r\nContent-Length: 5\r\n\r\nv=0\r\n$\x00\x00\x01"
	br := bufio.NewReader(strings.NewReader(in))
	r, err := readRTSPResponse(br)
	if err != nil || r.status != 200 || r.headers["content-base"] != "rtsp://h/x/" || r.body != "v=0\r\n" {
		t.Fatalf("%+v %v", r, err)
	}
	if b, _ := br.Peek(1); b[0] != '$' {
		t.Error("response read past its body")
	}
	if _, err := readRTSPResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n\r\n"))); err == nil {
		t.Error("HTTP status line accepted")
	}
}

func TestProcParsing(t *testing.T) {
	stat := []byte("1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615")
	cpu, err := parseProcStat(stat)
	if err != nil || math.Abs(cpu-300/clkTck()) > 1e-9 {
		t.Errorf("cpu %v %v, want %v", cpu, err, 300/clkTck())
	}
	status := []byte("Name:\tsluice\nVmPeak:\t  100 kB\nVmHWM:\t   9000 kB\nVmRSS:\t   8000 kB\nThreads:\t5\n")
	rss, hwm, err := parseProcStatus(status)
	if err != nil || rss != 8000 || hwm != 9000 {
		t.Errorf("rss %d hwm %d %v", rss, hwm, err)
	}
	if _, _, err := parseProcStatus([]byte("Name: x\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
	if _, err := parseProcStat([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestParseRunsAndURLs(t *testing.T) {
	runs, err := parseRuns("flv:1000, rtmp:3000")
	if err != nil || len(runs) != 2 || runs[1] != (matrixRun{"rtmp", 3000}) {
		t.Errorf("%v %v", runs, err)
	}
	if _, err := parseRuns("hls:10"); err == nil {
		t.Error("hls accepted")
	}
	if got := expandURL("http://h/live/s{i}.flv", 7); got != "http://h/live/s7.flv" {
		t.Error(got)
	}
	for u, want := range map[string]string{"rtmp://h/a/b": "rtmp", "rtsp://h/a": "rtsp", "http://h/a.ts": "ts", "http://h/a.flv": "flv"} {
		if got := protoOfURL(u); got != want {
			t.Errorf("protoOfURL(%q) = %q", u, got)
		}
	}
	if a, err := dialAddr(protoFLV, "http://127.0.0.1/x.flv"); err != nil || a != "127.0.0.1:80" {
		t.Errorf("%q %v", a, err)
	}
	if _, err := dialAddr(protoFLV, "https://h/x.flv"); err == nil {
		t.Error("https accepted")
	}
}

func TestAddError(t *testing.T) {
	errs := map[string]int{}
	addError(errs, "read tcp 127.0.0.1:5555->127.0.0.1:8080: connection reset by peer")
	addError(errs, "read tcp 127.0.0.1:6666->127.0.0.1:8080: connection reset by peer")
	if errs["read tcp ADDR: connection reset by peer"] != 2 {
		t.Errorf("%v", errs)
	}
}

func TestCPUBusy(t *testing.T) {
	stat := []byte("cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 100 1 50 1000 7 3 20 2 0 0\ncpu1 5 0 5 2000 0 0 0 0 0 0\nintr 1\n")
	got, err := parseCPUBusy(stat, []int{0})
	if want := float64(100+1+50+3+20+2) / clkTck(); err != nil || math.Abs(got-want) > 1e-9 {
		t.Errorf("cpu0 busy %v %v, want %v", got, err, want)
	}
	if _, err := parseCPUBusy(stat, []int{2}); err == nil {
		t.Error("missing cpu accepted")
	}
	for s, want := range map[string][]int{"0": {0}, "0-1": {0, 1}, "0,2-3": {0, 2, 3}} {
		got, err := parseCPUList(s)
		if err != nil || len(got) != len(want) {
			t.Errorf("parseCPUList(%q) = %v %v", s, got, err)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("parseCPUList(%q) = %v", s, got)
			}
		}
	}
}

// TestSkipInKernel reads an FLV stream over a loopback TCP connection, so
// that tag bodies are skipped with recv(MSG_TRUNC) rather than copied.
func TestSkipInKernel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	defer ln.Close()
	var data []byte
	data = flv.AppendFileHeader(data, true, true)
	for i := range 50 {
		data = flv.AppendTag(data, flv.TagVideo, uint32(i*40), append([]byte{0x27, 1, 0, 0, 0}, make([]byte, 20000)...))
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for b := data; len(b) > 0; b = b[min(len(b), 7000):] {
			c.Write(b[:min(len(b), 7000)])
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	in := newInput(bufio.NewReaderSize(c, 4096), c)
	if in.rc == nil {
		t.Fatal("no raw conn on a TCP connection")
	}
	st := &subStat{}
	if err := readFLV(in, st, nil); err != io.ErrUnexpectedEOF && err != io.EOF {
		t.Fatalf("err %v", err)
	}
	if got := st.media.Load(); got != 49*40*90 {
		t.Errorf("media %d ticks, want %d", got, 49*40*90)
	}
	if in.skipped.Load() == 0 {
		t.Error("nothing was skipped in the kernel")
	}
}
