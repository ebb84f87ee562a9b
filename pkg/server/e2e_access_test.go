package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/pkg/config"
	"sluice/pkg/rtmp"
)

// rtmpStatus publishes or plays url with the in-process client and returns
// the refusal (nil when accepted).
func rtmpStatus(t *testing.T, url string, publish bool) error {
	t.Helper()
	c, err := rtmp.Dial(context.Background(), url, rtmp.ClientOptions{})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer c.Close()
	if publish {
		return c.Publish()
	}
	return c.Play()
}

func httpStatus(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(body)
}

func TestSimpleAuthRefusesInEachProtocol(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, func(c *config.Config) {
		c.SimpleAuth.PubRTMPEnable = true
		c.SimpleAuth.SubRTMPEnable = true
		c.SimpleAuth.SubHTTPFLVEnable = true
		c.SimpleAuth.SubHTTPTSEnable = true
	})
	// md5("q191201771"+"test110"), spec §6.13.
	const good = "lal_secret=700997e1595a06c9ffa60ebef79105b0"
	base := "rtmp://" + srv.RTMPAddr() + "/live/test110"

	err := rtmpStatus(t, base+"?lal_secret=bad", true)
	if err == nil || !strings.Contains(err.Error(), "NetStream.Publish.Unauthorized") {
		t.Fatalf("publish with a bad secret: %v, want NetStream.Publish.Unauthorized", err)
	}
	if err := rtmpStatus(t, base, false); err == nil || !strings.Contains(err.Error(), "NetStream.Play.Failed") {
		t.Fatalf("play without a secret: %v, want NetStream.Play.Failed", err)
	}
	if err := rtmpStatus(t, base+"?"+good, false); err != nil {
		t.Fatalf("play with the right secret: %v", err)
	}
	if err := rtmpStatus(t, base+"?lal_secret=pengrl", true); err != nil {
		t.Fatalf("publish with the master secret: %v", err)
	}
	for _, suffix := range []string{".flv", ".ts"} {
		u := "http://" + srv.HTTPFLVAddr() + "/live/test110" + suffix
		if code, body := httpStatus(t, u, nil); code != http.StatusUnauthorized || !strings.Contains(body, "lal_secret") {
			t.Errorf("%s without a secret: %d %q, want 401", suffix, code, body)
		}
		if code, _ := httpStatus(t, u+"?lal_secret=bad", nil); code != http.StatusForbidden {
			t.Errorf("%s with a bad secret: %d, want 403", suffix, code)
		}
	}
}

func TestHTTPAuthWebhookDecides(t *testing.T) {
	t.Parallel()
	var asked atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream_name":"banned"`) {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "banned by policy")
		}
	}))
	t.Cleanup(backend.Close)
	srv := startServerWith(t, func(c *config.Config) {
		c.HTTPAuth.Enable = true
		c.HTTPAuth.OnPub = backend.URL + "/on_pub"
		c.HTTPAuth.OnSub = backend.URL + "/on_sub"
	})
	err := rtmpStatus(t, "rtmp://"+srv.RTMPAddr()+"/live/banned", true)
	if err == nil || !strings.Contains(err.Error(), "banned by policy") {
		t.Fatalf("banned publish: %v, want the back end's reason", err)
	}
	if err := rtmpStatus(t, "rtmp://"+srv.RTMPAddr()+"/live/fine", true); err != nil {
		t.Fatalf("allowed publish: %v", err)
	}
	code, body := httpStatus(t, "http://"+srv.HTTPFLVAddr()+"/live/banned.flv", nil)
	if code != http.StatusForbidden || !strings.Contains(body, "banned by policy") {
		t.Fatalf("banned play: %d %q", code, body)
	}
	// The decision is cached: a second viewer is not asked about again.
	before := asked.Load()
	httpStatus(t, "http://"+srv.HTTPFLVAddr()+"/live/banned.flv", nil)
	if asked.Load() != before {
		t.Fatal("the back end was asked again within the cache TTL")
	}
}

func TestIPBlacklistAndAPIToken(t *testing.T) {
	t.Parallel()
	srv := startServerWith(t, func(c *config.Config) {
		c.HTTPAPI.Enable = true
		c.HTTPAPI.AuthToken = "t0ken"
	})
	api := "http://" + srv.APIAddr()
	if code, _ := httpStatus(t, api+"/api/stat/all_group", nil); code != http.StatusUnauthorized {
		t.Fatalf("API without a token: %d, want 401", code)
	}
	auth := http.Header{"Authorization": {"Bearer t0ken"}}
	if code, body := httpStatus(t, api+"/api/stat/all_group", auth); code != http.StatusOK || !strings.Contains(body, `"error_code":0`) {
		t.Fatalf("API with the token: %d %q", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, api+"/api/ctrl/add_ip_blacklist", strings.NewReader(`{"ip":"127.0.0.1","duration_sec":60}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"error_code":0,"desp":"succ"}` {
		t.Fatalf("add_ip_blacklist: %s", body)
	}
	if err := rtmpStatus(t, "rtmp://"+srv.RTMPAddr()+"/live/x", true); err == nil || !strings.Contains(err.Error(), "blacklisted") {
		t.Fatalf("blacklisted publish: %v", err)
	}
	if code, _ := httpStatus(t, "http://"+srv.HTTPFLVAddr()+"/live/x.flv", nil); code != http.StatusForbidden {
		t.Fatalf("blacklisted HTTP-FLV play: %d, want 403", code)
	}
}
