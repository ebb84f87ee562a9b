package server_test

// End-to-end tests of the HTTP Notify webhooks and the HTTP API (issue 5):
// a real HTTP receiver records every request; sessions are made with ffmpeg
// and with the in-process RTMP client and plain HTTP clients.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/flv"
	"sluice/pkg/notify"
	"sluice/pkg/rtmp"
	"sluice/pkg/server"
)

// ---------------------------------------------------------------------------
// Webhook receiver

// hookReq is one request a receiver got.
type hookReq struct {
	N      int    // arrival index
	Event  string // the last element of the URL path
	Method string
	Header http.Header
	Body   []byte
	At     time.Time
	Status int // the status answered; 0 while the handler runs
	f      map[string]any

	sigErr, wrongSigErr, tamperedSigErr error // with a secret: Verify with it, a wrong one, a changed body
}

func (h *hookReq) ID() string { return h.Header.Get(notify.HeaderEventID) }

func (h *hookReq) str(k string) string {
	s, _ := h.f[k].(string)
	return s
}

func (h *hookReq) flag(k string) (v, ok bool) {
	v, ok = h.f[k].(bool)
	return v, ok
}

func (h *hookReq) num(k string) float64 {
	n, _ := h.f[k].(float64)
	return n
}

func (h *hookReq) String() string {
	return fmt.Sprintf("#%d %s %s %s", h.N, h.Event, h.ID(), h.Body)
}

// hookReceiver is a webhook endpoint that records every request. It can be
// taken down and brought back on the same port.
type hookReceiver struct {
	t      *testing.T
	secret string

	mu     sync.Mutex
	handle func(h *hookReq) int // optional: runs per request, returns the status (0 = 200)
	reqs   []*hookReq
	srv    *httptest.Server
	addr   string
}

// newHookReceiver starts a receiver. Its cleanup (which runs after the
// server's, since the receiver is made first) closes it and checks every
// request it got: method, headers, JSON key order, signature, event ids,
// per-stream order.
func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	t.Helper()
	rc := &hookReceiver{t: t, secret: secret}
	rc.srv = httptest.NewServer(rc)
	rc.addr = rc.srv.Listener.Addr().String()
	t.Cleanup(func() {
		rc.down()
		rc.check(t)
	})
	return rc
}

func (rc *hookReceiver) setHandle(f func(h *hookReq) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.handle = f
}

func (rc *hookReceiver) url(event string) string { return "http://" + rc.addr + "/hook/" + event }

func (rc *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := &hookReq{Event: path.Base(r.URL.Path), Method: r.Method, Header: r.Header.Clone(), Body: body, At: time.Now()}
	_ = json.Unmarshal(body, &h.f)
	if rc.secret != "" {
		h.sigErr = notify.Verify(rc.secret, r, body, time.Minute)
		h.wrongSigErr = notify.Verify(rc.secret+"x", r, body, time.Minute)
		h.tamperedSigErr = notify.Verify(rc.secret, r, append(bytes.Clone(body), ' '), time.Minute)
	}
	rc.mu.Lock()
	h.N = len(rc.reqs)
	rc.reqs = append(rc.reqs, h)
	handle := rc.handle
	rc.mu.Unlock()
	status := http.StatusOK
	if handle != nil {
		if s := handle(h); s != 0 {
			status = s
		}
	}
	rc.mu.Lock()
	h.Status = status
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// down closes the listener and every connection (requests in progress finish first).
func (rc *hookReceiver) down() {
	rc.mu.Lock()
	srv := rc.srv
	rc.srv = nil
	rc.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up brings the receiver back on its port.
func (rc *hookReceiver) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", rc.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receiver cannot listen again on %s: %v", rc.addr, err)
	}
	srv := httptest.NewUnstartedServer(rc)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	rc.mu.Lock()
	rc.srv = srv
	rc.mu.Unlock()
}

// all returns every request so far, in arrival order.
func (rc *hookReceiver) all() []hookReq {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]hookReq, len(rc.reqs))
	for i, h := range rc.reqs {
		out[i] = *h
	}
	return out
}

// delivered returns the events answered 2xx, each once (by event id), in
// the order of their first arrival.
func delivered(reqs []hookReq) []hookReq {
	ok := map[string]bool{}
	for _, h := range reqs {
		if h.Status >= 200 && h.Status < 300 {
			ok[h.ID()] = true
		}
	}
	seen := map[string]bool{}
	var out []hookReq
	for _, h := range reqs {
		if id := h.ID(); ok[id] && !seen[id] {
			seen[id] = true
			out = append(out, h)
		}
	}
	return out
}

func filterHooks(reqs []hookReq, event string, pred func(h *hookReq) bool) []hookReq {
	var out []hookReq
	for _, h := range reqs {
		if (event == "" || h.Event == event) && (pred == nil || pred(&h)) {
			out = append(out, h)
		}
	}
	return out
}

// wait polls until cond holds for the delivered events, and returns them.
func (rc *hookReceiver) wait(t *testing.T, timeout time.Duration, what string, cond func(d []hookReq) bool) []hookReq {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := delivered(rc.all())
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, h := range rc.all() {
				lines = append(lines, h.String())
			}
			if len(lines) > 60 {
				lines = append(lines[:30], append([]string{"..."}, lines[len(lines)-30:]...)...)
			}
			t.Fatalf("timed out after %v waiting for %s; the receiver got:\n%s", timeout, what, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOne waits for the one delivered event of that name matching pred.
func (rc *hookReceiver) waitOne(t *testing.T, event string, pred func(h *hookReq) bool) hookReq {
	t.Helper()
	d := rc.wait(t, 15*time.Second, event, func(d []hookReq) bool { return len(filterHooks(d, event, pred)) > 0 })
	m := filterHooks(d, event, pred)
	if len(m) != 1 {
		t.Errorf("%d matching %s events, want 1: %v", len(m), event, m)
	}
	return m[0]
}

// Keys of each event body, in lal's order.
var (
	sessionEventKeys = []string{"server_id", "session_id", "protocol", "base_type", "remote_addr", "url", "app_name",
		"stream_name", "url_param", "has_in_session", "has_out_session", "read_bytes_sum", "wrote_bytes_sum"}
	hookBodyKeys = map[string][]string{
		"on_server_start":     {"server_id", "bin_info", "lal_version", "api_version", "notify_version", "WebUiVersion", "start_time"},
		"on_update":           {"server_id", "groups"},
		"on_rtmp_connect":     {"server_id", "session_id", "remote_addr", "app", "flashVer", "tcUrl"},
		"on_pub_start":        sessionEventKeys,
		"on_pub_stop":         sessionEventKeys,
		"on_sub_start":        sessionEventKeys,
		"on_sub_stop":         sessionEventKeys,
		"on_relay_pull_start": sessionEventKeys,
		"on_relay_pull_stop":  sessionEventKeys,
	}
	statGroupKeys   = []string{"stream_name", "app_name", "audio_codec", "video_codec", "video_width", "video_height", "pub", "subs", "pull", "in_frame_per_sec"}
	statSessionKeys = []string{"session_id", "protocol", "base_type", "remote_addr", "start_time", "read_bytes_sum", "wrote_bytes_sum",
		"bitrate_kbits", "read_bitrate_kbits", "write_bitrate_kbits"}
)

// check verifies what every request must be.
func (rc *hookReceiver) check(t *testing.T) {
	t.Helper()
	reqs := rc.all()
	byID := map[string]hookReq{}
	for _, h := range reqs {
		bad := func(format string, args ...any) { t.Errorf("webhook %s: %s", h.String(), fmt.Sprintf(format, args...)) }
		if h.Method != http.MethodPost {
			bad("method %s, want POST", h.Method)
		}
		if ct := h.Header.Get("Content-Type"); ct != "application/json" {
			bad("Content-Type %q, want application/json", ct)
		}
		if ev := h.Header.Get(notify.HeaderEvent); ev != h.Event {
			bad("%s = %q, want the event of the URL %q", notify.HeaderEvent, ev, h.Event)
		}
		if h.ID() == "" {
			bad("no %s", notify.HeaderEventID)
		}
		ts, err := strconv.ParseInt(h.Header.Get(notify.HeaderTimestamp), 10, 64)
		if err != nil || ts < h.At.Unix()-2 || ts > h.At.Unix()+1 {
			bad("%s = %q, want the Unix time of the request (%d)", notify.HeaderTimestamp, h.Header.Get(notify.HeaderTimestamp), h.At.Unix())
		}
		if rc.secret == "" {
			if s := h.Header.Get(notify.HeaderSignature); s != "" {
				bad("signed (%s: %q) without a secret", notify.HeaderSignature, s)
			}
		} else {
			if h.sigErr != nil {
				bad("signature does not verify with the secret: %v", h.sigErr)
			}
			if !errors.Is(h.wrongSigErr, notify.ErrBadSignature) {
				bad("signature verified with a wrong secret: %v", h.wrongSigErr)
			}
			if !errors.Is(h.tamperedSigErr, notify.ErrBadSignature) {
				bad("signature verified with a changed body: %v", h.tamperedSigErr)
			}
		}
		if h.f == nil {
			bad("body is not a JSON object")
			continue
		}
		if want, ok := hookBodyKeys[h.Event]; !ok {
			bad("unexpected event")
		} else if got, err := jsonKeys(h.Body); err != nil || !slices.Equal(got, want) {
			bad("body keys %v (%v), want %v in this order", got, err, want)
		}
		if h.str("server_id") != "1" {
			bad("server_id %q, want \"1\"", h.str("server_id"))
		}
		if prev, ok := byID[h.ID()]; ok {
			if prev.Event != h.Event || !bytes.Equal(prev.Body, h.Body) {
				bad("same event id as %s but another event", prev.String())
			}
		} else {
			byID[h.ID()] = h
		}
	}
	// Per stream, events arrive in the order they were generated: the
	// dispatcher numbers event ids in enqueue order.
	last := map[string]hookReq{}
	for _, h := range delivered(reqs) {
		stream := h.str("stream_name")
		if stream == "" {
			continue
		}
		prefix, seq := splitEventID(h.ID())
		key := prefix + "/" + stream
		if prev, ok := last[key]; ok {
			if _, pseq := splitEventID(prev.ID()); pseq >= seq {
				t.Errorf("stream %q: %s arrived after %s, which was generated later", stream, prev.String(), h.String())
			}
		}
		last[key] = h
	}
}

// splitEventID splits "<random>-<counter>".
func splitEventID(id string) (string, int) {
	i := strings.LastIndexByte(id, '-')
	n, err := strconv.Atoi(id[i+1:])
	if i < 0 || err != nil {
		return id, -1
	}
	return id[:i], n
}

// jsonKeys returns the keys of a JSON object in order.
func jsonKeys(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %.80q", raw)
	}
	var ks []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ks, err
		}
		ks = append(ks, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ks, err
		}
	}
	return ks, nil
}

