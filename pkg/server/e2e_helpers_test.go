package server_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"sluice/pkg/amf0"
	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/flv"
	"sluice/pkg/group"
	"sluice/pkg/server"
)

// Timeouts of the end-to-end tests. They are generous: the machines running
// them are shared and the race detector slows the server down.
const (
	readyTimeout = 10 * time.Second // publisher connected and sequence headers in
	toolTimeout  = 30 * time.Second // one ffprobe/ffmpeg run
)

// mediaDir holds the shared test media (see its README.md);
// SLUICE_TEST_MEDIA overrides it.
var mediaDir = cmp.Or(os.Getenv("SLUICE_TEST_MEDIA"), "../../../shared/media")

// Test media files.
const (
	fileH264AAC  = "h264_aac_360p.flv"
	fileH264Only = "h264_only_360p.flv"
	fileAACOnly  = "aac_only.flv"
)

// requireFFmpeg skips the test when ffmpeg or ffprobe is missing, unless
// SLUICE_E2E_REQUIRE_FFMPEG is set (then the test fails instead). It also
// checks the test media is present.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not on PATH (%v): skipping the end-to-end test; `make test` installs ffmpeg", tool, err)
			if os.Getenv("SLUICE_E2E_REQUIRE_FFMPEG") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if _, err := os.Stat(filepath.Join(mediaDir, fileH264AAC)); err != nil {
		t.Fatalf("test media missing: %v", err)
	}
}

func mediaPath(name string) string { return filepath.Join(mediaDir, name) }

// ---------------------------------------------------------------------------
// Server

// newTestLogger returns a logger into a buffer that is shown when the test
// fails (or always with SLUICE_E2E_LOG=1). Logging into a buffer rather than
// t.Log keeps a late log line of a server goroutine from touching a finished
// test.
func newTestLogger(t *testing.T) *zap.Logger {
	lb := &lockedBuffer{}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SLUICE_E2E_LOG") != "" {
			t.Logf("server log:\n%s", lb.String())
		}
	})
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(lb), zapcore.InfoLevel))
}

// testConfig is the default configuration with every listener on a loopback
// port chosen by the kernel, the HTTP API and RTSP off (their Enable turns
// them on) and no RTSP UDP ports.
func testConfig() *config.Config {
	cfg := config.Default()
	cfg.RTMP.Addr = "127.0.0.1:0"
	cfg.HTTPFLV.HTTPListenAddr = "127.0.0.1:0"
	cfg.HTTPTS.HTTPListenAddr = "127.0.0.1:0"
	cfg.HTTPAPI.Enable = false
	cfg.HTTPAPI.Addr = "127.0.0.1:0"
	cfg.RTSP.Enable = false
	cfg.RTSP.Addr = "127.0.0.1:0"
	cfg.RTSP.UDPRTPAddr, cfg.RTSP.UDPRTCPAddr = "", ""
	return cfg
}

// startServer starts a server with testConfig; the test's cleanup shuts it
// down.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith starts a server with testConfig changed by mod (when not
// nil); the test's cleanup shuts it down.
func startServerWith(t *testing.T, mod func(*config.Config)) *server.Server {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(cfg)
	}
	return startServerConfig(t, "", cfg)
}

// startServerConfig starts a server with cfg; the test fails if it does not
// start, and its cleanup shuts it down. name, when not empty, names the
// server in its log and in the test's messages.
func startServerConfig(t *testing.T, name string, cfg *config.Config) *server.Server {
	t.Helper()
	srv, err := tryStartServer(t, name, cfg)
	if err != nil {
		t.Fatalf("%s start: %v", cmp.Or(name, "server"), err)
	}
	return srv
}

// tryStartServer makes a server with cfg and starts it. Once it has
// started, the test's cleanup shuts it down with stopServer.
func tryStartServer(t *testing.T, name string, cfg *config.Config) (*server.Server, error) {
	t.Helper()
	log := newTestLogger(t)
	if name != "" {
		log = log.Named(name)
	}
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		return srv, err
	}
	t.Cleanup(func() { stopServer(t, name, srv) })
	return srv, nil
}

