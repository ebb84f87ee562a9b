package server_test

// The churn test (issue 8): thousands of short sessions over every protocol,
// then goroutines, open file descriptors and RSS must be back where they
// started. `make test` runs a short version; `make soak` the long one
// (SLUICE_CHURN_CYCLES=10000).

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/rtmp"
	"sluice/pkg/rtsp"
	"sluice/pkg/server"
)

const (
	churnDefaultCycles = 1000
	churnSoakCycles    = 5000 // from here on RSS is asserted too
	churnWorkers       = 8
	churnFeeders       = 3
	churnTimeout       = 15 * time.Second // one cycle
)

// churnCycles is SLUICE_CHURN_CYCLES, or the short default.
func churnCycles(t *testing.T) int {
	s := os.Getenv("SLUICE_CHURN_CYCLES")
	if s == "" {
		return churnDefaultCycles
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("SLUICE_CHURN_CYCLES=%q: want a positive number", s)
	}
	return n
}

// usage is what the process holds.
type usage struct {
	goroutines, fds int
	rssKB, anonKB   int64  // VmRSS, and its anonymous part (RssAnon: no mapped file pages)
	heap            uint64 // bytes of live heap objects
}

func (u usage) String() string {
	return fmt.Sprintf("goroutines %d, fds %d, RSS %.1f MiB (anonymous %.1f MiB, live heap %.1f MiB)", u.goroutines, u.fds,
		float64(u.rssKB)/1024, float64(u.anonKB)/1024, float64(u.heap)/(1<<20))
}

func measure(t *testing.T) usage {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{goroutines: runtime.NumGoroutine(), fds: len(fds), heap: ms.HeapAlloc}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			u.anonKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return u
}

// within is base plus 10%, and at least slack more.
func within(base, slack int) int { return base + max(base/10, slack) }

