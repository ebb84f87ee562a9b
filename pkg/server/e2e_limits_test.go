package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/flv"
	"sluice/pkg/rtmp"
	"sluice/pkg/server"
)

// Deadlines of the limit and timeout tests: generous, as the configured
// timeouts are short (well under a second) and only closing at all is
// checked, not how fast.
const (
	closeWait   = 10 * time.Second // a connection the server must close
	releaseWait = 10 * time.Second // a slot freed by a client that left
)

// connectRTMP connects an RTMP client (handshake and connect) to the server's stream URL.
func connectRTMP(t *testing.T, srv *server.Server, stream string) (*rtmp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rtmp.Dial(ctx, rtmpURL(srv, stream), rtmp.ClientOptions{})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// requireRefused checks that err is a refusal carrying code and naming key.
func requireRefused(t *testing.T, what string, err error, code, key string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted, want %s naming %s", what, code, key)
	}
	if !strings.Contains(err.Error(), code) || !strings.Contains(err.Error(), key) {
		t.Fatalf("%s: %v; want %s naming %s", what, err, code, key)
	}
}

// getStream sends a GET of an HTTP stream URL and returns the response head
// (the body is not read).
func getStream(t *testing.T, url string) *http.Response {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// require503 checks an HTTP refusal by a limit: 503, Retry-After, and a body
// naming key.
func require503(t *testing.T, what string, res *http.Response, key string) {
	t.Helper()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || !strings.Contains(string(body), key) {
		t.Fatalf("%s: %s, Retry-After %q, body %q; want 503 with Retry-After naming %s",
			what, res.Status, res.Header.Get("Retry-After"), body, key)
	}
}

// waitClosed waits until the server closes c (a read ends with EOF or a
// reset), failing after closeWait. Bytes the server sends first are skipped.
func waitClosed(t *testing.T, what string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(closeWait))
	_, err := io.Copy(io.Discard, c)
	if err != nil && isTimeout(err) {
		t.Fatalf("%s: still open after %v", what, closeWait)
	}
}

