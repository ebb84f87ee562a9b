package rtsp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// ---------------------------------------------------------------------------
// Without network

func TestTransportFromMode(t *testing.T) {
	for mode, want := range map[int]Transport{0: TransportTCP, 1: TransportUDP} {
		got, err := TransportFromMode(mode)
		if err != nil || got != want {
			t.Errorf("TransportFromMode(%d) = %v, %v; want %v", mode, got, err, want)
		}
	}
	for _, mode := range []int{-1, 2, 3} {
		if _, err := TransportFromMode(mode); err == nil {
			t.Errorf("TransportFromMode(%d) accepted", mode)
		}
	}
	if TransportTCP.String() != "TCP" || TransportUDP.String() != "UDP" {
		t.Errorf("transport names %q %q", TransportTCP, TransportUDP)
	}
}

// TestDialBadURL: URLs Dial refuses before any network traffic; the
// password never shows in the error.
func TestDialBadURL(t *testing.T) {
	for _, u := range []string{
		"http://user:hunter2@127.0.0.1:1/live/x",
		"rtmp://127.0.0.1:1/live/x",
		"rtsps://user:hunter2@127.0.0.1:1/live/x",
		"rtsp://user:hunter2@127.0.0.1:notaport/live/x",
		"rtsp://user:hunter2@127.0.0.1:1/live/x#frag",
		"rtsp:///live/x",
		"not a url",
		"",
	} {
		start := time.Now()
		s, err := Dial(context.Background(), u, ClientOptions{})
		if err == nil {
			s.Close()
			t.Errorf("Dial(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Dial(%q) error shows the password: %v", u, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Dial(%q) took %v to refuse the URL", u, d)
		}
		t.Logf("%q: %v", u, err)
	}
	if _, err := Dial(context.Background(), "rtsp://127.0.0.1:1/x", ClientOptions{Transport: 7}); err == nil {
		t.Error("Dial with transport 7 succeeded")
	}
}

// TestDialRefused: nobody listens; Dial fails at once.
func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	if _, err := Dial(context.Background(), "rtsp://user:hunter2@"+addr+"/live/x", ClientOptions{Timeout: 5 * time.Second}); err == nil {
		t.Fatal("Dial succeeded")
	} else if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	} else {
		t.Logf("%v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v", d)
	}
}

// TestDialSilentServer: a server that accepts and never answers; Dial ends
// with the context's deadline (or Timeout), not later.
func TestDialSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				_, _ = c.Read(make([]byte, 4096)) // until the client goes
				_, _ = c.Read(make([]byte, 4096))
			}()
		}
	}()
	for _, tc := range []struct {
		name string
		ctx  time.Duration
		opt  time.Duration
	}{{"context", 300 * time.Millisecond, 10 * time.Second}, {"option", 10 * time.Second, 300 * time.Millisecond}} {
		ctx, cancel := context.WithTimeout(context.Background(), tc.ctx)
		start := time.Now()
		_, err := Dial(ctx, "rtsp://"+ln.Addr().String()+"/live/x", ClientOptions{Timeout: tc.opt})
		cancel()
		d := time.Since(start)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s deadline: Dial = %v, want a deadline error", tc.name, err)
		}
		if d < 250*time.Millisecond || d > 2*time.Second {
			t.Errorf("%s deadline: Dial returned after %v, want about 300 ms", tc.name, d)
		}
	}
	ln.Close()
	conns.Wait()
}

// newQueueSession is a ClientSession with only its packet queue, for the
// tests of deliver.
func newQueueSession(size int) *ClientSession {
	return &ClientSession{pkts: make(chan *av.Packet, size), wait: 20 * time.Millisecond, done: make(chan struct{}), log: clientTestLogger()}
}

func vpkt(ts int64, key, seq bool) *av.Packet {
	return &av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, Timestamp: ts, KeyFrame: key || seq, SeqHeader: seq}
}