// cappedWriter keeps the first max bytes written to it: the churn's log
// (warnings only) must not grow with the number of cycles.
type cappedWriter struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.buf); room > 0 {
		w.buf = append(w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *cappedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// churnEnv is the server and media every cycle uses.
type churnEnv struct {
	srv  *server.Server
	pkts []av.Packet
	rtsp *rtspSource
}

// TestChurn runs SLUICE_CHURN_CYCLES (default 400) connect/play/disconnect
// cycles spread over RTMP, HTTP-FLV, HTTP-TS, WS-FLV, WS-TS and RTSP play,
// and RTMP and RTSP publishers coming and going, cleanly and abruptly, while
// feeders publish; afterwards goroutines and file descriptors must be back
// within 10% of the start (RSS too from 5000 cycles on). It is not parallel,
// so nothing else runs in the process meanwhile.
func TestChurn(t *testing.T) {
	if len(churnKinds) != churnKindCount {
		t.Fatalf("churnKindCount %d, want %d", churnKindCount, len(churnKinds))
	}
	cycles := churnCycles(t)
	pkts := mediaPackets(t)
	src, err := newRTSPSource(pkts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &cappedWriter{max: 1 << 20}
	log := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(logs), zapcore.WarnLevel))
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_E2E_LOG") != "" {
			t.Logf("server warnings:\n%s", logs.String())
		}
	})
	cfg := testConfig()
	cfg.RTSP.Enable = true
	cfg.RTSP.OutWaitKeyFrameFlag = false // start RTSP players at once: more cycles per second
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(t, "", srv) })
	env := &churnEnv{srv: srv, pkts: pkts, rtsp: src}

	feedStart := time.Now()
	ctx, stopFeeders := context.WithCancel(context.Background())
	var feeders sync.WaitGroup
	feedErr := make(chan error, churnFeeders)
	for i := range churnFeeders {
		feeders.Add(1)
		go func() {
			defer feeders.Done()
			if err := feed(ctx, rtmpURL(srv, fmt.Sprintf("feed%d", i)), pkts); err != nil && ctx.Err() == nil {
				feedErr <- fmt.Errorf("feeder %d: %w", i, err)
			}
		}()
	}
	defer func() { stopFeeders(); feeders.Wait() }()
	for i := range churnFeeders {
		if !waitGroup(srv, fmt.Sprintf("feed%d", i), readyTimeout, func(st *groupStat) bool { return st != nil }) {
			t.Fatalf("feeder %d not publishing", i)
		}
	}

	// One cycle of each kind on each feeder first, so that what lives as
	// long as a group (its output formats, once a player of each has come;
	// its RTSP stream) or the process (pools) exists before the baseline.
	// Cycle i plays feeder i%churnFeeders in variant i/churnKindCount (see
	// abrupt and churnWSPlay): 4 variants cover them all.
	for k := range churnKinds {
		for v := range 4 {
			for f := range churnFeeders {
				i := v*churnKindCount + (f+2*v)%churnFeeders // feedStream(i) == f
				if err := churnKinds[k].run(env, 0, i); err != nil {
					t.Fatalf("warm-up %s: %v", churnKinds[k].name, err)
				}
			}
		}
	}
	// Then a concurrent round, so that the runtime's own high-water marks
	// (heap spans, stacks) are reached before the baseline too: RSS levels
	// off after about 3000 concurrent cycles (+2.0 MiB at 1000, +4.1 at
	// 3000, +3.7 at 10 000 measured from a 500-cycle warm-up) while the
	// live heap stays flat, so the soak's warm-up is that long.
	if _, _, errs := runChurn(env, min(cycles/3, 3000)); len(errs) > 0 {
		t.Fatalf("warm-up round: %v", errs)
	}
	// The feeders' groups keep the last MaxLag (5 s) of frames: let them
	// fill before the baseline, or that alone would look like growth.
	time.Sleep(time.Until(feedStart.Add(7 * time.Second)))
	base := measure(t)
	heapProfile(t, "before")
	if os.Getenv("SLUICE_CHURN_STACKS") != "" {
		buf := make([]byte, 1<<20)
		t.Logf("stacks before:\n%s", buf[:runtime.Stack(buf, true)])
	}
	t.Logf("churn: %d cycles, %d workers; before: %v", cycles, churnWorkers, base)

	start := time.Now()
	counts, failed, errs := runChurn(env, cycles)
	took := time.Since(start)
	for _, err := range errs {
		t.Error(err)
	}
	select {
	case err := <-feedErr:
		t.Error(err)
	default:
	}
	var per []string
	for k := range churnKinds {
		per = append(per, fmt.Sprintf("%s %d", churnKinds[k].name, counts[k]))
	}
	t.Logf("churn: %d cycles in %v (%.0f/s), %d failed: %s", cycles, took.Round(time.Millisecond),
		float64(cycles)/took.Seconds(), failed, strings.Join(per, ", "))

	// Every churn session is gone: only the feeders' groups remain, without subscribers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, g := range srv.Groups().Groups() {
			st := g.Stat()
			if !strings.HasPrefix(st.StreamName, "feed") || len(st.Subs) > 0 {
				left = append(left, fmt.Sprintf("%s (pub %v, %d subs)", st.StreamName, st.Pub != nil, len(st.Subs)))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions left 10 s after the churn: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Give closing connections and their goroutines time to finish.
	var after usage
	for deadline := time.Now().Add(10 * time.Second); ; {
		after = measure(t)
		if (after.goroutines <= within(base.goroutines, 5) && after.fds <= within(base.fds, 5)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	heapProfile(t, "after")
	t.Logf("churn: after: %v", after)
	t.Logf("churn: goroutines %+d, fds %+d, RSS %+.1f MiB (%+.1f%%)", after.goroutines-base.goroutines, after.fds-base.fds,
		float64(after.rssKB-base.rssKB)/1024, 100*float64(after.rssKB-base.rssKB)/float64(base.rssKB))
	if after.goroutines > within(base.goroutines, 5) || os.Getenv("SLUICE_CHURN_STACKS") != "" {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines %d after the churn, %d before (limit %d); stacks:\n%s", after.goroutines, base.goroutines,
			within(base.goroutines, 5), buf[:runtime.Stack(buf, true)])
	}
	if after.fds > within(base.fds, 5) {
		t.Errorf("open fds %d after the churn, %d before (limit %d)", after.fds, base.fds, within(base.fds, 5))
	}
	if cycles >= churnSoakCycles && after.rssKB > base.rssKB+max(base.rssKB/10, 4096) {
		t.Errorf("RSS %d kB after the churn, %d kB before: more than 10%% higher", after.rssKB, base.rssKB)
	}
}

// runChurn runs cycles cycles on churnWorkers workers, and returns how many
// of each kind succeeded, how many failed and the first errors. It stops
// early after 10 failures.
func runChurn(env *churnEnv, cycles int) (counts []int64, failed int64, errs []error) {
	var next, nfailed atomic.Int64
	ok := make([]atomic.Int64, len(churnKinds))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range churnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cycles || nfailed.Load() > 10 {
					return
				}
				k := i % len(churnKinds)
				if err := churnKinds[k].run(env, w, i); err != nil {
					nfailed.Add(1)
					mu.Lock()
					if len(errs) < 16 {
						errs = append(errs, fmt.Errorf("cycle %d (%s): %w", i, churnKinds[k].name, err))
					}
					mu.Unlock()
					continue
				}
				ok[k].Add(1)
			}
		}()
	}
	wg.Wait()
	for k := range ok {
		counts = append(counts, ok[k].Load())
	}
	return counts, nfailed.Load(), errs
}

