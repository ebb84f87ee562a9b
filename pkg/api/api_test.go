package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sluice/pkg/api"
	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/group"
	"sluice/pkg/notify"
	"sluice/pkg/relay"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The shared test media; SLUICE_TEST_MEDIA overrides the directory.
func mediaFile(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SLUICE_TEST_MEDIA")
	if dir == "" {
		dir = "../../../shared/media"
	}
	p := filepath.Join(dir, "h264_aac_360p.flv")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test media missing: %v", err)
	}
	return p
}

// readPackets reads every tag of an FLV file as packets.
func readPackets(t *testing.T) []av.Packet {
	t.Helper()
	f, err := os.Open(mediaFile(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var pkts []av.Packet
	for {
		h, body, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
}

// nopMuxer carries nothing: the API tests only look at the stats.
type nopMuxer struct{}

func (nopMuxer) Mux(*av.Packet) []byte { return nil }

func newManager() *group.Manager {
	return group.NewManager(group.Config{Formats: []group.FormatSpec{
		{Name: "rtmp", NewMuxer: func(string) group.Muxer { return nopMuxer{} }},
		{Name: "flv", NewMuxer: func(string) group.Muxer { return nopMuxer{} }},
	}})
}

// counters is a settable group.Counters.
type counters struct{ read, wrote atomic.Uint64 }

func (c *counters) ReadBytes() uint64    { return c.read.Load() }
func (c *counters) WrittenBytes() uint64 { return c.wrote.Load() }

var startTime = time.Date(2026, 11, 26, 20, 31, 9, 938_000_000, time.UTC)

type fixture struct {
	api *api.Server
	m   *group.Manager
	srv *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	m := newManager()
	a := &api.Server{
		ServerID:   "1",
		StartTime:  startTime,
		Version:    "9.9.9",
		ServerName: "sluice/test",
		Groups:     m,
		Bitrates:   api.NewBitrates(),
		Pulls:      &relay.PullManager{Groups: m},
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &fixture{api: a, m: m, srv: srv}
}

// do makes a request and returns the body after checking what every API
// response has: HTTP 200, JSON content type and the CORS headers.
func (f *fixture) do(t *testing.T, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s %s: HTTP %d, want 200 (errors go in error_code)", method, path, resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":                     "application/json",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Origin":      "*",
		"Access-Control-Allow-Headers":     "Content-Type",
		"Server":                           "sluice/test",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s %s: header %s = %q, want %q", method, path, k, got, want)
		}
	}
	if !json.Valid(b) {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
	}
	return b
}

// keys returns the keys of a JSON object in the order they appear.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", raw)
	}
	var ks []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

func field(t *testing.T, raw []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	v, ok := m[key]
	if !ok {
		t.Fatalf("no key %q in %s", key, raw)
	}
	return v
}

func wantKeys(t *testing.T, what string, raw []byte, want ...string) {
	t.Helper()
	if got := keys(t, raw); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v (in this order)", what, got, want)
	}
}

var (
	groupKeys   = []string{"stream_name", "app_name", "audio_codec", "video_codec", "video_width", "video_height", "pub", "subs", "pull", "in_frame_per_sec"}
	sessionKeys = []string{"session_id", "protocol", "base_type", "remote_addr", "start_time", "read_bytes_sum", "wrote_bytes_sum", "bitrate_kbits", "read_bitrate_kbits", "write_bitrate_kbits"}
	eventKeys   = []string{"server_id", "session_id", "protocol", "base_type", "remote_addr", "url", "app_name", "stream_name", "url_param", "has_in_session", "has_out_session", "read_bytes_sum", "wrote_bytes_sum"}
)

const emptySession = `{"session_id":"","protocol":"","base_type":"","remote_addr":"","start_time":"","read_bytes_sum":0,"wrote_bytes_sum":0,"bitrate_kbits":0,"read_bitrate_kbits":0,"write_bitrate_kbits":0}`

