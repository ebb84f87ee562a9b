package server_test

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/group"
	"sluice/pkg/server"
)

// TestPlayback publishes each test file over RTMP and plays it back over
// RTMP and HTTP-FLV: ffprobe must see exactly the file's streams and ffmpeg
// must decode 4 s without a single error.
func TestPlayback(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cases := []struct {
		name, file   string
		video, audio bool
		want         []string // ffprobe streams, sorted
	}{
		{"h264_aac", fileH264AAC, true, true, []string{"aac", "h264 640x360"}},
		{"h264_only", fileH264Only, true, false, []string{"h264 640x360"}},
		{"aac_only", fileAACOnly, false, true, []string{"aac"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			stream := "play_" + tc.name
			pub := startPublisher(t, srv, stream, tc.file)
			st := waitReady(t, srv, stream, pub, tc.video, tc.audio)
			checkTracks(t, st.Tracks, tc.video, tc.audio)
			if st.Pub.Protocol != server.ProtocolRTMP {
				t.Errorf("publisher protocol = %q, want %q", st.Pub.Protocol, server.ProtocolRTMP)
			}
			for _, pl := range []struct{ name, url string }{
				{"rtmp", rtmpURL(srv, stream)},
				{"httpflv", flvURL(srv, stream)},
			} {
				t.Run(pl.name, func(t *testing.T) {
					t.Parallel()
					if got := probeStreams(t, pl.url); !slices.Equal(got, tc.want) {
						t.Errorf("ffprobe %s streams = %q, want %q", pl.url, got, tc.want)
					}
					decodeClean(t, pl.url, 4)
				})
			}
		})
	}
}

// checkTracks checks the group's track info against the test media.
func checkTracks(t *testing.T, tr av.TrackInfo, video, audio bool) {
	t.Helper()
	if video {
		if tr.VideoCodec != av.CodecH264 || tr.Width != 640 || tr.Height != 360 {
			t.Errorf("video track = %v %dx%d, want H264 640x360", tr.VideoCodec, tr.Width, tr.Height)
		}
	} else if tr.VideoCodec != av.CodecNone {
		t.Errorf("video codec = %v on an audio-only stream", tr.VideoCodec)
	}
	if audio {
		if tr.AudioCodec != av.CodecAAC || tr.SampleRate != 44100 || tr.Channels != 2 {
			t.Errorf("audio track = %v %d Hz %d ch, want AAC 44100 Hz 2 ch", tr.AudioCodec, tr.SampleRate, tr.Channels)
		}
	} else if tr.AudioCodec != av.CodecNone {
		t.Errorf("audio codec = %v on a video-only stream", tr.AudioCodec)
	}
}