// jsonShape describes a JSON value's structure: object keys in order,
// arrays by their first element, scalars by type.
func jsonShape(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "?"
	case raw[0] == '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.Token()
		var parts []string
		for dec.More() {
			k, _ := dec.Token()
			var v json.RawMessage
			dec.Decode(&v)
			parts = append(parts, fmt.Sprintf("%v:%s", k, jsonShape(v)))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case raw[0] == '[':
		var elems []json.RawMessage
		json.Unmarshal(raw, &elems)
		if len(elems) == 0 {
			return "[]"
		}
		return "[" + jsonShape(elems[0]) + "]"
	case raw[0] == '"':
		return "s"
	case string(raw) == "null":
		return "null"
	case string(raw) == "true" || string(raw) == "false":
		return "b"
	}
	return "n"
}

func jsonField(raw []byte, key string) json.RawMessage {
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	return m[key]
}

// sessionWant is what a session event must carry.
type sessionWant struct {
	idPrefix, protocol, baseType, remoteAddr, url, app, stream, param string
	hasIn, hasOut                                                     bool
}

func checkSessionEvent(t *testing.T, h hookReq, w sessionWant) {
	t.Helper()
	bad := func(format string, args ...any) { t.Errorf("%s: %s", h.String(), fmt.Sprintf(format, args...)) }
	id := h.str("session_id")
	if n, ok := strings.CutPrefix(id, w.idPrefix); !ok || n == "" || strings.Trim(n, "0123456789") != "" {
		bad("session_id %q, want %s<n>", id, w.idPrefix)
	}
	for k, want := range map[string]string{"server_id": "1", "protocol": w.protocol, "base_type": w.baseType,
		"url": w.url, "app_name": w.app, "stream_name": w.stream, "url_param": w.param} {
		if got := h.str(k); got != want {
			bad("%s = %q, want %q", k, got, want)
		}
	}
	checkAddr(t, h.String(), h.str("remote_addr"), w.remoteAddr)
	if v, ok := h.flag("has_in_session"); !ok || v != w.hasIn {
		bad("has_in_session = %v (present %v), want %v", v, ok, w.hasIn)
	}
	if v, ok := h.flag("has_out_session"); !ok || v != w.hasOut {
		bad("has_out_session = %v (present %v), want %v", v, ok, w.hasOut)
	}
}

// checkAddr checks a remote_addr is a loopback ip:port, and equals want if set.
func checkAddr(t *testing.T, what, got, want string) {
	t.Helper()
	host, port, err := net.SplitHostPort(got)
	if p, perr := strconv.Atoi(port); err != nil || host != "127.0.0.1" || perr != nil || p <= 0 {
		t.Errorf("%s: remote_addr %q is not 127.0.0.1:<port>", what, got)
	}
	if want != "" && got != want {
		t.Errorf("%s: remote_addr %q, want %q", what, got, want)
	}
}

// ---------------------------------------------------------------------------
// Servers and the API

// startHookServer starts a server on loopback ports with the API on and,
// when rc is set, every webhook posted to rc (on_update only at start unless
// mutate sets an interval). Its cleanup shuts it down.
func startHookServer(t *testing.T, rc *hookReceiver, mutate func(*config.Config)) *server.Server {
	t.Helper()
	return startServerConfig(t, "", hookConfig(rc, mutate))
}

