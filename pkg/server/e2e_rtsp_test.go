package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/group"
	"sluice/pkg/server"
)

// RTSP test media.
const (
	fileH265AAC  = "h265_aac_360p.mp4"
	fileH264PCMA = "h264_pcma_360p.mkv"
)

// freeUDPPair finds an even loopback UDP port whose next port is free too.
func freeUDPPair(t *testing.T) (rtp, rtcp string) {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if p%2 != 0 {
			p++
		}
		if p+1 > 65535 {
			continue
		}
		a, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return "127.0.0.1:" + strconv.Itoa(p), "127.0.0.1:" + strconv.Itoa(p+1)
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// Tests take their RTSP UDP ports from this range, on loopback: each server
// its first free pair, each UDP relay pull a free pair per media.
const testUDPPortMin, testUDPPortMax = 24000, 25999

// useUDPPortRange sets cfg's RTSP UDP ports to the test range on loopback.
func useUDPPortRange(cfg *config.Config) {
	cfg.RTSP.UDPRTPAddr, cfg.RTSP.UDPRTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSP.UDPPortMin, cfg.RTSP.UDPPortMax = testUDPPortMin, testUDPPortMax
}

// startRTSPServer starts a server with RTSP (TCP and UDP) on loopback, plus
// RTMP, HTTP-FLV and HTTP-TS; mod may change the configuration first.
func startRTSPServer(t *testing.T, mod func(*config.Config)) *server.Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		cfg := testConfig()
		cfg.RTSP.Enable = true
		useUDPPortRange(cfg)
		if mod != nil {
			mod(cfg)
		}
		srv, err := tryStartServer(t, "", cfg)
		var le *server.ListenError
		if errors.As(err, &le) && strings.HasPrefix(le.Key, "rtsp.udp") && attempt < 5 {
			continue // the port pair was taken meanwhile
		}
		if err != nil {
			t.Fatalf("server start: %v", err)
		}
		return srv
	}
}

func rtspURL(srv *server.Server, stream string) string {
	return "rtsp://" + srv.RTSPAddr() + "/live/" + stream
}

// startRTSPPublisher pushes file to rtsp://.../live/stream with ffmpeg at
// real time over transport ("tcp" or "udp"), looping forever. The test fails
// if it dies before the test stops it.
func startRTSPPublisher(t *testing.T, srv *server.Server, stream, file, transport string) *proc {
	t.Helper()
	return startRTSPPublisherURL(t, rtspURL(srv, stream), stream, file, transport)
}

func startRTSPPublisherURL(t *testing.T, url, stream, file, transport string) *proc {
	t.Helper()
	return startFFmpegPublisher(t, fmt.Sprintf("RTSP publisher of %q", stream), "-re", "-stream_loop", "-1",
		"-i", mediaPath(file), "-c", "copy", "-f", "rtsp", "-rtsp_transport", transport, url)
}

// player is one way of playing a stream: the URL and the ffmpeg/ffprobe
// input options it needs.
type player struct {
	name string
	args []string // input options then -i URL
}

func rtspPlayer(srv *server.Server, stream, transport string) player {
	return player{name: "rtsp_" + transport, args: []string{"-rtsp_transport", transport, "-i", rtspURL(srv, stream)}}
}

// checkPlayers probes and decodes every player in parallel subtests.
func checkPlayers(t *testing.T, players []player, want []string) {
	t.Helper()
	for _, pl := range players {
		t.Run(pl.name, func(t *testing.T) {
			t.Parallel()
			if got := probeArgs(t, pl.args); !slices.Equal(got, want) {
				t.Errorf("ffprobe %q streams = %q, want %q", pl.args, got, want)
			}
			decodeArgs(t, pl.args, 4)
		})
	}
}

