package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeConfig writes body to a file called name in a fresh directory and
// returns its path.
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadMinimalKeepsDefaults(t *testing.T) {
	clearEnv(t)
	c, warnings, err := Load(writeConfig(t, "lalserver.conf.json", `{"rtmp":{"addr":":1936"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.RTMP.Addr = ":1936"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
}

func TestLoadNoFile(t *testing.T) {
	clearEnv(t)
	c, warnings, err := Load("")
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v, warnings %q", err, warnings)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("got %+v", c)
	}
}

func TestLoadFormats(t *testing.T) {
	clearEnv(t)
	want := Default()
	want.ServerID = "edge-7"
	want.RTMP.Addr = ":1936"
	want.RTMP.GOPNum = 3
	want.HTTPFLV.Enable = false
	want.RelayPush = RelayPushConfig{Enable: true, AddrList: []string{"a:1935", "b:1935"}}
	want.HTTPNotify.UpdateIntervalSec = 10

	tests := []struct{ name, body string }{
		{"c.json", `{
  "server_id": "edge-7",
  "rtmp": {"addr": ":1936", "gop_num": 3},
  "httpflv": {"enable": false},
  "relay_push": {"enable": true, "addr_list": ["a:1935", "b:1935"]},
  "http_notify": {"update_interval_sec": 10.0}
}`},
		{"c.conf", `{"server_id": "edge-7", "rtmp": {"addr": ":1936", "gop_num": 3}, "httpflv": {"enable": false},
 "relay_push": {"enable": true, "addr_list": ["a:1935", "b:1935"]}, "http_notify": {"update_interval_sec": 10}}`},
		{"c.yaml", `
server_id: edge-7
rtmp:
  addr: :1936
  gop_num: 3
httpflv:
  enable: false
relay_push:
  enable: true
  addr_list: [a:1935, "b:1935"]
http_notify:
  update_interval_sec: 10
`},
		{"c.YML", `{server_id: edge-7, rtmp: {addr: ":1936", gop_num: 3}, httpflv: {enable: false},
 relay_push: {enable: true, addr_list: ["a:1935", "b:1935"]}, http_notify: {update_interval_sec: 10}}`},
		{"c.toml", `
server_id = "edge-7"

[rtmp]
addr = ":1936"
gop_num = 3

[httpflv]
enable = false

[relay_push]
enable = true
addr_list = ["a:1935", "b:1935"]

[http_notify]
update_interval_sec = 10
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, warnings, err := Load(writeConfig(t, tt.name, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestLoadEnv(t *testing.T) {
	file := `{"server_id": "file", "rtmp": {"addr": ":1999", "gop_num": 5}, "log": {"filename": "a.log"}}`
	tests := []struct {
		name string
		file string // "" = no file
		env  map[string]string
		want func(c *Config)
	}{
		{"plain keys", "", map[string]string{
			"SLUICE_RTMP_ADDR":       ":1936",
			"SLUICE_HTTPFLV_GOP_NUM": "2",
			"SLUICE_SERVER_ID":       "edge1",
			"SLUICE_HLS_ENABLE":      "true",
			"SLUICE_PPROF_ENABLE":    "1",
		}, func(c *Config) {
			c.RTMP.Addr = ":1936"
			c.HTTPFLV.GOPNum = 2
			c.ServerID = "edge1"
			c.HLS.Enable = true
			c.Pprof.Enable = true
		}},
		{"sections with underscores and a list", "", map[string]string{
			"SLUICE_RELAY_PUSH_ENABLE":                        "true",
			"SLUICE_RELAY_PUSH_ADDR_LIST":                     "a:1935, b:1935,",
			"SLUICE_HTTP_NOTIFY_UPDATE_INTERVAL_SEC":          "0",
			"SLUICE_HTTP_NOTIFY_ON_PUB_START":                 "http://hook/pub",
			"SLUICE_IN_SESSION_ADD_DUMMY_AUDIO_WAIT_AUDIO_MS": "300",
			"SLUICE_STATIC_RELAY_PULL_ADDR":                   "origin:1935",
			"SLUICE_DEFAULT_HTTP_HTTP_LISTEN_ADDR":            ":9090",
			"SLUICE_HTTPTS_HTTP_LISTEN_ADDR":                  ":9091",
			"SLUICE_LOG_IS_ROTATE_HOURLY":                     "TRUE",
			"SLUICE_DEBUG_LOG_GROUP_MAX_SUB_NUM_PER_GROUP":    "-1",
		}, func(c *Config) {
			c.RelayPush = RelayPushConfig{Enable: true, AddrList: []string{"a:1935", "b:1935"}}
			c.HTTPNotify.UpdateIntervalSec = 0
			c.HTTPNotify.OnPubStart = "http://hook/pub"
			c.InSession.AddDummyAudioWaitAudioMS = 300
			c.StaticRelayPull.Addr = "origin:1935"
			c.DefaultHTTP.HTTPListenAddr = ":9090"
			c.HTTPFLV.HTTPListenAddr = ":9090"
			c.HTTPTS.HTTPListenAddr = ":9091"
			c.HLS.HTTPListenAddr = ":9090"
			c.Log.IsRotateHourly = true
			c.Debug.LogGroupMaxSubNumPerGroup = -1
		}},
		{"environment beats file, file beats default", file, map[string]string{
			"SLUICE_RTMP_ADDR":    ":1936",
			"SLUICE_LOG_FILENAME": "",
		}, func(c *Config) {
			c.ServerID = "file"
			c.RTMP.Addr = ":1936"
			c.RTMP.GOPNum = 5
			c.Log.Filename = ""
		}},
		{"empty list", "", map[string]string{"SLUICE_RELAY_PUSH_ADDR_LIST": ""}, func(c *Config) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := ""
			if tt.file != "" {
				path = writeConfig(t, "c.json", tt.file)
			}
			c, warnings, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			want := Default()
			tt.want(want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.json")
	tests := []struct {
		name string
		file string // file name; body is written unless path is set
		body string
		env  map[string]string
		want []string // substrings of the message
		key  string   // Error.Key
		line int      // Error.Line
	}{
		{name: "missing file", file: missing, want: []string{`config: cannot read "` + missing + `": `, "no such file"}},
		{name: "JSON comma missing at end of line 3", file: "c.json",
			body: "{\n  \"rtmp\": {\n    \"addr\": \":1936\"\n    \"enable\": true\n  }\n}\n",
			want: []string{`config: invalid JSON in "`, `c.json" at line 3, column 20: expected ',' or '}' after object key:value pair, found '"'`}, line: 3},
		{name: "JSON comma missing in line 3", file: "c.json",
			body: "{\n  \"rtmp\": {\n    \"addr\": \":1936\" \"enable\": true\n  }\n}\n",
			want: []string{`at line 3, column 20:`}, line: 3},
		{name: "JSON bad character", file: "c.json",
			body: "{\n\t\"rtmp\": {\n\t\t\"gop_num\": 1,\n\t\t\"addr\": ':1936'\n\t}\n}",
			want: []string{`at line 4, column 11: invalid character '\'' looking for beginning of value`}, line: 4},
		{name: "JSON trailing comma", file: "c.json",
			body: "{\"rtmp\": {\"addr\": \":1\",}}",
			want: []string{`at line 1, column 24: invalid character '}' looking for beginning of object key string`}, line: 1},
		{name: "JSON truncated", file: "c.json", body: "{\n  \"rtmp\": {\n",
			want: []string{`at line 3, column 1: unexpected end of JSON input`}, line: 3},
		{name: "JSON empty", file: "c.json", body: "",
			want: []string{`at line 1, column 1: unexpected end of JSON input`}, line: 1},
		{name: "JSON array", file: "c.json", body: "\n [\"rtmp\"]",
			want: []string{`at line 2, column 2: the top level must be an object, not array`}, line: 2},
		{name: "JSON null", file: "c.json", body: "null",
			want: []string{`at line 1, column 1: the top level must be an object, not null`}},
		{name: "unknown extension is JSON", file: "c.conf", body: "rtmp: {}",
			want: []string{`invalid JSON in "`, `at line 1, column 1: invalid character 'r'`}},
		// go-yaml reports the line where the enclosing mapping starts.
		{name: "YAML bad indentation", file: "c.yaml", body: "rtmp:\n  addr: \":1936\"\n gop_num: 2\n",
			want: []string{`config: invalid YAML in "`, `c.yaml" at line 2: did not find expected key`}, line: 2},
		{name: "YAML tab", file: "c.yaml", body: "rtmp:\n  addr: \":1936\"\n\tgop_num: 2\n",
			want: []string{`c.yaml" at line 3: found character that cannot start any token`}, line: 3},
		{name: "YAML duplicate key", file: "c.yml", body: "rtmp:\n  addr: x\n  addr: y\n",
			want: []string{`at line 3: mapping key "addr" already defined at line 2`}, line: 3},
		{name: "YAML scalar", file: "c.yaml", body: "rtmp",
			want: []string{"at line 1: the top level must be a mapping, not !!str `rtmp`"}},
		{name: "TOML syntax", file: "c.toml", body: "[rtmp]\naddr = \":1936\ngop_num = 2\n",
			want: []string{`config: invalid TOML in "`, `c.toml" at line 2, column 14: basic strings cannot have new lines`}, line: 2},

		{name: "string for integer", file: "c.json", body: `{"rtmp": {"gop_num": "abc"}}`,
			want: []string{`config: key "rtmp.gop_num": expected integer, got string "abc"`}, key: "rtmp.gop_num"},
		{name: "numeric string for integer", file: "c.json", body: `{"hls": {"fragment_num": "6"}}`,
			want: []string{`config: key "hls.fragment_num": expected integer, got string "6"`}, key: "hls.fragment_num"},
		{name: "string for boolean", file: "c.json", body: `{"rtmp": {"enable": "yes"}}`,
			want: []string{`config: key "rtmp.enable": expected boolean, got string "yes"`}, key: "rtmp.enable"},
		{name: "number for boolean", file: "c.json", body: `{"rtmp": {"enable": 1}}`,
			want: []string{`config: key "rtmp.enable": expected boolean, got number 1`}},
		{name: "number for string", file: "c.json", body: `{"server_id": 1}`,
			want: []string{`config: key "server_id": expected string, got number 1`}},
		{name: "fraction for integer", file: "c.json", body: `{"rtmp": {"gop_num": 1.5}}`,
			want: []string{`config: key "rtmp.gop_num": expected integer, got number 1.5`}},
		{name: "huge integer", file: "c.json", body: `{"rtmp": {"gop_num": 1e30}}`,
			want: []string{`config: key "rtmp.gop_num": expected integer, got number 1e+30`}},
		{name: "object for string", file: "c.json", body: `{"rtmp": {"addr": {"port": 1}}}`,
			want: []string{`config: key "rtmp.addr": expected string, got object`}},
		{name: "string for list", file: "c.json", body: `{"relay_push": {"addr_list": "a:1935"}}`,
			want: []string{`config: key "relay_push.addr_list": expected list of strings, got string "a:1935"`}},
		{name: "number in list", file: "c.json", body: `{"relay_push": {"addr_list": ["a:1935", 5]}}`,
			want: []string{`config: key "relay_push.addr_list[1]": expected string, got number 5`}, key: "relay_push.addr_list[1]"},
		{name: "section not an object", file: "c.json", body: `{"rtmp": true}`,
			want: []string{`config: key "rtmp": expected object, got boolean true`}, key: "rtmp"},
		{name: "YAML yes is no boolean", file: "c.yaml", body: "rtmp:\n  enable: yes\n",
			want: []string{`config: key "rtmp.enable": expected boolean, got string "yes"`}},
		{name: "YAML unquoted number for string", file: "c.yaml", body: "server_id: 1\n",
			want: []string{`config: key "server_id": expected string, got integer 1`}},
		{name: "TOML float for integer", file: "c.toml", body: "[log]\nlevel = 2.5\n",
			want: []string{`config: key "log.level": expected integer, got number 2.5`}},

		{name: "log level too high", file: "c.json", body: `{"log": {"level": 6}}`,
			want: []string{`config: key "log.level": 6 is out of range 0..5`}, key: "log.level"},
		{name: "log level negative", file: "c.json", body: `{"log": {"level": -1}}`,
			want: []string{`config: key "log.level": -1 is out of range 0..5`}},
		{name: "negative gop_num", file: "c.json", body: `{"httpts": {"gop_num": -1}}`,
			want: []string{`config: key "httpts.gop_num": -1 must not be negative`}, key: "httpts.gop_num"},
		{name: "negative single_gop_max_frame_num", file: "c.json", body: `{"rtmp": {"single_gop_max_frame_num": -3}}`,
			want: []string{`config: key "rtmp.single_gop_max_frame_num": -3 must not be negative`}},
		{name: "negative update interval", file: "c.json", body: `{"http_notify": {"update_interval_sec": -5}}`,
			want: []string{`config: key "http_notify.update_interval_sec": -5 must not be negative`}},
		{name: "address without port", file: "c.json", body: `{"rtmp": {"addr": "1935"}}`,
			want: []string{`config: key "rtmp.addr": "1935" is not a host:port address: address 1935: missing port in address`}, key: "rtmp.addr"},
		{name: "address with bad port", file: "c.json", body: `{"http_api": {"addr": ":80800"}}`,
			want: []string{`config: key "http_api.addr": ":80800" is not a host:port address: invalid port "80800"`}},
		{name: "address with empty port", file: "c.json", body: `{"rtsp": {"addr": "0.0.0.0:"}}`,
			want: []string{`config: key "rtsp.addr": "0.0.0.0:" is not a host:port address: missing port`}},
		{name: "address with unknown service", file: "c.json", body: `{"rtsp": {"addr": ":nosuchservice"}}`,
			want: []string{`config: key "rtsp.addr": ":nosuchservice" is not a host:port address: unknown port "nosuchservice"`}},
		{name: "negative rtsp describe wait", file: "c.json", body: `{"rtsp": {"describe_wait_ms": -1}}`,
			want: []string{`config: key "rtsp.describe_wait_ms": -1 must not be negative`}},
		{name: "negative connection limit", file: "c.json", body: `{"limits": {"max_connections_per_ip": -2}}`,
			want: []string{`config: key "limits.max_connections_per_ip": -2 must not be negative`}},
		{name: "negative idle timeout", file: "c.json", body: `{"timeouts": {"publisher_idle_timeout_ms": -1}}`,
			want: []string{`config: key "timeouts.publisher_idle_timeout_ms": -1 must not be negative`}},
		{name: "rtsp UDP RTP port odd", file: "c.json", body: `{"rtsp": {"udp_rtp_addr": ":8001", "udp_rtcp_addr": ":8002"}}`,
			want: []string{`config: key "rtsp.udp_rtp_addr": ":8001": the RTP port must be even`}, key: "rtsp.udp_rtp_addr"},
		{name: "rtsp UDP RTCP port not next", file: "c.json", body: `{"rtsp": {"udp_rtp_addr": ":8000", "udp_rtcp_addr": ":9000"}}`,
			want: []string{`config: key "rtsp.udp_rtcp_addr": ":9000": the RTCP port must be the RTP port plus one (8001)`}},
		{name: "rtsp UDP half set", file: "c.json", body: `{"rtsp": {"udp_rtp_addr": ""}}`,
			want: []string{`config: key "rtsp.udp_rtp_addr": is empty but rtsp.udp_rtcp_addr is ":8001": set both or neither`}},
		{name: "empty address of an enabled listener", file: "c.json", body: `{"pprof": {"enable": true, "addr": ""}}`,
			want: []string{`config: key "pprof.addr": "" is not a host:port address`}},
		{name: "inherited address named after default_http", file: "c.json", body: `{"default_http": {"http_listen_addr": "8080"}}`,
			want: []string{`config: key "default_http.http_listen_addr": "8080" is not a host:port address`}, key: "default_http.http_listen_addr"},
		{name: "own HTTPS address", file: "c.json", body: `{"httpts": {"enable_https": true, "https_listen_addr": "x"}}`,
			want: []string{`config: key "httpts.https_listen_addr": "x" is not a host:port address`}},
		{name: "relay push address", file: "c.json", body: `{"relay_push": {"enable": true, "addr_list": ["a:1935", "b"]}}`,
			want: []string{`config: key "relay_push.addr_list[1]": "b" is not a host:port address`}},
		{name: "static pull address", file: "c.json", body: `{"static_relay_pull": {"enable": true}}`,
			want: []string{`config: key "static_relay_pull.addr": "" is not a host:port address`}},

		{name: "env integer", env: map[string]string{"SLUICE_RTMP_GOP_NUM": "abc"},
			want: []string{`config: environment variable SLUICE_RTMP_GOP_NUM="abc" for key "rtmp.gop_num": expected integer`}, key: "rtmp.gop_num"},
		{name: "env boolean", env: map[string]string{"SLUICE_HTTP_NOTIFY_ENABLE": "yes"},
			want: []string{`config: environment variable SLUICE_HTTP_NOTIFY_ENABLE="yes" for key "http_notify.enable": expected boolean`}},
		{name: "env empty integer", env: map[string]string{"SLUICE_LOG_LEVEL": ""},
			want: []string{`config: environment variable SLUICE_LOG_LEVEL="" for key "log.level": expected integer`}},
		{name: "env overflow", env: map[string]string{"SLUICE_HLS_FRAGMENT_NUM": "99999999999999999999"},
			want: []string{`SLUICE_HLS_FRAGMENT_NUM="99999999999999999999" for key "hls.fragment_num": expected integer`}},
		{name: "env value validated", env: map[string]string{"SLUICE_LOG_LEVEL": "9"},
			want: []string{`config: key "log.level": 9 is out of range 0..5`}},
		{name: "env bad value over a good file", file: "c.json", body: `{"rtmp": {"gop_num": 2}}`, env: map[string]string{"SLUICE_RTMP_GOP_NUM": "1.0"},
			want: []string{`SLUICE_RTMP_GOP_NUM="1.0" for key "rtmp.gop_num": expected integer`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			path := tt.file
			if path != "" && !filepath.IsAbs(path) {
				path = writeConfig(t, tt.file, tt.body)
			}
			c, warnings, err := Load(path)
			if err == nil {
				t.Fatalf("no error; config %+v, warnings %q", c, warnings)
			}
			if c != nil || warnings != nil {
				t.Errorf("config %v and warnings %q returned with the error", c, warnings)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T %v is not a *config.Error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if tt.key != "" && cerr.Key != tt.key {
				t.Errorf("Key = %q, want %q", cerr.Key, tt.key)
			}
			if tt.line != 0 && cerr.Line != tt.line {
				t.Errorf("Line = %d, want %d", cerr.Line, tt.line)
			}
		})
	}
}

func TestLoadErrorUnwrapsOSError(t *testing.T) {
	clearEnv(t)
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%v does not wrap fs.ErrNotExist", err)
	}
	_, _, err = Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "config: cannot read") {
		t.Errorf("directory: %v", err)
	}
}

func TestLoadWarnings(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"comment keys are not reported", `{"# doc of config": "x", "rtmp": {"# note": "y"}}`, nil},
		{"unknown keys sorted, one warning", `{
  "foo": 1,
  "rtmp": {"bar": true, "addr": ":1936", "Gop_Cache": 1},
  "httpfmp4": {"enable": true},
  "hls": {"zz": 1, "aa": {"x": 1}}
}`, []string{"config: unknown keys ignored: foo, hls.aa, hls.zz, httpfmp4, rtmp.Gop_Cache, rtmp.bar"}},
		{"keys are case-insensitive like lal's encoding/json", `{"RTMP": {"Addr": ":1936"}}`, nil},
		{"conf_version mismatch", `{"conf_version": "v0.3.0"}`,
			[]string{`config: conf_version "v0.3.0" is not "v0.4.1", the layout this build reads; loading it anyway`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			_, warnings, err := Load(writeConfig(t, "c.json", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(warnings, tt.want) {
				t.Errorf("warnings\n got %q\nwant %q", warnings, tt.want)
			}
		})
	}
}

func TestLoadLalRules(t *testing.T) {
	tests := []struct {
		name string
		body string
		want func(c *Config)
	}{
		{"url patterns get slashes, each in its own section", `{
  "httpflv": {"url_pattern": "live"},
  "httpts": {"url_pattern": "/ts"},
  "hls": {"url_pattern": "hls/"}
}`, func(c *Config) {
			c.HTTPFLV.URLPattern = "/live/"
			c.HTTPTS.URLPattern = "/ts/"
			c.HLS.URLPattern = "/hls/"
		}},
		{"empty url pattern becomes root", `{"httpflv": {"url_pattern": ""}, "hls": {"url_pattern": ""}}`, func(c *Config) {
			c.HTTPFLV.URLPattern = "/"
			c.HLS.URLPattern = "/"
		}},
		{"absent hls pattern does not touch httpflv", `{"httpflv": {"url_pattern": "/flv/"}}`, func(c *Config) {
			c.HTTPFLV.URLPattern = "/flv/"
		}},
		{"default_http inherited field by field", `{
  "default_http": {"http_listen_addr": ":9000", "https_listen_addr": ":9443", "https_cert_file": "c.pem", "https_key_file": "k.pem"},
  "httpflv": {"http_listen_addr": ":9001"},
  "httpts": {"https_cert_file": "ts.pem", "https_listen_addr": ""},
  "hls": {"https_key_file": "hls.key"}
}`, func(c *Config) {
			c.DefaultHTTP = HTTPListenConfig{":9000", ":9443", "c.pem", "k.pem"}
			c.HTTPFLV.HTTPListenConfig = HTTPListenConfig{":9001", ":9443", "c.pem", "k.pem"}
			c.HTTPTS.HTTPListenConfig = HTTPListenConfig{":9000", ":9443", "ts.pem", "k.pem"}
			c.HLS.HTTPListenConfig = HTTPListenConfig{":9000", ":9443", "c.pem", "hls.key"}
		}},
		{"absent delete_threshold follows fragment_num", `{"hls": {"fragment_num": 10}}`, func(c *Config) {
			c.HLS.FragmentNum = 10
			c.HLS.DeleteThreshold = 10
		}},
		{"present delete_threshold is kept", `{"hls": {"fragment_num": 10, "delete_threshold": 3}}`, func(c *Config) {
			c.HLS.FragmentNum = 10
			c.HLS.DeleteThreshold = 3
		}},
		{"zero sub session timeout with a hash key", `{"hls": {"sub_session_hash_key": "k", "sub_session_timeout_ms": 0, "fragment_duration_ms": 2000}}`, func(c *Config) {
			c.HLS.SubSessionHashKey = "k"
			c.HLS.FragmentDurationMS = 2000
			c.HLS.SubSessionTimeoutMS = 6 * 2000 * 2
		}},
		{"disabled listener addresses are not checked", `{"rtmp": {"enable": false, "addr": "bad"}, "rtsp": {"ws_rtsp_addr": ""}}`, func(c *Config) {
			c.RTMP.Enable = false
			c.RTMP.Addr = "bad"
			c.RTSP.WSRTSPAddr = ""
		}},
		{"null keeps the default", `{"rtmp": null, "httpflv": {"gop_num": null}}`, func(c *Config) {}},
		{"integral float and service port", `{"rtmp": {"gop_num": 2.0, "addr": "localhost:http"}}`, func(c *Config) {
			c.RTMP.GOPNum = 2
			c.RTMP.Addr = "localhost:http"
		}},
		{"dotted top-level key", `{"rtmp.addr": ":1937"}`, func(c *Config) {
			c.RTMP.Addr = ":1937"
		}},
		{"UTF-8 byte order mark", "\ufeff{\"server_id\": \"bom\"}", func(c *Config) {
			c.ServerID = "bom"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			c, warnings, err := Load(writeConfig(t, "c.json", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Errorf("warnings: %q", warnings)
			}
			want := Default()
			tt.want(want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		})
	}
}
