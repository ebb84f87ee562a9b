package config

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// clearEnv unsets every SLUICE_ variable for the duration of the test, so
// that the environment the tests run in cannot change what Load returns.
func clearEnv(tb testing.TB) {
	tb.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, EnvPrefix) {
			tb.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

// value returns the value of the dotted key in c.
func value(t *testing.T, c *Config, key string) any {
	t.Helper()
	for _, f := range c.fields() {
		if f.key == key {
			return f.v.Interface()
		}
	}
	t.Fatalf("no key %q", key)
	return nil
}

func TestDefaultDeviatesFromLalAsDocumented(t *testing.T) {
	c := Default()
	for key, want := range map[string]any{
		"conf_version":                     "v0.4.1",
		"server_id":                        "1",
		"rtmp.enable":                      true,
		"rtmp.addr":                        ":1935",
		"rtmp.rtmps_enable":                false,
		"rtmp.rtmps_addr":                  ":4935",
		"rtmp.gop_num":                     1,
		"httpflv.gop_num":                  1,
		"httpts.gop_num":                   1,
		"httpflv.enable":                   true,
		"httpflv.enable_https":             false,
		"httpts.enable_https":              false,
		"hls.enable":                       false,
		"hls.enable_https":                 false,
		"httpflv.url_pattern":              "/",
		"httpts.url_pattern":               "/",
		"hls.url_pattern":                  "/hls/",
		"httpflv.http_listen_addr":         ":8080",
		"httpts.https_listen_addr":         ":4433",
		"hls.https_cert_file":              "./conf/cert.pem",
		"rtsp.addr":                        ":5544",
		"rtsp.rtsps_enable":                false,
		"rtsp.rtsps_addr":                  ":5322",
		"rtsp.ws_rtsp_enable":              false,
		"http_api.enable":                  true,
		"http_api.addr":                    ":8083",
		"pprof.enable":                     false,
		"pprof.addr":                       ":8084",
		"http_notify.enable":               false,
		"http_notify.update_interval_sec":  5,
		"http_notify.on_server_start":      "http://127.0.0.1:10101/on_server_start",
		"http_notify.on_hls_make_ts":       "http://127.0.0.1:10101/on_hls_make_ts",
		"simple_auth.key":                  "q191201771",
		"simple_auth.dangerous_lal_secret": "pengrl",
		"simple_auth.pub_rtmp_enable":      false,
		"simple_auth.hls_m3u8_enable":      false,
		"relay_push.addr_list":             []string{},
		"log.level":                        2,
		"log.filename":                     "",
		"log.is_to_stdout":                 true,
		"log.is_rotate_hourly":             false,
		"log.assert_behavior":              1,
		"debug.log_group_interval_sec":     30,
	} {
		if got := value(t, c, key); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", key, got, want)
		}
	}
	if Default() == Default() {
		t.Error("Default returns a shared value")
	}
}

func TestShippedConfIsDefault(t *testing.T) {
	clearEnv(t)
	const path = "../../conf/sluice.conf.json"
	c, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
	if want := Default(); !reflect.DeepEqual(c, want) {
		t.Errorf("Load(%s) differs from Default():\n got %+v\nwant %+v", path, c, want)
	}

	// Every key in lal's order; the per-protocol HTTP listen keys are left
	// out as lal's file does, so that they follow default_http.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := fileKeys(t, data)
	var want []string
	for _, f := range c.fields() {
		section, name, _ := strings.Cut(f.key, ".")
		if (section == "httpflv" || section == "httpts" || section == "hls") && strings.HasPrefix(name, "http") {
			continue
		}
		want = append(want, f.key)
	}
	want = append([]string{"# doc of config"}, want...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys of %s:\n got %q\nwant %q", path, got, want)
	}
}

// fileKeys returns the dotted leaf keys of a JSON object in file order.
func fileKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	token := func() json.Token {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var keys []string
	var object func(prefix string)
	object = func(prefix string) {
		for dec.More() {
			key := prefix + token().(string)
			switch token() {
			case json.Delim('{'):
				object(key + ".")
				continue
			case json.Delim('['):
				for dec.More() {
					token()
				}
				token()
			}
			keys = append(keys, key)
		}
		token()
	}
	token()
	object("")
	return keys
}

