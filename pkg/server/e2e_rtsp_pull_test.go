package server_test

// End-to-end tests of relay pull over RTSP (issue 6): an edge Sluice pulls,
// with /api/ctrl/start_relay_pull and an rtsp:// URL, a stream that an
// origin Sluice serves over RTSP (published to it over RTMP), over TCP
// (rtsp_mode 0) and UDP (rtsp_mode 1), with and without Digest auth.

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/pkg/api"
	"sluice/pkg/config"
	"sluice/pkg/server"
)

// startRTSPPullOrigin starts an origin: relayConfig plus RTSP (TCP and UDP)
// on loopback; mod may change the configuration first.
func startRTSPPullOrigin(t *testing.T, mod func(*config.Config)) *server.Server {
	t.Helper()
	return startRTSPRelayNode(t, "origin", mod)
}

// startRTSPRelayNode is startRTSPPullOrigin for a node named name.
func startRTSPRelayNode(t *testing.T, name string, mod func(*config.Config)) *server.Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		cfg := relayConfig()
		cfg.RTSP.Enable = true
		cfg.RTSP.Addr = "127.0.0.1:0"
		useUDPPortRange(cfg)
		if mod != nil {
			mod(cfg)
		}
		srv := server.New(cfg, newTestLogger(t).Named(name))
		err := srv.Start()
		var le *server.ListenError
		if errors.As(err, &le) && strings.HasPrefix(le.Key, "rtsp.udp") && attempt < 5 {
			continue // the port pair was taken meanwhile
		}
		if err != nil {
			t.Fatalf("%s start: %v", name, err)
		}
		t.Cleanup(func() { stopRelayNode(t, name, srv) })
		return srv
	}
}

var startRTSPPullOK = regexp.MustCompile(`^\{"error_code":0,"desp":"succ","data":\{"stream_name":"([^"]+)","session_id":"(RTSPPULL[1-9][0-9]*)"\}\}$`)

// rtspPullStart calls start_relay_pull, which must succeed for stream with
// an RTSPPULL<n> id, and returns the id.
func rtspPullStart(t *testing.T, srv *server.Server, stream string, req map[string]any) string {
	t.Helper()
	body := relayStartPull(t, srv, req)
	m := startRTSPPullOK.FindStringSubmatch(body)
	if m == nil || m[1] != stream {
		t.Fatalf("start_relay_pull %v = %s, want success for stream %q with an RTSPPULL<n> id", req, body, stream)
	}
	return m[2]
}

// rtspPullPlay is decodeClean (4 s) and probeStreams (h264 640x360 and aac)
// returning an error rather than ending the test, for goroutines.
func rtspPullPlay(t *testing.T, input ...string) error {
	url := strings.Join(input, " ")
	out, stderr, err := runTool(t, "ffmpeg", append(append([]string{"-v", "error"}, input...), "-t", "4", "-f", "null", "-nostats", "-progress", "pipe:1", "-")...)
	if err != nil {
		return fmt.Errorf("ffmpeg decode of %s failed: %v, stderr: %q", url, err, stderr)
	}
	if stderr != "" {
		return fmt.Errorf("ffmpeg decode of %s reported errors: %q", url, stderr)
	}
	var outUS int64 = -1
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "out_time_us="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				outUS = n
			}
		}
	}
	if outUS < 3e6 {
		return fmt.Errorf("ffmpeg decoded only %d µs of %s, want ≥ 3 s", outUS, url)
	}
	out, stderr, err = runTool(t, "ffprobe", append([]string{"-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json"}, input...)...)
	if err != nil || stderr != "" {
		return fmt.Errorf("ffprobe %s: err=%v stderr=%q", url, err, stderr)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return fmt.Errorf("ffprobe %s: bad JSON %q: %v", url, out, err)
	}
	var got []string
	for _, st := range res.Streams {
		if st.Width != 0 || st.Height != 0 {
			got = append(got, fmt.Sprintf("%s %dx%d", st.CodecName, st.Width, st.Height))
		} else {
			got = append(got, st.CodecName)
		}
	}
	slices.Sort(got)
	if want := []string{"aac", "h264 640x360"}; !slices.Equal(got, want) {
		return fmt.Errorf("ffprobe %s streams = %q, want %q", url, got, want)
	}
	return nil
}