// publishFLVPackets publishes the first n packets of a test file over the
// project's RTMP client, then leaves the connection silent.
func publishFLVPackets(t *testing.T, srv *server.Server, stream string, n int) *rtmp.ClientSession {
	t.Helper()
	f, err := os.Open(mediaPath(fileH264AAC))
	if err != nil {
		t.Fatalf("test media: %v", err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var pkts []av.Packet
	for len(pkts) < n {
		h, body, err := r.ReadTag()
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
	c, err := connectRTMP(t, srv, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(); err != nil {
		t.Fatal(err)
	}
	for i := range pkts {
		if err := c.WritePacket(&pkts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// waitNoPublisher waits until the stream has no publisher.
func waitNoPublisher(t *testing.T, srv *server.Server, stream string) {
	t.Helper()
	deadline := time.Now().Add(closeWait)
	for {
		g := srv.Groups().Group(stream)
		if g == nil || g.Stat().Pub == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %q still has its publisher after %v", stream, closeWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLimitConnectionsPerIP holds one connection from 127.0.0.1 with
// max_connections_per_ip 1: an RTMP client is rejected at connect, an
// HTTP-FLV client gets 503, an RTSP client gets 503; once the first client
// leaves, a new one is accepted.
func TestLimitConnectionsPerIP(t *testing.T) {
	t.Parallel()
	const key = "limits.max_connections_per_ip"
	srv := startRTSPServer(t, func(c *config.Config) {
		c.Limits.MaxConnectionsPerIP = 1
		c.HTTPAPI.Enable = true
	})

	first, err := connectRTMP(t, srv, "held")
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}

	_, err = connectRTMP(t, srv, "second")
	requireRefused(t, "second RTMP client", err, "NetConnection.Connect.Rejected", key)

	require503(t, "HTTP-FLV client", getStream(t, flvURL(srv, "x")), key)

	r := dialRTSP(t, srv)
	res, err := r.request("DESCRIBE", rtspURL(srv, "x"), nil, "")
	if err != nil {
		t.Fatalf("RTSP DESCRIBE: %v", err)
	}
	if res.Code != 503 || res.Header.Get("Retry-After") == "" || res.Header.Get("CSeq") != "1" || !strings.Contains(res.Body, key) {
		t.Fatalf("RTSP DESCRIBE: %d %v %q; want 503 with CSeq 1, Retry-After and a body naming %s", res.Code, res.Header, res.Body, key)
	}
	waitClosed(t, "refused RTSP connection", r.c)

	// The API is not counted, and shows the refusals.
	res2 := getStream(t, "http://"+srv.APIAddr()+"/api/stat/limits")
	var stat struct {
		Code int `json:"error_code"`
		Data struct {
			Refused map[string]uint64 `json:"refused"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res2.Body).Decode(&stat); err != nil || stat.Code != 0 || stat.Data.Refused[key] != 3 {
		t.Errorf("/api/stat/limits: %+v, %v; want %s refused 3 times", stat, err, key)
	}

	// The slot is released when the first client leaves (no leak): a new
	// client gets in, on each protocol in turn.
	first.Close()
	deadline := time.Now().Add(releaseWait)
	for {
		c, err := connectRTMP(t, srv, "again")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted %v after the first left: %v", releaseWait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline = time.Now().Add(releaseWait)
	for {
		r := dialRTSP(t, srv)
		res, err := r.request("OPTIONS", rtspURL(srv, "x"), nil, "")
		r.c.Close()
		if err == nil && res.Code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RTSP OPTIONS after the others left: %+v, %v", res, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLimitMaxConnectionsHTTPRelease: with max_connections 1, a second HTTP
// client gets 503 while the first streams, and gets in once it left.
func TestLimitMaxConnectionsHTTPRelease(t *testing.T) {
	t.Parallel()
	const key = "limits.max_connections"
	srv := startServerWith(t, func(c *config.Config) { c.Limits.MaxConnections = 1 })
	first := getStream(t, flvURL(srv, "waiting")) // waits for a publisher
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first client: %s", first.Status)
	}
	require503(t, "second HTTP client", getStream(t, flvURL(srv, "waiting")), key)
	first.Body.Close()
	deadline := time.Now().Add(releaseWait)
	for {
		res := getStream(t, flvURL(srv, "waiting"))
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client after the first left: %s", res.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLimitMaxStreams: with max_streams 1, a second stream's publish is
// rejected (RTMP NetStream.Publish.Rejected, RTSP 503) while the first keeps
// streaming; when the first publisher leaves, a new stream is accepted.
func TestLimitMaxStreams(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	const key = "limits.max_streams"
	srv := startRTSPServer(t, func(c *config.Config) { c.Limits.MaxStreams = 1 })
	pub := startPublisher(t, srv, "first", fileH264AAC)
	waitReady(t, srv, "first", pub, true, true)

	c, err := connectRTMP(t, srv, "second")
	if err != nil {
		t.Fatal(err)
	}
	requireRefused(t, "second stream's RTMP publish", c.Publish(), "NetStream.Publish.Rejected", key)

	r := dialRTSP(t, srv)
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"
	res, err := r.request("ANNOUNCE", rtspURL(srv, "third"), []string{"Content-Type: application/sdp"}, sdp)
	if err != nil {
		t.Fatalf("RTSP ANNOUNCE: %v", err)
	}
	if res.Code != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("RTSP ANNOUNCE of a second stream: %d %v; want 503 with Retry-After", res.Code, res.Header)
	}

	// The first stream still plays.
	fc := subscribeFLV(t, flvURL(srv, "first"), readyTimeout)
	fc.ReadUntil(t, readyTimeout, "a key frame of the first stream", func(tg tag) bool { return tg.isKeyFrame() })
	fc.close()
	if got := srv.LimitRefusals()[key]; got < 2 {
		t.Errorf("refusals counted for %s: %d, want 2", key, got)
	}

	pub.stop()
	waitNoPublisher(t, srv, "first")
	c2, err := connectRTMP(t, srv, "second")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Publish(); err != nil {
		t.Fatalf("publish after the first stream ended: %v", err)
	}
}

// TestLimitMaxSubscribersPerStream: with max_subscribers_per_stream 1, a
// second player of the stream is refused on each protocol while the first
// keeps playing; once it leaves, a new player is accepted.
func TestLimitMaxSubscribersPerStream(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	const key = "limits.max_subscribers_per_stream"
	srv := startRTSPServer(t, func(c *config.Config) { c.Limits.MaxSubscribersPerStream = 1 })
	const stream = "popular"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)

	fc := subscribeFLV(t, flvURL(srv, stream), readyTimeout)
	fc.ReadUntil(t, readyTimeout, "a key frame", func(tg tag) bool { return tg.isKeyFrame() })

	require503(t, "second HTTP-FLV player", getStream(t, flvURL(srv, stream)), key)

	c, err := connectRTMP(t, srv, stream)
	if err != nil {
		t.Fatal(err)
	}
	requireRefused(t, "RTMP player", c.Play(), "NetStream.Play.Failed", key)

	r := dialRTSP(t, srv)
	res, err := r.request("DESCRIBE", rtspURL(srv, stream), nil, "")
	if err != nil || res.Code != 503 || res.Header.Get("Retry-After") == "" {
		t.Fatalf("RTSP DESCRIBE: %+v, %v; want 503 with Retry-After", res, err)
	}

	// The first player still gets media.
	fc.ReadUntil(t, readyTimeout, "the next key frame", func(tg tag) bool { return tg.isKeyFrame() })
	if got := srv.LimitRefusals()[key]; got < 3 {
		t.Errorf("refusals counted for %s: %d, want 3", key, got)
	}

	fc.close()
	deadline := time.Now().Add(releaseWait)
	for {
		c, err := connectRTMP(t, srv, stream)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Play()
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("player after the first left: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTimeoutRTMPIdleAfterHandshake: a peer that completes the handshake
// and then sends nothing is closed after idle_timeout_ms.
func TestTimeoutRTMPIdleAfterHandshake(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, func(c *config.Config) { c.Timeouts.IdleTimeoutMS = 300 })
	c, err := net.DialTimeout("tcp", srv.RTMPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	if err := rtmp.ClientHandshake(struct {
		io.Reader
		io.Writer
	}{br, c}, false); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	waitClosed(t, "RTMP peer idle after its handshake", c)
}

// TestTimeoutRTMPPublisherIdle: a publisher that sends a few packets and
// then nothing is closed after publisher_idle_timeout_ms, and the stream
// loses its publisher.
func TestTimeoutRTMPPublisherIdle(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, func(c *config.Config) { c.Timeouts.PublisherIdleTimeoutMS = 500 })
	const stream = "silent"
	c := publishFLVPackets(t, srv, stream, 20)
	if g := srv.Groups().Group(stream); g == nil || g.Stat().Pub == nil {
		t.Fatal("no publisher after publish")
	}
	waitNoPublisher(t, srv, stream)
	// The client's connection is closed too.
	deadline := time.Now().Add(closeWait)
	for {
		if _, err := c.ReadPacket(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
				continue
			}
			break
		}
	}
}

// TestTimeoutHTTPSlowloris: a client that sends its request head one byte
// at a time is closed within header_timeout_ms, and a keep-alive connection
// left idle after a response is closed after idle_timeout_ms.
func TestTimeoutHTTPSlowloris(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, func(c *config.Config) {
		c.Timeouts.HeaderTimeoutMS = 500
		c.Timeouts.IdleTimeoutMS = 500
	})
	c, err := net.DialTimeout("tcp", srv.HTTPFLVAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.SetReadDeadline(time.Now().Add(closeWait))
		io.Copy(io.Discard, c)
	}()
	head := "GET /live/slow.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + strings.Repeat("x", 200)
	deadline := time.After(closeWait)
	for i := 0; ; i = (i + 1) % len(head) {
		select {
		case <-closed:
			goto idle
		case <-deadline:
			t.Fatalf("slowloris connection still open after %v", closeWait)
		case <-time.After(50 * time.Millisecond):
		}
		c.Write([]byte{head[i]})
	}
idle:
	// Keep-alive: one answered request, then silence.
	res, kc, _, err := rawHTTP(t, srv.HTTPFLVAddr(), "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitClosed(t, "idle keep-alive connection", kc)
}

// TestTimeoutRTSPSilentAndSlow: an RTSP connection that sends nothing, or
// its first request slowly, is closed after idle_timeout_ms; a later request
// head sent slowly is closed after header_timeout_ms (not gortsplib's 60 s).
func TestTimeoutRTSPSilentAndSlow(t *testing.T) {
	t.Parallel()
	srv := startRTSPServer(t, func(c *config.Config) {
		c.Timeouts.IdleTimeoutMS = 500
		c.Timeouts.HeaderTimeoutMS = 500
	})
	silent := dialRTSP(t, srv)
	waitClosed(t, "silent RTSP connection", silent.c)

	slowly := func(what string, r *rtspConn) {
		t.Helper()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			r.c.SetReadDeadline(time.Now().Add(closeWait))
			io.Copy(io.Discard, r.br)
		}()
		head := "OPTIONS " + rtspURL(srv, "x") + " RTSP/1.0\r\nCSeq: 9\r\nUser-Agent: " + strings.Repeat("y", 200)
		deadline := time.After(closeWait)
		for i := 0; ; i = (i + 1) % len(head) {
			select {
			case <-closed:
				return
			case <-deadline:
				t.Fatalf("%s: still open after %v", what, closeWait)
			case <-time.After(50 * time.Millisecond):
			}
			r.c.Write([]byte{head[i]})
		}
	}
	slowly("slow first request", dialRTSP(t, srv))

	r := dialRTSP(t, srv)
	if res, err := r.request("OPTIONS", rtspURL(srv, "x"), nil, ""); err != nil || res.Code != 200 {
		t.Fatalf("OPTIONS: %+v, %v", res, err)
	}
	slowly("slow second request", r)
}

// TestTimeoutRTSPPublisherIdle: an RTSP publisher (ffmpeg over TCP) that
// stops sending is closed after publisher_idle_timeout_ms and the stream
// loses its publisher.
func TestTimeoutRTSPPublisherIdle(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startRTSPServer(t, func(c *config.Config) { c.Timeouts.PublisherIdleTimeoutMS = 1000 })
	const stream = "frozen"
	// Not startFFmpegPublisher: this one is meant to die.
	pub := startProc(t, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
		"-i", mediaPath(fileH264AAC), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", rtspURL(srv, stream))
	waitReady(t, srv, stream, pub, true, true)
	// Freeze ffmpeg: its connection stays open, nothing more comes.
	if err := pub.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer pub.cmd.Process.Signal(syscall.SIGCONT)
	waitNoPublisher(t, srv, stream)
}