func TestLoadLalShippedFile(t *testing.T) {
	clearEnv(t)
	const path = "testdata/lalserver.conf.json"
	c, warnings, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}

	// encoding/json gives lal's own reading of the file; then the two lal
	// rules that change it: inherited HTTP listen fields and fixed patterns.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want Config
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	want.HTTPFLV.HTTPListenConfig = want.DefaultHTTP
	want.HTTPTS.HTTPListenConfig = want.DefaultHTTP
	want.HLS.HTTPListenConfig = want.DefaultHTTP
	// Keys lal does not have keep Sluice's defaults.
	d := Default().HTTPNotify
	want.HTTPNotify.QueueSize, want.HTTPNotify.TimeoutMS, want.HTTPNotify.FlushTimeoutMS = d.QueueSize, d.TimeoutMS, d.FlushTimeoutMS
	want.StaticRelayPull.AutoStopPullAfterNoOutMS = Default().StaticRelayPull.AutoStopPullAfterNoOutMS
	want.HTTPAuth = Default().HTTPAuth
	want.Limits, want.Timeouts = Default().Limits, Default().Timeouts
	r := Default().RTSP
	want.RTSP.DescribeWaitMS, want.RTSP.UDPRTPAddr, want.RTSP.UDPRTCPAddr = r.DescribeWaitMS, r.UDPRTPAddr, r.UDPRTCPAddr
	if !reflect.DeepEqual(c, &want) {
		t.Errorf("got  %+v\nwant %+v", c, &want)
	}

	for key, want := range map[string]any{
		"rtmp.gop_num":           0,
		"rtmp.rtmps_enable":      true,
		"httpflv.url_pattern":    "/",
		"httpflv.enable_https":   true,
		"hls.enable":             true,
		"rtsp.ws_rtsp_enable":    true,
		"pprof.enable":           true,
		"log.level":              1,
		"log.filename":           "./logs/lalserver.log",
		"log.is_rotate_hourly":   false,
		"relay_push.addr_list":   []string{},
		"static_relay_pull.addr": "",
	} {
		if got := value(t, c, key); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", key, got, want)
		}
	}
}

func TestTagsAgree(t *testing.T) {
	// json tags make json.Marshal(cfg) print lal's layout; they must name
	// the same keys as the mapstructure tags viper reads.
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			ms := f.Tag.Get("mapstructure")
			if f.Anonymous {
				if ms != ",squash" || f.Tag.Get("json") != "" {
					t.Errorf("%s.%s: embedded field tags %q", rt.Name(), f.Name, f.Tag)
				}
			} else if js := f.Tag.Get("json"); js != ms || ms == "" {
				t.Errorf("%s.%s: json %q, mapstructure %q", rt.Name(), f.Name, js, ms)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, f := range new(Config).fields() {
		name := envVar(f.key)
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s both map to %s", other, f.key, name)
		}
		seen[name] = f.key
	}
	if len(seen) < 100 {
		t.Errorf("only %d keys", len(seen))
	}
}

func TestListeners(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []Listener
	}{
		{"default", func(*Config) {}, []Listener{
			{"rtmp.addr", ":1935"},
			{"httpflv.http_listen_addr", ":8080"},
			{"rtsp.addr", ":5544"},
			{"http_api.addr", ":8083"},
		}},
		{"everything on, HTTP split", func(c *Config) {
			c.HTTPTS.HTTPListenAddr = ":8081"
			c.HLS.Enable = true
			c.RTSP.WSRTSPEnable = true
			c.Pprof.Enable = true
			c.RTMP.RTMPSEnable = true // TLS: not listed
		}, []Listener{
			{"rtmp.addr", ":1935"},
			{"httpflv.http_listen_addr", ":8080"},
			{"httpts.http_listen_addr", ":8081"},
			{"rtsp.addr", ":5544"},
			{"rtsp.ws_rtsp_addr", ":5566"},
			{"http_api.addr", ":8083"},
			{"pprof.addr", ":8084"},
		}},
		{"flv off, ts and hls share", func(c *Config) {
			c.HTTPFLV.Enable = false
			c.HLS.Enable = true
			c.RTMP.Enable = false
			c.RTSP.Enable = false
			c.HTTPAPI.Enable = false
		}, []Listener{
			{"httpts.http_listen_addr", ":8080"},
		}},
		{"flv and hls share, ts apart", func(c *Config) {
			c.HTTPTS.HTTPListenAddr = "127.0.0.1:9000"
			c.HLS.Enable = true
			c.HTTPAPI.Addr = ":8080" // a conflict the server reports at bind
		}, []Listener{
			{"rtmp.addr", ":1935"},
			{"httpflv.http_listen_addr", ":8080"},
			{"httpts.http_listen_addr", "127.0.0.1:9000"},
			{"rtsp.addr", ":5544"},
			{"http_api.addr", ":8080"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(c)
			if got := c.Listeners(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}