func apkt(ts int64, seq bool) *av.Packet {
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, SeqHeader: seq}
}

func drain(s *ClientSession) []string {
	var out []string
	for {
		select {
		case p := <-s.pkts:
			out = append(out, pktName(p))
		default:
			return out
		}
	}
}

func pktName(p *av.Packet) string {
	k := "v"
	if p.Kind == av.KindAudio {
		k = "a"
	}
	switch {
	case p.SeqHeader:
		k += "seq"
	case p.KeyFrame:
		k += "key"
	}
	return k + strconv.FormatInt(p.Timestamp, 10)
}

// TestDeliverDropsAndResyncs: a full queue drops after the wait; a video
// track then skips to the next key frame and a dropped sequence header is
// sent again first; audio just loses the packets that found no room.
func TestDeliverDropsAndResyncs(t *testing.T) {
	s := newQueueSession(3)
	v, a := &clientTrack{}, &clientTrack{}
	s.deliver(v, vpkt(0, false, true))
	s.deliver(a, apkt(0, true))
	s.deliver(v, vpkt(0, true, false))
	start := time.Now()
	s.deliver(v, vpkt(40, false, false)) // full: waits, then drops
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("a full queue dropped after %v, want the 20 ms wait first", d)
	}
	s.deliver(a, apkt(23, false)) // dropped
	if got := strings.Join(drain(s), " "); got != "vseq0 aseq0 vkey0" {
		t.Fatalf("queue = %q", got)
	}
	s.deliver(v, vpkt(80, false, false)) // skipped: waiting for a key frame
	s.deliver(a, apkt(46, false))        // audio goes on
	s.deliver(v, vpkt(120, true, false)) // resumes
	s.deliver(v, vpkt(160, false, false))
	if got := strings.Join(drain(s), " "); got != "a46 vkey120 v160" {
		t.Fatalf("queue after the drop = %q, want a46 vkey120 v160", got)
	}
	if n := s.Dropped(); n != 3 {
		t.Errorf("Dropped = %d, want 3", n)
	}

	// A dropped sequence header is sent again before the next packet.
	s.deliver(a, apkt(60, false))
	s.deliver(a, apkt(70, false))
	s.deliver(a, apkt(80, false))
	s.deliver(v, vpkt(200, false, true)) // dropped: full
	if got := strings.Join(drain(s), " "); got != "a60 a70 a80" {
		t.Fatalf("queue = %q", got)
	}
	s.deliver(v, vpkt(200, true, false))
	if got := strings.Join(drain(s), " "); got != "vseq200 vkey200" {
		t.Fatalf("queue after a dropped sequence header = %q, want vseq200 vkey200", got)
	}

	// Once the session is over, nothing waits and nothing is counted.
	s.deliver(a, apkt(90, false))
	s.deliver(a, apkt(91, false))
	s.deliver(a, apkt(92, false))
	s.end(ErrClientClosed)
	before := s.Dropped()
	start = time.Now()
	s.deliver(a, apkt(93, false))
	if d := time.Since(start); d > 10*time.Millisecond || s.Dropped() != before {
		t.Errorf("deliver after the end took %v and counted %d drops", d, s.Dropped()-before)
	}
}

// ---------------------------------------------------------------------------
// Against Sluice's RTSP server (this package's Server), on loopback

// testHandler admits every player and no publisher.
type testHandler struct{}

func (testHandler) OnPublish(*PubSession) (Publisher, error) {
	return nil, errors.New("no publishing in this test")
}
func (testHandler) OnSubscribe(*SubSession) (Subscription, error) { return testSub{}, nil }

type testSub struct{}

func (testSub) Publishing() bool { return true }
func (testSub) Close()           {}

// clientTestUDPPair finds an even loopback UDP port whose next one is free.
func clientTestUDPPair(t *testing.T) (string, string) {
	t.Helper()
	p := freeRange(t, 2)
	return "127.0.0.1:" + strconv.Itoa(p), "127.0.0.1:" + strconv.Itoa(p+1)
}