// TestRTSPPushPlayEverywhere pushes each file over RTSP (TCP and UDP) and
// plays it over RTSP (TCP and UDP), RTMP, HTTP-FLV and HTTP-TS wherever the
// codecs fit: ffprobe must see the file's streams and ffmpeg must decode 4 s
// without an error.
func TestRTSPPushPlayEverywhere(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cases := []struct {
		name, file string
		audio      av.Codec
		want       []string
		flv, ts    bool
	}{
		{"h264_aac", fileH264AAC, av.CodecAAC, []string{"aac", "h264 640x360"}, true, true},
		// ffmpeg 5.1 cannot read H.265 from FLV (RTMP, HTTP-FLV): TS only.
		{"h265_aac", fileH265AAC, av.CodecAAC, []string{"aac", "hevc 640x360"}, false, true},
		// G.711 has no TS form: the TS output leaves it out.
		{"h264_pcma", fileH264PCMA, av.CodecPCMA, []string{"h264 640x360", "pcm_alaw"}, true, false},
	}
	for _, tc := range cases {
		for _, push := range []string{"tcp", "udp"} {
			t.Run(tc.name+"_push_"+push, func(t *testing.T) {
				t.Parallel()
				srv := startRTSPServer(t, nil)
				stream := "rtsp_" + tc.name + "_" + push
				pub := startRTSPPublisher(t, srv, stream, tc.file, push)
				st := waitReady(t, srv, stream, pub, true, tc.audio == av.CodecAAC)
				if st.Pub.Protocol != server.ProtocolRTSP || !strings.HasPrefix(st.Pub.ID, "RTSPPUB") {
					t.Errorf("publisher = %s %s, want RTSP RTSPPUB<n>", st.Pub.Protocol, st.Pub.ID)
				}
				if st.Tracks.Width != 640 || st.Tracks.Height != 360 {
					t.Errorf("video size %dx%d, want 640x360", st.Tracks.Width, st.Tracks.Height)
				}
				players := []player{rtspPlayer(srv, stream, "tcp"), rtspPlayer(srv, stream, "udp")}
				if tc.flv {
					players = append(players,
						player{name: "rtmp", args: []string{"-i", rtmpURL(srv, stream)}},
						player{name: "httpflv", args: []string{"-i", flvURL(srv, stream)}})
				}
				if tc.ts {
					// (A late joiner's ffmpeg guesses 24.92 fps from the
					// publisher's loop-point step: see runDecode.)
					players = append(players, player{name: "httpts", args: []string{"-i", tsURL(srv, stream)}})
				} else {
					want := slices.DeleteFunc(slices.Clone(tc.want), func(s string) bool { return s == "pcm_alaw" })
					t.Run("httpts_video_only", func(t *testing.T) {
						t.Parallel()
						in := []string{"-i", tsURL(srv, stream)}
						if got := probeArgs(t, in); !slices.Equal(got, want) {
							t.Errorf("ffprobe TS streams = %q, want %q", got, want)
						}
					})
				}
				checkPlayers(t, players, tc.want)
			})
		}
	}
}

// TestRTMPPushRTSPPlay publishes over RTMP and plays over RTSP (TCP and
// UDP): the description is built from the track info.
func TestRTMPPushRTSPPlay(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cases := []struct {
		name, file   string
		video, audio bool
		want         []string
	}{
		{"h264_aac", fileH264AAC, true, true, []string{"aac", "h264 640x360"}},
		{"h264_only", fileH264Only, true, false, []string{"h264 640x360"}},
		{"aac_only", fileAACOnly, false, true, []string{"aac"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startRTSPServer(t, nil)
			stream := "rtmp2rtsp_" + tc.name
			pub := startPublisher(t, srv, stream, tc.file)
			waitReady(t, srv, stream, pub, tc.video, tc.audio)
			checkPlayers(t, []player{rtspPlayer(srv, stream, "tcp"), rtspPlayer(srv, stream, "udp")}, tc.want)
		})
	}
}

// ---------------------------------------------------------------------------
// Raw RTSP

// rtspConn is a raw RTSP client connection.
type rtspConn struct {
	t    *testing.T
	c    net.Conn
	br   *bufio.Reader
	cseq int
}

func dialRTSP(t *testing.T, srv *server.Server) *rtspConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", srv.RTSPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rtspConn{t: t, c: c, br: bufio.NewReader(c)}
}

// rtspResponse is a response's status line, headers and body.
type rtspResponse struct {
	Code   int
	Header textproto.MIMEHeader
	Body   string
}

// request sends one request (headers as "Key: value" lines) and reads the response.
func (r *rtspConn) request(method, url string, headers []string, body string) (*rtspResponse, error) {
	r.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, r.cseq)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	return r.raw(b.String(), 15*time.Second)
}

// raw sends bytes and reads one response.
func (r *rtspConn) raw(data string, timeout time.Duration) (*rtspResponse, error) {
	r.c.SetDeadline(time.Now().Add(timeout))
	if _, err := r.c.Write([]byte(data)); err != nil {
		return nil, err
	}
	return r.read()
}