// churnKind is one sort of cycle. run gets the worker and cycle numbers
// (a worker runs one cycle at a time, so names made from w are its own).
type churnKind struct {
	name string
	run  func(env *churnEnv, w, i int) error
}

var churnKinds = []churnKind{
	{"rtmp-play", churnRTMPPlay},
	{"httpflv-play", func(env *churnEnv, w, i int) error { return churnHTTPPlay(env, ".flv", i) }},
	{"httpts-play", func(env *churnEnv, w, i int) error { return churnHTTPPlay(env, ".ts", i) }},
	{"ws-play", churnWSPlay},
	{"rtsp-play", churnRTSPPlay},
	{"rtmp-publish", churnRTMPPublish},
	{"rtsp-publish", churnRTSPPublish},
}

// feedStream is the feeder stream cycle i plays.
func feedStream(i int) string { return fmt.Sprintf("feed%d", i%churnFeeders) }

// abrupt reports whether cycle i ends its connection with a reset rather
// than a clean close.
func abrupt(i int) bool { return (i/churnKindCount)%2 == 1 }

// churnKindCount is len(churnKinds), which the cycles cannot refer to.
const churnKindCount = 7

// closeConn closes c, with a TCP reset when hard.
func closeConn(c net.Conn, hard bool) {
	if tc, ok := c.(*net.TCPConn); ok && hard {
		tc.SetLinger(0)
	}
	c.Close()
}

// feed publishes pkts over RTMP in a loop at real time until ctx ends.
func feed(ctx context.Context, url string, pkts []av.Packet) error {
	c, err := rtmp.Dial(ctx, url, rtmp.ClientOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	if err := c.Publish(); err != nil {
		return err
	}
	span := pkts[len(pkts)-1].Timestamp + 40
	start := time.Now()
	for loop := int64(0); ; loop++ {
		for i := range pkts {
			p := pkts[i]
			p.Timestamp += loop * span
			if d := time.Until(start.Add(time.Duration(p.Timestamp) * time.Millisecond)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil
				}
			}
			if err := c.WritePacket(&p); err != nil {
				return err
			}
		}
	}
}

// churnRTMPPlay plays a feeder over RTMP until a video key frame, then leaves.
func churnRTMPPlay(env *churnEnv, w, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), churnTimeout)
	defer cancel()
	c, err := rtmp.Dial(ctx, rtmpURL(env.srv, feedStream(i)), rtmp.ClientOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Play(); err != nil {
		return err
	}
	return readRTMPUntilKey(c)
}

func readRTMPUntilKey(c *rtmp.ClientSession) error {
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return err
		}
		if p.Kind == av.KindVideo && p.KeyFrame && !p.SeqHeader {
			return nil
		}
	}
}

// churnHTTPPlay plays a feeder over HTTP-FLV or HTTP-TS for some media,
// then leaves, half the time with a reset.
func churnHTTPPlay(env *churnEnv, suffix string, i int) error {
	conn, br, err := dialStream(env.srv.HTTPFLVAddr(), "/live/"+feedStream(i)+suffix)
	if err != nil {
		return err
	}
	defer closeConn(conn, abrupt(i))
	conn.SetDeadline(time.Now().Add(churnTimeout))
	if suffix == ".flv" {
		return readFLVUntilKey(br)
	}
	_, err = io.CopyN(io.Discard, br, 188*64)
	return err
}

func readFLVUntilKey(br *bufio.Reader) error {
	r := flv.NewReader(br)
	if _, _, err := r.ReadHeader(); err != nil {
		return err
	}
	for {
		h, body, err := r.ReadTag()
		if err != nil {
			return err
		}
		if p, err := flv.PacketFromTag(h.Type, h.Timestamp, body); err == nil && p.Kind == av.KindVideo && p.KeyFrame && !p.SeqHeader {
			return nil
		}
	}
}

// churnWSPlay plays a feeder over WebSocket (FLV or TS by turns) for a few
// messages, then sends a close frame or resets the connection.
func churnWSPlay(env *churnEnv, w, i int) error {
	suffix := ".flv"
	if (i/churnKindCount)%4 >= 2 {
		suffix = ".ts"
	}
	d := websocket.Dialer{HandshakeTimeout: churnTimeout}
	c, resp, err := d.Dial("ws://"+env.srv.HTTPFLVAddr()+"/live/"+feedStream(i)+suffix, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	hard := abrupt(i)
	defer func() { closeConn(c.NetConn(), hard) }()
	c.SetReadDeadline(time.Now().Add(churnTimeout))
	for range 5 {
		if _, _, err := c.ReadMessage(); err != nil {
			return err
		}
	}
	if !hard {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
			return err
		}
		// Wait for the server's close (or its closing the connection).
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return nil
			}
		}
	}
	return nil
}

