package server_test

// End-to-end tests of Server.Reload (SIGHUP): webhook and access settings
// change under running streams, which are not disturbed.

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/pkg/config"
)

// lalSecret is simple_auth's lal_secret of stream under the default key.
func lalSecret(stream string) string {
	sum := md5.Sum([]byte(config.Default().SimpleAuth.Key + stream))
	return hex.EncodeToString(sum[:])
}

// TestReloadWebhooksAndAccess: a stream published with ffmpeg keeps going
// through a Reload that moves on_sub_start to another receiver and turns
// simple_auth on for players; new players are decided by the new rules and
// their events go to the new URL.
func TestReloadWebhooksAndAccess(t *testing.T) {
	t.Parallel()
	requireFFmpeg(t)
	rcA := newHookReceiver(t, "")
	rcB := newHookReceiver(t, "")
	srv := startHookServer(t, rcA, nil)
	const stream = "reload1"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	before := waitReady(t, srv, stream, pub, true, true)
	rcA.waitOne(t, "on_pub_start", func(h *hookReq) bool { return h.str("stream_name") == stream })

	err := srv.Reload(hookConfig(rcA, func(c *config.Config) {
		c.HTTPNotify.OnSubStart = rcB.url("on_sub_start")
		c.SimpleAuth.SubRTMPEnable = true
		c.SimpleAuth.SubHTTPFLVEnable = true
		c.RTMP.GOPNum = 2 // needs a restart: ignored
	}))
	if err != nil {
		t.Fatalf("Reload: %v", err)
	}

	if code, _ := httpStatus(t, flvURL(srv, stream), nil); code != http.StatusUnauthorized {
		t.Errorf("HTTP-FLV player without lal_secret after the reload: %d, want 401", code)
	}
	if err := rtmpStatus(t, rtmpURL(srv, stream), false); err == nil || !strings.Contains(err.Error(), "NetStream.Play.Failed") {
		t.Errorf("RTMP player without lal_secret after the reload: %v, want NetStream.Play.Failed", err)
	}
	c := subscribeFLV(t, flvURL(srv, stream)+"?lal_secret="+lalSecret(stream), readyTimeout)
	tags := c.ReadUntil(t, readyTimeout, "a key frame", tag.isKeyFrame)
	if len(tags) == 0 {
		t.Fatal("no tags")
	}
	player := c.LocalAddr()
	rcB.waitOne(t, "on_sub_start", func(h *hookReq) bool { return h.str("stream_name") == stream })
	if got := filterHooks(rcA.all(), "on_sub_start", nil); len(got) != 0 {
		t.Errorf("receiver A got on_sub_start after the reload: %v", got)
	}
	// The player's stop still goes to A (only on_sub_start moved).
	c.close()
	stop := rcA.waitOne(t, "on_sub_stop", func(h *hookReq) bool { return h.str("stream_name") == stream })
	checkAddr(t, "on_sub_stop remote_addr", stop.str("remote_addr"), player)

	// The publisher never noticed.
	after := mustGroup(t, srv, stream).Stat()
	if after.Pub == nil || after.Pub.ID != before.Pub.ID {
		t.Fatalf("publisher after the reload: %+v, want the same session %s", after.Pub, before.Pub.ID)
	}
	if pub.exited() {
		t.Fatalf("publisher died: %v %q", pub.err, pub.stderr.String())
	}
	for _, rc := range []*hookReceiver{rcA, rcB} {
		if got := filterHooks(rc.all(), "on_pub_stop", nil); len(got) != 0 {
			t.Errorf("on_pub_stop during the reload: %v", got)
		}
	}
}

// authBackend is an http_auth back end that allows everything and records
// the paths it was asked on.
type authBackend struct {
	*httptest.Server
	mu    sync.Mutex
	asked []string
}

func newAuthBackend(t *testing.T) *authBackend {
	b := &authBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.asked = append(b.asked, r.URL.Path)
		b.mu.Unlock()
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *authBackend) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.asked {
		if p == path {
			n++
		}
	}
	return n
}

// statusFrom is the status of a GET of url made from the local address ip.
func statusFrom(t *testing.T, ip, url string) int {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, ip, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadHTTPAuthAndBlacklist: the http_auth decision cache survives a
// Reload that leaves http_auth alone and is emptied by one that changes it;
// turning http_auth off applies at once; the API's IP blacklist survives.
func TestReloadHTTPAuthAndBlacklist(t *testing.T) {
	t.Parallel()
	backend := newAuthBackend(t)
	withAuth := func(path string) func(*config.Config) {
		return func(c *config.Config) {
			c.HTTPAuth.Enable = path != ""
			c.HTTPAuth.OnSub = backend.URL + path
		}
	}
	srv := startHookServer(t, nil, withAuth("/x"))
	api := newAPIClient(t, srv)
	if r := api.post(t, "/api/ctrl/add_ip_blacklist", `{"ip":"127.0.0.2","duration_sec":60}`); r.Code != 0 {
		t.Fatalf("add_ip_blacklist: %s", r.Raw)
	}
	play := func(what string) {
		t.Helper()
		if err := rtmpStatus(t, rtmpURL(srv, "cached"), false); err != nil {
			t.Fatalf("%s: play refused: %v", what, err)
		}
	}
	reload := func(mod func(*config.Config)) {
		t.Helper()
		if err := srv.Reload(hookConfig(nil, mod)); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}

	play("first play")
	play("second play")
	if n := backend.count("/x"); n != 1 {
		t.Fatalf("back end asked %d times for two plays within the cache TTL, want 1", n)
	}
	reload(withAuth("/x"))
	play("play after a reload without changes")
	if n := backend.count("/x"); n != 1 {
		t.Errorf("back end asked %d times after a reload that did not change http_auth, want 1 (cache kept)", n)
	}
	reload(withAuth("/y"))
	play("play after on_sub changed")
	if n, m := backend.count("/x"), backend.count("/y"); n != 1 || m != 1 {
		t.Errorf("after on_sub changed: asked %d times on /x, %d on /y; want 1 and 1 (cache emptied, new URL)", n, m)
	}
	reload(withAuth(""))
	play("play with http_auth off")
	if total := backend.count("/x") + backend.count("/y"); total != 2 {
		t.Errorf("back end asked with http_auth off (%d requests in all, want 2)", total)
	}
	if code := statusFrom(t, "127.0.0.2", flvURL(srv, "cached")); code != http.StatusForbidden {
		t.Errorf("blacklisted IP after reloads: %d, want 403", code)
	}
}