func (r *rtspConn) read() (*rtspResponse, error) {
	tp := textproto.NewReader(r.br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, err
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "$") {
			return nil, fmt.Errorf("unexpected interleaved data")
		}
		parts := strings.SplitN(line, " ", 3)
		if len(parts) < 2 || parts[0] != "RTSP/1.0" {
			return nil, fmt.Errorf("bad status line %q", line)
		}
		code, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil, fmt.Errorf("bad status line %q", line)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return nil, err
		}
		res := &rtspResponse{Code: code, Header: h}
		if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
			buf := make([]byte, n)
			if _, err := io.ReadFull(r.br, buf); err != nil {
				return nil, err
			}
			res.Body = string(buf)
		}
		return res, nil
	}
}

// expectErrorOrClose reads what the server answers to a bad input: an
// error status (≥ 400) or a closed connection are both fine; a success or
// silence until the timeout are not.
func (r *rtspConn) expectErrorOrClose(what string, timeout time.Duration) {
	r.t.Helper()
	r.c.SetDeadline(time.Now().Add(timeout))
	res, err := r.read()
	switch {
	case err == nil && res.Code >= 400:
	case err != nil && !isTimeout(err):
	default:
		r.t.Errorf("%s: got %+v, %v; want an error status or a closed connection", what, res, err)
	}
}

// subsOf returns the group's RTSP subscribers.
func subsOf(st group.Stat) []group.SessionInfo {
	var out []group.SessionInfo
	for _, s := range st.Subs {
		if s.Protocol == server.ProtocolRTSP {
			out = append(out, s)
		}
	}
	return out
}

// readSkippingFrames reads the next response, skipping interleaved frames.
func (r *rtspConn) readSkippingFrames() (*rtspResponse, error) {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '$' {
			return r.read()
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
			return nil, err
		}
		if _, err := r.br.Discard(int(hdr[2])<<8 | int(hdr[3])); err != nil {
			return nil, err
		}
	}
}

// sessionID returns the id of a response's Session header.
func sessionID(res *rtspResponse) string {
	id, _, _ := strings.Cut(res.Header.Get("Session"), ";")
	return id
}

const testSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n"