// TestLateJoinerStartsAtKeyframe joins in the middle of a GOP (default
// gop_num 1): every player's first video packet must be a key frame, and an
// HTTP-FLV player must get metadata, then the video and the audio sequence
// headers, then a key frame.
func TestLateJoinerStartsAtKeyframe(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "late"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)
	// The sequence headers arrive with the first key frame: media time 0 is
	// now, give or take the polling interval. Key frames come every 2 s.
	t0 := time.Now()

	for _, pl := range []struct{ name, url string }{
		{"rtmp-ffprobe", rtmpURL(srv, stream)},
		{"httpflv-ffprobe", flvURL(srv, stream)},
	} {
		t.Run(pl.name, func(t *testing.T) {
			joinMidGOP(t, t0, pub)
			lines, out := probeVideoPackets(t, pl.url, "packet=flags,pts_time", 3)
			if len(lines) == 0 {
				t.Fatalf("ffprobe printed no video packet")
			}
			var flags string
			for _, f := range strings.Split(lines[0], ",") {
				if _, err := strconv.ParseFloat(f, 64); err != nil {
					flags = f
				}
			}
			if !strings.Contains(flags, "K") {
				t.Errorf("first video packet is not a key frame: %q (all: %q)", lines[0], out)
			}
		})
	}

	t.Run("httpflv-tags", func(t *testing.T) {
		joinMidGOP(t, t0, pub)
		joined := time.Now()
		c := openFLV(t, flvURL(srv, stream))
		if c.Resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %s, want 200", c.Resp.Status)
		}
		for k, want := range map[string]string{
			"Content-Type":                "video/x-flv",
			"Access-Control-Allow-Origin": "*",
		} {
			if got := c.Resp.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		hasAudio, hasVideo, err := c.ReadHeader(5 * time.Second)
		if err != nil {
			t.Fatalf("FLV header: %v", err)
		}
		if !hasAudio || !hasVideo {
			t.Errorf("FLV header flags audio=%v video=%v, want both", hasAudio, hasVideo)
		}
		tags := c.ReadUntil(t, 10*time.Second, "the first video frame",
			func(tg tag) bool { return tg.Pkt.Kind == av.KindVideo && !tg.Pkt.SeqHeader })
		if len(tags) < 4 {
			t.Fatalf("only %d tags before the first video frame: %s", len(tags), summarize(tags))
		}
		if tags[0].H.Type != flv.TagScript || scriptName(tags[0]) != "onMetaData" {
			t.Errorf("tag 0 = %s (%q), want the onMetaData script tag", tags[0], scriptName(tags[0]))
		}
		if !tags[1].isVideoSeqHeader() {
			t.Errorf("tag 1 = %s, want the video sequence header", tags[1])
		}
		if !tags[2].isAudioSeqHeader() {
			t.Errorf("tag 2 = %s, want the audio sequence header", tags[2])
		}
		first := tags[len(tags)-1]
		if !first.isKeyFrame() {
			t.Errorf("first video frame is not a key frame: %s (tags: %s)", first, summarize(tags))
		}
		// How much the GOP cache gave at once shows whether the join really was
		// mid-GOP (logged only: timing on a shared machine is not asserted).
		more, _ := c.ReadFor(300 * time.Millisecond)
		var last uint32
		for _, tg := range more {
			if tg.isMedia() && tg.At.Sub(joined) < 300*time.Millisecond {
				last = max(last, tg.H.Timestamp)
			}
		}
		t.Logf("joined %v after the start; first key frame at %d ms; the first 300 ms brought media up to %d ms",
			joined.Sub(t0).Round(time.Millisecond), first.H.Timestamp, last)
	})
}

// TestSubscriberBeforePublisher: an HTTP-FLV player of a stream nobody
// publishes yet gets the FLV header at once, then the stream from its start
// when a publisher arrives.
func TestSubscriberBeforePublisher(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "early"
	c := openFLV(t, flvURL(srv, stream))
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %s, want 200", c.Resp.Status)
	}
	if _, _, err := c.ReadHeader(3 * time.Second); err != nil {
		t.Fatalf("FLV header of a stream without publisher: %v", err)
	}
	g := srv.Groups().Group(stream)
	if g == nil || len(g.Stat().Subs) != 1 || g.Stat().Pub != nil {
		t.Fatalf("group of the waiting subscriber: %v", g)
	}
	pub := startPublisher(t, srv, stream, fileH264AAC)
	start := time.Now()
	tags := c.ReadUntil(t, 10*time.Second, "a key frame", tag.isKeyFrame)
	t.Logf("key frame after %v: %s", time.Since(start).Round(time.Millisecond), summarize(tags))
	i := slices.IndexFunc(tags, tag.isVideoSeqHeader)
	if i < 0 {
		t.Errorf("key frame without a video sequence header before it: %s", summarize(tags))
	}
	for _, tg := range tags[:len(tags)-1] {
		if tg.Pkt.Kind == av.KindVideo && !tg.Pkt.SeqHeader {
			t.Errorf("video frame %s before the first key frame: %s", tg, summarize(tags))
			break
		}
	}
	st := g.Stat()
	if st.Pub == nil || len(st.Subs) != 1 {
		t.Errorf("after publish: pub=%v subs=%d, want a publisher and 1 subscriber", st.Pub, len(st.Subs))
	}
	if pub.exited() {
		t.Errorf("publisher exited: %v", pub.err)
	}
}