// churnRTSPPlay plays a feeder over RTSP (TCP) for a few packets and sends
// TEARDOWN; every other time it stops after DESCRIBE and resets the
// connection instead.
func churnRTSPPlay(env *churnEnv, w, i int) error {
	url := "rtsp://" + env.srv.RTSPAddr() + "/live/" + feedStream(i)
	if abrupt(i) {
		c, err := net.DialTimeout("tcp", env.srv.RTSPAddr(), churnTimeout)
		if err != nil {
			return err
		}
		defer closeConn(c, true)
		c.SetDeadline(time.Now().Add(churnTimeout))
		if _, err := fmt.Fprintf(c, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", url); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "RTSP/1.0 200") {
			return fmt.Errorf("DESCRIBE: %q", line)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), churnTimeout)
	defer cancel()
	c, err := rtsp.Dial(ctx, url, rtsp.ClientOptions{Transport: rtsp.TransportTCP, Timeout: churnTimeout, ReadTimeout: churnTimeout})
	if err != nil {
		return err
	}
	defer c.Close()
	for range 5 {
		if _, err := c.ReadPacket(); err != nil {
			return err
		}
	}
	return nil
}

// churnRTMPPublish publishes a stream of the worker's own for a second of
// media while a player joins, then the publisher leaves (clean close or
// reset by turns) and the player after it.
func churnRTMPPublish(env *churnEnv, w, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), churnTimeout)
	defer cancel()
	url := rtmpURL(env.srv, fmt.Sprintf("rtmppub%d", w))
	pub, err := rtmp.Dial(ctx, url, rtmp.ClientOptions{})
	if err != nil {
		return err
	}
	defer pub.Close()
	stop := context.AfterFunc(ctx, func() { pub.Close() })
	defer stop()
	if err := pub.Publish(); err != nil {
		return err
	}
	if err := sendMedia(pub, env.pkts, 0, 1000); err != nil {
		return err
	}
	err = playWhile(env, url, func() error {
		return sendMedia(pub, env.pkts, 1000, 2000)
	}, func() { pub.Close() })
	return cmp.Or(err, waitUnpublished(env, fmt.Sprintf("rtmppub%d", w)))
}

// waitUnpublished waits until the server has seen the publisher of stream
// leave, so that the worker's next publisher of it is not a duplicate.
func waitUnpublished(env *churnEnv, stream string) error {
	if !waitGroup(env.srv, stream, churnTimeout, func(st *groupStat) bool { return st == nil || !st.pub }) {
		return fmt.Errorf("%s: publisher still in its group %v after leaving", stream, churnTimeout)
	}
	return nil
}

// playWhile plays url over RTMP until a key frame, runs more (which keeps
// the publisher sending), then ends the publisher with leave and closes the
// player.
func playWhile(env *churnEnv, url string, more func() error, leave func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), churnTimeout)
	defer cancel()
	sub, err := rtmp.Dial(ctx, url, rtmp.ClientOptions{})
	if err != nil {
		return err
	}
	defer sub.Close()
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer stop()
	if err := sub.Play(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- readRTMPUntilKey(sub) }()
	if err := more(); err != nil {
		return err
	}
	err = <-done
	leave()
	return err
}

// churnRTSPPublish publishes a stream of the worker's own over RTSP (TCP)
// while a player joins, then the publisher leaves with TEARDOWN or a reset
// by turns.
func churnRTSPPublish(env *churnEnv, w, i int) error {
	url := "rtsp://" + env.srv.RTSPAddr() + fmt.Sprintf("/live/rtsppub%d", w)
	pub, err := env.rtsp.publish(url)
	if err != nil {
		return err
	}
	defer pub.close(false)
	if err := pub.send(env.pkts, 0, 1000); err != nil {
		return err
	}
	err = playWhile(env, rtmpURL(env.srv, fmt.Sprintf("rtsppub%d", w)), func() error {
		return pub.send(env.pkts, 1000, 2000)
	}, func() { pub.close(abrupt(i)) })
	return cmp.Or(err, waitUnpublished(env, fmt.Sprintf("rtsppub%d", w)))
}