// hookConfig is the configuration of startHookServer.
func hookConfig(rc *hookReceiver, mutate func(*config.Config)) *config.Config {
	cfg := testConfig()
	cfg.HTTPAPI.Enable = true
	n := &cfg.HTTPNotify
	n.Enable = rc != nil
	if rc != nil {
		n.UpdateIntervalSec = 0
		n.OnServerStart = rc.url("on_server_start")
		n.OnUpdate = rc.url("on_update")
		n.OnPubStart = rc.url("on_pub_start")
		n.OnPubStop = rc.url("on_pub_stop")
		n.OnSubStart = rc.url("on_sub_start")
		n.OnSubStop = rc.url("on_sub_stop")
		n.OnRelayPullStart = rc.url("on_relay_pull_start")
		n.OnRelayPullStop = rc.url("on_relay_pull_stop")
		n.OnRTMPConnect = rc.url("on_rtmp_connect")
		n.OnHLSMakeTS = ""
	}
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

// apiClient calls a server's HTTP API.
type apiClient struct {
	base string
	c    *http.Client
}

type apiResp struct {
	Raw    []byte
	Header http.Header
	Code   int             `json:"error_code"`
	Desp   string          `json:"desp"`
	Data   json.RawMessage `json:"data"`
}

func newAPIClient(t *testing.T, srv *server.Server) *apiClient {
	t.Helper()
	if srv.APIAddr() == "" {
		t.Fatal("the API is off")
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{base: "http://" + srv.APIAddr(), c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (a *apiClient) call(method, path, body string) (apiResp, error) {
	var r apiResp
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		return r, err
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	r.Raw, err = io.ReadAll(resp.Body)
	r.Header = resp.Header
	if err != nil {
		return r, err
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s %s: HTTP %s: %q", method, path, resp.Status, r.Raw)
	}
	if err := json.Unmarshal(r.Raw, &r); err != nil {
		return r, fmt.Errorf("%s %s: %q: %w", method, path, r.Raw, err)
	}
	return r, nil
}

func (a *apiClient) get(t *testing.T, path string) apiResp {
	t.Helper()
	r, err := a.call(http.MethodGet, path, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (a *apiClient) post(t *testing.T, path, body string) apiResp {
	t.Helper()
	r, err := a.call(http.MethodPost, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// statGroup is the parsed data of /api/stat/group.
type statGroup struct {
	StreamName  string `json:"stream_name"`
	AppName     string `json:"app_name"`
	AudioCodec  string `json:"audio_codec"`
	VideoCodec  string `json:"video_codec"`
	VideoWidth  int    `json:"video_width"`
	VideoHeight int    `json:"video_height"`
	Pub         statSession
	Subs        []statSession `json:"subs"`
	Pull        statSession   `json:"pull"`
	InFrames    []struct {
		UnixSec int64 `json:"unix_sec"`
		V       int   `json:"v"`
	} `json:"in_frame_per_sec"`
}

type statSession struct {
	SessionID         string `json:"session_id"`
	Protocol          string `json:"protocol"`
	BaseType          string `json:"base_type"`
	RemoteAddr        string `json:"remote_addr"`
	StartTime         string `json:"start_time"`
	ReadBytesSum      uint64 `json:"read_bytes_sum"`
	WroteBytesSum     uint64 `json:"wrote_bytes_sum"`
	BitrateKbits      int    `json:"bitrate_kbits"`
	ReadBitrateKbits  int    `json:"read_bitrate_kbits"`
	WriteBitrateKbits int    `json:"write_bitrate_kbits"`
}

const emptyStatSession = `{"session_id":"","protocol":"","base_type":"","remote_addr":"","start_time":"","read_bytes_sum":0,"wrote_bytes_sum":0,"bitrate_kbits":0,"read_bitrate_kbits":0,"write_bitrate_kbits":0}`

// lalTimeLayout is the start_time format.
const lalTimeLayout = "2006-01-02 15:04:05.999 Z0700 MST"

// ---------------------------------------------------------------------------
// In-process clients

var hookMedia struct {
	once sync.Once
	pkts []av.Packet
	err  error
}

// mediaPackets returns the packets of the H.264+AAC test file (read once).
func mediaPackets(t *testing.T) []av.Packet {
	t.Helper()
	hookMedia.once.Do(func() {
		f, err := os.Open(mediaPath(fileH264AAC))
		if err != nil {
			hookMedia.err = err
			return
		}
		defer f.Close()
		r := flv.NewReader(f)
		if _, _, err := r.ReadHeader(); err != nil {
			hookMedia.err = err
			return
		}
		for {
			h, body, err := r.ReadTag()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				hookMedia.err = err
				return
			}
			pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
			if err != nil {
				hookMedia.err = err
				return
			}
			hookMedia.pkts = append(hookMedia.pkts, pkt)
		}
	})
	if hookMedia.err != nil {
		t.Fatalf("reading %s: %v", fileH264AAC, hookMedia.err)
	}
	return hookMedia.pkts
}

// sendMedia writes the packets with from <= timestamp < to, at once.
func sendMedia(c *rtmp.ClientSession, pkts []av.Packet, from, to int64) error {
	for i := range pkts {
		if pkts[i].Timestamp < from || pkts[i].Timestamp >= to {
			continue
		}
		if err := c.WritePacket(&pkts[i]); err != nil {
			return err
		}
	}
	return nil
}

// dialRTMP connects an in-process RTMP client and publishes or plays;
// cleanup closes it.
func dialRTMP(t *testing.T, url string, publish bool, flashVer string) *rtmp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rtmp.Dial(ctx, url, rtmp.ClientOptions{FlashVer: flashVer})
	if err != nil {
		t.Fatalf("rtmp dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	if publish {
		err = c.Publish()
	} else {
		err = c.Play()
	}
	if err != nil {
		t.Fatalf("rtmp publish=%v %s: %v", publish, url, err)
	}
	return c
}

// drain consumes a session in the background until it ends; cleanup stops
// it (close) and waits.
type drain struct {
	done  chan struct{}
	n     atomic.Int64 // packets or bytes
	err   error        // valid once done is closed
	close func()
}

func (d *drain) ended(timeout time.Duration) bool {
	select {
	case <-d.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func drainRTMP(t *testing.T, c *rtmp.ClientSession) *drain {
	d := &drain{done: make(chan struct{}), close: func() { c.Close() }}
	go func() {
		defer close(d.done)
		for {
			if _, err := c.ReadPacket(); err != nil {
				d.err = err
				return
			}
			d.n.Add(1)
		}
	}()
	t.Cleanup(func() { d.close(); <-d.done })
	return d
}

func drainReader(t *testing.T, r io.Reader, closer func()) *drain {
	d := &drain{done: make(chan struct{}), close: closer}
	go func() {
		defer close(d.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			d.n.Add(int64(n))
			if err != nil {
				d.err = err
				return
			}
		}
	}()
	t.Cleanup(func() { d.close(); <-d.done })
	return d
}

// dialStream opens an HTTP-FLV or HTTP-TS stream on a raw connection and
// returns it after the response head.
func dialStream(addr, path string) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-test\r\n\r\n", path, addr); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return c, br, nil
}

// tagLog records the media tags an HTTP-FLV client reads in the background.
type tagLog struct {
	mu   sync.Mutex
	at   []time.Time
	ts   []int64
	err  error
	done chan struct{}
}

func logTags(t *testing.T, c *flvClient) *tagLog {
	l := &tagLog{done: make(chan struct{})}
	c.SetDeadline(time.Time{})
	go func() {
		defer close(l.done)
		for {
			tg, err := c.Next()
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
			if !tg.isMedia() {
				continue
			}
			l.mu.Lock()
			l.at = append(l.at, tg.At)
			l.ts = append(l.ts, int64(tg.H.Timestamp))
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.close(); <-l.done })
	return l
}

// advance returns how much media time arrived between from and to (from
// the last tag at or before from, or the first one after it), and the
// longest wait between two media tags in that span.
func (l *tagLog) advance(from, to time.Time) (media, maxGap time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	after := func(x time.Time) int { return sort.Search(len(l.at), func(i int) bool { return l.at[i].After(x) }) }
	first, last := after(from), after(to)-1 // tags (first-1, last] are in the span
	if first > 0 {
		first--
	}
	if last < 0 || first > last {
		return 0, to.Sub(from)
	}
	prev := from
	for _, at := range l.at[first : last+1] {
		if at.After(from) {
			maxGap = max(maxGap, at.Sub(prev))
			prev = at
		}
	}
	maxGap = max(maxGap, to.Sub(prev))
	return time.Duration(l.ts[last]-l.ts[first]) * time.Millisecond, maxGap
}

// waitMedia waits until the log holds at least d of media.
func (l *tagLog) waitMedia(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		n, err := len(l.ts), l.err
		var got time.Duration
		if n > 0 {
			got = time.Duration(l.ts[n-1]-l.ts[0]) * time.Millisecond
		}
		l.mu.Unlock()
		if got >= d {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("viewer got %v of media in %d tags (want %v): %v", got, n, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGroup polls the stream's group until cond holds (nil group: gone).
func waitGroup(srv *server.Server, stream string, timeout time.Duration, cond func(st *groupStat) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		var st *groupStat
		if g := srv.Groups().Group(stream); g != nil {
			s := g.Stat()
			st = &groupStat{pub: s.Pub != nil, subs: len(s.Subs)}
		}
		if cond(st) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type groupStat struct {
	pub  bool
	subs int
}

func noSubs(st *groupStat) bool  { return st == nil || st.subs == 0 }
func noGroup(st *groupStat) bool { return st == nil }

// ---------------------------------------------------------------------------
// Tests

// TestWebhookEventsPerProtocol: the events of the webhook document for RTMP
// (real ffmpeg), HTTP-FLV and HTTP-TS, every field checked against the
// session that caused it; on_server_start and on_update match the API.
func TestWebhookEventsPerProtocol(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	rc := newHookReceiver(t, "")
	srv := startHookServer(t, rc, func(c *config.Config) { c.HTTPNotify.UpdateIntervalSec = 1 })
	api := newAPIClient(t, srv)
	const stream = "ev"
	rtmpAddr, flvAddr, tsAddr := srv.RTMPAddr(), srv.HTTPFLVAddr(), srv.HTTPTSAddr()

	// on_server_start is lal_info's data, byte for byte.
	started := rc.waitOne(t, "on_server_start", nil)
	if info := api.get(t, "/api/stat/lal_info"); !bytes.Equal(started.Body, info.Data) {
		t.Errorf("on_server_start body\n%s\ndiffers from lal_info data\n%s", started.Body, info.Data)
	}

	// An HTTP-FLV viewer before the publisher: has_in_session false.
	flvc := subscribeFLV(t, flvURL(srv, stream)+"?k=flv", 5*time.Second)
	flvc.SetDeadline(time.Time{})
	flvDrain := drainReader(t, flvc.Resp.Body, flvc.close)
	flvWant := sessionWant{idPrefix: "FLVSUB", protocol: "HTTP-FLV", baseType: "SUB", remoteAddr: flvc.LocalAddr(),
		url: "http://" + flvAddr + "/live/" + stream + ".flv?k=flv", app: "live", stream: stream, param: "k=flv", hasIn: false, hasOut: true}
	flvStart := rc.waitOne(t, "on_sub_start", func(h *hookReq) bool { return h.str("remote_addr") == flvc.LocalAddr() })
	checkSessionEvent(t, flvStart, flvWant)
	flvID := flvStart.str("session_id")

	// The publisher: ffmpeg with a query.
	pub := startPublisher(t, srv, stream+"?token=1111", fileH264AAC)
	st := waitReady(t, srv, stream, pub, true, true)
	pubID := st.Pub.ID
	connect := rc.waitOne(t, "on_rtmp_connect", func(h *hookReq) bool { return h.str("session_id") == pubID })
	if fv := connect.str("flashVer"); !strings.HasPrefix(fv, "FMLE/3.0 (compatible; Lavf") {
		t.Errorf("ffmpeg's on_rtmp_connect flashVer = %q, want FMLE/3.0 (compatible; Lavf...", fv)
	}
	if connect.str("tcUrl") != "rtmp://"+rtmpAddr+"/live" || connect.str("app") != "live" {
		t.Errorf("on_rtmp_connect tcUrl/app = %q/%q, want rtmp://%s/live / live", connect.str("tcUrl"), connect.str("app"), rtmpAddr)
	}
	checkAddr(t, connect.String(), connect.str("remote_addr"), st.Pub.RemoteAddr)
	pubWant := sessionWant{idPrefix: "RTMPPUBSUB", protocol: "RTMP", baseType: "PUB", remoteAddr: st.Pub.RemoteAddr,
		url: "rtmp://" + rtmpAddr + "/live/" + stream + "?token=1111", app: "live", stream: stream, param: "token=1111", hasIn: true, hasOut: true}
	pubStart := rc.waitOne(t, "on_pub_start", nil)
	checkSessionEvent(t, pubStart, pubWant)
	if pubStart.str("session_id") != pubID {
		t.Errorf("on_pub_start session_id %q, the publisher is %q", pubStart.str("session_id"), pubID)
	}
	if pubStart.num("read_bytes_sum") < 3073 || pubStart.num("wrote_bytes_sum") < 3073 {
		t.Errorf("on_pub_start byte sums %v/%v, want at least the handshake", pubStart.num("read_bytes_sum"), pubStart.num("wrote_bytes_sum"))
	}

	// HTTP-TS and RTMP viewers, each with its own query.
	tsConn, tsBR, err := dialStream(tsAddr, "/live/"+stream+".ts?k=ts")
	if err != nil {
		t.Fatal(err)
	}
	tsConn.SetDeadline(time.Time{})
	tsDrain := drainReader(t, tsBR, func() { tsConn.Close() })
	tsWant := sessionWant{idPrefix: "TSSUB", protocol: "HTTP-TS", baseType: "SUB", remoteAddr: tsConn.LocalAddr().String(),
		url: "http://" + tsAddr + "/live/" + stream + ".ts?k=ts", app: "live", stream: stream, param: "k=ts", hasIn: true, hasOut: true}
	tsStart := rc.waitOne(t, "on_sub_start", func(h *hookReq) bool { return h.str("remote_addr") == tsWant.remoteAddr })
	checkSessionEvent(t, tsStart, tsWant)
	tsID := tsStart.str("session_id")

	rtmpSub := dialRTMP(t, "rtmp://"+rtmpAddr+"/live/"+stream+"?k=rtmp", false, "LNX 9,0,124,2")
	rtmpDrain := drainRTMP(t, rtmpSub)
	subConnect := rc.waitOne(t, "on_rtmp_connect", func(h *hookReq) bool { return h.str("flashVer") == "LNX 9,0,124,2" })
	if subConnect.str("tcUrl") != "rtmp://"+rtmpAddr+"/live" || subConnect.str("app") != "live" {
		t.Errorf("player's on_rtmp_connect = %s", subConnect.Body)
	}
	rtmpWant := sessionWant{idPrefix: "RTMPPUBSUB", protocol: "RTMP", baseType: "SUB", remoteAddr: subConnect.str("remote_addr"),
		url: "rtmp://" + rtmpAddr + "/live/" + stream + "?k=rtmp", app: "live", stream: stream, param: "k=rtmp", hasIn: true, hasOut: true}
	rtmpStart := rc.waitOne(t, "on_sub_start", func(h *hookReq) bool { return h.str("session_id") == subConnect.str("session_id") })
	checkSessionEvent(t, rtmpStart, rtmpWant)
	rtmpID := rtmpStart.str("session_id")

	// on_update carries the groups of /api/stat/all_group: same shape, same sessions.
	wantSubs := []string{rtmpID, flvID, tsID} // lal's order: RTMP, FLV, TS
	groupIn := func(raw []byte) json.RawMessage {
		var gs []json.RawMessage
		json.Unmarshal(raw, &gs)
		for _, g := range gs {
			var s statGroup
			if json.Unmarshal(g, &s) == nil && s.StreamName == stream {
				return g
			}
		}
		return nil
	}
	subIDs := func(g json.RawMessage) []string {
		var s statGroup
		json.Unmarshal(g, &s)
		var ids []string
		for _, sub := range s.Subs {
			ids = append(ids, sub.SessionID)
		}
		return ids
	}
	d := rc.wait(t, 10*time.Second, "an on_update with the three viewers", func(d []hookReq) bool {
		for _, h := range filterHooks(d, "on_update", nil) {
			if g := groupIn(jsonField(h.Body, "groups")); g != nil && slices.Equal(subIDs(g), wantSubs) {
				return true
			}
		}
		return false
	})
	var update json.RawMessage
	for _, h := range filterHooks(d, "on_update", nil) {
		if g := groupIn(jsonField(h.Body, "groups")); g != nil && slices.Equal(subIDs(g), wantSubs) {
			update = g
		}
	}
	all := api.get(t, "/api/stat/all_group")
	if ks, _ := jsonKeys(all.Data); !slices.Equal(ks, []string{"groups"}) {
		t.Errorf("all_group data keys %v, want [groups]", ks)
	}
	apiGroup := groupIn(jsonField(all.Data, "groups"))
	if apiGroup == nil {
		t.Fatalf("all_group has no %q: %s", stream, all.Raw)
	}
	if a, u := jsonShape(apiGroup), jsonShape(update); a != u {
		t.Errorf("on_update group shape\n%s\ndiffers from all_group's\n%s", u, a)
	}
	if ks, _ := jsonKeys(update); !slices.Equal(ks, statGroupKeys) {
		t.Errorf("on_update group keys %v, want %v", ks, statGroupKeys)
	}
	var ug statGroup
	json.Unmarshal(update, &ug)
	if ug.Pub.SessionID != pubID || ug.AudioCodec != "AAC" || ug.VideoCodec != "H264" || ug.VideoWidth != 640 || ug.VideoHeight != 360 {
		t.Errorf("on_update group = %s", update)
	}
	if ids := subIDs(apiGroup); !slices.Equal(ids, wantSubs) {
		t.Errorf("all_group subs %v, want %v", ids, wantSubs)
	}

	// Let media flow to every viewer.
	deadline := time.Now().Add(10 * time.Second)
	for flvDrain.n.Load() < 20000 || tsDrain.n.Load() < 20000 || rtmpDrain.n.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("viewers got too little: FLV %d bytes, TS %d bytes, RTMP %d packets", flvDrain.n.Load(), tsDrain.n.Load(), rtmpDrain.n.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The viewers leave; the last one leaves the stream without out session.
	flvc.close()
	flvWant.hasIn = true
	flvStop := rc.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("session_id") == flvID })
	checkSessionEvent(t, flvStop, flvWant)
	if w := flvStop.num("wrote_bytes_sum"); w <= 0 || w < float64(flvc.BytesRead()) {
		t.Errorf("FLV on_sub_stop wrote_bytes_sum %v, the client read %d", w, flvc.BytesRead())
	}
	tsConn.Close()
	tsStop := rc.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("session_id") == tsID })
	checkSessionEvent(t, tsStop, tsWant)
	if w := tsStop.num("wrote_bytes_sum"); w <= 0 || w < float64(tsDrain.n.Load()) {
		t.Errorf("TS on_sub_stop wrote_bytes_sum %v, the client read %d", w, tsDrain.n.Load())
	}
	rtmpSub.Close()
	rtmpWant.hasOut = false
	rtmpStop := rc.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("session_id") == rtmpID })
	checkSessionEvent(t, rtmpStop, rtmpWant)
	if w, r := rtmpStop.num("wrote_bytes_sum"), rtmpStop.num("read_bytes_sum"); w < 10000 || r < 3073 {
		t.Errorf("RTMP on_sub_stop wrote/read %v/%v, want > 10000 / at least the handshake", w, r)
	}

	pub.stop()
	pubWant.hasIn, pubWant.hasOut = false, false
	pubStop := rc.waitOne(t, "on_pub_stop", nil)
	checkSessionEvent(t, pubStop, pubWant)
	if r := pubStop.num("read_bytes_sum"); r < 100000 {
		t.Errorf("on_pub_stop read_bytes_sum %v, want the media read", r)
	}

	// The stream's events, in the order they happened.
	var seq []string
	for _, h := range delivered(rc.all()) {
		if h.str("stream_name") == stream {
			seq = append(seq, h.Event+"/"+h.str("session_id"))
		}
	}
	want := []string{"on_sub_start/" + flvID, "on_pub_start/" + pubID, "on_sub_start/" + tsID, "on_sub_start/" + rtmpID,
		"on_sub_stop/" + flvID, "on_sub_stop/" + tsID, "on_sub_stop/" + rtmpID, "on_pub_stop/" + pubID}
	if !slices.Equal(seq, want) {
		t.Errorf("events of %q:\n got %v\nwant %v", stream, seq, want)
	}
}

// TestAPIStatLive: the API's JSON on a real server with a real stream:
// shapes, error codes and the group and session fields.
func TestAPIStatLive(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startHookServer(t, nil, nil)
	api := newAPIClient(t, srv)
	const stream = "apistat"

	const (
		notFound = `{"error_code":404,"desp":"page not found, check this document out: lal"}`
		missing  = `{"error_code":1002,"desp":"param missing"}`
	)
	for _, c := range []struct{ method, path, body, want string }{
		{"GET", "/api/stat/all_group", "", `{"error_code":0,"desp":"succ","data":{"groups":null}}`},
		{"GET", "/api/stat/group", "", `{"error_code":1002,"desp":"param missing","data":null}`},
		{"GET", "/api/stat/group?stream_name=" + stream, "", `{"error_code":1001,"desp":"group not found","data":null}`},
		{"GET", "/no/such/path", "", notFound},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"x"}`, missing},
		{"POST", "/api/ctrl/kick_session", `{`, missing},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"x","session_id":"FLVSUB1"}`, `{"error_code":1001,"desp":"group not found"}`},
		{"POST", "/api/ctrl/start_relay_pull", `{"stream_name":"x"}`, `{"error_code":1002,"desp":"param missing","data":{"stream_name":"","session_id":""}}`},
		{"GET", "/api/ctrl/stop_relay_pull", "", `{"error_code":1002,"desp":"param missing","data":{"session_id":""}}`},
		{"GET", "/api/ctrl/stop_relay_pull?stream_name=x", "", `{"error_code":1001,"desp":"group not found","data":{"session_id":""}}`},
	} {
		r, err := api.call(c.method, c.path, c.body)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Raw) != c.want {
			t.Errorf("%s %s %s:\n got %s\nwant %s", c.method, c.path, c.body, r.Raw, c.want)
		}
		for k, v := range map[string]string{"Content-Type": "application/json", "Access-Control-Allow-Origin": "*",
			"Access-Control-Allow-Credentials": "true", "Access-Control-Allow-Headers": "Content-Type"} {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, got, v)
			}
		}
	}
	info := api.get(t, "/api/stat/lal_info")
	if ks, _ := jsonKeys(info.Data); !slices.Equal(ks, hookBodyKeys["on_server_start"]) {
		t.Errorf("lal_info keys %v", ks)
	}
	var li map[string]string
	json.Unmarshal(info.Data, &li)
	if st, err := time.Parse(lalTimeLayout, li["start_time"]); err != nil || time.Since(st) > time.Minute || time.Since(st) < 0 {
		t.Errorf("lal_info start_time %q (%v), want the server's start", li["start_time"], err)
	}
	if li["WebUiVersion"] == "" || li["server_id"] != "1" {
		t.Errorf("lal_info = %s", info.Data)
	}

	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)
	pubSeen := time.Now()
	r := api.get(t, "/api/stat/group?stream_name="+stream)
	if got := string(jsonField(r.Data, "subs")); got != "null" {
		t.Errorf("subs without viewers = %s, want null", got)
	}
	c := subscribeFLV(t, flvURL(srv, stream), 5*time.Second)
	c.SetDeadline(time.Time{})
	drainReader(t, c.Resp.Body, c.close)
	time.Sleep(time.Until(pubSeen.Add(4 * time.Second)))

	r = api.get(t, "/api/stat/group?stream_name="+stream)
	if ks, _ := jsonKeys(r.Raw); !slices.Equal(ks, []string{"error_code", "desp", "data"}) || r.Code != 0 || r.Desp != "succ" {
		t.Errorf("stat/group = %s", r.Raw)
	}
	if ks, _ := jsonKeys(r.Data); !slices.Equal(ks, statGroupKeys) {
		t.Errorf("group keys %v, want %v", ks, statGroupKeys)
	}
	if ks, _ := jsonKeys(jsonField(r.Data, "pub")); !slices.Equal(ks, statSessionKeys) {
		t.Errorf("pub keys %v, want %v", ks, statSessionKeys)
	}
	if got := string(jsonField(r.Data, "pull")); got != emptyStatSession {
		t.Errorf("pull = %s, want %s", got, emptyStatSession)
	}
	var subsRaw []json.RawMessage
	json.Unmarshal(jsonField(r.Data, "subs"), &subsRaw)
	if len(subsRaw) != 1 {
		t.Fatalf("subs = %s, want one", jsonField(r.Data, "subs"))
	}
	if ks, _ := jsonKeys(subsRaw[0]); !slices.Equal(ks, statSessionKeys) {
		t.Errorf("sub keys %v, want %v", ks, statSessionKeys)
	}
	var g statGroup
	if err := json.Unmarshal(r.Data, &g); err != nil {
		t.Fatal(err)
	}
	if g.StreamName != stream || g.AppName != "live" || g.AudioCodec != "AAC" || g.VideoCodec != "H264" || g.VideoWidth != 640 || g.VideoHeight != 360 {
		t.Errorf("group %s/%s %s %s %dx%d, want %s/live AAC H264 640x360", g.StreamName, g.AppName, g.AudioCodec, g.VideoCodec, g.VideoWidth, g.VideoHeight, stream)
	}
	checkTime := func(what, s string) {
		tm, err := time.Parse(lalTimeLayout, s)
		if err != nil || time.Since(tm) > 30*time.Second || time.Since(tm) < 0 {
			t.Errorf("%s start_time %q (%v)", what, s, err)
		}
	}
	p := g.Pub
	if !strings.HasPrefix(p.SessionID, "RTMPPUBSUB") || p.Protocol != "RTMP" || p.BaseType != "PUB" {
		t.Errorf("pub = %+v", p)
	}
	checkAddr(t, "pub", p.RemoteAddr, "")
	checkTime("pub", p.StartTime)
	if p.ReadBytesSum < 200000 || p.WroteBytesSum < 3073 {
		t.Errorf("pub byte sums read %d wrote %d", p.ReadBytesSum, p.WroteBytesSum)
	}
	// ~1 Mbit/s of media.
	if p.ReadBitrateKbits < 300 || p.ReadBitrateKbits > 5000 || p.BitrateKbits != p.ReadBitrateKbits {
		t.Errorf("pub bitrates: bitrate %d read %d write %d, want read ~1000 = bitrate", p.BitrateKbits, p.ReadBitrateKbits, p.WriteBitrateKbits)
	}
	s := g.Subs[0]
	if !strings.HasPrefix(s.SessionID, "FLVSUB") || s.Protocol != "HTTP-FLV" || s.BaseType != "SUB" {
		t.Errorf("sub = %+v", s)
	}
	checkAddr(t, "sub", s.RemoteAddr, c.LocalAddr())
	checkTime("sub", s.StartTime)
	if s.WroteBytesSum < 200000 {
		t.Errorf("sub wrote_bytes_sum %d", s.WroteBytesSum)
	}
	if s.WriteBitrateKbits < 300 || s.WriteBitrateKbits > 5000 || s.BitrateKbits != s.WriteBitrateKbits {
		t.Errorf("sub bitrates: bitrate %d read %d write %d, want write ~1000 = bitrate", s.BitrateKbits, s.ReadBitrateKbits, s.WriteBitrateKbits)
	}
	now := time.Now().Unix()
	sum := 0
	for i, fc := range g.InFrames {
		sum += fc.V
		if fc.UnixSec >= now || fc.V <= 0 || fc.V > 100 || (i > 0 && fc.UnixSec >= g.InFrames[i-1].UnixSec) {
			t.Errorf("in_frame_per_sec %+v: want complete past seconds, newest first, plausible counts", g.InFrames)
			break
		}
	}
	if len(g.InFrames) < 2 || sum < 40 {
		t.Errorf("in_frame_per_sec %+v after 4 s of 25 fps", g.InFrames)
	}
	all := api.get(t, "/api/stat/all_group")
	var gs []json.RawMessage
	json.Unmarshal(jsonField(all.Data, "groups"), &gs)
	if len(gs) != 1 || jsonShape(gs[0]) != jsonShape(r.Data) {
		t.Errorf("all_group groups %s, want the one group of stat/group", jsonField(all.Data, "groups"))
	}
}

// TestKickSessionWebhook: kick_session ends an RTMP player, an HTTP-FLV
// player and the publisher; each gets its stop event and its connection closed.
func TestKickSessionWebhook(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	rc := newHookReceiver(t, "")
	srv := startHookServer(t, rc, nil)
	api := newAPIClient(t, srv)
	const stream = "kick"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)

	flvc := subscribeFLV(t, flvURL(srv, stream), 5*time.Second)
	flvc.SetDeadline(time.Time{})
	flvDrain := drainReader(t, flvc.Resp.Body, flvc.close)
	rtmpSub := dialRTMP(t, rtmpURL(srv, stream), false, "")
	rtmpDrain := drainRTMP(t, rtmpSub)
	d := rc.wait(t, 10*time.Second, "two on_sub_start", func(d []hookReq) bool { return len(filterHooks(d, "on_sub_start", nil)) == 2 })
	ids := map[string]string{}
	for _, h := range filterHooks(d, "on_sub_start", nil) {
		ids[h.str("protocol")] = h.str("session_id")
	}
	if ids["HTTP-FLV"] == "" || ids["RTMP"] == "" {
		t.Fatalf("sub ids %v", ids)
	}

	for _, c := range []struct {
		protocol string
		drain    *drain
	}{{"RTMP", rtmpDrain}, {"HTTP-FLV", flvDrain}} {
		id := ids[c.protocol]
		body := fmt.Sprintf(`{"stream_name":%q,"session_id":%q}`, stream, id)
		if r := api.post(t, "/api/ctrl/kick_session", body); string(r.Raw) != `{"error_code":0,"desp":"succ"}` {
			t.Errorf("kick %s: %s", id, r.Raw)
		}
		stop := rc.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("session_id") == id })
		if stop.str("protocol") != c.protocol || stop.num("wrote_bytes_sum") <= 0 {
			t.Errorf("on_sub_stop after the kick: %s", stop.Body)
		}
		if !c.drain.ended(5 * time.Second) {
			t.Errorf("%s player %s still connected 5 s after the kick", c.protocol, id)
		}
		if r := api.post(t, "/api/ctrl/kick_session", body); string(r.Raw) != `{"error_code":1003,"desp":"session not found"}` {
			t.Errorf("second kick of %s: %s", id, r.Raw)
		}
	}
	if got := rc.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("protocol") == "HTTP-FLV" }); got.flagOr("has_out_session") {
		t.Errorf("last viewer kicked: has_out_session true in %s", got.Body)
	}

	// The publisher.
	r := api.get(t, "/api/stat/group?stream_name="+stream)
	var g statGroup
	json.Unmarshal(r.Data, &g)
	body := fmt.Sprintf(`{"stream_name":%q,"session_id":%q}`, stream, g.Pub.SessionID)
	if r := api.post(t, "/api/ctrl/kick_session", body); string(r.Raw) != `{"error_code":0,"desp":"succ"}` {
		t.Errorf("kick the publisher %s: %s", g.Pub.SessionID, r.Raw)
	}
	stop := rc.waitOne(t, "on_pub_stop", nil)
	if stop.str("session_id") != g.Pub.SessionID || stop.flagOr("has_in_session") {
		t.Errorf("on_pub_stop after the kick: %s", stop.Body)
	}
	select {
	case <-pub.done:
		pub.stopped.Store(true) // it was meant to end
	case <-time.After(5 * time.Second):
		t.Errorf("ffmpeg still publishing 5 s after its session was kicked")
	}
}