// TestRTSPBadInput sends malformed requests, an oversize header and garbage
// interleaved frames, and requests in the wrong state, while a player keeps
// playing another session of the server: each gets an error status or a
// clean disconnect, the state errors their RFC 2326 code, and the player
// decodes without an error.
func TestRTSPBadInput(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, nil)
	const stream = "keep"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)
	player := startProc(t, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", rtspURL(srv, stream),
		"-t", "8", "-f", "null", "-")
	time.Sleep(1500 * time.Millisecond)

	for _, tc := range []struct{ name, data string }{
		{"garbage", "GARBAGE GARBAGE\r\n\r\n"},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"},
		{"request line without URL", "DESCRIBE\r\n\r\n"},
		{"other RTSP version", "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n"},
		{"no CSeq", "OPTIONS * RTSP/1.0\r\n\r\n"},
		{"oversize header", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + strings.Repeat("a", 10000) + "\r\n\r\n"},
		{"too many headers", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + strings.Repeat("X-A: b\r\n", 300) + "\r\n"},
		{"bad Content-Length", "ANNOUNCE " + rtspURL(srv, "x") + " RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n"},
		{"huge body", "ANNOUNCE " + rtspURL(srv, "x") + " RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n"},
		{"bad SDP", "ANNOUNCE " + rtspURL(srv, "x") + " RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello"},
		{"interleaved frame outside a session", "$\x00\x00\x05hello"},
	} {
		c := dialRTSP(t, srv)
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.c.Write([]byte(tc.data)); err != nil {
			t.Errorf("%s: write: %v", tc.name, err)
			continue
		}
		c.expectErrorOrClose(tc.name, 5*time.Second)
	}

	url := rtspURL(srv, stream)
	c := dialRTSP(t, srv)
	expect := func(what string, res *rtspResponse, err error, code int) *rtspResponse {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.Code != code {
			t.Errorf("%s: status %d, want %d", what, res.Code, code)
		}
		return res
	}
	res, err := c.request("OPTIONS", url, nil, "")
	expect("OPTIONS", res, err, 200)
	if pub := res.Header.Get("Public"); !strings.Contains(pub, "DESCRIBE") || !strings.Contains(pub, "ANNOUNCE") || !strings.Contains(pub, "GET_PARAMETER") {
		t.Errorf("OPTIONS Public: %q", pub)
	}
	if s := res.Header.Get("Server"); !strings.HasPrefix(s, "sluice/") {
		t.Errorf("Server header %q", s)
	}
	res, err = c.request("PLAY", url, nil, "")
	expect("PLAY without a session", res, err, 454)
	res, err = c.request("GET_PARAMETER", url, nil, "")
	expect("GET_PARAMETER keep-alive", res, err, 200)
	res, err = c.request("PLAY", url, []string{"Session: 0123456789abcdef"}, "")
	expect("PLAY of an unknown session", res, err, 454)

	setup := func(c *rtspConn) string {
		t.Helper()
		res, err := c.request("DESCRIBE", url, []string{"Accept: application/sdp"}, "")
		expect("DESCRIBE", res, err, 200)
		if !strings.Contains(res.Body, "H264/90000") || !strings.Contains(res.Body, "mpeg4-generic/44100/2") {
			t.Errorf("SDP: %q", res.Body)
		}
		res, err = c.request("SETUP", url+"/trackID=0", []string{"Transport: RTP/AVP;multicast;client_port=5000-5001"}, "")
		expect("SETUP multicast", res, err, 461)
		res, err = c.request("SETUP", url+"/trackID=0", []string{"Transport: RTP/AVP/TCP;unicast;interleaved=0-1"}, "")
		expect("SETUP", res, err, 200)
		return sessionID(res)
	}
	c = dialRTSP(t, srv)
	id := setup(c)
	res, err = c.request("RECORD", url, []string{"Session: " + id}, "")
	expect("RECORD on a play session", res, err, 455)

	c = dialRTSP(t, srv)
	id = setup(c)
	res, err = c.request("PLAY", url, []string{"Session: " + id}, "")
	expect("PLAY", res, err, 200)
	if res.Header.Get("RTP-Info") == "" {
		t.Error("PLAY without RTP-Info")
	}
	// A garbage frame on an unknown channel and a garbage RTCP packet in a
	// playing session: ignored.
	c.c.Write([]byte("$\x07\x00\x04abcd$\x01\x00\x04wxyz"))
	c.cseq++
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	c.c.Write([]byte(fmt.Sprintf("GET_PARAMETER %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n", url, c.cseq, id)))
	res, err = c.readSkippingFrames()
	expect("GET_PARAMETER while playing", res, err, 200)
	c.cseq++
	c.c.Write([]byte(fmt.Sprintf("TEARDOWN %s RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n", url, c.cseq, id)))
	res, err = c.readSkippingFrames()
	expect("TEARDOWN", res, err, 200)

	select {
	case <-player.done:
	case <-time.After(toolTimeout):
		t.Fatal("the player did not finish")
	}
	if player.err != nil || player.stderr.String() != "" {
		t.Errorf("the concurrent player: %v, stderr %q", player.err, player.stderr.String())
	}
}