// rtspSource is the test media as an RTSP presentation: H.264 and AAC.
type rtspSource struct {
	sps, pps   []byte
	lengthSize int
	asc        *mpeg4audio.AudioSpecificConfig
}

func newRTSPSource(pkts []av.Packet) (*rtspSource, error) {
	s := &rtspSource{}
	for i := range pkts {
		p := &pkts[i]
		switch {
		case !p.SeqHeader:
		case p.Kind == av.KindVideo && s.sps == nil:
			vc, err := flv.ParseVideoConfig(av.CodecH264, p.Data())
			if err != nil {
				return nil, err
			}
			s.sps, s.pps, s.lengthSize = vc.SPS[0], vc.PPS[0], vc.NALULengthSize
		case p.Kind == av.KindAudio && s.asc == nil:
			s.asc = &mpeg4audio.AudioSpecificConfig{}
			if err := s.asc.Unmarshal(p.Data()); err != nil {
				return nil, err
			}
		}
	}
	if s.sps == nil || s.asc == nil {
		return nil, errors.New("test media: no H.264 or AAC sequence header")
	}
	return s, nil
}

// rtspPublisher is one RTSP publishing session.
type rtspPublisher struct {
	c            *gortsplib.Client
	conn         atomic.Pointer[net.Conn]
	video, audio *description.Media
	venc         *rtph264.Encoder
	aenc         *rtpmpeg4audio.Encoder
	rate         int // audio clock
	lengthSize   int // of the NAL unit lengths in the video packets
	once         sync.Once
}

func (s *rtspSource) publish(url string) (*rtspPublisher, error) {
	vf := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: s.sps, PPS: s.pps}
	af := &format.MPEG4Audio{PayloadTyp: 97, Config: s.asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	p := &rtspPublisher{
		video:      &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{vf}},
		audio:      &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{af}},
		rate:       s.asc.SampleRate,
		lengthSize: s.lengthSize,
	}
	var err error
	if p.venc, err = vf.CreateEncoder(); err != nil {
		return nil, err
	}
	if p.aenc, err = af.CreateEncoder(); err != nil {
		return nil, err
	}
	tcp := gortsplib.ProtocolTCP
	d := &net.Dialer{Timeout: churnTimeout}
	p.c = &gortsplib.Client{
		Protocol:       &tcp,
		WriteQueueSize: 4096, // a second of media is sent at once
		ReadTimeout:    churnTimeout,
		WriteTimeout:   churnTimeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				p.conn.Store(&c)
			}
			return c, err
		},
	}
	desc := &description.Session{Medias: []*description.Media{p.video, p.audio}}
	if err := p.c.StartRecording(url, desc); err != nil {
		return nil, err
	}
	return p, nil
}

// send writes the packets with from <= timestamp < to as RTP, at once.
func (p *rtspPublisher) send(pkts []av.Packet, from, to int64) error {
	for i := range pkts {
		pk := &pkts[i]
		if pk.Timestamp < from || pk.Timestamp >= to || pk.SeqHeader {
			continue
		}
		var rtps []*rtp.Packet
		var err error
		var media *description.Media
		switch pk.Kind {
		case av.KindVideo:
			var au [][]byte
			if err := flv.SplitNALUs(pk.Data(), p.lengthSize, func(n []byte) { au = append(au, n) }); err != nil {
				return err
			}
			if rtps, err = p.venc.Encode(au); err != nil {
				return err
			}
			stampRTP(rtps, uint32(pk.PTS()*90))
			media = p.video
		case av.KindAudio:
			if rtps, err = p.aenc.Encode([][]byte{pk.Data()}); err != nil {
				return err
			}
			stampRTP(rtps, uint32(pk.Timestamp*int64(p.rate)/1000))
			media = p.audio
		default:
			continue
		}
		for _, r := range rtps {
			if err := p.c.WritePacketRTP(media, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func stampRTP(pkts []*rtp.Packet, ts uint32) {
	for _, r := range pkts {
		r.Timestamp = ts
	}
}

// close ends the session: TEARDOWN, or a TCP reset first when hard.
func (p *rtspPublisher) close(hard bool) {
	p.once.Do(func() {
		if c := p.conn.Load(); c != nil && hard {
			closeConn(*c, true)
		}
		p.c.Close()
	})
}

// heapProfile writes a heap profile to $SLUICE_CHURN_HEAPPROFILE.<name>
// when that is set, for `go tool pprof -base`.
func heapProfile(t *testing.T, name string) {
	prefix := os.Getenv("SLUICE_CHURN_HEAPPROFILE")
	if prefix == "" {
		return
	}
	f, err := os.Create(prefix + "." + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}