// startTestServer starts a Server on loopback (TCP and UDP); mod may change
// its configuration.
func startTestServer(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		rtpAddr, rtcpAddr := clientTestUDPPair(t)
		cfg := Config{Addr: "127.0.0.1:0", UDPRTPAddr: rtpAddr, UDPRTCPAddr: rtcpAddr, DescribeWait: 5 * time.Second,
			Handler: testHandler{}, Logger: clientTestLogger()}
		if mod != nil {
			mod(&cfg)
		}
		srv := New(cfg)
		err := srv.Start()
		var be *BindError
		if errors.As(err, &be) && be.Key != "addr" && attempt < 5 {
			srv.Close()
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		return srv
	}
}

// testMedia is what a test stream carries: the video of
// testdata/bframes_64x64.flv (30 frames at 25 fps, B-frames, a key frame
// every 15) and made-up AAC frames (48 kHz, each holding its own index).
type testMedia struct {
	videoSeq *av.Packet
	video    []*av.Packet // one loop, timestamps from 0
	asc      []byte
	frames   map[string]int // video frame content -> index in video
}

const (
	testLoopMS   = 1200 // 30 frames of 40 ms
	testAACRate  = 48000
	testAACFrame = 1024
)

func loadTestMedia(t *testing.T) *testMedia {
	t.Helper()
	f, err := os.Open("testdata/bframes_64x64.flv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	m := &testMedia{frames: map[string]int{}}
	var vc *flv.VideoConfig
	for {
		h, body, err := r.ReadTag()
		if err != nil {
			break
		}
		if h.Type != flv.TagVideo {
			continue
		}
		p, err := flv.PacketFromTag(h.Type, h.Timestamp, bytes.Clone(body))
		if err != nil {
			t.Fatal(err)
		}
		if p.SeqHeader {
			if vc, err = flv.ParseVideoConfig(p.Codec, p.Data()); err != nil {
				t.Fatal(err)
			}
			m.videoSeq = &p
			continue
		}
		if len(p.Data()) == 0 {
			continue // the end of sequence tag
		}
		m.frames[frameKey(t, p.Data(), vc.NALULengthSize)] = len(m.video)
		m.video = append(m.video, &p)
	}
	if m.videoSeq == nil || len(m.video) != 30 || len(m.frames) != 30 {
		t.Fatalf("test media: sequence header %v, %d frames, %d different", m.videoSeq != nil, len(m.video), len(m.frames))
	}
	asc, err := (&mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: testAACRate, ChannelConfig: 2, ChannelCount: 2}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.asc = asc
	return m
}

// frameKey is a video frame's NAL units other than parameter sets and
// delimiters, which the RTSP path may move or drop.
func frameKey(t *testing.T, data []byte, lengthSize int) string {
	t.Helper()
	var b strings.Builder
	err := flv.SplitNALUs(data, lengthSize, func(n []byte) {
		if len(n) == 0 {
			return
		}
		switch n[0] & 0x1f {
		case 7, 8, 9, 12: // SPS, PPS, AUD, filler
			return
		}
		fmt.Fprintf(&b, "%d:", len(n))
		b.Write(n)
	})
	if err != nil {
		t.Fatalf("frame NAL units: %v", err)
	}
	return b.String()
}

func aacPacket(seq bool, ts int64, data []byte) *av.Packet {
	typ := byte(flv.AACRaw)
	if seq {
		typ = flv.AACSeqHeader
	}
	body := append([]byte{audioHeaderAAC, typ}, data...)
	return &av.Packet{Kind: av.KindAudio, Codec: av.CodecAAC, Timestamp: ts, SeqHeader: seq, Payload: body, DataOffset: 2}
}

// aacFrame is the made-up AAC frame number i.
func aacFrame(i int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(i))
	return append(b, bytes.Repeat([]byte{byte(i)}, 60)...)
}