func (h *hookReq) flagOr(k string) bool {
	v, _ := h.flag(k)
	return v
}

// loadStream is one stream of the outage load: a publisher and two viewers
// that come and go.
type loadStream struct {
	name     string
	subAddrs [2]string
	err      error
}

// runLoadStream publishes 2 s of media to its own stream at once; two
// HTTP-FLV viewers join after the first second, read up to a key frame and
// leave; then the publisher leaves. It returns once the server has seen every
// session end.
func runLoadStream(srv *server.Server, name string, pkts []av.Packet) (ls loadStream) {
	ls.name = name
	fail := func(format string, args ...any) loadStream {
		ls.err = fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
		return ls
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rtmp.Dial(ctx, rtmpURL(srv, name), rtmp.ClientOptions{})
	if err != nil {
		return fail("dial: %v", err)
	}
	defer c.Close()
	if err := c.Publish(); err != nil {
		return fail("publish: %v", err)
	}
	if err := sendMedia(c, pkts, 0, 1000); err != nil {
		return fail("send: %v", err)
	}
	var conns []net.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	for i := range ls.subAddrs {
		conn, br, err := dialStream(srv.HTTPFLVAddr(), fmt.Sprintf("/live/%s.flv?sub=%d", name, i))
		if err != nil {
			return fail("viewer %d: %v", i, err)
		}
		conns = append(conns, conn)
		ls.subAddrs[i] = conn.LocalAddr().String()
		r := flv.NewReader(br)
		if _, _, err := r.ReadHeader(); err != nil {
			return fail("viewer %d: FLV header: %v", i, err)
		}
		for key := false; !key; {
			h, body, err := r.ReadTag()
			if err != nil {
				return fail("viewer %d: %v", i, err)
			}
			pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
			key = err == nil && pkt.Kind == av.KindVideo && pkt.KeyFrame && !pkt.SeqHeader
		}
	}
	if err := sendMedia(c, pkts, 1000, 2000); err != nil {
		return fail("send: %v", err)
	}
	for _, conn := range conns {
		conn.Close()
	}
	if !waitGroup(srv, name, 10*time.Second, noSubs) {
		return fail("viewers still in the group 10 s after leaving")
	}
	c.Close()
	if !waitGroup(srv, name, 10*time.Second, noGroup) {
		return fail("publisher still in the group 10 s after leaving")
	}
	return ls
}

// TestWebhookOutage: the receiver is down for 10 s while 100 publishers and
// 200 viewers come and go. Once it is back, every event arrives (exactly the
// set that happened, each stream in order) and the media never stalled.
func TestWebhookOutage(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	const (
		streams = 100
		workers = 10
		outage  = 10 * time.Second
	)
	rc := newHookReceiver(t, "")
	srv := startHookServer(t, rc, nil)
	api := newAPIClient(t, srv)
	pkts := mediaPackets(t)

	// A stream that flows through the outage, watched over HTTP-FLV.
	steady := startPublisher(t, srv, "steady", fileH264AAC)
	waitReady(t, srv, "steady", steady, true, true)
	viewer := subscribeFLV(t, flvURL(srv, "steady"), 5*time.Second)
	tags := logTags(t, viewer)
	tags.waitMedia(t, time.Second)
	rc.wait(t, 10*time.Second, "the steady stream's start events", func(d []hookReq) bool {
		return len(filterHooks(d, "", func(h *hookReq) bool { return h.str("stream_name") == "steady" })) == 2
	})
	steadyPubID := filterHooks(delivered(rc.all()), "on_pub_start", nil)[0].str("session_id")

	rc.down()
	outageStart := time.Now()
	results := make([]loadStream, streams)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < streams; i += workers {
				// Spread the streams over most of the outage.
				time.Sleep(time.Until(outageStart.Add(time.Duration(i) * outage * 3 / 4 / streams)))
				results[i] = runLoadStream(srv, fmt.Sprintf("out%03d", i), pkts)
			}
		}()
	}
	wg.Wait()
	loadTook := time.Since(outageStart)
	time.Sleep(time.Until(outageStart.Add(outage)))
	outageEnd := time.Now()
	arrivedDuring := len(filterHooks(rc.all(), "", func(h *hookReq) bool { return h.At.After(outageStart) }))
	rc.up(t)
	recovered := time.Now()

	wall := outageEnd.Sub(outageStart)
	media, gap := tags.advance(outageStart, outageEnd)
	t.Logf("load of %d streams took %v; during the %v outage the steady viewer got %v of media, longest gap %v",
		streams, loadTook.Round(time.Millisecond), wall.Round(time.Millisecond), media, gap.Round(time.Millisecond))
	if media < wall*8/10 {
		t.Errorf("steady stream: %v of media in %v of outage, want ≥ 80%%", media, wall)
	}
	if gap > 2*time.Second {
		t.Errorf("steady stream stalled for %v during the outage", gap)
	}
	if arrivedDuring != 0 {
		t.Errorf("%d requests arrived while the receiver was down", arrivedDuring)
	}
	if loadTook > outage {
		t.Logf("the load outlasted the outage by %v: some events were delivered live", loadTook-outage)
	}
	for _, r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}

	isLoad := func(h *hookReq) bool { return strings.HasPrefix(h.str("stream_name"), "out") }
	d := rc.wait(t, 60*time.Second, "every event of the outage", func(d []hookReq) bool {
		return len(filterHooks(d, "", isLoad)) >= 6*streams && len(filterHooks(d, "on_rtmp_connect", nil)) >= streams+1
	})
	t.Logf("all %d events of the load delivered %v after the receiver came back", 7*streams, time.Since(recovered).Round(time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	var stats notify.Stats
	for {
		r := api.get(t, "/api/stat/notify")
		stats = notify.Stats{}
		json.Unmarshal(r.Data, &stats)
		if stats.QueueDepth == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/api/stat/notify: %+v", stats)
	if stats.QueueDepth != 0 || stats.Delivered == 0 || stats.Retried == 0 || stats.Dropped != 0 || stats.Failed != 0 {
		t.Errorf("notify stats %+v: want an empty queue, deliveries and retries, nothing dropped or failed", stats)
	}
	d = delivered(rc.all())

	// Exactly the events that happened, per stream, in order.
	byStream := map[string][]hookReq{}
	for _, h := range filterHooks(d, "", isLoad) {
		byStream[h.str("stream_name")] = append(byStream[h.str("stream_name")], h)
	}
	pubIDs := map[string]bool{steadyPubID: true}
	for _, r := range results {
		evs := byStream[r.name]
		var got []string
		subOf := map[string]int{} // session id -> viewer index
		for _, h := range evs {
			id := h.str("session_id")
			switch h.Event {
			case "on_sub_start":
				i := slices.Index(r.subAddrs[:], h.str("remote_addr"))
				if i < 0 || h.str("url_param") != fmt.Sprintf("sub=%d", i) {
					t.Errorf("%s: on_sub_start of an unknown viewer: %s (viewers %v)", r.name, h.Body, r.subAddrs)
				}
				subOf[id] = i
				got = append(got, fmt.Sprintf("sub_start/%d", i))
			case "on_sub_stop":
				i, ok := subOf[id]
				if !ok {
					i = -1
				}
				got = append(got, fmt.Sprintf("sub_stop/%d", i))
			case "on_pub_start":
				pubIDs[id] = true
				got = append(got, "pub_start")
			case "on_pub_stop":
				if !pubIDs[id] {
					t.Errorf("%s: on_pub_stop of %s without its start", r.name, id)
				}
				got = append(got, "pub_stop")
			default:
				got = append(got, h.Event)
			}
		}
		// The viewers join and leave concurrently: normalise their order.
		want1 := []string{"pub_start", "sub_start/0", "sub_start/1", "sub_stop/0", "sub_stop/1", "pub_stop"}
		norm := slices.Clone(got)
		if len(norm) == 6 {
			slices.Sort(norm[1:3])
			slices.Sort(norm[3:5])
		}
		if !slices.Equal(norm, want1) {
			t.Errorf("%s: events %v, want %v (viewers in any order)", r.name, got, want1)
		}
	}
	for _, h := range d {
		if name := h.str("stream_name"); name != "" && name != "steady" && !isLoad(&h) {
			t.Errorf("event of an unknown stream: %s", h.String())
		}
	}
	if len(byStream) != streams {
		t.Errorf("events for %d load streams, want %d", len(byStream), streams)
	}
	connects := map[string]int{}
	for _, h := range filterHooks(d, "on_rtmp_connect", nil) {
		connects[h.str("session_id")]++
	}
	for id := range pubIDs {
		if connects[id] != 1 {
			t.Errorf("publisher %s: %d on_rtmp_connect, want 1", id, connects[id])
		}
	}
	// on_rtmp_connect is ordered with the server-level events (the stream is
	// not known at connect time), not with its stream's events.
	late := 0
	for _, h := range filterHooks(d, "on_pub_start", nil) {
		for _, c := range filterHooks(d, "on_rtmp_connect", nil) {
			if c.str("session_id") == h.str("session_id") && c.N > h.N {
				late++
			}
		}
	}
	t.Logf("%d of %d publishers' on_rtmp_connect arrived after their on_pub_start", late, len(pubIDs))
	if len(connects) != len(pubIDs) {
		t.Errorf("%d on_rtmp_connect sessions, want %d (one per publisher)", len(connects), len(pubIDs))
	}
	t.Logf("%d requests for %d distinct events", len(rc.all()), len(d))
}

// TestWebhookSlowReceiver: a receiver that takes 2 s per event of stream
// "slow" delays neither another stream's events nor any media.
func TestWebhookSlowReceiver(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	rc := newHookReceiver(t, "")
	release := make(chan struct{})
	rc.setHandle(func(h *hookReq) int {
		if h.str("stream_name") == "slow" {
			select {
			case <-time.After(2 * time.Second):
			case <-release:
			}
		}
		return 0
	})
	srv := startHookServer(t, rc, nil)
	t.Cleanup(func() { close(release) }) // before the server's shutdown
	pkts := mediaPackets(t)

	slowPub := startPublisher(t, srv, "slow", fileH264AAC)
	waitReady(t, srv, "slow", slowPub, true, true)
	viewer := subscribeFLV(t, flvURL(srv, "slow"), 5*time.Second)
	viewStart := time.Now()
	tags := logTags(t, viewer)
	tags.waitMedia(t, 500*time.Millisecond)
	// A second viewer comes and goes: four events of "slow" queued, 2 s each.
	if conn, _, err := dialStream(srv.HTTPFLVAddr(), "/live/slow.flv"); err != nil {
		t.Fatal(err)
	} else {
		conn.Close()
	}
	if !waitGroup(srv, "slow", 5*time.Second, func(st *groupStat) bool { return st != nil && st.subs == 1 }) {
		t.Fatal("second viewer of slow did not leave")
	}

	// Stream "fast": a publisher and 5 viewers that come and go.
	fastStart := time.Now()
	fp := dialRTMP(t, rtmpURL(srv, "fast"), true, "")
	if err := sendMedia(fp, pkts, 0, 1000); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		conn, br, err := dialStream(srv.HTTPFLVAddr(), fmt.Sprintf("/live/fast.flv?i=%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := flv.NewReader(br).ReadHeader(); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if !waitGroup(srv, "fast", 5*time.Second, noSubs) {
			t.Fatal("fast viewer did not leave")
		}
	}
	fp.Close()
	if !waitGroup(srv, "fast", 5*time.Second, noGroup) {
		t.Fatal("fast publisher did not leave")
	}
	fastDone := time.Now()

	stream := func(name string) func(h *hookReq) bool {
		return func(h *hookReq) bool { return h.str("stream_name") == name }
	}
	// Arrival, not answer: "slow" is answered 2 s later.
	arrived := func() []hookReq {
		seen := map[string]bool{}
		var out []hookReq
		for _, h := range rc.all() {
			if !seen[h.ID()] {
				seen[h.ID()] = true
				out = append(out, h)
			}
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(filterHooks(arrived(), "", stream("slow"))) < 3 || len(filterHooks(delivered(rc.all()), "", stream("fast"))) < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %d fast events delivered (want 12), %d slow arrived (want ≥ 3)",
				len(filterHooks(delivered(rc.all()), "", stream("fast"))), len(filterHooks(arrived(), "", stream("slow"))))
		}
		time.Sleep(20 * time.Millisecond)
	}
	slow := filterHooks(arrived(), "", stream("slow"))
	fast := filterHooks(delivered(rc.all()), "", stream("fast"))
	lastFast := fast[len(fast)-1]
	t.Logf("fast: 12 events generated in %v, the last delivered %v after the first was generated; slow's 3rd event arrived %v after its 1st",
		fastDone.Sub(fastStart).Round(time.Millisecond), lastFast.At.Sub(fastStart).Round(time.Millisecond), slow[2].At.Sub(slow[0].At).Round(time.Millisecond))
	if len(fast) != 12 {
		t.Errorf("%d events of fast, want 12 (pub start/stop, 5 viewers start/stop)", len(fast))
	}
	for _, h := range fast {
		if !h.At.Before(slow[2].At) {
			t.Errorf("fast event %s arrived %v after slow's third event: the slow stream delayed it",
				h.String(), h.At.Sub(slow[2].At))
		}
	}
	if gap := slow[1].At.Sub(slow[0].At); gap < 1900*time.Millisecond {
		t.Errorf("slow's 2nd event arrived %v after its 1st, before the receiver answered the 1st (2 s): order not kept", gap)
	}

	// Slow's media flows at real time all along.
	from := viewStart.Add(time.Second)
	to := from.Add(6 * time.Second)
	time.Sleep(time.Until(to.Add(200 * time.Millisecond)))
	media, gap := tags.advance(from, to)
	t.Logf("slow's viewer: %v of media in %v, longest gap %v", media, to.Sub(from), gap.Round(time.Millisecond))
	if media < to.Sub(from)*7/10 {
		t.Errorf("slow's viewer got %v of media in %v, want ≥ 70%%", media, to.Sub(from))
	}
}

// TestWebhookSignature: with a secret, every request verifies with
// notify.Verify and the secret, and not with a wrong secret.
func TestWebhookSignature(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	rc := newHookReceiver(t, secret)
	srv := startHookServer(t, rc, func(c *config.Config) { c.HTTPNotify.Secret = secret })
	pkts := mediaPackets(t)

	pub := dialRTMP(t, rtmpURL(srv, "signed")+"?a=b", true, "")
	if err := sendMedia(pub, pkts, 0, 500); err != nil {
		t.Fatal(err)
	}
	sub := dialRTMP(t, rtmpURL(srv, "signed"), false, "")
	sub.Close()
	if !waitGroup(srv, "signed", 5*time.Second, noSubs) {
		t.Fatal("player did not leave")
	}
	pub.Close()
	want := []string{"on_server_start", "on_update", "on_rtmp_connect", "on_rtmp_connect", "on_pub_start", "on_sub_start", "on_sub_stop", "on_pub_stop"}
	d := rc.wait(t, 10*time.Second, "every event", func(d []hookReq) bool { return len(d) >= len(want) })
	var got []string
	for _, h := range d {
		got = append(got, h.Event)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	for _, h := range rc.all() {
		if h.sigErr != nil {
			t.Errorf("%s: Verify with the secret: %v", h.String(), h.sigErr)
		}
		if !errors.Is(h.wrongSigErr, notify.ErrBadSignature) {
			t.Errorf("%s: Verify with a wrong secret = %v, want ErrBadSignature", h.String(), h.wrongSigErr)
		}
		// The documented scheme, computed independently of package notify.
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(h.Header.Get(notify.HeaderTimestamp) + "."))
		mac.Write(h.Body)
		if sig := h.Header.Get(notify.HeaderSignature); sig != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("%s: %s = %q, want sha256=<hex HMAC-SHA256 of timestamp.body>", h.String(), notify.HeaderSignature, sig)
		}
	}
}