// TestRTSPAuth checks Digest auth on ANNOUNCE and DESCRIBE with ffmpeg, and
// Basic with raw requests.
func TestRTSPAuth(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	t.Run("digest", func(t *testing.T) {
		t.Parallel()
		srv := startRTSPServer(t, func(c *config.Config) {
			c.RTSP.AuthEnable, c.RTSP.AuthMethod, c.RTSP.Username, c.RTSP.Password = true, 1, "user", "secret"
		})
		const stream = "auth"
		url := rtspURL(srv, stream)
		withCreds := strings.Replace(url, "rtsp://", "rtsp://user:secret@", 1)
		wrong := strings.Replace(url, "rtsp://", "rtsp://user:nope@", 1)

		c := dialRTSP(t, srv)
		res, err := c.request("ANNOUNCE", url, []string{"Content-Type: application/sdp"}, testSDP)
		if err != nil || res.Code != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Digest ") {
			t.Errorf("ANNOUNCE without credentials: %+v, %v; want 401 with a Digest challenge", res, err)
		}
		res, err = c.request("DESCRIBE", url, nil, "")
		if err != nil || res.Code != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Digest ") {
			t.Errorf("DESCRIBE without credentials: %+v, %v; want 401 with a Digest challenge", res, err)
		}

		pub := startRTSPPublisherURL(t, withCreds, stream, fileH264AAC, "tcp")
		waitReady(t, srv, stream, pub, true, true)
		if got, want := probeArgs(t, []string{"-rtsp_transport", "tcp", "-i", withCreds}), []string{"aac", "h264 640x360"}; !slices.Equal(got, want) {
			t.Errorf("ffprobe with the right password: %q, want %q", got, want)
		}
		for _, u := range []string{wrong, url} {
			_, stderr, err := runTool(t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-i", u)
			if err == nil || !strings.Contains(stderr, "401") {
				t.Errorf("ffprobe %s: err=%v stderr=%q; want a 401 failure", u, err, stderr)
			}
		}
		// A publisher with a wrong password is refused too.
		_, stderr, err := runTool(t, "ffmpeg", "-v", "error", "-re", "-i", mediaPath(fileH264AAC), "-t", "1", "-c", "copy",
			"-f", "rtsp", "-rtsp_transport", "tcp", strings.Replace(wrong, stream, "other", 1))
		if err == nil || !strings.Contains(stderr, "401") {
			t.Errorf("publishing with a wrong password: err=%v stderr=%q; want a 401 failure", err, stderr)
		}
	})
	t.Run("basic", func(t *testing.T) {
		t.Parallel()
		srv := startRTSPServer(t, func(c *config.Config) {
			c.RTSP.AuthEnable, c.RTSP.AuthMethod, c.RTSP.Username, c.RTSP.Password = true, 0, "user", "secret"
		})
		const stream = "basic"
		pub := startPublisher(t, srv, stream, fileH264Only)
		waitReady(t, srv, stream, pub, true, false)
		url := rtspURL(srv, stream)
		c := dialRTSP(t, srv)
		res, err := c.request("DESCRIBE", url, nil, "")
		if err != nil || res.Code != 401 || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("DESCRIBE without credentials: %+v, %v; want 401 with a Basic challenge", res, err)
		}
		res, err = c.request("DESCRIBE", url, []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:secret"))}, "")
		if err != nil || res.Code != 200 || !strings.Contains(res.Body, "H264/90000") {
			t.Errorf("DESCRIBE with Basic credentials: %+v, %v; want 200 and the SDP", res, err)
		}
		c = dialRTSP(t, srv)
		res, err = c.request("DESCRIBE", url, []string{"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:wrong"))}, "")
		if err == nil && res.Code != 401 {
			t.Errorf("DESCRIBE with wrong Basic credentials: %+v; want 401", res)
		}
	})
}

// TestRTSPSimpleAuth refuses an RTSP publisher and player without a valid
// lal_secret when simple_auth covers RTSP: 403 Forbidden.
func TestRTSPSimpleAuth(t *testing.T) {
	t.Parallel()
	srv := startRTSPServer(t, func(c *config.Config) {
		c.SimpleAuth.PubRTSPEnable, c.SimpleAuth.SubRTSPEnable = true, true
		c.RTSP.DescribeWaitMS = 0
	})
	c := dialRTSP(t, srv)
	res, err := c.request("ANNOUNCE", rtspURL(srv, "sa")+"?lal_secret=wrong", []string{"Content-Type: application/sdp"}, testSDP)
	if err != nil || res.Code != 403 {
		t.Errorf("ANNOUNCE with a wrong lal_secret: %+v, %v; want 403", res, err)
	}
	c = dialRTSP(t, srv)
	res, err = c.request("DESCRIBE", rtspURL(srv, "sa"), nil, "")
	if err != nil || res.Code != 403 {
		t.Errorf("DESCRIBE without lal_secret: %+v, %v; want 403", res, err)
	}
	if g := srv.Groups().Group("sa"); g != nil {
		t.Errorf("a refused session left a group: %+v", g.Stat())
	}
}

// TestRTSPDuplicatePublisher refuses a second publisher of a stream with
// 455 while the first keeps streaming.
func TestRTSPDuplicatePublisher(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, nil)
	const stream = "dup"
	pub := startRTSPPublisher(t, srv, stream, fileH264AAC, "tcp")
	first := waitReady(t, srv, stream, pub, true, true).Pub.ID

	c := dialRTSP(t, srv)
	res, err := c.request("ANNOUNCE", rtspURL(srv, stream), []string{"Content-Type: application/sdp"}, testSDP)
	if err != nil || res.Code != 455 {
		t.Errorf("second ANNOUNCE: %+v, %v; want 455", res, err)
	}
	_, stderr, err := runTool(t, "ffmpeg", "-v", "error", "-re", "-i", mediaPath(fileH264AAC), "-t", "1", "-c", "copy",
		"-f", "rtsp", "-rtsp_transport", "tcp", rtspURL(srv, stream))
	if err == nil {
		t.Errorf("a second ffmpeg publisher was accepted (stderr %q)", stderr)
	}
	decodeArgs(t, rtspPlayer(srv, stream, "tcp").args, 3)
	if st := srv.Groups().Group(stream).Stat(); st.Pub == nil || st.Pub.ID != first {
		t.Errorf("publisher after the refused ones: %+v, want %s", st.Pub, first)
	}
}