func aacMS(i int) int64 { return int64(i) * testAACFrame * 1000 / testAACRate }

// feed writes the test media to st at real time, looping, until stop is
// closed; audio and video in timestamp order.
func (m *testMedia) feed(st *Stream, stop <-chan struct{}) {
	st.WritePacket(m.videoSeq)
	st.WritePacket(aacPacket(true, 0, m.asc))
	start := time.Now()
	vi, ai := 0, 0
	for {
		loop, idx := vi/len(m.video), vi%len(m.video)
		src := m.video[idx]
		vts := src.Timestamp + int64(loop)*testLoopMS
		ats := aacMS(ai)
		var p *av.Packet
		var ts int64
		if ats <= vts {
			p, ts = aacPacket(false, ats, aacFrame(ai)), ats
			ai++
		} else {
			cp := *src
			cp.Timestamp = vts
			p, ts = &cp, vts
			vi++
		}
		if d := time.Until(start.Add(time.Duration(ts) * time.Millisecond)); d > 0 {
			select {
			case <-stop:
				return
			case <-time.After(d):
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		st.WritePacket(p)
	}
}

// startFeed makes stream name on srv and feeds it until the test ends (or
// the returned function is called).
func startFeed(t *testing.T, srv *Server, m *testMedia, name string) (stopFeed func()) {
	t.Helper()
	st := srv.NewStream(name)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.feed(st, stop)
	}()
	var once sync.Once
	stopFeed = func() {
		once.Do(func() {
			close(stop)
			<-done
		})
	}
	t.Cleanup(func() {
		stopFeed()
		srv.RemoveStream(st)
	})
	return stopFeed
}

func testURL(srv *Server, userinfo, name string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return "rtsp://" + userinfo + srv.Addr() + "/live/" + name
}

// checkPlayback reads the session for d and checks what comes out against
// the test media: the sequence headers first, then frames whose content and
// timing are the source's.
func checkPlayback(t *testing.T, s *ClientSession, m *testMedia, d time.Duration) {
	t.Helper()
	var (
		vc                       *flv.VideoConfig
		gotASC                   bool
		videos, keys, audios     int
		vOffset, aOffset         int64
		haveVOffset, haveAOffset bool
		lastV, lastA             int64 = -1 << 62, -1 << 62
	)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p, err := s.ReadPacket()
		if err != nil {
			t.Fatalf("ReadPacket after %d video and %d audio packets: %v", videos, audios, err)
		}
		switch p.Kind {
		case av.KindVideo:
			if p.Codec != av.CodecH264 {
				t.Fatalf("video codec %v", p.Codec)
			}
			if p.SeqHeader {
				c, err := flv.ParseVideoConfig(p.Codec, p.Data())
				if err != nil {
					t.Fatalf("video sequence header: %v", err)
				}
				want, _ := flv.ParseVideoConfig(av.CodecH264, m.videoSeq.Data())
				if !bytes.Equal(c.SPS[0], want.SPS[0]) || !bytes.Equal(c.PPS[0], want.PPS[0]) || c.Width != 64 || c.Height != 64 {
					t.Errorf("video sequence header %+v, want the source's SPS and PPS", c)
				}
				vc = c
				continue
			}
			if vc == nil {
				t.Fatalf("video frame at %d before the sequence header", p.Timestamp)
			}
			if videos == 0 && !p.KeyFrame {
				t.Errorf("first video frame is not a key frame")
			}
			idx, ok := m.frames[frameKey(t, p.Data(), vc.NALULengthSize)]
			if !ok {
				t.Fatalf("video frame %d (dts %d) is none of the source's", videos, p.Timestamp)
			}
			src := m.video[idx]
			if p.KeyFrame != src.KeyFrame {
				t.Errorf("frame %d: key %v, source key %v", idx, p.KeyFrame, src.KeyFrame)
			}
			if p.Timestamp < lastV || p.CTS < 0 {
				t.Errorf("frame %d: dts %d after %d, cts %d", idx, p.Timestamp, lastV, p.CTS)
			}
			lastV = p.Timestamp
			// PTS = source PTS + loops * 1200 ms + a constant offset.
			off := p.PTS() - src.PTS()
			if !haveVOffset {
				vOffset, haveVOffset = off, true
			}
			if r := ((off-vOffset)%testLoopMS + testLoopMS) % testLoopMS; r > 2 && r < testLoopMS-2 {
				t.Errorf("frame %d: pts %d, source pts %d: off by %d ms from the source's timing", idx, p.PTS(), src.PTS(), r)
			}
			videos++
			if p.KeyFrame {
				keys++
			}
		case av.KindAudio:
			if p.Codec != av.CodecAAC {
				t.Fatalf("audio codec %v", p.Codec)
			}
			if p.SeqHeader {
				if !bytes.Equal(p.Data(), m.asc) {
					t.Errorf("AAC config % x, want % x", p.Data(), m.asc)
				}
				gotASC = true
				continue
			}
			if !gotASC {
				t.Fatalf("AAC frame before the sequence header")
			}
			data := p.Data()
			if len(data) != 64 {
				t.Fatalf("AAC frame of %d bytes, want 64", len(data))
			}
			i := int(binary.BigEndian.Uint32(data))
			if !bytes.Equal(data, aacFrame(i)) {
				t.Fatalf("AAC frame %d corrupt: % x", i, data[:8])
			}
			if p.Timestamp < lastA {
				t.Errorf("AAC frame %d at %d after %d", i, p.Timestamp, lastA)
			}
			lastA = p.Timestamp
			off := p.Timestamp - aacMS(i)
			if !haveAOffset {
				aOffset, haveAOffset = off, true
			}
			if off < aOffset-2 || off > aOffset+2 {
				t.Errorf("AAC frame %d at %d: off by %d ms from the source's timing", i, p.Timestamp, off-aOffset)
			}
			audios++
		default:
			t.Fatalf("unexpected packet kind %v", p.Kind)
		}
	}
	// Video starts at a key frame (one every 600 ms), audio at once.
	if secs := d.Seconds(); float64(videos) < 20*(secs-0.7) || keys < 1 || float64(audios) < 40*(secs-0.2) {
		t.Errorf("in %v: %d video frames (%d key), %d audio frames; want about 25/s video from the first key frame and 47/s audio", d, videos, keys, audios)
	}
	// Audio and video presentation times line up as in the source (within a
	// few frames; the source loops every 1200 ms).
	if diff := ((vOffset-aOffset)%testLoopMS+testLoopMS+testLoopMS/2)%testLoopMS - testLoopMS/2; diff < -50 || diff > 150 {
		t.Errorf("video is %d ms off the audio", diff)
	}
	t.Logf("%d video frames (%d key), %d audio frames; video offset %d ms, audio %d ms; %d bytes read, %d written, %d dropped",
		videos, keys, audios, vOffset, aOffset, s.ReadBytes(), s.WrittenBytes(), s.Dropped())
}