// TestDuplicatePublisherRefused: a second publisher of a stream is refused
// and the first one keeps streaming.
func TestDuplicatePublisherRefused(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "dup"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	firstID := waitReady(t, srv, stream, pub, true, true).Pub.ID

	dup := startProc(t, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-i", mediaPath(fileH264AAC), "-t", "5", "-c", "copy", "-f", "flv", rtmpURL(srv, stream))
	select {
	case <-dup.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("second publisher still running after 15 s (stderr %q)", dup.stderr.String())
	}
	if dup.err == nil {
		t.Fatalf("second publisher exited 0 after %v: it was not refused (stderr %q)",
			time.Since(dup.started).Round(time.Millisecond), dup.stderr.String())
	}
	t.Logf("second publisher refused after %v: %v, stderr %q",
		time.Since(dup.started).Round(time.Millisecond), dup.err, dup.stderr.String())

	g := mustGroup(t, srv, stream)
	if st := g.Stat(); st.Pub == nil || st.Pub.ID != firstID {
		t.Fatalf("publisher after the refusal = %+v, want %s", st.Pub, firstID)
	}
	decodeClean(t, rtmpURL(srv, stream), 3)
	if st := g.Stat(); st.Pub == nil || st.Pub.ID != firstID {
		t.Fatalf("publisher after playback = %+v, want %s", st.Pub, firstID)
	}
}

// TestSlowSubscriberDoesNotStallOthers: a subscriber that stops reading must
// not slow another one down. The publisher runs at real time, as players
// see it, and at 3× real time: the server's socket to the stalled subscriber
// has megabytes of kernel buffer, which 10 s of the 2 Mbit/s file at real
// time does not fill; at 3× it does, so the server's writes to the stalled
// subscriber really block and its lag handling runs.
func TestSlowSubscriberDoesNotStallOthers(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	for _, rate := range []int{1, 3} {
		t.Run("rate"+strconv.Itoa(rate), func(t *testing.T) {
			t.Parallel()
			testSlowSubscriber(t, rate)
		})
	}
}

func testSlowSubscriber(t *testing.T, rate int) {
	srv := startServer(t)
	const stream = "slow"
	pub := startPublisherRate(t, srv, stream, "h264_aac_720p_2m.flv", rate)
	waitReady(t, srv, stream, pub, true, true)

	// A 4 KB receive buffer set before connecting keeps the window the
	// server sees tiny, so that only the server's send buffer holds what
	// this subscriber does not read.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = setsockoptInt(syscall.SetsockoptInt, fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.Dial("tcp", srv.HTTPFLVAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	slow.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(slow, "GET /live/"+stream+".flv HTTP/1.1\r\nHost: sluice\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(slow, 512), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("slow subscriber response: %v %v", resp, err)
	}
	// From here on the slow subscriber reads nothing.

	c := subscribeFLV(t, flvURL(srv, stream), 5*time.Second)
	start := time.Now()
	tags, err := c.ReadFor(10 * time.Second)
	if err != nil {
		t.Fatalf("healthy subscriber: %v after %v and %d tags", err, time.Since(start), len(tags))
	}
	first, last := int64(-1), int64(-1)
	for _, tg := range tags {
		if !tg.isMedia() {
			continue
		}
		if first < 0 {
			first = int64(tg.H.Timestamp)
		}
		last = max(last, int64(tg.H.Timestamp))
	}
	span := time.Duration(last-first) * time.Millisecond
	t.Logf("healthy subscriber: %d tags, %d bytes, media %v → %v (%v) in %v", len(tags), c.BytesRead(),
		time.Duration(first)*time.Millisecond, time.Duration(last)*time.Millisecond, span,
		time.Since(start).Round(time.Millisecond))
	if want := time.Duration(rate) * 7 * time.Second; first < 0 || span < want {
		t.Errorf("healthy subscriber got %v of media in 10 s next to a stalled one, want ≥ %v", span, want)
	}

	// The stalled one may have been dropped or not; just report it.
	slowAddr := slow.LocalAddr().String()
	state := "disconnected by the server"
	if g := srv.Groups().Group(stream); g != nil {
		for _, s := range g.Stat().Subs {
			if s.RemoteAddr == slowAddr {
				state = "still subscribed, " + strconv.FormatUint(s.Counters.WrittenBytes(), 10) + " bytes written to it"
			}
		}
	}
	t.Logf("stalled subscriber after 10 s: %s", state)
}

// setsockoptInt calls syscall.SetsockoptInt, whose descriptor is an int on
// Unix and a Handle on Windows.
func setsockoptInt[FD ~int | ~uintptr](f func(FD, int, int, int) error, fd uintptr, level, opt, value int) error {
	return f(FD(fd), level, opt, value)
}