// TestOnDemandRelayPull: the document's on-demand flow, driven by a receiver
// that calls back into the API: a viewer arrives at a stream nobody
// publishes here (has_in_session false) and the receiver starts a relay pull
// from an origin; the last viewer leaves (has_out_session false) and the
// receiver stops it.
func TestOnDemandRelayPull(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	const stream = "ondemand"
	origin := startHookServer(t, nil, nil)
	pub := startPublisher(t, origin, stream, fileH264AAC)
	waitReady(t, origin, stream, pub, true, true)

	rc := newHookReceiver(t, "")
	edge := startHookServer(t, rc, nil)
	edgeAPI := newAPIClient(t, edge)
	type callback struct {
		event string
		resp  apiResp
		err   error
	}
	var mu sync.Mutex
	var calls []callback
	handled := map[string]bool{}
	pullURL := "rtmp://" + origin.RTMPAddr() + "/live/" + stream
	rc.setHandle(func(h *hookReq) int {
		if h.str("stream_name") != stream {
			return 0
		}
		in, _ := h.flag("has_in_session")
		out, _ := h.flag("has_out_session")
		mu.Lock()
		dup := handled[h.ID()]
		handled[h.ID()] = true
		mu.Unlock()
		if dup {
			return 0
		}
		var cb callback
		switch {
		case h.Event == "on_sub_start" && !in:
			cb.resp, cb.err = edgeAPI.call(http.MethodPost, "/api/ctrl/start_relay_pull",
				fmt.Sprintf(`{"url":%q,"stream_name":%q}`, pullURL, stream))
		case h.Event == "on_sub_stop" && !out:
			cb.resp, cb.err = edgeAPI.call(http.MethodGet, "/api/ctrl/stop_relay_pull?stream_name="+stream, "")
		default:
			return 0
		}
		cb.event = h.Event
		mu.Lock()
		calls = append(calls, cb)
		mu.Unlock()
		return 0
	})
	getCalls := func() []callback {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(calls)
	}

	viewer := subscribeFLV(t, flvURL(edge, stream)+"?want=1", 5*time.Second)
	t0 := time.Now()
	viewer.ReadUntil(t, 15*time.Second, "a key frame through the on-demand pull", tag.isKeyFrame)
	t.Logf("viewer got a key frame %v after it arrived", time.Since(t0).Round(time.Millisecond))

	cs := getCalls()
	if len(cs) != 1 || cs[0].event != "on_sub_start" || cs[0].err != nil || cs[0].resp.Code != 0 {
		t.Fatalf("receiver calls: %+v", cs)
	}
	var started struct {
		StreamName string `json:"stream_name"`
		SessionID  string `json:"session_id"`
	}
	json.Unmarshal(cs[0].resp.Data, &started)
	if ks, _ := jsonKeys(cs[0].resp.Data); !slices.Equal(ks, []string{"stream_name", "session_id"}) ||
		started.StreamName != stream || !strings.HasPrefix(started.SessionID, "RTMPPULL") {
		t.Errorf("start_relay_pull answered %s", cs[0].resp.Raw)
	}
	pullID := started.SessionID
	r := edgeAPI.get(t, "/api/stat/group?stream_name="+stream)
	var g statGroup
	json.Unmarshal(r.Data, &g)
	if g.Pull.SessionID != pullID || g.Pull.Protocol != "RTMP" || g.Pull.RemoteAddr != origin.RTMPAddr() || string(jsonField(r.Data, "pub")) != emptyStatSession {
		t.Errorf("edge group while pulling: pull %+v pub %s", g.Pull, jsonField(r.Data, "pub"))
	}
	ps := rc.waitOne(t, "on_relay_pull_start", nil)
	if ps.str("session_id") != pullID || ps.str("url") != pullURL || ps.str("remote_addr") != origin.RTMPAddr() || !ps.flagOr("has_in_session") {
		t.Errorf("on_relay_pull_start = %s", ps.Body)
	}

	// The last viewer leaves: the receiver stops the pull.
	viewer.close()
	left := rc.waitOne(t, "on_sub_stop", nil)
	if left.flagOr("has_out_session") || !left.flagOr("has_in_session") {
		t.Errorf("last viewer's on_sub_stop = %s, want has_in_session true, has_out_session false", left.Body)
	}
	var gone bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r := edgeAPI.get(t, "/api/stat/group?stream_name="+stream)
		if r.Code == 1001 || (string(jsonField(r.Data, "pub")) == emptyStatSession && string(jsonField(r.Data, "pull")) == emptyStatSession) {
			gone = true
			break
		}
	}
	if !gone {
		t.Errorf("the pull still runs 10 s after the last viewer left: %s", edgeAPI.get(t, "/api/stat/group?stream_name="+stream).Raw)
	}
	cs = getCalls()
	if len(cs) != 2 || cs[1].event != "on_sub_stop" || cs[1].err != nil || string(cs[1].resp.Raw) != fmt.Sprintf(`{"error_code":0,"desp":"succ","data":{"session_id":%q}}`, pullID) {
		t.Errorf("receiver calls: %+v", cs)
	}
	stop := rc.waitOne(t, "on_relay_pull_stop", nil)
	if stop.str("session_id") != pullID || stop.flagOr("has_in_session") {
		t.Errorf("on_relay_pull_stop = %s", stop.Body)
	}
	if !waitGroup(origin, stream, 10*time.Second, noSubs) {
		t.Errorf("the origin still serves the edge's pull 10 s after it was stopped")
	}
}