// TestRTSPPull pulls over RTSP, TCP and UDP, from a second Sluice into
// another local name, and plays the pulled stream over RTMP, HTTP-FLV,
// HTTP-TS and RTSP; the stat and the webhooks describe the pull.
func TestRTSPPull(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRTSPPullOrigin(t, nil)
	edge := startRTSPRelayNode(t, "edge", hooks.configure)

	for _, mode := range []struct {
		name string
		mode int
	}{{"tcp", 0}, {"udp", 1}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			src, local := "rsrc_"+mode.name, "rpulled_"+mode.name
			pub := startPublisher(t, origin, src, fileH264AAC)
			waitReady(t, origin, src, pub, true, true)

			remote := rtspURL(origin, src)
			id := rtspPullStart(t, edge, local, map[string]any{"url": remote, "stream_name": local, "rtsp_mode": mode.mode})
			started := time.Now()
			relayWaitStat(t, edge, local, 10*time.Second, "the pull to bring the stream's codecs", func(code int, g api.StatGroup) bool {
				return code == 0 && g.Pull.SessionID == id && g.VideoCodec == "H264" && g.AudioCodec == "AAC"
			})
			t.Logf("pull %s (rtsp_mode %d) joined with media %v after start_relay_pull", id, mode.mode, time.Since(started).Round(time.Millisecond))

			// The four players at once (ffmpeg processes, not parallel
			// subtests, which -parallel would queue).
			avoidLoopPoint(pub, 5*time.Second)
			var wg sync.WaitGroup
			for _, pl := range []struct {
				name  string
				input []string
			}{
				{"rtmp", []string{"-i", rtmpURL(edge, local)}},
				{"httpflv", []string{"-i", flvURL(edge, local)}},
				{"httpts", []string{"-i", relayTSURL(edge, local)}},
				// Over TCP: a UDP player's ffmpeg logs an error whenever a
				// local port it tries is taken by a parallel test. UDP
				// output is covered by the RTSP tests.
				{"rtsp", []string{"-rtsp_transport", "tcp", "-i", rtspURL(edge, local)}},
			} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := rtspPullPlay(t, pl.input...); err != nil {
						t.Errorf("play over %s: %v", pl.name, err)
					}
				}()
			}
			wg.Wait()
			t.Logf("played over RTMP, HTTP-FLV, HTTP-TS and RTSP %v after start_relay_pull", time.Since(started).Round(time.Millisecond))

			g := relayWaitStat(t, edge, local, 10*time.Second, "the pull's bitrate", func(code int, g api.StatGroup) bool {
				return code == 0 && g.Pull.BitrateKbits > 0
			})
			p := g.Pull
			if p.SessionID != id || p.Protocol != "RTSP" || p.BaseType != "PULL" || p.RemoteAddr != origin.RTSPAddr() || p.StartTime == "" {
				t.Errorf("stat pull = %+v, want %s RTSP PULL from %s", p, id, origin.RTSPAddr())
			}
			// 4 s and more of ~1 Mbit/s went through.
			if p.ReadBytesSum < 200_000 || p.WroteBytesSum == 0 || p.BitrateKbits < 300 || p.BitrateKbits > 3000 {
				t.Errorf("stat pull counters: read_bytes_sum %d, wrote_bytes_sum %d, bitrate %d kbit/s; want > 200 kB read and about 1000 kbit/s",
					p.ReadBytesSum, p.WroteBytesSum, p.BitrateKbits)
			}
			if g.Pub != (api.StatSession{}) {
				t.Errorf("stat pub = %+v, want empty: the input is a pull", g.Pub)
			}
			if g.VideoWidth != 640 || g.VideoHeight != 360 {
				t.Errorf("stat video size %dx%d, want 640x360", g.VideoWidth, g.VideoHeight)
			}
			// The origin sees the pull as its only subscriber: an RTSP sub.
			if subs := relaySubs(t, origin, src); len(subs) != 1 || subs[0].Protocol != "RTSP" || subs[0].BaseType != "SUB" {
				t.Errorf("origin subs = %v, want exactly the edge's pull (one RTSP SUB)", sessionIDs(subs))
			}

			ev := hooks.wait(t, 5*time.Second, "on_relay_pull_start", 1, hookSession(id))[0].Ev
			if ev.BaseType != "PULL" || ev.StreamName != local || ev.URL != remote || ev.Protocol != "RTSP" ||
				!ev.HasInSession || ev.RemoteAddr != origin.RTSPAddr() {
				t.Errorf("on_relay_pull_start = %+v, want base_type PULL, protocol RTSP, stream_name %s, url %s, has_in_session", ev, local, remote)
			}

			// stop_relay_pull ends it: on_relay_pull_stop, and the origin
			// loses its subscriber (the client's TEARDOWN).
			relayAPI(t, edge, "/api/ctrl/stop_relay_pull?stream_name="+local, "")
			hooks.wait(t, 5*time.Second, "on_relay_pull_stop", 1, hookSession(id))
			d := relayWait(t, 5*time.Second, "the origin to lose the pull's session", func() bool { return len(relaySubs(t, origin, src)) == 0 })
			t.Logf("the origin lost the pull's session %v after stop_relay_pull", d.Round(time.Millisecond))
		})
	}
}