// TestRTSPDescribeWait: a DESCRIBE of a stream nobody publishes gets 404
// after rtsp.describe_wait_ms; one that comes before its publisher is
// answered once the publisher's decoder configuration is in.
func TestRTSPDescribeWait(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, func(c *config.Config) { c.RTSP.DescribeWaitMS = 8000 })
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		srv := startRTSPServer(t, func(c *config.Config) { c.RTSP.DescribeWaitMS = 400 })
		c := dialRTSP(t, srv)
		start := time.Now()
		res, err := c.request("DESCRIBE", rtspURL(srv, "nobody"), nil, "")
		if err != nil || res.Code != 404 {
			t.Fatalf("DESCRIBE: %+v, %v; want 404", res, err)
		}
		if d := time.Since(start); d < 400*time.Millisecond || d > 5*time.Second {
			t.Errorf("404 after %v, want after the 400 ms wait", d)
		}
		if g := srv.Groups().Group("nobody"); g != nil && len(subsOf(g.Stat())) != 0 {
			t.Error("the refused player is still a subscriber")
		}
	})
	t.Run("before_publisher", func(t *testing.T) {
		t.Parallel()
		const stream = "early"
		type result struct {
			res *rtspResponse
			err error
		}
		done := make(chan result, 1)
		c := dialRTSP(t, srv)
		go func() {
			res, err := c.request("DESCRIBE", rtspURL(srv, stream), nil, "")
			done <- result{res, err}
		}()
		time.Sleep(300 * time.Millisecond)
		startPublisher(t, srv, stream, fileH264AAC)
		r := <-done
		if r.err != nil || r.res.Code != 200 || !strings.Contains(r.res.Body, "H264/90000") || !strings.Contains(r.res.Body, "mpeg4-generic") {
			t.Errorf("early DESCRIBE: %+v, %v; want 200 with video and audio", r.res, r.err)
		}
	})
}