func TestLalInfo(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, method := range []string{http.MethodGet, http.MethodPost} { // the method is never checked
		b := f.do(t, method, "/api/stat/lal_info", "")
		wantKeys(t, "lal_info", b, "error_code", "desp", "data")
		data := field(t, b, "data")
		wantKeys(t, "lal_info data", data, "server_id", "bin_info", "lal_version", "api_version", "notify_version", "WebUiVersion", "start_time")
		var info map[string]string
		if err := json.Unmarshal(data, &info); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"server_id": "1", "lal_version": "v0.37.4", "api_version": "v0.4.9", "notify_version": "v0.2.5",
			"WebUiVersion": "v0.0.3", "start_time": "2026-11-26 20:31:09.938 Z UTC",
		}
		for k, v := range want {
			if info[k] != v {
				t.Errorf("%s: %s = %q, want %q", method, k, info[k], v)
			}
		}
		// bin_info: "Key=Value. " pairs, split by the Web UI on ". ".
		if !strings.HasPrefix(info["bin_info"], "Sluice=9.9.9. GoVersion=go") || !strings.HasSuffix(info["bin_info"], ".") {
			t.Errorf("bin_info = %q", info["bin_info"])
		}
		for _, kv := range strings.Split(strings.TrimSuffix(info["bin_info"], "."), ". ") {
			if k, v, ok := strings.Cut(kv, "="); !ok || k == "" || v == "" {
				t.Errorf("bin_info pair %q is not Key=Value", kv)
			}
		}
		if !strings.HasPrefix(string(b), `{"error_code":0,"desp":"succ","data":{"server_id":"1",`) {
			t.Errorf("lal_info = %s", b)
		}
		// The data is LalInfo(), the on_server_start body.
		li, _ := json.Marshal(f.api.LalInfo())
		if !bytes.Equal(li, data) {
			t.Errorf("lal_info data %s differs from LalInfo() %s", data, li)
		}
	}
}

func TestStartTimeFormat(t *testing.T) {
	t.Parallel()
	cst := time.FixedZone("CST", 8*3600)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{startTime, "2026-11-26 20:31:09.938 Z UTC"},
		{time.Date(2026, 11, 26, 20, 31, 13, 990_000_000, time.UTC), "2026-11-26 20:31:13.99 Z UTC"},
		{time.Date(2026, 11, 26, 20, 31, 35, 800_000_000, time.UTC), "2026-11-26 20:31:35.8 Z UTC"},
		{time.Date(2026, 11, 26, 20, 31, 35, 0, time.UTC), "2026-11-26 20:31:35 Z UTC"},
		{time.Date(2024, 5, 16, 14, 50, 34, 795_123_456, cst), "2024-05-16 14:50:34.795 +0800 CST"},
		{time.Time{}, ""},
	} {
		got := api.FormatTime(c.t)
		if got != c.want {
			t.Errorf("FormatTime(%v) = %q, want %q", c.t, got, c.want)
		}
		if got == "" {
			continue
		}
		back, err := time.Parse("2006-01-02 15:04:05.999 Z0700 MST", got)
		if err != nil {
			t.Errorf("%q does not parse back: %v", got, err)
		} else if !back.Equal(c.t.Truncate(time.Millisecond)) {
			t.Errorf("%q parses back as %v, want %v", got, back, c.t)
		}
	}
}