// TestGarbageConnections: junk, truncated and abandoned handshakes on the
// RTMP port and junk on the HTTP port must not disturb a live stream, and
// each junk connection must be answered or closed promptly.
func TestGarbageConnections(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "garbage"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	firstID := waitReady(t, srv, stream, pub, true, true).Pub.ID

	// expectClose reads until the server closes the connection; a timeout
	// means the server kept a junk connection open.
	expectClose := func(c net.Conn, what string) {
		c.SetReadDeadline(time.Now().Add(12 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if isTimeout(err) {
			t.Errorf("%s: connection still open after 12 s (%d bytes received)", what, n)
		}
	}
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", srv.RTMPAddr(), 5*time.Second)
		if err != nil {
			t.Errorf("dial: %v", err)
			return nil
		}
		return c
	}
	// handshake sends C0+C1 (a simple handshake: time 0, zero, random bytes)
	// and reads S0+S1+S2 within 5 s; it returns both, s nil after an error.
	handshake := func(c net.Conn) (b, s []byte) {
		b = make([]byte, 1+1536)
		b[0] = 3
		rand.Read(b[9:])
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b); err != nil {
			t.Errorf("writing C0+C1: %v", err)
			return b, nil
		}
		s = make([]byte, 1+2*1536)
		if _, err := io.ReadFull(c, s); err != nil {
			t.Errorf("reading S0+S1+S2: %v", err)
			return b, nil
		}
		return b, s
	}
	var wg sync.WaitGroup
	for range 10 { // random bytes
		wg.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			defer c.Close()
			junk := make([]byte, 2048)
			rand.Read(junk)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(junk) // may fail: the server may hang up at the first byte
			c.(*net.TCPConn).CloseWrite()
			expectClose(c, "random bytes")
		})
	}
	for range 5 { // C0 and half of C1
		wg.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			defer c.Close()
			b := make([]byte, 1+768)
			rand.Read(b)
			b[0] = 3
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(b); err != nil {
				t.Errorf("writing C0 + half C1: %v", err)
			}
			c.(*net.TCPConn).CloseWrite()
			expectClose(c, "truncated C1")
		})
	}
	for range 5 { // valid C0+C1, then silence
		wg.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			defer c.Close()
			start := time.Now()
			b, s := handshake(c)
			if s == nil {
				return
			}
			if s[0] != 3 {
				t.Errorf("S0 = %#x, want 0x03", s[0])
			}
			if !slices.Equal(s[1+1536+8:], b[1+8:]) {
				t.Errorf("S2 does not echo C1's random bytes (simple handshake)")
			}
			time.Sleep(time.Until(start.Add(time.Second)))
		})
	}
	for range 5 { // beyond the brief: a complete handshake, then random chunk bytes
		wg.Go(func() {
			c := dial()
			if c == nil {
				return
			}
			defer c.Close()
			_, s := handshake(c)
			if s == nil {
				return
			}
			junk := make([]byte, 4096)
			rand.Read(junk)
			c.Write(append(s[1:1+1536], junk...)) // C2 echoes S1
			c.(*net.TCPConn).CloseWrite()
			expectClose(c, "junk chunks after the handshake")
		})
	}
	wg.Wait()

	decodeClean(t, rtmpURL(srv, stream), 3)
	g := srv.Groups().Group(stream)
	if g == nil {
		t.Fatal("group gone after the junk connections")
	}
	if st := g.Stat(); st.Pub == nil || st.Pub.ID != firstID {
		t.Fatalf("publisher after the junk = %+v, want %s", st.Pub, firstID)
	}

	t.Run("http", func(t *testing.T) {
		addr := srv.HTTPFLVAddr()
		checkRawStatuses(t, addr, []rawStatus{
			{"GET /nope HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
			{"GET /live/x.txt HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
			{"GET /live/.flv HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
			{"POST /live/x.flv HTTP/1.1\r\nHost: sluice\r\nContent-Length: 0\r\n\r\n", http.StatusMethodNotAllowed},
		})
		junk := make([]byte, 2048)
		rand.Read(junk)
		resp, c, _, err := rawHTTP(t, addr, string(junk)+"\r\n\r\n", 5*time.Second)
		switch {
		case err == nil:
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("random bytes: status %s, want 400 or a closed connection", resp.Status)
			}
		case isTimeout(err):
			t.Errorf("random bytes: no answer and no close within 5 s")
		default:
			t.Logf("random bytes: connection closed (%v)", err)
		}
		c.Close()
		// The stream still plays over HTTP-FLV after all this.
		decodeClean(t, flvURL(srv, stream), 2)
	})
}

// TestPublisherLeavesAndReturns: an HTTP-FLV subscriber outlives its
// publisher and gets the next publisher's stream from its start.
func TestPublisherLeavesAndReturns(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "comeback"
	pub1 := startPublisher(t, srv, stream, fileH264AAC)
	id1 := waitReady(t, srv, stream, pub1, true, true).Pub.ID

	c := subscribeFLV(t, flvURL(srv, stream), 5*time.Second)
	c.ReadUntil(t, 10*time.Second, "the first publisher's key frame", tag.isKeyFrame)

	pub1.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := srv.Groups().Group(stream)
		if g == nil {
			t.Fatal("group removed although a subscriber is attached")
		}
		st := g.Stat()
		if st.Pub == nil {
			if len(st.Subs) != 1 {
				t.Fatalf("subscribers after the publisher left: %d, want 1", len(st.Subs))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publisher still attached 10 s after ffmpeg was killed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	pub2 := startPublisher(t, srv, stream, fileH264AAC)
	start := time.Now()
	tags := c.ReadUntil(t, 10*time.Second, "the new video sequence header", tag.isVideoSeqHeader)
	rest := c.ReadUntil(t, 10*time.Second-time.Since(start), "the new publisher's key frame", tag.isKeyFrame)
	t.Logf("new key frame %v after the second publisher started; tags since: %s",
		time.Since(start).Round(time.Millisecond), summarize(append(tags, rest...)))
	for _, tg := range rest[:len(rest)-1] {
		if tg.Pkt.Kind == av.KindVideo {
			t.Errorf("video tag %s between the new sequence header and the key frame", tg)
		}
	}
	g := mustGroup(t, srv, stream)
	st := g.Stat()
	if st.Pub == nil || st.Pub.ID == id1 {
		t.Errorf("publisher = %+v, want a new session (old %s)", st.Pub, id1)
	}
	if len(st.Subs) != 1 {
		t.Errorf("subscribers = %d, want 1", len(st.Subs))
	}
	if pub2.exited() {
		t.Errorf("second publisher exited: %v", pub2.err)
	}
}

// TestSessionByteCounters: the stat of a group reports what its sessions
// actually moved.
func TestSessionByteCounters(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "bytes"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)

	c := subscribeFLV(t, flvURL(srv, stream), 5*time.Second)
	if _, err := c.ReadFor(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	clientRead := c.BytesRead()
	time.Sleep(100 * time.Millisecond)
	g := mustGroup(t, srv, stream)
	st := g.Stat()
	var sub *group.SessionInfo
	for i := range st.Subs {
		if st.Subs[i].RemoteAddr == c.LocalAddr() {
			sub = &st.Subs[i]
		}
	}
	if sub == nil {
		t.Fatalf("no subscriber with remote address %s in %+v", c.LocalAddr(), st.Subs)
	}
	if sub.Protocol != server.ProtocolHTTPFLV || sub.BaseType != group.BaseSub {
		t.Errorf("subscriber protocol/base type = %q/%q, want %q/%q", sub.Protocol, sub.BaseType, server.ProtocolHTTPFLV, group.BaseSub)
	}
	if sub.Counters == nil {
		t.Fatal("subscriber has no counters")
	}
	written := sub.Counters.WrittenBytes()
	t.Logf("server wrote %d bytes to the subscriber, which read %d", written, clientRead)
	if written <= 100000 {
		t.Errorf("WrittenBytes = %d after 2 s of playback, want > 100000", written)
	}
	if written < uint64(clientRead) {
		t.Errorf("WrittenBytes = %d, less than the %d bytes the client read", written, clientRead)
	}
	if st.Pub == nil || st.Pub.Counters == nil {
		t.Fatalf("publisher or its counters missing: %+v", st.Pub)
	}
	if r := st.Pub.Counters.ReadBytes(); r <= 100000 {
		t.Errorf("publisher ReadBytes = %d, want > 100000", r)
	}
}