// TestClientPlaysSluiceServer: over TCP and UDP, the client gets the fed
// stream back, with the source's content and timing, counts bytes and ends
// promptly on Close.
func TestClientPlaysSluiceServer(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	srv := startTestServer(t, nil)
	startFeed(t, srv, m, "loop")
	for _, tr := range []Transport{TransportTCP, TransportUDP} {
		t.Run(tr.String(), func(t *testing.T) {
			t.Parallel()
			s, err := Dial(context.Background(), testURL(srv, "", "loop"), ClientOptions{Transport: tr, Timeout: 10 * time.Second, Logger: clientTestLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.RemoteAddr() != srv.Addr() {
				t.Errorf("RemoteAddr = %q, want %q", s.RemoteAddr(), srv.Addr())
			}
			checkPlayback(t, s, m, 2*time.Second)
			r0, w0 := s.ReadBytes(), s.WrittenBytes()
			if r0 < 20_000 || w0 == 0 {
				t.Errorf("ReadBytes %d, WrittenBytes %d after 2 s", r0, w0)
			}
			if _, err := s.ReadPacket(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if r := s.ReadBytes(); r <= r0 {
				t.Errorf("ReadBytes stays at %d", r)
			}

			// Close unblocks a waiting reader.
			errc := make(chan error, 1)
			go func() {
				for {
					if _, err := s.ReadPacket(); err != nil {
						errc <- err
						return
					}
				}
			}()
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			s.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrClientClosed) {
					t.Errorf("ReadPacket after Close: %v, want ErrClientClosed", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("ReadPacket still blocks 3 s after Close")
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Close took %v", d)
			}
			s.Close() // a second Close is harmless
		})
	}
}

// TestClientAuth: the URL's credentials answer Digest and Basic; wrong ones
// fail with the server's 401.
func TestClientAuth(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	for _, method := range []int{AuthDigest, AuthBasic} {
		name := map[int]string{AuthDigest: "digest", AuthBasic: "basic"}[method]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startTestServer(t, func(c *Config) {
				c.AuthEnable, c.AuthMethod, c.Username, c.Password = true, method, "user", "s3cret"
			})
			startFeed(t, srv, m, "auth")
			for _, tr := range []Transport{TransportTCP, TransportUDP} {
				s, err := Dial(context.Background(), testURL(srv, "user:s3cret", "auth"), ClientOptions{Transport: tr, Logger: clientTestLogger()})
				if err != nil {
					t.Fatalf("%v with the right password: %v", tr, err)
				}
				checkPlayback(t, s, m, 1500*time.Millisecond)
				s.Close()
			}
			for _, userinfo := range []string{"user:wrong", "", "other:s3cret"} {
				s, err := Dial(context.Background(), testURL(srv, userinfo, "auth"), ClientOptions{Logger: clientTestLogger()})
				if err == nil {
					s.Close()
					t.Errorf("credentials %q accepted", userinfo)
					continue
				}
				if !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("credentials %q: %v, want a 401 error without the password", userinfo, err)
				}
			}
		})
	}
}