func TestErrorShapes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if got, want := string(f.do(t, "GET", "/api/stat/all_group", "")), `{"error_code":0,"desp":"succ","data":{"groups":null}}`; got != want {
		t.Errorf("all_group without groups = %s, want %s", got, want)
	}
	// A group without a pull, for the stop_relay_pull 1003 case.
	sub := f.m.Subscribe(group.SessionInfo{ID: "FLVSUB1", Protocol: "HTTP-FLV", BaseType: group.BaseSub, StreamName: "waiting"}, 1)
	defer sub.Close()

	const (
		notFound = `{"error_code":404,"desp":"page not found, check this document out: lal"}`
		missing  = `{"error_code":1002,"desp":"param missing"}`
	)
	for _, c := range []struct{ method, path, body, want string }{
		{"GET", "/api/stat/group", "", `{"error_code":1002,"desp":"param missing","data":null}`},
		{"GET", "/api/stat/group?stream_name=", "", `{"error_code":1002,"desp":"param missing","data":null}`},
		{"GET", "/api/stat/group?stream_name=nope", "", `{"error_code":1001,"desp":"group not found","data":null}`},
		{"GET", "/nope", "", notFound},
		{"GET", "/api/stat/nope", "", notFound},
		{"POST", "/api/ctrl/stop_rtp_pub", "{}", notFound},
		{"GET", "/", "", notFound},
		{"POST", "/api/ctrl/kick_session", "", missing},
		{"POST", "/api/ctrl/kick_session", "not json", missing},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"waiting"}`, missing},
		{"POST", "/api/ctrl/kick_session", `{"session_id":"FLVSUB1"}`, missing},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"waiting","session_id":5}`, missing},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"nope","session_id":"FLVSUB1"}`, `{"error_code":1001,"desp":"group not found"}`},
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"waiting","session_id":"FLVSUB2"}`, `{"error_code":1003,"desp":"session not found"}`},
		// FLVSUB1 has no Close func: it cannot be kicked.
		{"POST", "/api/ctrl/kick_session", `{"stream_name":"waiting","session_id":"FLVSUB1"}`, `{"error_code":1003,"desp":"session not found"}`},
		{"POST", "/api/ctrl/start_relay_pull", "", `{"error_code":1002,"desp":"param missing","data":{"stream_name":"","session_id":""}}`},
		{"POST", "/api/ctrl/start_relay_pull", `{"stream_name":"x"}`, `{"error_code":1002,"desp":"param missing","data":{"stream_name":"","session_id":""}}`},
		{"POST", "/api/ctrl/start_relay_pull", `{"url":"rtmp://127.0.0.1:1/live/x","pull_timeout_ms":"soon"}`, `{"error_code":1002,"desp":"param missing","data":{"stream_name":"","session_id":""}}`},
		{"GET", "/api/ctrl/stop_relay_pull", "", `{"error_code":1002,"desp":"param missing","data":{"session_id":""}}`},
		{"GET", "/api/ctrl/stop_relay_pull?stream_name=nope", "", `{"error_code":1001,"desp":"group not found","data":{"session_id":""}}`},
		{"GET", "/api/ctrl/stop_relay_pull?stream_name=waiting", "", `{"error_code":1003,"desp":"session not found","data":{"session_id":""}}`},
	} {
		got := f.do(t, c.method, c.path, c.body)
		if string(got) != c.want {
			t.Errorf("%s %s %q:\n got %s\nwant %s", c.method, c.path, c.body, got, c.want)
		}
	}
}

func TestKickSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var pubClosed, subClosed atomic.Int32
	pub, err := f.m.Publish(group.SessionInfo{ID: "RTMPPUBSUB7", Protocol: "RTMP", BaseType: group.BasePub, StreamName: "k", AppName: "live",
		Close: func() { pubClosed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub := f.m.Subscribe(group.SessionInfo{ID: "FLVSUB9", Protocol: "HTTP-FLV", BaseType: group.BaseSub, StreamName: "k",
		Close: func() { subClosed.Add(1) }}, 1)
	defer sub.Close()

	const succ = `{"error_code":0,"desp":"succ"}`
	if got := f.do(t, "POST", "/api/ctrl/kick_session", `{"stream_name":"k","session_id":"FLVSUB9"}`); string(got) != succ {
		t.Errorf("kick sub = %s, want %s", got, succ)
	}
	if subClosed.Load() != 1 || pubClosed.Load() != 0 {
		t.Errorf("after kicking the sub: sub closed %d times, pub %d times; want 1, 0", subClosed.Load(), pubClosed.Load())
	}
	// A present null counts as present (lal); the body is read whatever the method.
	if got := f.do(t, "GET", "/api/ctrl/kick_session", `{"stream_name":"k","session_id":"RTMPPUBSUB7","extra":null}`); string(got) != succ {
		t.Errorf("kick pub = %s, want %s", got, succ)
	}
	if pubClosed.Load() != 1 {
		t.Errorf("pub closed %d times, want 1", pubClosed.Load())
	}
}

func TestStatGroupShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pubCounters := &counters{}
	pubStart := time.Now()
	pub, err := f.m.Publish(group.SessionInfo{ID: "RTMPPUBSUB1", Protocol: "RTMP", BaseType: group.BasePub,
		RemoteAddr: "127.0.0.1:49300", StreamName: "test110", AppName: "live", StartTime: pubStart, Counters: pubCounters})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	// Before any media: codecs unknown, no subs, in_frame_per_sec [].
	b := f.do(t, "GET", "/api/stat/group?stream_name=test110", "")
	data := field(t, b, "data")
	wantKeys(t, "group", data, groupKeys...)
	wantKeys(t, "pub", field(t, data, "pub"), sessionKeys...)
	if string(field(t, data, "subs")) != "null" {
		t.Errorf("subs = %s, want null", field(t, data, "subs"))
	}
	if got := string(field(t, data, "pull")); got != emptySession {
		t.Errorf("pull = %s, want the empty object %s", got, emptySession)
	}
	if got := string(field(t, data, "in_frame_per_sec")); got != "[]" {
		t.Errorf("in_frame_per_sec = %s, want []", got)
	}
	if got := string(field(t, data, "audio_codec")) + string(field(t, data, "video_codec")); got != `""""` {
		t.Errorf("codecs before media = %s", got)
	}

	// Feed the whole file: codecs and size come from the sequence headers.
	frames := 0
	for _, p := range readPackets(t) {
		if p.Kind == av.KindVideo && !p.SeqHeader {
			frames++
		}
		p := p
		pub.WritePacket(&p)
	}
	fedAt := time.Now().Unix()
	pubCounters.read.Store(1605798)
	pubCounters.wrote.Store(3500)

	flvCounters, rtmpCounters := &counters{}, &counters{}
	subs := []*group.Sub{
		f.m.Subscribe(group.SessionInfo{ID: "FLVSUB4", Protocol: "HTTP-FLV", BaseType: group.BaseSub, RemoteAddr: "127.0.0.1:40276",
			StreamName: "test110", StartTime: time.Now(), Counters: flvCounters}, 1),
		f.m.Subscribe(group.SessionInfo{ID: "TSSUB2", Protocol: "HTTP-TS", BaseType: group.BaseSub, RemoteAddr: "127.0.0.1:40286",
			StreamName: "test110", StartTime: time.Now()}, 1),
		f.m.Subscribe(group.SessionInfo{ID: "RTMPPUBSUB3", Protocol: "RTMP", BaseType: group.BaseSub, RemoteAddr: "127.0.0.1:40296",
			StreamName: "test110", StartTime: time.Now(), Counters: rtmpCounters}, 0),
	}
	defer func() {
		for _, s := range subs {
			s.Close()
		}
	}()
	// Three bitrate samples one "second" apart: 128 KiB/s read = 1024 kbit/s.
	for i := 1; i <= 3; i++ {
		pubCounters.read.Add(128 << 10)
		flvCounters.wrote.Add(64 << 10)
		f.api.Bitrates.Sample(f.m)
	}
	// Wait for the second the media arrived in to be complete.
	for time.Now().Unix() <= fedAt {
		time.Sleep(20 * time.Millisecond)
	}

	b = f.do(t, "GET", "/api/stat/group?stream_name=test110", "")
	wantKeys(t, "stat/group", b, "error_code", "desp", "data")
	data = field(t, b, "data")
	wantKeys(t, "group", data, groupKeys...)
	var g struct {
		StreamName    string            `json:"stream_name"`
		AppName       string            `json:"app_name"`
		AudioCodec    string            `json:"audio_codec"`
		VideoCodec    string            `json:"video_codec"`
		VideoWidth    int               `json:"video_width"`
		VideoHeight   int               `json:"video_height"`
		Pub           api.StatSession   `json:"pub"`
		Subs          []json.RawMessage `json:"subs"`
		Pull          json.RawMessage   `json:"pull"`
		InFramePerSec []api.FrameCount  `json:"in_frame_per_sec"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if g.StreamName != "test110" || g.AppName != "live" || g.AudioCodec != "AAC" || g.VideoCodec != "H264" || g.VideoWidth != 640 || g.VideoHeight != 360 {
		t.Errorf("group = %s/%s %s %s %dx%d, want test110/live AAC H264 640x360", g.StreamName, g.AppName, g.AudioCodec, g.VideoCodec, g.VideoWidth, g.VideoHeight)
	}
	wantPub := api.StatSession{SessionID: "RTMPPUBSUB1", Protocol: "RTMP", BaseType: "PUB", RemoteAddr: "127.0.0.1:49300",
		StartTime: api.FormatTime(pubStart), ReadBytesSum: 1605798 + 3*(128<<10), WroteBytesSum: 3500,
		BitrateKbits: 1024, ReadBitrateKbits: 1024, WriteBitrateKbits: 0}
	if g.Pub != wantPub {
		t.Errorf("pub = %+v\nwant  %+v", g.Pub, wantPub)
	}
	if _, err := time.Parse("2006-01-02 15:04:05.999 Z0700 MST", g.Pub.StartTime); err != nil {
		t.Errorf("pub start_time %q: %v", g.Pub.StartTime, err)
	}
	if string(g.Pull) != emptySession {
		t.Errorf("pull = %s, want %s", g.Pull, emptySession)
	}
	// Subs: RTMP, then FLV, then TS (lal's order).
	var ids []string
	for _, raw := range g.Subs {
		wantKeys(t, "sub", raw, sessionKeys...)
		var s api.StatSession
		json.Unmarshal(raw, &s)
		ids = append(ids, s.SessionID)
		switch s.SessionID {
		case "FLVSUB4":
			if s.Protocol != "HTTP-FLV" || s.BaseType != "SUB" || s.RemoteAddr != "127.0.0.1:40276" ||
				s.WroteBytesSum != 3*(64<<10) || s.WriteBitrateKbits != 512 || s.BitrateKbits != 512 || s.ReadBitrateKbits != 0 {
				t.Errorf("FLV sub = %+v, want HTTP-FLV SUB, 196608 bytes written, write bitrate = bitrate = 512", s)
			}
		case "TSSUB2":
			if s.Protocol != "HTTP-TS" || s.ReadBytesSum != 0 || s.WroteBytesSum != 0 || s.BitrateKbits != 0 {
				t.Errorf("TS sub = %+v", s)
			}
		}
	}
	if want := []string{"RTMPPUBSUB3", "FLVSUB4", "TSSUB2"}; !slices.Equal(ids, want) {
		t.Errorf("subs = %v, want %v", ids, want)
	}
	// All the frames arrived within one or two wall-clock seconds, newest first.
	total := 0
	for i, fc := range g.InFramePerSec {
		total += fc.V
		if fc.UnixSec >= time.Now().Unix() {
			t.Errorf("in_frame_per_sec lists the current second: %+v", fc)
		}
		if i > 0 && fc.UnixSec >= g.InFramePerSec[i-1].UnixSec {
			t.Errorf("in_frame_per_sec not newest first: %+v", g.InFramePerSec)
		}
	}
	if total != frames {
		t.Errorf("in_frame_per_sec = %+v sums to %d, want the %d video frames fed", g.InFramePerSec, total, frames)
	}

	// all_group has the same group.
	b = f.do(t, "GET", "/api/stat/all_group", "")
	groups := field(t, field(t, b, "data"), "groups")
	var gs []json.RawMessage
	json.Unmarshal(groups, &gs)
	if len(gs) != 1 {
		t.Fatalf("all_group groups = %s, want one", groups)
	}
	wantKeys(t, "all_group group", gs[0], groupKeys...)

	// The publisher leaves: pub is the empty object, codecs stay (set once).
	pub.Close()
	b = f.do(t, "GET", "/api/stat/group?stream_name=test110", "")
	data = field(t, b, "data")
	if got := string(field(t, data, "pub")); got != emptySession {
		t.Errorf("pub after the publisher left = %s, want %s", got, emptySession)
	}
	if got := string(field(t, data, "video_codec")); got != `"H264"` {
		t.Errorf("video_codec after the publisher left = %s, want \"H264\" (never reset)", got)
	}
}

func TestPullInPullObject(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pull, err := f.m.Publish(group.SessionInfo{ID: "RTMPPULL1", Protocol: "RTMP", BaseType: group.BasePull,
		RemoteAddr: "127.0.0.1:19350", StreamName: "p", StartTime: startTime})
	if err != nil {
		t.Fatal(err)
	}
	defer pull.Close()
	data := field(t, f.do(t, "GET", "/api/stat/group?stream_name=p", ""), "data")
	if got := string(field(t, data, "pub")); got != emptySession {
		t.Errorf("pub = %s, want empty (the input is a pull)", got)
	}
	want := `{"session_id":"RTMPPULL1","protocol":"RTMP","base_type":"PULL","remote_addr":"127.0.0.1:19350","start_time":"2026-11-26 20:31:09.938 Z UTC","read_bytes_sum":0,"wrote_bytes_sum":0,"bitrate_kbits":0,"read_bitrate_kbits":0,"write_bitrate_kbits":0}`
	if got := string(field(t, data, "pull")); got != want {
		t.Errorf("pull = %s\nwant %s", got, want)
	}
}

func TestEventBodies(t *testing.T) {
	t.Parallel()
	ev := group.Event{
		Type: group.EventSubStart,
		Session: group.SessionInfo{ID: "FLVSUB1", Protocol: "HTTP-FLV", BaseType: "SUB", RemoteAddr: "127.0.0.1:51889",
			URL: "http://127.0.0.1:8080/live/test110.flv?token=1111", AppName: "live", StreamName: "test110", URLParam: "token=1111"},
		ReadBytes: 12, WrittenBytes: 34, HasInSession: false, HasOutSession: true,
	}
	b, _ := json.Marshal(api.SessionEvent("1", ev))
	want := `{"server_id":"1","session_id":"FLVSUB1","protocol":"HTTP-FLV","base_type":"SUB","remote_addr":"127.0.0.1:51889",` +
		`"url":"http://127.0.0.1:8080/live/test110.flv?token=1111","app_name":"live","stream_name":"test110","url_param":"token=1111",` +
		`"has_in_session":false,"has_out_session":true,"read_bytes_sum":12,"wrote_bytes_sum":34}`
	if string(b) != want {
		t.Errorf("session event =\n%s\nwant\n%s", b, want)
	}
	wantKeys(t, "session event", b, eventKeys...)

	b, _ = json.Marshal(api.RTMPConnectBody{ServerID: "1", SessionID: "RTMPPUBSUB1", RemoteAddr: "127.0.0.1:53834", App: "live",
		FlashVer: "FMLE/3.0 (compatible; Lavf57.83.100)", TcURL: "rtmp://127.0.0.1:19350/live"})
	want = `{"server_id":"1","session_id":"RTMPPUBSUB1","remote_addr":"127.0.0.1:53834","app":"live","flashVer":"FMLE/3.0 (compatible; Lavf57.83.100)","tcUrl":"rtmp://127.0.0.1:19350/live"}`
	if string(b) != want {
		t.Errorf("rtmp connect =\n%s\nwant\n%s", b, want)
	}
	b, _ = json.Marshal(api.UpdateBody{ServerID: "1"})
	if want := `{"server_id":"1","groups":null}`; string(b) != want {
		t.Errorf("empty on_update = %s, want %s", b, want)
	}
}

func TestNotifyStatsAndEvents(t *testing.T) {
	t.Parallel()
	d := notify.NewDispatcher(notify.Config{})
	defer d.Close()
	done := make(chan struct{})
	f := newFixture(t)
	f.api.Notify = d
	f.api.Done = done
	defer close(done)

	b := f.do(t, "GET", "/api/stat/notify", "")
	wantKeys(t, "stat/notify", b, "error_code", "desp", "data")
	wantKeys(t, "stat/notify data", field(t, b, "data"), "queue_depth", "delivered", "retried", "failed", "dropped", "coalesced", "per_event")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+"/api/events", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("/api/events Content-Type = %q", ct)
	}
	body := `{"server_id":"1","session_id":"X"}`
	// The subscription is registered before the response head is sent.
	d.Enqueue(notify.Event{Name: "on_pub_start", Stream: "s", Body: []byte(body)})
	br := bufio.NewReader(resp.Body)
	var lines []string
	for len(lines) < 3 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading /api/events: %v after %q", err, lines)
		}
		if line = strings.TrimRight(line, "\n"); line != "" {
			lines = append(lines, line)
		}
	}
	if lines[0] != "event: on_pub_start" || !strings.HasPrefix(lines[1], "id: ") || len(lines[1]) < 8 || lines[2] != "data: "+body {
		t.Errorf("SSE event = %q", lines)
	}
	st := d.Stats()
	if st.Delivered != 0 || st.QueueDepth != 0 {
		t.Errorf("an event without URL was queued for delivery: %+v", st)
	}
}
