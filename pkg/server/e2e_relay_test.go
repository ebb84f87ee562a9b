package server_test

// End-to-end tests of relay pull and push (issue 6): two or three Sluice
// instances in one test, talking RTMP to each other, driven by the HTTP API,
// the static_relay_pull and relay_push configuration, and webhooks.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/pkg/api"
	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/rtmp"
	"sluice/pkg/server"
)

// ---------------------------------------------------------------------------
// Servers

// relayConfig is a node's configuration: testConfig with the HTTP API on
// and webhooks off.
func relayConfig() *config.Config {
	cfg := testConfig()
	cfg.HTTPAPI.Enable = true
	cfg.HTTPNotify.Enable = false
	return cfg
}

// startRelayNode starts a node named name (in its log) with relayConfig
// changed by mod; the test's cleanup shuts it down.
func startRelayNode(t *testing.T, name string, mod func(*config.Config)) *server.Server {
	t.Helper()
	cfg := relayConfig()
	if mod != nil {
		mod(cfg)
	}
	return startRelayNodeWith(t, name, cfg)
}

func startRelayNodeWith(t *testing.T, name string, cfg *config.Config) *server.Server {
	t.Helper()
	srv := startServerConfig(t, name, cfg)
	// Runs before startServerConfig's cleanup, whose shutdown then does nothing.
	t.Cleanup(func() { stopRelayNode(t, name, srv) })
	return srv
}

// stopRelayNode shuts srv down (a second call does nothing), which must take
// at most 5 s.
func stopRelayNode(t *testing.T, name string, srv *server.Server) {
	t.Helper()
	if d := stopServer(t, name, srv); d > 5*time.Second {
		t.Errorf("%s shutdown took %v", name, d.Round(time.Millisecond))
	}
}

// relayFreeAddr returns a loopback address nobody listens on (yet).
func relayFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// relayTSURL is tsURL (e2e_rtsp_pull_test.go calls it).
func relayTSURL(srv *server.Server, stream string) string { return tsURL(srv, stream) }

// loopPeriod is the period of a publisher looping the 10 s test media: the
// video timestamps jump by 49 ms instead of 40 ms at each loop (ffmpeg's
// -stream_loop adds the audio's extra 9 ms), in the publisher's own stream.
const loopPeriod = 10009 * time.Millisecond