// TestRTSPStatAndKick checks the group's view of RTSP sessions: ids,
// protocol, base types, URL parts and byte counters, for a UDP publisher
// and TCP and UDP players; a kicked player leaves.
func TestRTSPStatAndKick(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, nil)
	const stream = "stat"
	pub := startRTSPPublisher(t, srv, stream, fileH264PCMA, "udp")
	waitReady(t, srv, stream, pub, true, false)
	var players []*proc
	for _, tr := range []string{"tcp", "udp"} {
		players = append(players, startProc(t, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", tr,
			"-i", rtspURL(srv, stream)+"?token=abc", "-t", "30", "-f", "null", "-"))
	}
	deadline := time.Now().Add(15 * time.Second)
	var st group.Stat
	for {
		st = srv.Groups().Group(stream).Stat()
		subs := subsOf(st)
		ok := len(subs) == 2 && st.Pub != nil && st.Pub.Counters.ReadBytes() > 100000
		for _, s := range subs {
			ok = ok && s.Counters.WrittenBytes() > 50000
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stat not as expected after 15 s: pub %+v, subs %+v", st.Pub, subs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p := st.Pub
	if !strings.HasPrefix(p.ID, "RTSPPUB") || p.Protocol != "RTSP" || p.BaseType != group.BasePub ||
		p.AppName != "live" || p.StreamName != stream || p.URL != rtspURL(srv, stream) || p.RemoteAddr == "" {
		t.Errorf("publisher info %+v", *p)
	}
	if st.Tracks.VideoCodec != av.CodecH264 || st.Tracks.AudioCodec != av.CodecPCMA {
		t.Errorf("tracks %+v", st.Tracks)
	}
	subs := subsOf(st)
	for _, s := range subs {
		if !strings.HasPrefix(s.ID, "RTSPSUB") || s.BaseType != group.BaseSub || s.URLParam != "token=abc" || s.StreamName != stream || s.Close == nil {
			t.Errorf("player info %+v", s)
		}
	}
	subs[0].Close()
	deadline = time.Now().Add(10 * time.Second)
	for len(subsOf(srv.Groups().Group(stream).Stat())) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the kicked player is still in the stat")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRTSPWaitKeyFrame joins a stream in the middle of a GOP: the first
// packet a player gets is video, and it starts a key frame
// (rtsp.out_wait_key_frame_flag, on by default).
func TestRTSPWaitKeyFrame(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, nil)
	const stream = "midgop"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)
	for i := range 2 {
		time.Sleep(700 * time.Millisecond) // GOPs are 2 s: land inside one
		u, err := base.ParseURL(rtspURL(srv, stream))
		if err != nil {
			t.Fatal(err)
		}
		tcp := gortsplib.ProtocolTCP
		c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		desc, _, err := c.Describe(u)
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
			c.Close()
			t.Fatal(err)
		}
		type first struct {
			video bool
			au    [][]byte
		}
		got := make(chan first, 1)
		var h264f *format.H264
		medi := desc.FindFormat(&h264f)
		dec, _ := h264f.CreateDecoder()
		var sawAudio bool
		c.OnPacketRTPAny(func(m *description.Media, _ format.Format, pkt *rtp.Packet) {
			if m != medi {
				sawAudio = true
				return
			}
			au, err := dec.Decode(pkt)
			if err != nil {
				return
			}
			select {
			case got <- first{video: !sawAudio, au: au}:
			default:
			}
		})
		if _, err := c.Play(nil); err != nil {
			c.Close()
			t.Fatal(err)
		}
		select {
		case f := <-got:
			if !f.video {
				t.Errorf("join %d: audio came before the first video frame", i)
			}
			if !h264.IsRandomAccess(f.au) {
				t.Errorf("join %d: the first video frame is not a key frame", i)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("join %d: no video", i)
		}
		c.Close()
	}
	// And ffmpeg, joining mid-GOP too, decodes without an error.
	time.Sleep(700 * time.Millisecond)
	decodeArgs(t, rtspPlayer(srv, stream, "udp").args, 4)
}

// TestRTSPOpus publishes H.264 with Opus audio over RTSP (the audio
// transcoded live by ffmpeg) and plays it over RTSP and HTTP-TS. RTMP and
// HTTP-FLV are left out: ffmpeg 5.1 cannot read lal's Opus-in-FLV.
func TestRTSPOpus(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, nil)
	const stream = "opus"
	p := startFFmpegPublisher(t, "Opus publisher", "-re", "-stream_loop", "-1",
		"-i", mediaPath(fileH264AAC), "-c:v", "copy", "-c:a", "libopus", "-b:a", "64k", "-ar", "48000",
		"-f", "rtsp", "-rtsp_transport", "tcp", rtspURL(srv, stream))
	st := waitReady(t, srv, stream, p, true, false)
	deadline := time.Now().Add(readyTimeout)
	for st.Tracks.AudioCodec != av.CodecOpus {
		if time.Now().After(deadline) {
			t.Fatalf("no Opus audio: %+v", st.Tracks)
		}
		time.Sleep(100 * time.Millisecond)
		st = srv.Groups().Group(stream).Stat()
	}
	checkPlayers(t, []player{rtspPlayer(srv, stream, "tcp"), {name: "httpts", args: []string{"-i", tsURL(srv, stream)}}},
		[]string{"h264 640x360", "opus"})
}

// TestRTSPListenErrors names the config key of an RTSP address that cannot
// be bound.
func TestRTSPListenErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rtp, rtcp := freeUDPPair(t)
	pc, err := net.ListenPacket("udp", rtcp)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tc := range []struct {
		key string
		mod func(*config.Config)
	}{
		{"rtsp.addr", func(c *config.Config) { c.RTSP.Addr = ln.Addr().String() }},
		{"rtsp.udp_rtcp_addr", func(c *config.Config) { c.RTSP.UDPRTPAddr, c.RTSP.UDPRTCPAddr = rtp, rtcp }},
	} {
		cfg := testConfig()
		cfg.RTSP.Enable = true
		tc.mod(cfg)
		srv := server.New(cfg, newTestLogger(t))
		err := srv.Start()
		var le *server.ListenError
		if !errors.As(err, &le) || le.Key != tc.key {
			t.Errorf("Start: %v, want a ListenError for %s", err, tc.key)
		}
		// New starts background work (webhooks) that Shutdown ends, even
		// after a failed Start.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
}