// stopServer shuts srv down (a second call does nothing) and returns how
// long that took. The test fails if a listener of srv had stopped on its own
// or the shutdown fails.
func stopServer(t *testing.T, name string, srv *server.Server) time.Duration {
	t.Helper()
	name = cmp.Or(name, "server")
	select {
	case err := <-srv.Errors():
		t.Errorf("%s: a listener stopped on its own: %v", name, err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	err := srv.Shutdown(ctx)
	took := time.Since(start)
	if err != nil {
		t.Errorf("%s shutdown: %v (after %v)", name, err, took.Round(time.Millisecond))
	}
	return took
}

func rtmpURL(srv *server.Server, stream string) string {
	return "rtmp://" + srv.RTMPAddr() + "/live/" + stream
}

func flvURL(srv *server.Server, stream string) string {
	return "http://" + srv.HTTPFLVAddr() + "/live/" + stream + ".flv"
}

// ---------------------------------------------------------------------------
// Processes

// lockedBuffer is a bytes.Buffer safe for a writer (a process, a logger)
// and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running ffmpeg.
type proc struct {
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // valid once done is closed
	started time.Time
	stopped atomic.Bool // the test ended the process on purpose
}

// startProc starts name with args; the test's cleanup kills it and waits.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, cancel: cancel, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	p.started = time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop kills the process (if still running) and waits for it.
func (p *proc) stop() {
	p.stopped.Store(true)
	p.cancel()
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// startPublisher publishes file to rtmp://.../live/stream with ffmpeg at real
// time, looping forever.
// The test fails if the publisher dies before the test stops it.
func startPublisher(t *testing.T, srv *server.Server, stream, file string) *proc {
	t.Helper()
	return startPublisherRate(t, srv, stream, file, 1)
}

// startPublisherRate is startPublisher at rate times real time.
func startPublisherRate(t *testing.T, srv *server.Server, stream, file string, rate int) *proc {
	t.Helper()
	pace := []string{"-re"}
	if rate != 1 {
		pace = []string{"-readrate", strconv.Itoa(rate)}
	}
	args := append(pace, "-stream_loop", "-1", "-i", mediaPath(file), "-c", "copy", "-f", "flv", rtmpURL(srv, stream))
	return startFFmpegPublisher(t, fmt.Sprintf("publisher of %q", stream), args...)
}

// startFFmpegPublisher runs `ffmpeg -hide_banner -nostdin -loglevel error
// args...`, a publisher meant to run until the test ends: the test fails if
// it dies before the test stops it. what names it in that failure.
func startFFmpegPublisher(t *testing.T, what string, args ...string) *proc {
	t.Helper()
	p := startProc(t, "ffmpeg", append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, args...)...)
	// Runs before the cleanup that kills it.
	t.Cleanup(func() {
		if !p.stopped.Load() && p.exited() {
			t.Errorf("%s died during the test after %v: %v, stderr: %q",
				what, time.Since(p.started).Round(time.Millisecond), p.err, p.stderr.String())
		}
	})
	return p
}

// waitReady waits until the stream has a publisher and the sequence headers
// of the tracks asked for, and returns the group's stat then.
func waitReady(t *testing.T, srv *server.Server, stream string, pub *proc, video, audio bool) group.Stat {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		if g := srv.Groups().Group(stream); g != nil {
			st := g.Stat()
			if st.Pub != nil && (!video || st.Tracks.VideoConfig != nil) && (!audio || st.Tracks.AudioConfig != nil) {
				return st
			}
			last = fmt.Sprintf("pub=%v tracks=%+v", st.Pub != nil, st.Tracks)
		} else {
			last = "no group"
		}
		if pub != nil && pub.exited() {
			t.Fatalf("publisher of %q exited before the stream was ready: %v, stderr: %q", stream, pub.err, pub.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %q not ready (publisher + sequence headers) after %v: %s", stream, readyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustGroup returns the group of stream; the test fails if there is none.
func mustGroup(t *testing.T, srv *server.Server, stream string) *group.Group {
	t.Helper()
	g := srv.Groups().Group(stream)
	if g == nil {
		t.Fatal("group gone")
	}
	return g
}

// joinMidGOP sleeps until at least 3 s after t0 (the stream's first key
// frame) and 1 s into a 2 s GOP (the test media's), and fails the test if
// the publisher pub died meanwhile.
func joinMidGOP(t *testing.T, t0 time.Time, pub *proc) {
	t.Helper()
	const gop = 2 * time.Second
	el := max(time.Since(t0), 3*time.Second)
	k := (el - time.Second + gop - 1) / gop
	time.Sleep(time.Until(t0.Add(k*gop + time.Second)))
	if pub.exited() {
		t.Fatalf("publisher died: %v %q", pub.err, pub.stderr.String())
	}
}

// runTool runs ffmpeg or ffprobe to completion within toolTimeout.
func runTool(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	if name == "ffmpeg" {
		args = append([]string{"-nostdin"}, args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s killed after %v: %w (%v)", name, toolTimeout, ctx.Err(), err)
	}
	return out.String(), errb.String(), err
}

// probeStreams runs ffprobe on url and returns its streams as "codec WxH"
// or "codec", sorted.
func probeStreams(t *testing.T, url string) []string {
	t.Helper()
	return probeArgs(t, []string{url})
}

// probeArgs is probeStreams with input options: input is the options, then
// the URL (after -i or not).
func probeArgs(t *testing.T, input []string) []string {
	t.Helper()
	got, err := tryProbe(t, input)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tryProbe is probeArgs returning an error instead of failing the test (for
// goroutines).
func tryProbe(t *testing.T, input []string) ([]string, error) {
	t.Helper()
	args := append([]string{"-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json"}, input...)
	out, stderr, err := runTool(t, "ffprobe", args...)
	in := strings.Join(input, " ")
	if err != nil || stderr != "" {
		return nil, fmt.Errorf("ffprobe %s: err=%v stderr=%q stdout=%q", in, err, stderr, out)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, fmt.Errorf("ffprobe %s: bad JSON %q: %v", in, out, err)
	}
	var got []string
	for _, s := range res.Streams {
		if s.Width != 0 || s.Height != 0 {
			got = append(got, fmt.Sprintf("%s %dx%d", s.CodecName, s.Width, s.Height))
		} else {
			got = append(got, s.CodecName)
		}
	}
	slices.Sort(got)
	return got, nil
}

// probeVideoPackets runs ffprobe on url for the entries (e.g.
// "packet=flags") of the first n video packets, and returns its CSV lines.
// It fails the test if ffprobe fails, and reports an error if it logs one
// (a decode error: what a player starting mid-GOP reports).
func probeVideoPackets(t *testing.T, url, entries string, n int) (lines []string, out string) {
	t.Helper()
	out, stderr, err := runTool(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", entries, "-of", "csv=p=0", "-read_intervals", "%+#"+strconv.Itoa(n), url)
	if err != nil {
		t.Fatalf("ffprobe: %v, stderr %q", err, stderr)
	}
	if stderr != "" {
		t.Errorf("ffprobe reported errors: %q", stderr)
	}
	return strings.Fields(out), out
}

// decodeClean decodes seconds of url with ffmpeg and fails unless ffmpeg
// exits 0 with an empty stderr and output at least seconds-1 long.
func decodeClean(t *testing.T, url string, seconds int) {
	t.Helper()
	decodeArgs(t, []string{"-i", url}, seconds)
}

// decodeArgs is decodeClean with input options: input is the options, then
// -i and the URL.
func decodeArgs(t *testing.T, input []string, seconds int) {
	t.Helper()
	progress, stderr, err := runDecode(t, "error", input, seconds)
	in := strings.Join(input, " ")
	if err != nil {
		t.Fatalf("ffmpeg decode of %s failed: %v, stderr: %q", in, err, stderr)
	}
	if stderr != "" {
		t.Fatalf("ffmpeg decode of %s reported errors: %q", in, stderr)
	}
	if us, min := decodedUS(progress), int64(seconds-1)*1e6; us < min {
		t.Fatalf("ffmpeg decoded only %d µs of %s, want ≥ %d µs (progress: %q)", us, in, min, progress)
	}
}

// runDecode decodes seconds of input (options, then -i and the URL) with
// ffmpeg at log level level into the null muxer, and returns its -progress
// output and its stderr.
//
// -enc_time_base:v -1 keeps the decoded video on the input's time base.
// By default ffmpeg re-times it on 1/frame rate, and the frame rate of an
// MPEG-TS input is a guess from the DTS steps it probes: a probe that sees
// a looped publisher's one 49 ms step (-stream_loop, 10 s test media)
// guesses 24.92 fps, and two frames then land on one tick of ffmpeg's own
// output ("non monotonically increasing dts to muxer") although every DTS
// Sluice sent is increasing (pkg/mpegts TestEndToEndJoinBeforeLoopPoint).
func runDecode(t *testing.T, level string, input []string, seconds int) (progress, stderr string, err error) {
	t.Helper()
	args := append([]string{"-v", level}, input...)
	args = append(args, "-t", strconv.Itoa(seconds), "-enc_time_base:v", "-1", "-f", "null", "-nostats", "-progress", "pipe:1", "-")
	return runTool(t, "ffmpeg", args...)
}

// decodedUS returns how much media ffmpeg decoded, in µs, from its -progress
// output (key=value blocks; the last out_time_us is the decoded duration),
// or -1 without any.
func decodedUS(progress string) int64 {
	var us int64 = -1
	for _, line := range strings.Split(progress, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "out_time_us="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				us = n
			}
		}
	}
	return us
}

// ---------------------------------------------------------------------------
// HTTP-FLV client

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

// flvClient is an HTTP-FLV subscriber using net/http.
type flvClient struct {
	Resp *http.Response
	R    *flv.Reader
	tr   *http.Transport

	mu   sync.Mutex
	conn *countingConn
}

// tag is one FLV tag as a subscriber received it.
type tag struct {
	H   flv.TagHeader
	Pkt av.Packet
	At  time.Time
}

func (tg tag) String() string {
	switch {
	case tg.H.Type == flv.TagScript:
		return fmt.Sprintf("script@%d", tg.H.Timestamp)
	case tg.Pkt.SeqHeader:
		return fmt.Sprintf("%s-seqhdr@%d", tg.Pkt.Kind, tg.H.Timestamp)
	case tg.Pkt.KeyFrame:
		return fmt.Sprintf("%s-key@%d", tg.Pkt.Kind, tg.H.Timestamp)
	}
	return fmt.Sprintf("%s@%d", tg.Pkt.Kind, tg.H.Timestamp)
}

func (tg tag) isVideoSeqHeader() bool { return tg.Pkt.Kind == av.KindVideo && tg.Pkt.SeqHeader }
func (tg tag) isAudioSeqHeader() bool { return tg.Pkt.Kind == av.KindAudio && tg.Pkt.SeqHeader }
func (tg tag) isKeyFrame() bool {
	return tg.Pkt.Kind == av.KindVideo && tg.Pkt.KeyFrame && !tg.Pkt.SeqHeader
}
func (tg tag) isMedia() bool {
	return (tg.Pkt.Kind == av.KindVideo || tg.Pkt.Kind == av.KindAudio) && !tg.Pkt.SeqHeader
}

// openFLV sends the GET for url and returns once the response head is in.
// It does not read the FLV header. Cleanup closes the connection.
func openFLV(t *testing.T, url string) *flvClient {
	t.Helper()
	c := &flvClient{}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c.tr = &http.Transport{
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 10 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc := &countingConn{Conn: nc}
			c.mu.Lock()
			c.conn = cc
			c.mu.Unlock()
			return cc, nil
		},
	}
	t.Cleanup(c.close)
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: c.tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	c.Resp = resp
	c.R = flv.NewReader(resp.Body)
	return c
}

// subscribeFLV is openFLV, then the FLV header read within timeout; the
// test fails if either fails.
func subscribeFLV(t *testing.T, url string, timeout time.Duration) *flvClient {
	t.Helper()
	c := openFLV(t, url)
	if _, _, err := c.ReadHeader(timeout); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *flvClient) close() {
	if c.Resp != nil {
		c.Resp.Body.Close()
	}
	c.tr.CloseIdleConnections()
}

func (c *flvClient) netConn() *countingConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// LocalAddr is the client side of the connection, as the server's
// RemoteAddr of the session.
func (c *flvClient) LocalAddr() string { return c.netConn().LocalAddr().String() }

// BytesRead is the number of bytes read from the socket, head included.
func (c *flvClient) BytesRead() int64 { return c.netConn().read.Load() }

// SetDeadline bounds the following reads.
func (c *flvClient) SetDeadline(d time.Time) { c.netConn().SetReadDeadline(d) }

// ReadHeader reads the FLV file header within timeout.
func (c *flvClient) ReadHeader(timeout time.Duration) (hasAudio, hasVideo bool, err error) {
	c.SetDeadline(time.Now().Add(timeout))
	return c.R.ReadHeader()
}

// Next reads one tag (the deadline set last applies).
func (c *flvClient) Next() (tag, error) {
	h, body, err := c.R.ReadTag()
	if err != nil {
		return tag{}, err
	}
	pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
	if err != nil {
		return tag{}, fmt.Errorf("bad tag %+v: %w", h, err)
	}
	return tag{H: h, Pkt: pkt, At: time.Now()}, nil
}

// ReadFor reads tags until d has passed. It stops at the first tag read
// after d (a live stream brings one every few tens of milliseconds), not with
// a read deadline, which would make net/http close the connection. A read
// error is returned with the tags read before it.
func (c *flvClient) ReadFor(d time.Duration) ([]tag, error) {
	end := time.Now().Add(d)
	c.SetDeadline(end.Add(5 * time.Second))
	var tags []tag
	for time.Now().Before(end) {
		tg, err := c.Next()
		if err != nil {
			return tags, err
		}
		tags = append(tags, tg)
	}
	return tags, nil
}

// ReadUntil reads tags until cond holds for one (returned last) or timeout
// passes, which fails the test.
func (c *flvClient) ReadUntil(t *testing.T, timeout time.Duration, what string, cond func(tag) bool) []tag {
	t.Helper()
	c.SetDeadline(time.Now().Add(timeout))
	var tags []tag
	for {
		tg, err := c.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v after %d tags (%s)", what, err, len(tags), summarize(tags))
		}
		tags = append(tags, tg)
		if cond(tg) {
			return tags
		}
	}
}

// summarize prints the first and last tags of a list.
func summarize(tags []tag) string {
	var parts []string
	for i, tg := range tags {
		if i < 12 || i >= len(tags)-4 {
			parts = append(parts, tg.String())
		} else if i == 12 {
			parts = append(parts, "...")
		}
	}
	return strings.Join(parts, " ")
}

// scriptName returns the name (first AMF0 value) of a script tag.
func scriptName(tg tag) string {
	v, _, err := amf0.DecodeOne(tg.Pkt.Payload)
	if err != nil {
		return fmt.Sprintf("<amf0 error: %v>", err)
	}
	s, _ := v.(string)
	return s
}

// ---------------------------------------------------------------------------
// Raw connections

// rawHTTP sends req on a fresh TCP connection and reads the response head
// within timeout. The connection is closed by cleanup.
func rawHTTP(t *testing.T, addr, req string, timeout time.Duration) (*http.Response, net.Conn, *bufio.Reader, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(req)); err != nil {
		return nil, c, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	return resp, c, br, err
}

// rawStatus is a raw HTTP request and the status it must get.
type rawStatus struct {
	req  string
	want int
}

// checkRawStatuses sends each request to addr on a connection of its own
// (rawHTTP, 5 s) and checks the status of the response.
func checkRawStatuses(t *testing.T, addr string, reqs []rawStatus) {
	t.Helper()
	for _, tc := range reqs {
		resp, _, _, err := rawHTTP(t, addr, tc.req, 5*time.Second)
		if err != nil {
			t.Errorf("%q: %v", tc.req, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%q: status %s, want %d", tc.req, resp.Status, tc.want)
		}
	}
}

// isTimeout reports a deadline error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