// avoidLoopPoint waits, if needed, so that a decode of d starting now (from
// the key frame of the GOP cache, at most 2 s back) ends before the
// publisher's next loop point, where the source's timestamps step by 49 ms.
// (ffmpeg's TS frame-rate guess across that step is what runDecode's
// -enc_time_base guards against; these relay checks also keep the step,
// made by the source and passed on through the relay, out of the window.)
func avoidLoopPoint(pub *proc, d time.Duration) {
	pos := time.Since(pub.started) % loopPeriod
	if pos+d > loopPeriod-500*time.Millisecond {
		time.Sleep(loopPeriod - pos + 500*time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// HTTP API

var relayHTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// relayAPIErr calls the API at addr: GET without a body, POST with one.
func relayAPIErr(addr, path, body string) (string, error) {
	method, r := http.MethodGet, io.Reader(nil)
	if body != "" {
		method, r = http.MethodPost, strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, r)
	if err != nil {
		return "", err
	}
	resp, err := relayHTTPClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	return string(b), nil
}

func relayAPI(t *testing.T, srv *server.Server, path, body string) string {
	t.Helper()
	s, err := relayAPIErr(srv.APIAddr(), path, body)
	if err != nil {
		t.Fatalf("API %s %s: %v", path, body, err)
	}
	return s
}

// relayStartPull calls start_relay_pull with the JSON of req.
func relayStartPull(t *testing.T, srv *server.Server, req map[string]any) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return relayAPI(t, srv, "/api/ctrl/start_relay_pull", string(b))
}

var startPullOK = regexp.MustCompile(`^\{"error_code":0,"desp":"succ","data":\{"stream_name":"([^"]+)","session_id":"(RTMPPULL[1-9][0-9]*)"\}\}$`)

// relayStartPullOK calls start_relay_pull, which must succeed for stream, and
// returns the session id.
func relayStartPullOK(t *testing.T, srv *server.Server, stream string, req map[string]any) string {
	t.Helper()
	body := relayStartPull(t, srv, req)
	m := startPullOK.FindStringSubmatch(body)
	if m == nil || m[1] != stream {
		t.Fatalf("start_relay_pull %v = %s, want success for stream %q with an RTMPPULL<n> id", req, body, stream)
	}
	return m[2]
}

// relayStat returns the error code of /api/stat/group and its data.
func relayStat(t *testing.T, srv *server.Server, stream string) (int, api.StatGroup) {
	t.Helper()
	body := relayAPI(t, srv, "/api/stat/group?stream_name="+url.QueryEscape(stream), "")
	var resp struct {
		Code int            `json:"error_code"`
		Data *api.StatGroup `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("stat/group %s: %v: %s", stream, err, body)
	}
	if resp.Data == nil {
		return resp.Code, api.StatGroup{}
	}
	return resp.Code, *resp.Data
}

// relayWaitStat polls stat/group until cond holds (code is the API error
// code: 0, or 1001 when the group does not exist).
func relayWaitStat(t *testing.T, srv *server.Server, stream string, timeout time.Duration, what string, cond func(code int, g api.StatGroup) bool) api.StatGroup {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, g := relayStat(t, srv, stream)
		if cond(code, g) {
			return g
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(g)
			t.Fatalf("after %v still waiting for %s; stat/group %s: code %d %s", timeout, what, stream, code, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// relaySubs returns the subscribers of stream on srv (none when the group
// does not exist).
func relaySubs(t *testing.T, srv *server.Server, stream string) []api.StatSession {
	t.Helper()
	_, g := relayStat(t, srv, stream)
	return g.Subs
}

func sessionIDs(ss []api.StatSession) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.SessionID+"/"+s.Protocol+"/"+s.BaseType)
	}
	return ids
}

// relayWait polls cond until it holds or timeout passes.
func relayWait(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// ---------------------------------------------------------------------------
// Webhooks

// relayHook is one webhook received.
type relayHook struct {
	Name string
	Ev   api.SessionEventBody
	At   time.Time
}

// relayHooks is a webhook receiver. handle, when set, is called for each
// event in the receiver's handler (it may call the API).
type relayHooks struct {
	srv    *httptest.Server
	handle func(name string, ev api.SessionEventBody)
	mu     sync.Mutex
	events []relayHook
}

// newRelayHooks starts a receiver; create it before the servers that post
// to it, so that it outlives their shutdown.
func newRelayHooks(t *testing.T, handle func(name string, ev api.SessionEventBody)) *relayHooks {
	h := &relayHooks{handle: handle}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev api.SessionEventBody
		_ = json.Unmarshal(body, &ev) // on_update and others fill part of it
		name := strings.TrimPrefix(r.URL.Path, "/")
		h.mu.Lock()
		h.events = append(h.events, relayHook{Name: name, Ev: ev, At: time.Now()})
		h.mu.Unlock()
		if h.handle != nil {
			h.handle(name, ev)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// configure points every webhook of cfg at the receiver.
func (h *relayHooks) configure(cfg *config.Config) {
	n := &cfg.HTTPNotify
	n.Enable = true
	n.UpdateIntervalSec = 0
	u := h.srv.URL + "/"
	n.OnServerStart, n.OnUpdate = u+"on_server_start", u+"on_update"
	n.OnPubStart, n.OnPubStop = u+"on_pub_start", u+"on_pub_stop"
	n.OnSubStart, n.OnSubStop = u+"on_sub_start", u+"on_sub_stop"
	n.OnRelayPullStart, n.OnRelayPullStop = u+"on_relay_pull_start", u+"on_relay_pull_stop"
	n.OnRTMPConnect, n.OnHLSMakeTS = u+"on_rtmp_connect", u+"on_hls_make_ts"
}

// find returns the events named name for which match holds.
func (h *relayHooks) find(name string, match func(api.SessionEventBody) bool) []relayHook {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []relayHook
	for _, e := range h.events {
		if e.Name == name && (match == nil || match(e.Ev)) {
			out = append(out, e)
		}
	}
	return out
}

// wait waits until n events named name match, and returns them.
func (h *relayHooks) wait(t *testing.T, timeout time.Duration, name string, n int, match func(api.SessionEventBody) bool) []relayHook {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := h.find(name, match)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d %s webhooks match, want %d; all received: %s", timeout, len(evs), name, n, h.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *relayHooks) dump() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, e := range h.events {
		if e.Name == "on_update" || e.Name == "on_server_start" {
			continue
		}
		fmt.Fprintf(&b, "\n  %s %s %s %s base=%q url=%s in=%v out=%v", e.At.Format("15:04:05.000"), e.Name, e.Ev.SessionID,
			e.Ev.StreamName, e.Ev.BaseType, e.Ev.URL, e.Ev.HasInSession, e.Ev.HasOutSession)
	}
	return b.String()
}

func hookStream(s string) func(api.SessionEventBody) bool {
	return func(ev api.SessionEventBody) bool { return ev.StreamName == s }
}

func hookSession(id string) func(api.SessionEventBody) bool {
	return func(ev api.SessionEventBody) bool { return ev.SessionID == id }
}

// ---------------------------------------------------------------------------
// Players read in the background

// relayPlayer is a subscriber read by a goroutine until the test closes it.
// It records when video key frames and video frames arrived.
type relayPlayer struct {
	name  string
	close func()
	done  chan struct{}

	mu     sync.Mutex
	keys   []time.Time
	frames []time.Time
	err    error
}

func (p *relayPlayer) gotKey() {
	p.mu.Lock()
	p.keys = append(p.keys, time.Now())
	p.mu.Unlock()
}

func (p *relayPlayer) gotFrame() {
	p.mu.Lock()
	p.frames = append(p.frames, time.Now())
	p.mu.Unlock()
}

func (p *relayPlayer) ended(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

// keysAfter counts the key frames received after t.
func (p *relayPlayer) keysAfter(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range p.keys {
		if k.After(t) {
			n++
		}
	}
	return n
}

// framesBetween counts the video frames received in [a, b].
func (p *relayPlayer) framesBetween(a, b time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.frames {
		if !f.Before(a) && !f.After(b) {
			n++
		}
	}
	return n
}

func (p *relayPlayer) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop closes the player and waits for its goroutine.
func (p *relayPlayer) stop() {
	p.close()
	<-p.done
}

func (p *relayPlayer) start(t *testing.T, read func()) {
	p.done = make(chan struct{})
	go read()
	t.Cleanup(p.stop)
}

// playFLV plays url over HTTP-FLV in the background.
func playFLV(t *testing.T, url string) *relayPlayer {
	t.Helper()
	c := openFLV(t, url)
	if c.Resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, c.Resp.Status)
	}
	p := &relayPlayer{name: "http-flv", close: c.close}
	p.start(t, func() {
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		if _, _, err := c.R.ReadHeader(); err != nil {
			p.ended(err)
			return
		}
		for {
			tg, err := c.Next()
			if err != nil {
				p.ended(err)
				return
			}
			if tg.Pkt.Kind == av.KindVideo && !tg.Pkt.SeqHeader {
				p.gotFrame()
				if tg.Pkt.KeyFrame {
					p.gotKey()
				}
			}
		}
	})
	return p
}

// playRTMP plays url with Sluice's RTMP client in the background.
func playRTMP(t *testing.T, url string) *relayPlayer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rtmp.Dial(ctx, url, rtmp.ClientOptions{ReadTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("rtmp dial %s: %v", url, err)
	}
	if err := c.Play(); err != nil {
		c.Close()
		t.Fatalf("rtmp play %s: %v", url, err)
	}
	p := &relayPlayer{name: "rtmp", close: func() { c.Close() }}
	p.start(t, func() {
		for {
			pkt, err := c.ReadPacket()
			if err != nil {
				p.ended(err)
				return
			}
			if pkt.Kind == av.KindVideo && !pkt.SeqHeader {
				p.gotFrame()
				if pkt.KeyFrame {
					p.gotKey()
				}
			}
		}
	})
	return p
}

// playTS plays url over HTTP-TS in the background: TS packets with the
// random access indicator count as key frames, packets starting a PES or
// section as frames.
func playTS(t *testing.T, url string) *relayPlayer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := &relayPlayer{name: "http-ts", close: func() { resp.Body.Close(); tr.CloseIdleConnections() }}
	p.start(t, func() {
		buf := make([]byte, 188)
		for {
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				p.ended(err)
				return
			}
			if buf[0] != 0x47 {
				p.ended(fmt.Errorf("TS packet without the sync byte: % x", buf[:4]))
				return
			}
			if buf[1]&0x40 != 0 {
				p.gotFrame()
			}
			if buf[3]&0x20 != 0 && buf[4] > 0 && buf[5]&0x40 != 0 {
				p.gotKey()
			}
		}
	})
	return p
}

// ---------------------------------------------------------------------------
// Tests

// TestRelayPullAPI pulls a stream from a second Sluice over RTMP with
// /api/ctrl/start_relay_pull into another local name, and plays it over
// RTMP, HTTP-FLV and HTTP-TS; the stat and the webhooks describe the pull.
func TestRelayPullAPI(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRelayNode(t, "origin", nil)
	pub := startPublisher(t, origin, "src1", fileH264AAC)
	waitReady(t, origin, "src1", pub, true, true)
	edge := startRelayNode(t, "edge", func(cfg *config.Config) {
		hooks.configure(cfg)
		cfg.RTSP.Enable = true
	})

	remote := rtmpURL(origin, "src1")
	id := relayStartPullOK(t, edge, "pulled", map[string]any{"url": remote, "stream_name": "pulled"})
	started := time.Now()
	relayWaitStat(t, edge, "pulled", 10*time.Second, "the pull to bring the stream's codecs", func(code int, g api.StatGroup) bool {
		return code == 0 && g.Pull.SessionID == id && g.VideoCodec == "H264" && g.AudioCodec == "AAC"
	})
	t.Logf("pull %s joined with media %v after start_relay_pull", id, time.Since(started).Round(time.Millisecond))

	t.Run("play", func(t *testing.T) {
		for _, pl := range []struct {
			name  string
			input []string
		}{
			{"rtmp", []string{"-i", rtmpURL(edge, "pulled")}},
			{"httpflv", []string{"-i", flvURL(edge, "pulled")}},
			{"httpts", []string{"-i", tsURL(edge, "pulled")}},
			{"rtsp", []string{"-rtsp_transport", "tcp", "-i", rtspURL(edge, "pulled")}},
		} {
			t.Run(pl.name, func(t *testing.T) {
				t.Parallel()
				avoidLoopPoint(pub, 4*time.Second)
				t0 := time.Now()
				decodeArgs(t, pl.input, 4)
				t1 := time.Now()
				if got, want := probeArgs(t, pl.input), []string{"aac", "h264 640x360"}; !slices.Equal(got, want) {
					t.Errorf("ffprobe %v streams = %q, want %q", pl.input, got, want)
				}
				t.Logf("decode %v probe %v (publisher at %v)", t1.Sub(t0), time.Since(t1), t0.Sub(pub.started))
			})
		}
	})

	// The stat: the pull is the input, in "pull"; "pub" is empty.
	g := relayWaitStat(t, edge, "pulled", 10*time.Second, "the pull's bitrate", func(code int, g api.StatGroup) bool {
		return code == 0 && g.Pull.BitrateKbits > 0
	})
	p := g.Pull
	if p.SessionID != id || p.Protocol != "RTMP" || p.BaseType != "PULL" || p.RemoteAddr != origin.RTMPAddr() || p.StartTime == "" {
		t.Errorf("stat pull = %+v, want %s RTMP PULL from %s", p, id, origin.RTMPAddr())
	}
	// 4 s of ~1 Mbit/s at least went through.
	if p.ReadBytesSum < 200_000 || p.ReadBitrateKbits != p.BitrateKbits || p.BitrateKbits < 300 || p.BitrateKbits > 3000 {
		t.Errorf("stat pull counters: read_bytes_sum %d, bitrate %d (read %d) kbit/s; want > 200 kB and about 1000 kbit/s",
			p.ReadBytesSum, p.BitrateKbits, p.ReadBitrateKbits)
	}
	if g.Pub != (api.StatSession{}) {
		t.Errorf("stat pub = %+v, want empty: the input is a pull", g.Pub)
	}
	if g.VideoWidth != 640 || g.VideoHeight != 360 {
		t.Errorf("stat video size %dx%d, want 640x360", g.VideoWidth, g.VideoHeight)
	}
	// The origin sees the pull as its only subscriber: an RTMP sub.
	if subs := relaySubs(t, origin, "src1"); len(subs) != 1 || subs[0].Protocol != "RTMP" || subs[0].BaseType != "SUB" {
		t.Errorf("origin subs = %v, want exactly the edge's pull (one RTMP SUB)", sessionIDs(subs))
	}

	ev := hooks.wait(t, 5*time.Second, "on_relay_pull_start", 1, hookSession(id))[0].Ev
	// app_name and stream_name are the local group's: the group was made by
	// the API, so its app is "".
	if ev.BaseType != "PULL" || ev.StreamName != "pulled" || ev.AppName != g.AppName || ev.URL != remote || ev.Protocol != "RTMP" ||
		!ev.HasInSession || ev.RemoteAddr != origin.RTMPAddr() {
		t.Errorf("on_relay_pull_start = %+v, want base_type PULL, stream_name pulled, app_name %q, url %s, has_in_session", ev, g.AppName, remote)
	}
	if n := len(hooks.find("on_relay_pull_stop", hookStream("pulled"))); n != 0 {
		t.Errorf("%d on_relay_pull_stop while the pull runs", n)
	}
	if n := len(hooks.find("on_pub_start", nil)); n != 0 {
		t.Errorf("the pull was also reported as on_pub_start (%d)", n)
	}
}

// TestRelayPullRetriesUntilSourceAppears: a pull with pull_retry_num -1
// started before its origin runs fails its first attempts (each reported by
// on_relay_pull_stop without a start, with a new id) and joins once the
// origin and the stream are there.
func TestRelayPullRetriesUntilSourceAppears(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	edge := startRelayNode(t, "edge", hooks.configure)
	addr := relayFreeAddr(t)
	remote := "rtmp://" + addr + "/live/late2"
	id := relayStartPullOK(t, edge, "late2", map[string]any{"url": remote, "stream_name": "late2", "pull_retry_num": -1, "pull_timeout_ms": 3000})

	stops := hooks.wait(t, 8*time.Second, "on_relay_pull_stop", 2, hookStream("late2"))
	seen := map[string]bool{}
	for i, s := range stops {
		ev := s.Ev
		if !strings.HasPrefix(ev.SessionID, "RTMPPULL") || seen[ev.SessionID] {
			t.Errorf("failed attempt %d has id %q; want a new RTMPPULL id each attempt (%s)", i, ev.SessionID, hooks.dump())
		}
		seen[ev.SessionID] = true
		if ev.BaseType != "PULL" || ev.URL != remote || ev.HasInSession {
			t.Errorf("failed attempt %d: on_relay_pull_stop %+v, want base_type PULL, url %s, has_in_session false", i, ev, remote)
		}
	}
	if stops[0].Ev.SessionID != id {
		t.Errorf("first on_relay_pull_stop is for %s, start_relay_pull returned %s", stops[0].Ev.SessionID, id)
	}
	if n := len(hooks.find("on_relay_pull_start", nil)); n != 0 {
		t.Errorf("on_relay_pull_start while the origin is down: %s", hooks.dump())
	}
	// As lal, the group exists from start_relay_pull on: stat answers 0 with
	// an empty pull while the pull retries.
	if code, g := relayStat(t, edge, "late2"); code != 0 || g.Pull.SessionID != "" || g.Pub.SessionID != "" {
		t.Errorf("stat/group of a retrying pull: code %d, pull %+v", code, g.Pull)
	}

	// The origin appears, then its stream.
	cfg := relayConfig()
	cfg.RTMP.Addr = addr
	origin := startRelayNodeWith(t, "origin", cfg)
	pub := startPublisher(t, origin, "late2", fileH264AAC)
	appeared := time.Now()
	waitReady(t, origin, "late2", pub, true, true)
	relayWaitStat(t, edge, "late2", 15*time.Second, "the pull to join with media", func(code int, g api.StatGroup) bool {
		return code == 0 && g.Pull.SessionID != "" && g.VideoCodec == "H264"
	})
	t.Logf("the pull joined %v after the publisher started (%d failed attempts before)",
		time.Since(appeared).Round(time.Millisecond), len(hooks.find("on_relay_pull_stop", hookStream("late2"))))
	start := hooks.wait(t, 5*time.Second, "on_relay_pull_start", 1, hookStream("late2"))[0].Ev
	if seen[start.SessionID] || !strings.HasPrefix(start.SessionID, "RTMPPULL") {
		t.Errorf("the joining attempt has id %q, want a new RTMPPULL id", start.SessionID)
	}
	decodeClean(t, flvURL(edge, "late2"), 3)
}

// TestRelayPullAutoStop: with auto_stop_pull_after_no_out_ms 2000, a pull
// outlives its only viewer by about 2 s and is not retried.
func TestRelayPullAutoStop(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRelayNode(t, "origin", nil)
	pub := startPublisher(t, origin, "src3", fileH264AAC)
	waitReady(t, origin, "src3", pub, true, true)
	edge := startRelayNode(t, "edge", hooks.configure)

	viewer := playFLV(t, flvURL(edge, "auto3")) // waits for the stream
	relayWaitStat(t, edge, "auto3", 5*time.Second, "the viewer", func(code int, g api.StatGroup) bool { return len(g.Subs) == 1 })
	id := relayStartPullOK(t, edge, "auto3", map[string]any{
		"url": rtmpURL(origin, "src3"), "stream_name": "auto3", "pull_retry_num": -1, "auto_stop_pull_after_no_out_ms": 2000,
	})
	relayWait(t, 10*time.Second, "the viewer's first key frame", func() bool { return viewer.keysAfter(time.Time{}) > 0 })
	time.Sleep(3 * time.Second) // longer than the auto stop: the viewer keeps the pull
	if _, g := relayStat(t, edge, "auto3"); g.Pull.SessionID != id {
		t.Fatalf("the pull %s stopped while its viewer watched (stat pull %+v; webhooks %s)", id, g.Pull, hooks.dump())
	}
	if err := viewer.error(); err != nil {
		t.Fatalf("viewer: %v", err)
	}

	viewer.stop()
	left := time.Now()
	relayWaitStat(t, edge, "auto3", 6*time.Second, "the pull to stop", func(code int, g api.StatGroup) bool {
		return code == 1001 || g.Pull.SessionID == ""
	})
	took := time.Since(left)
	t.Logf("pull stopped %v after its viewer left", took.Round(time.Millisecond))
	if took < 1500*time.Millisecond {
		t.Errorf("the pull stopped %v after the viewer left, want about 2 s", took)
	}
	hooks.wait(t, 3*time.Second, "on_relay_pull_stop", 1, hookSession(id))
	relayWait(t, 5*time.Second, "the origin's subscriber to leave", func() bool { return len(relaySubs(t, origin, "src3")) == 0 })

	time.Sleep(2500 * time.Millisecond) // a retry would come within 1 s
	if starts := hooks.find("on_relay_pull_start", hookStream("auto3")); len(starts) != 1 {
		t.Errorf("%d on_relay_pull_start, want 1 (no retry after the auto stop): %s", len(starts), hooks.dump())
	}
	if subs := relaySubs(t, origin, "src3"); len(subs) != 0 {
		t.Errorf("origin subs %v after the auto stop", sessionIDs(subs))
	}
	if body := relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name=auto3", ""); !strings.HasPrefix(body, `{"error_code":1001,`) {
		t.Errorf("stop_relay_pull after the auto stop = %s, want 1001 (nothing left)", body)
	}
}

// TestRelayPullStopAndKick: stop_relay_pull and kick_session end a pull and
// its retries; the origin sees its subscriber leave.
func TestRelayPullStopAndKick(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRelayNode(t, "origin", nil)
	pub := startPublisher(t, origin, "src4", fileH264AAC)
	waitReady(t, origin, "src4", pub, true, true)
	edge := startRelayNode(t, "edge", hooks.configure)

	for _, how := range []string{"stop", "kick"} {
		local := how + "4"
		id := relayStartPullOK(t, edge, local, map[string]any{"url": rtmpURL(origin, "src4"), "stream_name": local, "pull_retry_num": -1})
		relayWaitStat(t, edge, local, 10*time.Second, "the pull to join", func(code int, g api.StatGroup) bool {
			return g.Pull.SessionID == id && g.Pull.ReadBytesSum > 0
		})
		relayWait(t, 5*time.Second, "the origin to see the pull", func() bool { return len(relaySubs(t, origin, "src4")) == 1 })

		switch how {
		case "stop":
			body := relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name="+local, "")
			if want := `{"error_code":0,"desp":"succ","data":{"session_id":"` + id + `"}}`; body != want {
				t.Errorf("stop_relay_pull = %s, want %s", body, want)
			}
		case "kick":
			body := relayAPI(t, edge, "/api/ctrl/kick_session", `{"stream_name":"`+local+`","session_id":"`+id+`"}`)
			if want := `{"error_code":0,"desp":"succ"}`; body != want {
				t.Errorf("kick_session of the pull = %s, want %s", body, want)
			}
		}
		took := relayWait(t, 5*time.Second, "the origin's subscriber to leave ("+how+")", func() bool { return len(relaySubs(t, origin, "src4")) == 0 })
		t.Logf("%s: the origin's subscriber left %v after the call", how, took.Round(time.Millisecond))
		hooks.wait(t, 5*time.Second, "on_relay_pull_stop", 1, hookSession(id))
		time.Sleep(2500 * time.Millisecond) // a retry would come within about 1 s
		if subs := relaySubs(t, origin, "src4"); len(subs) != 0 {
			t.Errorf("%s: the pull came back: origin subs %v", how, sessionIDs(subs))
		}
		if starts := hooks.find("on_relay_pull_start", hookStream(local)); len(starts) != 1 {
			t.Errorf("%s: %d on_relay_pull_start, want 1: %s", how, len(starts), hooks.dump())
		}
		if code, g := relayStat(t, edge, local); code != 1001 {
			t.Errorf("%s: the group stays: code %d pull %+v", how, code, g.Pull)
		}
	}
}

// TestRelayPullAPIErrors checks the error codes and exact bodies of
// start_relay_pull and stop_relay_pull.
func TestRelayPullAPIErrors(t *testing.T) {
	t.Parallel()
	origin := startRelayNode(t, "origin", nil)
	edge := startRelayNode(t, "edge", nil)
	const (
		startExists = `{"error_code":2001,"desp":"lal.logic: in stream already exist at group","data":{"stream_name":"","session_id":""}}`
		startParam  = `{"error_code":1002,"desp":"param missing","data":{"stream_name":"","session_id":""}}`
		stopNoGroup = `{"error_code":1001,"desp":"group not found","data":{"session_id":""}}`
		stopNoSess  = `{"error_code":1003,"desp":"session not found","data":{"session_id":""}}`
		stopParam   = `{"error_code":1002,"desp":"param missing","data":{"session_id":""}}`
	)
	check := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %s, want %s", what, got, want)
		}
	}

	// A stream with an RTMP publisher refuses a pull.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := rtmp.Dial(ctx, rtmpURL(edge, "dup5"), rtmp.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Publish(); err != nil {
		t.Fatal(err)
	}
	relayWaitStat(t, edge, "dup5", 5*time.Second, "the publisher", func(code int, g api.StatGroup) bool { return g.Pub.SessionID != "" })
	check("start_relay_pull into a published stream", relayStartPull(t, edge, map[string]any{"url": rtmpURL(origin, "x"), "stream_name": "dup5"}), startExists)
	check("stop_relay_pull of a group without a pull", relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name=dup5", ""), stopNoSess)

	// A second pull of a stream whose pull is connected.
	id := relayStartPullOK(t, edge, "twice5", map[string]any{"url": rtmpURL(origin, "nothing_yet"), "stream_name": "twice5"})
	relayWaitStat(t, edge, "twice5", 5*time.Second, "the pull to connect", func(code int, g api.StatGroup) bool { return g.Pull.SessionID == id })
	check("second start_relay_pull (connected)", relayStartPull(t, edge, map[string]any{"url": rtmpURL(origin, "other"), "stream_name": "twice5"}), startExists)

	// ... and of a stream whose pull is still retrying.
	dead := "rtmp://" + relayFreeAddr(t) + "/live/retry5"
	relayStartPullOK(t, edge, "retry5", map[string]any{"url": dead, "pull_retry_num": -1}) // stream name from the URL
	check("second start_relay_pull (retrying)", relayStartPull(t, edge, map[string]any{"url": dead, "stream_name": "retry5"}), startExists)
	// As lal: the group exists (empty pull) while the pull retries, and a
	// publisher arriving meanwhile is refused; the pull keeps the input.
	if code, g := relayStat(t, edge, "retry5"); code != 0 || g.Pull.SessionID != "" || g.Pub.SessionID != "" {
		t.Errorf("stat/group of a retrying pull: code %d, pub %+v, pull %+v; want 0 with both empty", code, g.Pub, g.Pull)
	}
	if err := rtmpStatus(t, rtmpURL(edge, "retry5"), true); err == nil || !strings.Contains(err.Error(), "NetStream.Publish.BadName") {
		t.Errorf("RTMP publish while a pull retries: %v, want NetStream.Publish.BadName", err)
	}
	// A pull that is not connected: 1003, but its retries stop.
	check("stop_relay_pull of a retrying pull", relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name=retry5", ""), stopNoSess)
	relayWait(t, 3*time.Second, "the retrying pull to end", func() bool {
		return relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name=retry5", "") == stopNoGroup
	})
	relayStartPullOK(t, edge, "retry5", map[string]any{"url": dead})

	check("stop_relay_pull of a missing group", relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name=missing5", ""), stopNoGroup)
	check("stop_relay_pull without stream_name", relayAPI(t, edge, "/api/ctrl/stop_relay_pull", ""), stopParam)
	check("start_relay_pull without url", relayStartPull(t, edge, map[string]any{"stream_name": "nourl5"}), startParam)
	check("start_relay_pull with a bad body", relayAPI(t, edge, "/api/ctrl/start_relay_pull", `{"url":`), startParam)
	check("start_relay_pull with a mistyped key", relayStartPull(t, edge, map[string]any{"url": dead, "pull_retry_num": "x"}), startParam)

	for _, tc := range []struct{ what, url, desp string }{
		{"an unsupported scheme", "srt://127.0.0.1:1/live/cam5", ""},
		{"no stream name", "rtmp://127.0.0.1:1/", ""},
	} {
		var resp struct {
			Code int             `json:"error_code"`
			Desp string          `json:"desp"`
			Data json.RawMessage `json:"data"`
		}
		body := relayStartPull(t, edge, map[string]any{"url": tc.url})
		if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Code != 2001 || resp.Desp == "" || string(resp.Data) != `{"stream_name":"","session_id":""}` {
			t.Errorf("start_relay_pull %s = %s, want error_code 2001 with the error text", tc.what, body)
		}
	}
	check("start_relay_pull with auto stop 0 and no subscriber",
		relayStartPull(t, edge, map[string]any{"url": rtmpURL(origin, "x"), "stream_name": "auto5", "auto_stop_pull_after_no_out_ms": 0}),
		`{"error_code":2001,"desp":"should auto stop pull","data":{"stream_name":"","session_id":""}}`)
}

// TestRelayPullOnDemandWebhookFlow is the webhook document's flow: a back
// end starts a pull on on_sub_start with has_in_session false and stops it
// on on_sub_stop with has_out_session false.
func TestRelayPullOnDemandWebhookFlow(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	origin := startRelayNode(t, "origin", nil)
	pub := startPublisher(t, origin, "od6", fileH264AAC)
	waitReady(t, origin, "od6", pub, true, true)

	type call struct {
		what, body string
		err        error
	}
	calls := make(chan call, 16)
	var edgeAPI atomic.Value
	hooks := newRelayHooks(t, func(name string, ev api.SessionEventBody) {
		addr, _ := edgeAPI.Load().(string)
		var c call
		switch {
		case name == "on_sub_start" && !ev.HasInSession:
			b, _ := json.Marshal(map[string]any{"url": "rtmp://" + origin.RTMPAddr() + "/" + ev.AppName + "/" + ev.StreamName, "stream_name": ev.StreamName})
			body, err := relayAPIErr(addr, "/api/ctrl/start_relay_pull", string(b))
			c = call{"start", body, err}
		case name == "on_sub_stop" && !ev.HasOutSession:
			body, err := relayAPIErr(addr, "/api/ctrl/stop_relay_pull?stream_name="+url.QueryEscape(ev.StreamName), "")
			c = call{"stop", body, err}
		default:
			return
		}
		select {
		case calls <- c:
		default:
		}
	})
	edge := startRelayNode(t, "edge", hooks.configure)
	edgeAPI.Store(edge.APIAddr())
	nextCall := func(want string) string {
		t.Helper()
		select {
		case c := <-calls:
			if c.what != want || c.err != nil {
				t.Fatalf("the back end called %s (%s, %v), want %s", c.what, c.body, c.err, want)
			}
			return c.body
		case <-time.After(10 * time.Second):
			t.Fatalf("the back end never called %s: %s", want, hooks.dump())
		}
		return ""
	}

	start := time.Now()
	viewer := subscribeFLV(t, flvURL(edge, "od6"), 15*time.Second)
	viewer.ReadUntil(t, 15*time.Second-time.Since(start), "the viewer's first key frame", tag.isKeyFrame)
	t.Logf("first key frame %v after the viewer's request", time.Since(start).Round(time.Millisecond))
	m := startPullOK.FindStringSubmatch(nextCall("start"))
	if m == nil || m[1] != "od6" {
		t.Fatalf("the back end's start_relay_pull did not succeed")
	}
	id := m[2]
	if subs := relaySubs(t, origin, "od6"); len(subs) != 1 {
		t.Errorf("origin subs %v, want the edge's pull only", sessionIDs(subs))
	}

	viewer.close()
	left := time.Now()
	if got, want := nextCall("stop"), `{"error_code":0,"desp":"succ","data":{"session_id":"`+id+`"}}`; got != want {
		t.Errorf("the back end's stop_relay_pull = %s, want %s", got, want)
	}
	relayWait(t, 10*time.Second, "the origin's subscriber to leave", func() bool { return len(relaySubs(t, origin, "od6")) == 0 })
	t.Logf("the origin's subscriber left %v after the viewer", time.Since(left).Round(time.Millisecond))
	hooks.wait(t, 5*time.Second, "on_relay_pull_stop", 1, hookSession(id))
	relayWaitStat(t, edge, "od6", 5*time.Second, "the edge's group to go", func(code int, g api.StatGroup) bool { return code == 1001 })
}

// TestRelayStaticPullOriginEdge: an edge with static_relay_pull serves three
// players from one pull, survives the origin's restart, and ends the pull
// after the last player leaves.
func TestRelayStaticPullOriginEdge(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRelayNode(t, "origin", nil)
	originAddr := origin.RTMPAddr()
	pub := startPublisher(t, origin, "stat1", fileH264AAC)
	waitReady(t, origin, "stat1", pub, true, true)
	edge := startRelayNode(t, "edge", func(cfg *config.Config) {
		hooks.configure(cfg)
		cfg.StaticRelayPull.Enable = true
		cfg.StaticRelayPull.Addr = originAddr
		cfg.StaticRelayPull.AutoStopPullAfterNoOutMS = 1000
	})

	players := []*relayPlayer{
		playFLV(t, flvURL(edge, "stat1")),
		playRTMP(t, rtmpURL(edge, "stat1")),
		playTS(t, tsURL(edge, "stat1")),
	}
	waitMedia := func(after time.Time, timeout time.Duration, what string) {
		t.Helper()
		start := time.Now()
		for _, p := range players {
			relayWait(t, timeout-time.Since(start), p.name+" player's key frame "+what, func() bool {
				if err := p.error(); err != nil {
					t.Fatalf("%s player ended: %v", p.name, err)
				}
				return p.keysAfter(after) > 0
			})
			t.Logf("%s player: key frame %s, %v after waiting began", p.name, what, time.Since(start).Round(time.Millisecond))
		}
	}
	waitMedia(time.Time{}, 15*time.Second, "(first)")

	checkOneSub := func(srv *server.Server, what string) {
		t.Helper()
		subs := relaySubs(t, srv, "stat1")
		if len(subs) != 1 || subs[0].Protocol != "RTMP" || subs[0].BaseType != "SUB" {
			t.Errorf("%s: origin subs %v, want exactly one RTMP SUB (the edge's pull)", what, sessionIDs(subs))
		}
	}
	checkOneSub(origin, "3 players")
	_, g := relayStat(t, edge, "stat1")
	if !strings.HasPrefix(g.Pull.SessionID, "RTMPPULL") || g.Pull.BaseType != "PULL" || g.Pub.SessionID != "" || len(g.Subs) != 3 {
		t.Errorf("edge stat: pull %+v pub %q subs %v; want one RTMPPULL pull and the 3 players", g.Pull, g.Pub.SessionID, sessionIDs(g.Subs))
	}
	// The event names the local group (app live, made by the first player)
	// and the remote URL.
	if ev := hooks.wait(t, 5*time.Second, "on_relay_pull_start", 1, hookStream("stat1"))[0].Ev; ev.URL != "rtmp://"+originAddr+"/live/stat1" ||
		ev.BaseType != "PULL" || ev.AppName != "live" || ev.SessionID != g.Pull.SessionID {
		t.Errorf("on_relay_pull_start %+v, want %s, url rtmp://%s/live/stat1, base_type PULL, app_name live", ev, g.Pull.SessionID, originAddr)
	}
	if n := len(hooks.find("on_relay_pull_start", hookStream("stat1"))); n != 1 {
		t.Errorf("%d pulls started for 3 players: %s", n, hooks.dump())
	}

	// The origin restarts on the same port.
	pub.stop()
	stopRelayNode(t, "origin", origin)
	restarted := time.Now()
	cfg := relayConfig()
	cfg.RTMP.Addr = originAddr
	origin2 := startRelayNodeWith(t, "origin2", cfg)
	pub2 := startPublisher(t, origin2, "stat1", fileH264AAC)
	waitReady(t, origin2, "stat1", pub2, true, true)
	waitMedia(restarted, 20*time.Second, "after the origin restarted")
	late := playFLV(t, flvURL(edge, "stat1"))
	relayWait(t, 10*time.Second, "a new player's key frame", func() bool { return late.keysAfter(time.Time{}) > 0 })
	checkOneSub(origin2, "after the restart")
	late.stop()

	// All players leave: the pull ends after the 1 s grace period.
	for _, p := range players {
		p.stop()
	}
	left := time.Now()
	relayWaitStat(t, edge, "stat1", 6*time.Second, "the edge's pull to stop", func(code int, g api.StatGroup) bool { return code == 1001 })
	took := time.Since(left)
	relayWait(t, 5*time.Second, "the origin's subscriber to leave", func() bool { return len(relaySubs(t, origin2, "stat1")) == 0 })
	t.Logf("pull stopped %v after the last player left", took.Round(time.Millisecond))
	if took < 700*time.Millisecond {
		t.Errorf("the pull stopped %v after the last player left, want the 1 s grace period", took)
	}
	time.Sleep(1500 * time.Millisecond)
	if subs := relaySubs(t, origin2, "stat1"); len(subs) != 0 {
		t.Errorf("the pull came back without players: origin subs %v", sessionIDs(subs))
	}
}

// TestRelayPush: relay_push sends a stream published on A to B (with the
// publisher's query); B restarting is survived by A's push reconnecting,
// while A's own stream goes on undisturbed.
func TestRelayPush(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	b := startRelayNode(t, "B", nil)
	bAddr := b.RTMPAddr()
	a := startRelayNode(t, "A", func(cfg *config.Config) {
		cfg.RelayPush.Enable = true
		cfg.RelayPush.AddrList = []string{bAddr}
	})
	pub := startPublisher(t, a, "pushme?x=1", fileH264AAC)
	aPub := waitReady(t, a, "pushme", pub, true, true).Pub.ID

	// B has the stream: an RTMP publisher with A's query.
	waitPushed := func(srv *server.Server, timeout time.Duration) time.Duration {
		t.Helper()
		return relayWait(t, timeout, "the push to publish on B", func() bool {
			g := srv.Groups().Group("pushme")
			if g == nil {
				return false
			}
			st := g.Stat()
			return st.Pub != nil && st.Tracks.VideoConfig != nil
		})
	}
	waitPushed(b, 10*time.Second)
	st := b.Groups().Group("pushme").Stat()
	if !strings.HasSuffix(st.Pub.URL, "/live/pushme?x=1") || st.Pub.URLParam != "x=1" || st.Pub.Protocol != "RTMP" || st.Pub.BaseType != "PUB" {
		t.Errorf("B's publisher: url %q url_param %q protocol %s base %s; want an RTMP PUB of .../live/pushme?x=1",
			st.Pub.URL, st.Pub.URLParam, st.Pub.Protocol, st.Pub.BaseType)
	}
	if _, g := relayStat(t, b, "pushme"); g.Pub.Protocol != "RTMP" || g.Pub.BaseType != "PUB" || g.Pull.SessionID != "" {
		t.Errorf("B's stat: pub %+v pull %+v, want an RTMP PUB", g.Pub, g.Pull)
	}
	decodeClean(t, flvURL(b, "pushme"), 4)

	// A's reader, and A's stat: the push is not a sub.
	reader := playFLV(t, flvURL(a, "pushme"))
	relayWait(t, 10*time.Second, "A's reader's key frame", func() bool { return reader.keysAfter(time.Time{}) > 0 })
	if subs := relaySubs(t, a, "pushme"); len(subs) != 1 || subs[0].Protocol != "HTTP-FLV" {
		t.Errorf("A's subs %v, want only the HTTP-FLV reader (the push is not listed)", sessionIDs(subs))
	}

	// B goes away and comes back on the same port.
	down := time.Now()
	stopRelayNode(t, "B", b)
	time.Sleep(2 * time.Second) // some pushes fail meanwhile
	cfg := relayConfig()
	cfg.RTMP.Addr = bAddr
	b2 := startRelayNodeWith(t, "B2", cfg)
	took := waitPushed(b2, 20*time.Second)
	t.Logf("the push reached the new B %v after it started (%v after B went down)", took.Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
	c := subscribeFLV(t, flvURL(b2, "pushme"), 5*time.Second)
	c.ReadUntil(t, 10*time.Second, "a key frame on the new B", tag.isKeyFrame)
	if st := b2.Groups().Group("pushme").Stat(); st.Pub.URLParam != "x=1" {
		t.Errorf("new B's publisher url_param %q, want x=1", st.Pub.URLParam)
	}

	// A's stream never stopped: its reader got ≥ 80 % of real time (25 fps).
	end := time.Now()
	frames := reader.framesBetween(down, end)
	want := int(0.8 * 25 * end.Sub(down).Seconds())
	t.Logf("A's reader got %d video frames in the %v from B going down to B playing again (%d at 80 %% of 25 fps)",
		frames, end.Sub(down).Round(time.Millisecond), want)
	if frames < want {
		t.Errorf("A's reader got %d video frames in %v, want ≥ %d: the local stream stalled while the push target was away",
			frames, end.Sub(down).Round(time.Millisecond), want)
	}
	if err := reader.error(); err != nil {
		t.Errorf("A's reader ended: %v", err)
	}
	if g := a.Groups().Group("pushme"); g == nil || g.Stat().Pub == nil || g.Stat().Pub.ID != aPub {
		t.Errorf("A's publisher changed or left while the push target was away")
	}
}