// TestClientErrors: a stream that does not exist (404 once the server's
// describe wait is over), and the read timeout once the stream stops.
func TestClientErrors(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	srv := startTestServer(t, func(c *Config) { c.DescribeWait = 300 * time.Millisecond })
	start := time.Now()
	if _, err := Dial(context.Background(), testURL(srv, "", "missing"), ClientOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Dial of a missing stream: %v, want a 404 error", err)
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial of a missing stream took %v", d)
	}

	for _, tr := range []Transport{TransportTCP, TransportUDP} {
		t.Run("server ends "+tr.String(), func(t *testing.T) {
			name := "end" + tr.String()
			startFeed(t, srv, m, name)
			s, err := Dial(context.Background(), testURL(srv, "", name), ClientOptions{Transport: tr, Logger: clientTestLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for range 10 {
				if _, err := s.ReadPacket(); err != nil {
					t.Fatal(err)
				}
			}
			// A new stream of that name replaces the old one, whose players
			// the server disconnects.
			srv.RemoveStream(srv.NewStream(name))
			start := time.Now()
			var err2 error
			for err2 == nil {
				_, err2 = s.ReadPacket()
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("ReadPacket failed %v after the server ended the session (%v); want at once", d, err2)
			}
			t.Logf("%v", err2)
		})
		t.Run("read timeout "+tr.String(), func(t *testing.T) {
			name := "stall" + tr.String()
			stopFeed := startFeed(t, srv, m, name)
			s, err := Dial(context.Background(), testURL(srv, "", name), ClientOptions{Transport: tr, ReadTimeout: time.Second, Logger: clientTestLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for range 10 {
				if _, err := s.ReadPacket(); err != nil {
					t.Fatal(err)
				}
			}
			stopFeed()
			start := time.Now()
			var err2 error
			for err2 == nil {
				_, err2 = s.ReadPacket()
			}
			// Over TCP, gortsplib keeps the time of the last bytes in
			// whole seconds and checks it once a second: its timeout comes
			// up to a second early or late, whenever the last bytes came.
			lower := 800 * time.Millisecond
			if tr == TransportTCP {
				lower = 0
			}
			if d := time.Since(start); d < lower || d > 3*time.Second {
				t.Errorf("ReadPacket failed %v after the stream stalled (%v), want after the 1 s read timeout", d, err2)
			}
			t.Logf("%v", err2)
		})
	}
}

// clientTestLogger logs nothing, or to stderr with SLUICE_TEST_LOG set.
func clientTestLogger() *zap.Logger {
	if os.Getenv("SLUICE_TEST_LOG") == "" {
		return zap.NewNop()
	}
	l, _ := zap.NewDevelopment()
	return l
}

// TestRetimeVideo: the client's H.264 handler gives each access unit its own
// presentation time, whether a sender marks the last packet of each unit
// (single-packet units included) or sets no marker bit at all.
func TestRetimeVideo(t *testing.T) {
	m := loadTestMedia(t)
	vc, err := flv.ParseVideoConfig(av.CodecH264, m.videoSeq.Data())
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range []bool{true, false} {
		t.Run(fmt.Sprintf("marker=%v", marker), func(t *testing.T) {
			f := &format.H264{PayloadTyp: 96, SPS: vc.SPS[0], PPS: vc.PPS[0], PacketizationMode: 1}
			medi := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}
			tr, err := newInputTrack(medi, f)
			if err != nil {
				t.Fatal(err)
			}
			if err := setVideoHandler(tr); err != nil {
				t.Fatal(err)
			}
			var out []*av.Packet
			emit := func(p *av.Packet) {
				if !p.SeqHeader {
					out = append(out, p)
				}
			}
			seq := uint16(0)
			for loop := range 2 {
				for _, src := range m.video {
					pts := (src.PTS() + int64(loop)*testLoopMS) * 90
					var nalus [][]byte
					if err := flv.SplitNALUs(src.Data(), vc.NALULengthSize, func(n []byte) { nalus = append(nalus, n) }); err != nil {
						t.Fatal(err)
					}
					for i, n := range nalus {
						pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(pts),
							Marker: marker && i == len(nalus)-1}, Payload: n}
						seq++
						if err := tr.handle(pkt, pts, emit); err != nil {
							t.Fatalf("frame at pts %d: %v", pts/90, err)
						}
					}
				}
			}
			want := 2*len(m.video) - 1 // without markers the last unit waits for a next packet
			if marker {
				want++
			}
			if len(out) != want {
				t.Fatalf("%d frames out, want %d", len(out), want)
			}
			var off int64
			for i, p := range out {
				src := m.video[i%len(m.video)]
				if !bytes.Equal(p.Data(), src.Data()) && frameKey(t, p.Data(), 4) != frameKey(t, src.Data(), vc.NALULengthSize) {
					t.Fatalf("frame %d is not the source's frame %d", i, i%len(m.video))
				}
				o := p.PTS() - src.PTS() - int64(i/len(m.video))*testLoopMS
				if i == 0 {
					off = o
				} else if o != off {
					t.Errorf("frame %d: pts %d, source pts %d: off by %d ms", i, p.PTS(), src.PTS(), o-off)
				}
				if p.CTS < 0 || (i > 0 && p.Timestamp < out[i-1].Timestamp) {
					t.Errorf("frame %d: dts %d after %d, cts %d", i, p.Timestamp, out[max(i-1, 0)].Timestamp, p.CTS)
				}
			}
		})
	}
}