// TestRTSPPullAuth pulls from an origin that requires RTSP Digest auth: the
// URL's user:pass is answered, a wrong password fails the attempt (one
// on_relay_pull_stop, no start, no input).
func TestRTSPPullAuth(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	hooks := newRelayHooks(t, nil)
	origin := startRTSPPullOrigin(t, func(c *config.Config) {
		c.RTSP.AuthEnable, c.RTSP.AuthMethod, c.RTSP.Username, c.RTSP.Password = true, 1, "puller", "s3cret"
	})
	edge := startRelayNode(t, "edge", hooks.configure)
	pub := startPublisher(t, origin, "asrc", fileH264AAC)
	waitReady(t, origin, "asrc", pub, true, true)
	plain := rtspURL(origin, "asrc")
	withCreds := strings.Replace(plain, "rtsp://", "rtsp://puller:s3cret@", 1)

	for _, tc := range []struct {
		name, url, local string
		mode             int
	}{
		{"wrong password", strings.Replace(plain, "rtsp://", "rtsp://puller:nope@", 1), "abad", 0},
		{"no credentials", plain, "anone", 1},
	} {
		id := rtspPullStart(t, edge, tc.local, map[string]any{"url": tc.url, "stream_name": tc.local, "rtsp_mode": tc.mode})
		ev := hooks.wait(t, 10*time.Second, "on_relay_pull_stop", 1, hookSession(id))[0].Ev
		if ev.HasInSession || ev.StreamName != tc.local || ev.BaseType != "PULL" {
			t.Errorf("%s: on_relay_pull_stop = %+v, want a failed attempt of %s", tc.name, ev, tc.local)
		}
		if n := len(hooks.find("on_relay_pull_start", hookSession(id))); n != 0 {
			t.Errorf("%s: the pull joined (%d on_relay_pull_start)", tc.name, n)
		}
		if code, g := relayStat(t, edge, tc.local); g.Pull.SessionID != "" {
			t.Errorf("%s: stat/group code %d, pull %+v: want no pull", tc.name, code, g.Pull)
		}
	}

	for _, mode := range []int{0, 1} {
		local := []string{"agood_tcp", "agood_udp"}[mode]
		id := rtspPullStart(t, edge, local, map[string]any{"url": withCreds, "stream_name": local, "rtsp_mode": mode})
		relayWaitStat(t, edge, local, 10*time.Second, "the authenticated pull to join with media", func(code int, g api.StatGroup) bool {
			return code == 0 && g.Pull.SessionID == id && g.VideoCodec == "H264" && g.AudioCodec == "AAC"
		})
		hooks.wait(t, 5*time.Second, "on_relay_pull_start", 1, hookSession(id))
	}
	avoidLoopPoint(pub, 3*time.Second)
	decodeClean(t, flvURL(edge, "agood_udp"), 3)
	if got, want := probeStreams(t, rtmpURL(edge, "agood_tcp")), []string{"aac", "h264 640x360"}; !slices.Equal(got, want) {
		t.Errorf("ffprobe of the authenticated pull: %q, want %q", got, want)
	}
}
