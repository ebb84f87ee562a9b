package rtsp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/rtp"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/group"
)

// frame is one interleaved frame: "$", channel, length, packet.
func frame(ch byte, pkt []byte) []byte {
	return append([]byte{'$', ch, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
}

func TestFanMuxer(t *testing.T) {
	rtcp := bytes.Repeat([]byte{0x81}, 8)
	rtpPkt := bytes.Repeat([]byte{0x80}, 20)
	second := append(frame(3, rtcp), frame(2, rtpPkt)...) // the second media's frames
	first := frame(0, rtpPkt)
	cases := []struct {
		m           [2]int
		in, want    []byte
		sameAsInput bool
	}{
		{[2]int{0, 2}, second, second, true},
		{[2]int{0, 2}, first, first, true},
		{[2]int{0, -1}, second, nil, false},
		{[2]int{0, -1}, first, first, true},
		{[2]int{-1, 0}, second, append(frame(1, rtcp), frame(0, rtpPkt)...), false},
		{[2]int{-1, 0}, first, nil, false},
		{[2]int{-1, 2}, second, second, true},
	}
	for _, c := range cases {
		got := fanMuxer{c.m}.Mux(&av.Packet{Payload: c.in})
		if !bytes.Equal(got, c.want) {
			t.Errorf("map %v of % x: got % x, want % x", c.m, c.in[:2], got, c.want)
		}
		if c.sameAsInput && len(got) > 0 && &got[0] != &c.in[0] {
			t.Errorf("map %v: the frames were copied, want them shared", c.m)
		}
	}
	if got := (fanMuxer{fanMaps[0]}).Mux(&av.Packet{Payload: []byte{'$'}}); got != nil {
		t.Errorf("truncated payload muxed to % x", got)
	}
	for i, m := range fanMaps {
		if f, ok := fanFormat(m); !ok || int(f) != i {
			t.Errorf("fanFormat(%v) = %d, %v", m, f, ok)
		}
	}
	if _, ok := fanFormat([2]int{4, 6}); ok {
		t.Error("fanFormat accepts channels 4 and 6")
	}
}

// TestFanWriteZeroCopy: fanWrite frames an access unit as the sender report
// and interleaved RTP packets whose media bytes are the packetizer's slices
// of the source (no copy), in the channels of each fan format (renumbered
// headers, shared media), and a player of either format decodes the unit.
func TestFanWriteZeroCopy(t *testing.T) {
	fan := newFan(time.Second, zap.NewNop())
	pub, err := fan.Publish(group.SessionInfo{ID: "F", StreamName: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	tr := &outputTrack{idx: 1} // the second media: channels 2-3 in fanMaps[0]
	g := &generation{video: tr, fanPub: pub, ssrc: [2]uint32{0, 0xabcdef01}}
	nal := make([]byte, 5000)
	for i := range nal {
		nal[i] = byte(i%250 + 1) // no start code inside
	}
	nal[0] = 0x65 // IDR
	sps := []byte{0x67, 0x42, 0xc0, 0x1e}
	pz := newPacketizer(96)
	g.fanWrite(tr, &av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, KeyFrame: true}, pz.h264([][]byte{sps, nal}, 9000), 9000, time.Now(), 100)

	inNAL := func(b []byte) bool {
		return len(b) > 0 && uintptr(unsafe.Pointer(&b[0])) >= uintptr(unsafe.Pointer(&nal[0])) &&
			uintptr(unsafe.Pointer(&b[len(b)-1])) <= uintptr(unsafe.Pointer(&nal[len(nal)-1]))
	}
	for _, c := range []struct {
		m       [2]int
		rtp, sr byte
	}{{fanMaps[0], 2, 3}, {[2]int{-1, 0}, 0, 1}} {
		f, _ := fanFormat(c.m)
		sub := fan.Subscribe(group.SessionInfo{ID: "S", StreamName: "s"}, f)
		bufs, err := sub.Next(nil)
		sub.Close()
		if err != nil {
			t.Fatal(err)
		}
		media := 0
		for _, b := range bufs {
			if inNAL(b) {
				media += len(b)
			}
		}
		if media != len(nal)-1 { // all but the NAL header, replaced by the FU's
			t.Errorf("map %v: %d media bytes referenced, want %d", c.m, media, len(nal)-1)
		}
		joined := bytes.Join(bufs, nil)
		dec, err := (&format.H264{PayloadTyp: 96, PacketizationMode: 1}).CreateDecoder()
		if err != nil {
			t.Fatal(err)
		}
		var au [][]byte
		var chans []byte
		if !interleavedFrames([][]byte{joined}, func(_ int, head []byte) {
			chans = append(chans, head[1])
			n := int(binary.BigEndian.Uint16(head[2:]))
			if head[1] != c.rtp {
				return
			}
			var rp rtp.Packet
			if err := rp.Unmarshal(head[4 : 4+n]); err != nil {
				t.Fatal(err)
			}
			if rp.SSRC != 0xabcdef01 {
				t.Errorf("SSRC %x", rp.SSRC)
			}
			au, err = dec.Decode(&rp)
			if err != nil && !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
				t.Fatal(err)
			}
		}) {
			t.Fatalf("map %v: not interleaved frames", c.m)
		}
		if len(chans) < 3 || chans[0] != c.sr || chans[1] != c.rtp {
			t.Errorf("map %v: channels %v, want the report on %d then RTP on %d", c.m, chans, c.sr, c.rtp)
		}
		if len(au) != 2 || !bytes.Equal(au[0], sps) || !bytes.Equal(au[1], nal) {
			t.Errorf("map %v: the access unit did not decode back", c.m)
		}
	}
}

// TestSenderReport checks the RTCP sender report against hand-computed
// bytes (RFC 3550 §6.4.1; NTP time of 2024-01-01T00:00:00.5Z).
func TestSenderReport(t *testing.T) {
	ntp := time.Date(2024, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	got := appendSR(nil, 0x11223344, ntp, 90000, 7, 1000)
	want := []byte{
		0x80, 200, 0, 6, // V=2, PT=SR, length 6 words
		0x11, 0x22, 0x33, 0x44, // SSRC
		0xe9, 0x3c, 0x7f, 0x00, 0x80, 0, 0, 0, // NTP: 3913056000 s, .5
		0, 1, 0x5f, 0x90, // RTP time 90000
		0, 0, 0, 7, // packets
		0, 0, 0x03, 0xe8, // octets
	}
	if !bytes.Equal(got, want) || len(got) != srSize {
		t.Errorf("sender report\n got % x\nwant % x", got, want)
	}
}

func TestFirstPackets(t *testing.T) {
	rtpPkt := func(seq uint16, ts uint32) []byte {
		b := make([]byte, 12)
		b[0] = 0x80
		binary.BigEndian.PutUint16(b[2:], seq)
		binary.BigEndian.PutUint32(b[4:], ts)
		return b
	}
	frames := [][]byte{
		append(frame(1, make([]byte, srSize)), append(frame(0, rtpPkt(10, 900)), frame(0, rtpPkt(11, 900))...)...),
		frame(2, rtpPkt(500, 48000)),
		frame(0, rtpPkt(12, 4500)),
		{'$', 0, 0, 200}, // truncated: ignored
	}
	info := firstPackets(frames)
	if len(info) != 2 || *info[0].SequenceNumber != 10 || *info[0].Timestamp != 900 ||
		*info[2].SequenceNumber != 500 || *info[2].Timestamp != 48000 {
		t.Errorf("firstPackets = %v", info)
	}
}

// rawPlayer is an RTSP player that speaks the protocol by hand, so that
// tests choose its channels and read its bytes exactly.
type rawPlayer struct {
	t       *testing.T
	c       net.Conn
	br      *bufio.Reader
	url     string
	cseq    int
	session string
}

func dialRaw(t *testing.T, srv *Server, name string) *rawPlayer {
	t.Helper()
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawPlayer{t: t, c: c, br: bufio.NewReader(c), url: testURL(srv, "", name)}
}

// do sends a request and returns the response's status and headers.
func (p *rawPlayer) do(method, url string, headers ...string) (int, textproto.MIMEHeader) {
	p.t.Helper()
	p.send(method, url, headers...)
	return p.readResponse()
}

// send writes a request, with the session once there is one.
func (p *rawPlayer) send(method, url string, headers ...string) {
	p.t.Helper()
	p.cseq++
	req := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, p.cseq)
	if p.session != "" {
		req += "Session: " + p.session + "\r\n"
	}
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(p.c, req+"\r\n"); err != nil {
		p.t.Fatal(err)
	}
}

// readResponse skips interleaved frames and reads the next response: its
// status and headers; its body is skipped and its session kept.
func (p *rawPlayer) readResponse() (int, textproto.MIMEHeader) {
	p.t.Helper()
	for {
		b, err := p.br.Peek(1)
		if err != nil {
			p.t.Fatal(err)
		}
		if b[0] != '$' {
			break
		}
		p.readFrame()
	}
	tp := textproto.NewReader(p.br)
	line, err := tp.ReadLine()
	if err != nil {
		p.t.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "RTSP/1.0" {
		p.t.Fatalf("status line %q", line)
	}
	code, _ := strconv.Atoi(f[1])
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		p.t.Fatal(err)
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		io.CopyN(io.Discard, p.br, int64(n))
	}
	if s := h.Get("Session"); s != "" {
		p.session, _, _ = strings.Cut(s, ";")
	}
	return code, h
}

// playBoth sets up both tracks on 0-1 and 2-3 and plays.
func (p *rawPlayer) playBoth() { p.play("0", "0-1", "1", "2-3") }

// play sends DESCRIBE, a SETUP per track and channel pair given (track,
// channels, track, channels...), each answered 200, then PLAY.
func (p *rawPlayer) play(setups ...string) {
	p.t.Helper()
	p.do("DESCRIBE", p.url, "Accept: application/sdp")
	for i := 0; i+1 < len(setups); i += 2 {
		if code, _ := p.setup(setups[i], setups[i+1]); code != 200 {
			p.t.Fatalf("SETUP track %s on %s: %d", setups[i], setups[i+1], code)
		}
	}
	if code, _ := p.do("PLAY", p.url); code != 200 {
		p.t.Fatalf("PLAY %d", code)
	}
}

func (p *rawPlayer) setup(track, channels string) (int, textproto.MIMEHeader) {
	return p.do("SETUP", p.url+"/trackID="+track, "Transport: RTP/AVP/TCP;unicast;interleaved="+channels)
}

// readFrame reads one interleaved frame.
func (p *rawPlayer) readFrame() (ch byte, pkt []byte) {
	p.t.Helper()
	var h [4]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		p.t.Fatal(err)
	}
	if h[0] != '$' {
		p.t.Fatalf("not an interleaved frame: % x", h)
	}
	pkt = make([]byte, binary.BigEndian.Uint16(h[2:]))
	if _, err := io.ReadFull(p.br, pkt); err != nil {
		p.t.Fatal(err)
	}
	return h[1], pkt
}

var rtpInfoRE = regexp.MustCompile(`trackID=(\d+);seq=(\d+);rtptime=(\d+)`)

// TestDirectPlay: a TCP player that sets up both tracks on channels 0-1
// and 2-3 is served by direct play: its PLAY's RTP-Info names the first
// packet of each track it gets, the first bytes are the video's sender
// report and the cached key frame, and the media keeps coming. One that
// sets up the audio alone on 0-1 gets the audio alone, on 0-1. One that
// asks for other channels is served by gortsplib, and a direct session
// refuses a second SETUP whose channels it cannot serve.
func TestDirectPlay(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	srv := startTestServer(t, nil)
	startFeed(t, srv, m, "direct")

	t.Run("both", func(t *testing.T) {
		p := dialRaw(t, srv, "direct")
		if code, _ := p.do("DESCRIBE", p.url, "Accept: application/sdp"); code != 200 {
			t.Fatalf("DESCRIBE %d", code)
		}
		if code, h := p.setup("0", "0-1"); code != 200 || !strings.Contains(h.Get("Transport"), "interleaved=0-1") {
			t.Fatalf("SETUP video %d %v", code, h)
		}
		if code, _ := p.setup("1", "2-3"); code != 200 {
			t.Fatalf("SETUP audio %d", code)
		}
		code, h := p.do("PLAY", p.url)
		if code != 200 {
			t.Fatalf("PLAY %d", code)
		}
		want := map[byte][2]uint64{}
		for _, m := range rtpInfoRE.FindAllStringSubmatch(h.Get("RTP-Info"), -1) {
			tr, _ := strconv.Atoi(m[1])
			seq, _ := strconv.ParseUint(m[2], 10, 16)
			ts, _ := strconv.ParseUint(m[3], 10, 32)
			want[byte(2*tr)] = [2]uint64{seq, ts}
		}
		// The video's entry always has them; the audio's when the cached
		// frames hold audio already.
		if _, ok := want[0]; !ok || !strings.Contains(h.Get("RTP-Info"), "trackID=1") {
			t.Fatalf("RTP-Info %q: want both tracks, the video's with seq and rtptime", h.Get("RTP-Info"))
		}
		ch, pkt := p.readFrame()
		if ch != 1 || len(pkt) != srSize || pkt[1] != 200 {
			t.Fatalf("first frame: channel %d, % x; want the video's sender report on channel 1", ch, pkt[:min(len(pkt), 8)])
		}
		srSSRC := binary.BigEndian.Uint32(pkt[4:])
		seen := map[byte]bool{}
		videoBytes := 0
		for len(seen) < 2 || videoBytes < 20_000 {
			ch, pkt := p.readFrame()
			if ch&1 == 1 {
				continue
			}
			if ch != 0 && ch != 2 {
				t.Fatalf("frame on channel %d", ch)
			}
			if ch == 0 {
				videoBytes += len(pkt)
			}
			if seen[ch] {
				continue
			}
			seen[ch] = true
			seq, ts := binary.BigEndian.Uint16(pkt[2:]), binary.BigEndian.Uint32(pkt[4:])
			if w, ok := want[ch]; ok && (uint64(seq) != w[0] || uint64(ts) != w[1]) {
				t.Errorf("channel %d: first packet seq %d rtptime %d, RTP-Info says %d %d", ch, seq, ts, w[0], w[1])
			}
			if ch == 0 {
				if ssrc := binary.BigEndian.Uint32(pkt[8:]); ssrc != srSSRC {
					t.Errorf("video SSRC %08x, sender report's %08x", ssrc, srSSRC)
				}
				if nal := pkt[12] & 0x1f; nal != 7 && nal != 5 && nal != 24 {
					t.Errorf("first video packet carries NAL type %d, want the key frame (SPS, IDR or STAP-A)", nal)
				}
			}
		}
	})

	t.Run("audio_alone", func(t *testing.T) {
		p := dialRaw(t, srv, "direct")
		p.play("1", "0-1")
		rtpFrames := 0
		for rtpFrames < 20 {
			ch, pkt := p.readFrame()
			if ch > 1 {
				t.Fatalf("frame on channel %d, want 0-1 only", ch)
			}
			if ch == 0 {
				rtpFrames++
				if pt := pkt[1] & 0x7f; pt < 96 || len(pkt) > 500 {
					t.Fatalf("channel 0 packet of %d bytes, payload type %d: not the audio", len(pkt), pt)
				}
			}
		}
	})

	t.Run("other_channels", func(t *testing.T) {
		p := dialRaw(t, srv, "direct")
		p.play("0", "4-5")
		for n := 0; n < 10; {
			if ch, _ := p.readFrame(); ch == 4 {
				n++
			} else if ch != 5 {
				t.Fatalf("frame on channel %d, want 4-5", ch)
			}
		}
	})

	t.Run("second_setup_refused", func(t *testing.T) {
		p := dialRaw(t, srv, "direct")
		p.do("DESCRIBE", p.url, "Accept: application/sdp")
		if code, _ := p.setup("0", "0-1"); code != 200 {
			t.Fatalf("SETUP video %d", code)
		}
		if code, _ := p.setup("1", "6-7"); code != 461 {
			t.Fatalf("SETUP audio on 6-7: %d, want 461", code)
		}
		if code, _ := p.setup("1", "2-3"); code != 200 {
			t.Fatalf("SETUP audio on 2-3 after the refusal: %d", code)
		}
		if code, _ := p.do("PLAY", p.url); code != 200 {
			t.Fatalf("PLAY %d", code)
		}
		p.readFrame()
	})
}

// TestDirectPlayEnds: a direct player ends when it is kicked (its
// connection closes and it leaves the fan), and when the stream's
// description is withdrawn.
func TestDirectPlayEnds(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	subs := make(chan *SubSession, 4)
	srv := startTestServer(t, func(c *Config) { c.Handler = capturingHandler{subs} })
	stopFeed := startFeed(t, srv, m, "ends")
	play := func() (*rawPlayer, *SubSession) {
		p := dialRaw(t, srv, "ends")
		p.playBoth()
		p.readFrame()
		return p, <-subs
	}
	waitClosed := func(p *rawPlayer, what string) {
		t.Helper()
		p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, p.br); err != nil {
			t.Fatalf("%s: the connection was not closed: %v", what, err)
		}
	}
	kicked, s := play()
	other, _ := play()
	if n := fanSubs(srv); n != 2 {
		t.Fatalf("%d players in the fan, want 2", n)
	}
	if s.direct.Load() == nil {
		t.Fatal("the player is not served by direct play")
	}
	s.Close()
	waitClosed(kicked, "kicked player")
	deadline := time.Now().Add(5 * time.Second)
	for fanSubs(srv) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d players in the fan after the kick, want 1", fanSubs(srv))
		}
		other.readFrame()
	}
	if _, w := s.counters(); w < 1000 {
		t.Errorf("the kicked player's written bytes: %d", w)
	}
	stopFeed()
	for _, st := range []*Stream{srv.stream("ends")} {
		srv.RemoveStream(st)
	}
	waitClosed(other, "player of a withdrawn stream")
	deadline = time.Now().Add(5 * time.Second)
	for fanSubs(srv) != 0 || len(srv.fan.Groups()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("fan: %d players, %d groups after the stream closed", fanSubs(srv), len(srv.fan.Groups()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// capturingHandler admits every player and hands over its session.
type capturingHandler struct{ subs chan *SubSession }

func (capturingHandler) OnPublish(*PubSession) (Publisher, error) {
	return testHandler{}.OnPublish(nil)
}
func (h capturingHandler) OnSubscribe(s *SubSession) (Subscription, error) {
	h.subs <- s
	return testSub{}, nil
}

// fanSubs counts the fan's players.
func fanSubs(srv *Server) int {
	n := 0
	for _, g := range srv.fan.Groups() {
		n += len(g.Stat().Subs)
	}
	return n
}

// TestDirectPlayDetached: once playing, a direct player's connection is
// served without gortsplib: keep-alives and a repeated PLAY are answered
// (CSeq and Session echoed), receiver reports are read and dropped, the
// media keeps coming, and TEARDOWN is answered and ends the session. A
// malformed request or an oversize one ends it too, and the server's Close
// ends the rest.
func TestDirectPlayDetached(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	subs := make(chan *SubSession, 8)
	srv := startTestServer(t, func(c *Config) { c.Handler = capturingHandler{subs} })
	startFeed(t, srv, m, "det")
	play := func() (*rawPlayer, *SubSession) {
		p := dialRaw(t, srv, "det")
		p.playBoth()
		s := <-subs
		deadline := time.Now().Add(5 * time.Second)
		for d := s.direct.Load(); d == nil || !d.isDetached.Load(); d = s.direct.Load() {
			if time.Now().After(deadline) {
				t.Fatal("the player was not detached from gortsplib")
			}
			p.readFrame()
		}
		return p, s
	}

	p, s := play()
	rr := make([]byte, 8) // a receiver report without blocks: V=2, PT=201
	rr[0], rr[1], rr[3] = 0x80, 201, 1
	if _, err := p.c.Write(frame(1, rr)); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"GET_PARAMETER", "OPTIONS", "PLAY", "SET_PARAMETER", "PAUSE", "RECORD"} {
		session := p.session
		p.send(method, p.url)
		code, h := p.readResponse()
		want := map[string]int{"PAUSE": 501, "RECORD": 455}[method]
		if want == 0 {
			want = 200
		}
		if code != want || h.Get("CSeq") != strconv.Itoa(p.cseq) || h.Get("Session") != session {
			t.Errorf("%s: %d, CSeq %q, Session %q; want %d, %d, %q", method, code, h.Get("CSeq"), h.Get("Session"), want, p.cseq, session)
		}
	}
	for range 20 {
		p.readFrame()
	}
	if r, _ := s.counters(); r < 500 {
		t.Errorf("read bytes %d: the requests after PLAY are not counted", r)
	}
	p.send("TEARDOWN", p.url)
	if code, _ := p.readResponse(); code != 200 {
		t.Errorf("TEARDOWN: %d", code)
	}
	p.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := p.br.ReadByte(); err != nil {
			if err != io.EOF {
				t.Fatalf("after TEARDOWN: %v, want the connection closed", err)
			}
			break
		}
	}

	bad, _ := play()
	io.WriteString(bad.c, "GET_PARAMETER rtsp://x RTSP/1.0\r\nno colon here\r\n\r\n")
	bad.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, bad.br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a malformed request: %v, want the connection closed", err)
	}

	huge, _ := play()
	io.WriteString(huge.c, "GET_PARAMETER rtsp://x RTSP/1.0\r\nX: "+strings.Repeat("a", 2*detachedHeadLimit))
	huge.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed with the rest of the request unread: a reset is a close too.
	if _, err := io.Copy(io.Discard, huge.br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after an oversize request head: %v, want the connection closed", err)
	}

	last, _ := play()
	srv.Close()
	last.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, last.br); err != nil {
		t.Fatalf("after the server's Close: %v, want the connection closed", err)
	}
	srv.mu.Lock()
	n := len(srv.detached)
	srv.mu.Unlock()
	if n != 0 || fanSubs(srv) != 0 {
		t.Errorf("after Close: %d detached players, %d in the fan", n, fanSubs(srv))
	}
}