// TestShutdownFlushesWebhooks: Shutdown closes the sessions and delivers
// their stop events, retried through a receiver answering 503, before it
// returns.
func TestShutdownFlushesWebhooks(t *testing.T) {
	t.Parallel()
	rc := newHookReceiver(t, "")
	srv := startHookServer(t, rc, nil)
	pkts := mediaPackets(t)
	rc.wait(t, 10*time.Second, "on_server_start and on_update", func(d []hookReq) bool { return len(d) == 2 })

	var failUntil atomic.Int64
	rc.setHandle(func(h *hookReq) int {
		if time.Now().UnixNano() < failUntil.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	})
	t0 := time.Now()
	failUntil.Store(t0.Add(2 * time.Second).UnixNano())
	pub := dialRTMP(t, rtmpURL(srv, "bye"), true, "")
	if err := sendMedia(pub, pkts, 0, 1000); err != nil {
		t.Fatal(err)
	}
	conn, _, err := dialStream(srv.HTTPFLVAddr(), "/live/bye.flv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dialRTMP(t, rtmpURL(srv, "bye"), false, "")
	for len(filterHooks(rc.all(), "", func(h *hookReq) bool { return h.Status == http.StatusServiceUnavailable })) == 0 {
		if time.Since(t0) > 2*time.Second {
			t.Fatal("no request answered 503")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Shut down while the stream's start events are still refused: its stop
	// events queue behind them. (The dispatcher's backoff, 200 ms doubling
	// with jitter, can put the first attempt after the 503s end up to ~3 s
	// later, so this leaves Shutdown's 5 s some margin.)
	time.Sleep(time.Until(t0.Add(1500 * time.Millisecond)))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err = srv.Shutdown(ctx)
	returned := time.Now()
	t.Logf("Shutdown took %v", returned.Sub(start).Round(time.Millisecond))
	if err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	all := rc.all()
	d := delivered(all)
	var got []string
	for _, h := range d {
		if h.str("stream_name") == "bye" {
			got = append(got, h.Event+"/"+h.str("base_type"))
			if h.At.After(returned) {
				t.Errorf("%s delivered after Shutdown returned", h.String())
			}
		}
	}
	want := []string{"on_pub_start/PUB", "on_sub_start/SUB", "on_sub_start/SUB", "on_sub_stop/SUB", "on_sub_stop/SUB", "on_pub_stop/PUB"}
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	slices.Sort(want)
	if !slices.Equal(sorted, want) {
		t.Errorf("events of the stream delivered by Shutdown: %v, want %v", got, want)
	}
	retried := filterHooks(all, "", func(h *hookReq) bool { return h.Status == http.StatusServiceUnavailable })
	t.Logf("%d requests answered 503, %d events delivered", len(retried), len(d))
	// The stream's first events (on_rtmp_connect, queued with the stream,
	// then on_pub_start) were refused first, so its stop events waited in
	// the queue behind them.
	if len(filterHooks(retried, "on_pub_start", nil))+len(filterHooks(retried, "on_rtmp_connect", nil)) == 0 {
		t.Errorf("neither on_rtmp_connect nor on_pub_start was answered 503: nothing was queued")
	}
}
