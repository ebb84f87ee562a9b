// Package config holds Sluice's configuration: a Config struct whose keys are
// lalserver v0.37.4's (conf_version v0.4.1), Sluice's built-in defaults, and
// Load, which reads a lalserver.conf.json unchanged (or the same keys in YAML
// or TOML) and applies environment overrides.
//
// Unlike lalserver, a key absent from the file takes Sluice's default (see
// Default), not Go's zero value. Every key can be overridden by an environment
// variable named SLUICE_ followed by the dotted key upper-cased with dots turned
// into underscores: SLUICE_RTMP_ADDR, SLUICE_SERVER_ID,
// SLUICE_RELAY_PUSH_ADDR_LIST (lists are comma separated). Precedence is
// environment, then file, then default.
//
// lal's derived values follow: an HTTP listen field that httpflv, httpts or
// hls leaves empty takes default_http's, every url_pattern is made to start
// and end with "/", and an absent hls.delete_threshold follows
// hls.fragment_num.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ConfVersion is the conf_version of the lalserver configuration layout Sluice reads.
const ConfVersion = "v0.4.1"

// Log levels accepted by log.level, as lal numbers them.
const (
	LogLevelTrace = 0
	LogLevelDebug = 1
	LogLevelInfo  = 2
	LogLevelWarn  = 3
	LogLevelError = 4
	LogLevelFatal = 5
)

// Config is the whole server configuration, one field per lalserver section.
type Config struct {
	ConfVersion     string                `mapstructure:"conf_version" json:"conf_version"`
	ServerID        string                `mapstructure:"server_id" json:"server_id"`
	RTMP            RTMPConfig            `mapstructure:"rtmp" json:"rtmp"`
	InSession       InSessionConfig       `mapstructure:"in_session" json:"in_session"`
	DefaultHTTP     HTTPListenConfig      `mapstructure:"default_http" json:"default_http"`
	HTTPFLV         HTTPStreamConfig      `mapstructure:"httpflv" json:"httpflv"`
	HTTPTS          HTTPStreamConfig      `mapstructure:"httpts" json:"httpts"`
	HLS             HLSConfig             `mapstructure:"hls" json:"hls"`
	RTSP            RTSPConfig            `mapstructure:"rtsp" json:"rtsp"`
	Record          RecordConfig          `mapstructure:"record" json:"record"`
	RelayPush       RelayPushConfig       `mapstructure:"relay_push" json:"relay_push"`
	StaticRelayPull StaticRelayPullConfig `mapstructure:"static_relay_pull" json:"static_relay_pull"`
	HTTPAPI         HTTPAPIConfig         `mapstructure:"http_api" json:"http_api"`
	HTTPNotify      HTTPNotifyConfig      `mapstructure:"http_notify" json:"http_notify"`
	HTTPAuth        HTTPAuthConfig        `mapstructure:"http_auth" json:"http_auth"`
	SimpleAuth      SimpleAuthConfig      `mapstructure:"simple_auth" json:"simple_auth"`
	Pprof           PprofConfig           `mapstructure:"pprof" json:"pprof"`
	Log             LogConfig             `mapstructure:"log" json:"log"`
	Debug           DebugConfig           `mapstructure:"debug" json:"debug"`
	Limits          LimitsConfig          `mapstructure:"limits" json:"limits"`
	Timeouts        TimeoutsConfig        `mapstructure:"timeouts" json:"timeouts"`
}

// RTMPConfig is the rtmp section: the RTMP and RTMPS listeners and the RTMP GOP cache.
type RTMPConfig struct {
	Enable               bool   `mapstructure:"enable" json:"enable"`
	Addr                 string `mapstructure:"addr" json:"addr"`
	RTMPSEnable          bool   `mapstructure:"rtmps_enable" json:"rtmps_enable"`
	RTMPSAddr            string `mapstructure:"rtmps_addr" json:"rtmps_addr"`
	RTMPSCertFile        string `mapstructure:"rtmps_cert_file" json:"rtmps_cert_file"`
	RTMPSKeyFile         string `mapstructure:"rtmps_key_file" json:"rtmps_key_file"`
	GOPNum               int    `mapstructure:"gop_num" json:"gop_num"`
	SingleGOPMaxFrameNum int    `mapstructure:"single_gop_max_frame_num" json:"single_gop_max_frame_num"`
	MergeWriteSize       int    `mapstructure:"merge_write_size" json:"merge_write_size"`
}

// InSessionConfig is the in_session section, applied to every input stream.
type InSessionConfig struct {
	AddDummyAudioEnable      bool `mapstructure:"add_dummy_audio_enable" json:"add_dummy_audio_enable"`
	AddDummyAudioWaitAudioMS int  `mapstructure:"add_dummy_audio_wait_audio_ms" json:"add_dummy_audio_wait_audio_ms"`
}

// HTTPListenConfig is the set of HTTP and HTTPS listen settings of default_http, which httpflv, httpts and hls inherit field by field.
type HTTPListenConfig struct {
	HTTPListenAddr  string `mapstructure:"http_listen_addr" json:"http_listen_addr"`
	HTTPSListenAddr string `mapstructure:"https_listen_addr" json:"https_listen_addr"`
	HTTPSCertFile   string `mapstructure:"https_cert_file" json:"https_cert_file"`
	HTTPSKeyFile    string `mapstructure:"https_key_file" json:"https_key_file"`
}

// HTTPStreamConfig is the httpflv or httpts section: an HTTP stream route and its GOP cache.
type HTTPStreamConfig struct {
	HTTPListenConfig     `mapstructure:",squash"`
	Enable               bool   `mapstructure:"enable" json:"enable"`
	EnableHTTPS          bool   `mapstructure:"enable_https" json:"enable_https"`
	URLPattern           string `mapstructure:"url_pattern" json:"url_pattern"`
	GOPNum               int    `mapstructure:"gop_num" json:"gop_num"`
	SingleGOPMaxFrameNum int    `mapstructure:"single_gop_max_frame_num" json:"single_gop_max_frame_num"`
}

// HLSConfig is the hls section: the HLS muxer and its HTTP route.
type HLSConfig struct {
	HTTPListenConfig    `mapstructure:",squash"`
	Enable              bool   `mapstructure:"enable" json:"enable"`
	EnableHTTPS         bool   `mapstructure:"enable_https" json:"enable_https"`
	URLPattern          string `mapstructure:"url_pattern" json:"url_pattern"`
	OutPath             string `mapstructure:"out_path" json:"out_path"`
	FragmentDurationMS  int    `mapstructure:"fragment_duration_ms" json:"fragment_duration_ms"`
	FragmentNum         int    `mapstructure:"fragment_num" json:"fragment_num"`
	DeleteThreshold     int    `mapstructure:"delete_threshold" json:"delete_threshold"`
	CleanupMode         int    `mapstructure:"cleanup_mode" json:"cleanup_mode"`
	UseMemoryAsDiskFlag bool   `mapstructure:"use_memory_as_disk_flag" json:"use_memory_as_disk_flag"`
	SubSessionTimeoutMS int    `mapstructure:"sub_session_timeout_ms" json:"sub_session_timeout_ms"`
	SubSessionHashKey   string `mapstructure:"sub_session_hash_key" json:"sub_session_hash_key"`
}

// RTSPConfig is the rtsp section: the RTSP, RTSPS and RTSP-over-WebSocket listeners and RTSP auth.
type RTSPConfig struct {
	Enable              bool   `mapstructure:"enable" json:"enable"`
	Addr                string `mapstructure:"addr" json:"addr"`
	RTSPSEnable         bool   `mapstructure:"rtsps_enable" json:"rtsps_enable"`
	RTSPSAddr           string `mapstructure:"rtsps_addr" json:"rtsps_addr"`
	RTSPSCertFile       string `mapstructure:"rtsps_cert_file" json:"rtsps_cert_file"`
	RTSPSKeyFile        string `mapstructure:"rtsps_key_file" json:"rtsps_key_file"`
	OutWaitKeyFrameFlag bool   `mapstructure:"out_wait_key_frame_flag" json:"out_wait_key_frame_flag"`
	AuthEnable          bool   `mapstructure:"auth_enable" json:"auth_enable"`
	AuthMethod          int    `mapstructure:"auth_method" json:"auth_method"`
	Username            string `mapstructure:"username" json:"username"`
	Password            string `mapstructure:"password" json:"password"`
	WSRTSPEnable        bool   `mapstructure:"ws_rtsp_enable" json:"ws_rtsp_enable"`
	WSRTSPAddr          string `mapstructure:"ws_rtsp_addr" json:"ws_rtsp_addr"`

	// Sluice extensions, not in lal's file.

	// DescribeWaitMS is how long a DESCRIBE of a stream that has no
	// publisher (or whose decoder configuration is not known yet) waits
	// before it is answered 404. 0 answers at once.
	DescribeWaitMS int `mapstructure:"describe_wait_ms" json:"describe_wait_ms"`
	// UDPRTPAddr and UDPRTCPAddr are the one UDP port pair that RTP and RTCP
	// over UDP use for every RTSP session (publishers and players, told apart
	// by the peer's address). The RTP port must be even and the RTCP port the
	// next one. Both empty turns UDP transport off: a SETUP asking only for
	// UDP then gets 461 Unsupported Transport.
	UDPRTPAddr  string `mapstructure:"udp_rtp_addr" json:"udp_rtp_addr"`
	UDPRTCPAddr string `mapstructure:"udp_rtcp_addr" json:"udp_rtcp_addr"`
	// UDPPortMin and UDPPortMax (both 0: not set) are the UDP ports RTSP
	// uses: with port 0 in udp_rtp_addr and udp_rtcp_addr the server's pair
	// is the first free one (RTP even, RTCP next) in the range, on their
	// host; a pair given by number must lie in the range. A relay pull over
	// UDP takes its local pairs from the range too, on the same host.
	UDPPortMin int `mapstructure:"udp_port_min" json:"udp_port_min"`
	UDPPortMax int `mapstructure:"udp_port_max" json:"udp_port_max"`
}

// RecordConfig is the record section: FLV and MPEG-TS recording of every input.
type RecordConfig struct {
	EnableFLV     bool   `mapstructure:"enable_flv" json:"enable_flv"`
	FLVOutPath    string `mapstructure:"flv_out_path" json:"flv_out_path"`
	EnableMPEGTS  bool   `mapstructure:"enable_mpegts" json:"enable_mpegts"`
	MPEGTSOutPath string `mapstructure:"mpegts_out_path" json:"mpegts_out_path"`
}

// RelayPushConfig is the relay_push section: RTMP push of every published stream to each address.
type RelayPushConfig struct {
	Enable   bool     `mapstructure:"enable" json:"enable"`
	AddrList []string `mapstructure:"addr_list" json:"addr_list"`
}

// StaticRelayPullConfig is the static_relay_pull section: on-demand RTMP pull from an origin.
type StaticRelayPullConfig struct {
	Enable bool   `mapstructure:"enable" json:"enable"`
	Addr   string `mapstructure:"addr" json:"addr"`
	// Sluice extension: how long the pull outlives its last subscriber, so
	// that a quick reconnect reuses it.
	AutoStopPullAfterNoOutMS int `mapstructure:"auto_stop_pull_after_no_out_ms" json:"auto_stop_pull_after_no_out_ms"`
}

// HTTPAPIConfig is the http_api section: the stat and ctrl API listener.
type HTTPAPIConfig struct {
	Enable bool   `mapstructure:"enable" json:"enable"`
	Addr   string `mapstructure:"addr" json:"addr"`
	// Sluice extension: when set, every request needs "Authorization: Bearer
	// <token>". Without a token an addr with no host binds loopback only.
	AuthToken string `mapstructure:"auth_token" json:"auth_token"`
}

// HTTPAuthConfig is the http_auth section (a Sluice extension): publish and
// play decisions asked of a back end by webhook before a session is accepted.
type HTTPAuthConfig struct {
	Enable      bool   `mapstructure:"enable" json:"enable"`
	OnPub       string `mapstructure:"on_pub" json:"on_pub"`
	OnSub       string `mapstructure:"on_sub" json:"on_sub"`
	TimeoutMS   int    `mapstructure:"timeout_ms" json:"timeout_ms"`
	FailOpen    bool   `mapstructure:"fail_open" json:"fail_open"`
	CacheTTLSec int    `mapstructure:"cache_ttl_sec" json:"cache_ttl_sec"`
}

// HTTPNotifyConfig is the http_notify section: the webhook switch, on_update period and one URL per event.
type HTTPNotifyConfig struct {
	Enable            bool   `mapstructure:"enable" json:"enable"`
	UpdateIntervalSec int    `mapstructure:"update_interval_sec" json:"update_interval_sec"`
	OnServerStart     string `mapstructure:"on_server_start" json:"on_server_start"`
	OnUpdate          string `mapstructure:"on_update" json:"on_update"`
	OnPubStart        string `mapstructure:"on_pub_start" json:"on_pub_start"`
	OnPubStop         string `mapstructure:"on_pub_stop" json:"on_pub_stop"`
	OnSubStart        string `mapstructure:"on_sub_start" json:"on_sub_start"`
	OnSubStop         string `mapstructure:"on_sub_stop" json:"on_sub_stop"`
	OnRelayPullStart  string `mapstructure:"on_relay_pull_start" json:"on_relay_pull_start"`
	OnRelayPullStop   string `mapstructure:"on_relay_pull_stop" json:"on_relay_pull_stop"`
	OnRTMPConnect     string `mapstructure:"on_rtmp_connect" json:"on_rtmp_connect"`
	OnHLSMakeTS       string `mapstructure:"on_hls_make_ts" json:"on_hls_make_ts"`
	// Sluice extensions (not in lal).
	Secret         string `mapstructure:"secret" json:"secret"`                     // signs requests (X-Sluice-Signature); "" = unsigned
	QueueSize      int    `mapstructure:"queue_size" json:"queue_size"`             // events pending at most across all streams
	TimeoutMS      int    `mapstructure:"timeout_ms" json:"timeout_ms"`             // per request
	FlushTimeoutMS int    `mapstructure:"flush_timeout_ms" json:"flush_timeout_ms"` // delivery deadline at shutdown
}

// SimpleAuthConfig is the simple_auth section: the lal_secret signing key and per-protocol switches.
type SimpleAuthConfig struct {
	Key                string `mapstructure:"key" json:"key"`
	DangerousLalSecret string `mapstructure:"dangerous_lal_secret" json:"dangerous_lal_secret"`
	PubRTMPEnable      bool   `mapstructure:"pub_rtmp_enable" json:"pub_rtmp_enable"`
	SubRTMPEnable      bool   `mapstructure:"sub_rtmp_enable" json:"sub_rtmp_enable"`
	SubHTTPFLVEnable   bool   `mapstructure:"sub_httpflv_enable" json:"sub_httpflv_enable"`
	SubHTTPTSEnable    bool   `mapstructure:"sub_httpts_enable" json:"sub_httpts_enable"`
	PubRTSPEnable      bool   `mapstructure:"pub_rtsp_enable" json:"pub_rtsp_enable"`
	SubRTSPEnable      bool   `mapstructure:"sub_rtsp_enable" json:"sub_rtsp_enable"`
	HLSM3U8Enable      bool   `mapstructure:"hls_m3u8_enable" json:"hls_m3u8_enable"`
}

// LimitsConfig is the limits section (a Sluice extension): maximums beyond
// which a client is refused in its own protocol. 0 means no limit.
type LimitsConfig struct {
	// MaxConnections bounds the client connections open at once over RTMP,
	// the HTTP stream listeners and RTSP together (not the HTTP API).
	MaxConnections int `mapstructure:"max_connections" json:"max_connections"`
	// MaxConnectionsPerIP bounds those connections per remote IP.
	MaxConnectionsPerIP int `mapstructure:"max_connections_per_ip" json:"max_connections_per_ip"`
	// MaxStreams bounds the streams that have a publisher (relay pulls
	// included); a publish beyond it is refused.
	MaxStreams int `mapstructure:"max_streams" json:"max_streams"`
	// MaxSubscribersPerStream bounds the players of one stream, over every
	// protocol together.
	MaxSubscribersPerStream int `mapstructure:"max_subscribers_per_stream" json:"max_subscribers_per_stream"`
}

// TimeoutsConfig is the timeouts section (a Sluice extension): how long a
// client may take or stay silent before it is closed.
type TimeoutsConfig struct {
	// HandshakeTimeoutMS bounds the RTMP handshake.
	HandshakeTimeoutMS int `mapstructure:"handshake_timeout_ms" json:"handshake_timeout_ms"`
	// IdleTimeoutMS bounds a connection that has not started anything: an
	// RTMP peer from its handshake to its publish or play, an RTSP
	// connection to its first complete request, and an HTTP keep-alive
	// connection between requests.
	IdleTimeoutMS int `mapstructure:"idle_timeout_ms" json:"idle_timeout_ms"`
	// HeaderTimeoutMS bounds the reading of one request head, HTTP or RTSP
	// (slowloris).
	HeaderTimeoutMS int `mapstructure:"header_timeout_ms" json:"header_timeout_ms"`
	// PublisherIdleTimeoutMS closes an RTMP publisher that sends no audio or
	// video, or an RTSP publisher that sends no RTP or RTCP, for this long.
	PublisherIdleTimeoutMS int `mapstructure:"publisher_idle_timeout_ms" json:"publisher_idle_timeout_ms"`
}

// PprofConfig is the pprof section: the net/http/pprof listener.
type PprofConfig struct {
	Enable bool   `mapstructure:"enable" json:"enable"`
	Addr   string `mapstructure:"addr" json:"addr"`
}

// LogConfig is the log section; Level is lal's number, LogLevelTrace (0) to LogLevelFatal (5).
type LogConfig struct {
	Level               int    `mapstructure:"level" json:"level"`
	Filename            string `mapstructure:"filename" json:"filename"`
	IsToStdout          bool   `mapstructure:"is_to_stdout" json:"is_to_stdout"`
	IsRotateDaily       bool   `mapstructure:"is_rotate_daily" json:"is_rotate_daily"`
	IsRotateHourly      bool   `mapstructure:"is_rotate_hourly" json:"is_rotate_hourly"`
	ShortFileFlag       bool   `mapstructure:"short_file_flag" json:"short_file_flag"`
	TimestampFlag       bool   `mapstructure:"timestamp_flag" json:"timestamp_flag"`
	TimestampWithMsFlag bool   `mapstructure:"timestamp_with_ms_flag" json:"timestamp_with_ms_flag"`
	LevelFlag           bool   `mapstructure:"level_flag" json:"level_flag"`
	AssertBehavior      int    `mapstructure:"assert_behavior" json:"assert_behavior"`
}

// DebugConfig is the debug section: the periodic group dump to the log.
type DebugConfig struct {
	LogGroupIntervalSec       int `mapstructure:"log_group_interval_sec" json:"log_group_interval_sec"`
	LogGroupMaxGroupNum       int `mapstructure:"log_group_max_group_num" json:"log_group_max_group_num"`
	LogGroupMaxSubNumPerGroup int `mapstructure:"log_group_max_sub_num_per_group" json:"log_group_max_sub_num_per_group"`
}

// Listener is one plain (non-TLS) address the server listens on, with the key that configured it.
type Listener struct {
	Key  string // dotted config key, e.g. "rtmp.addr"
	Addr string
}

// Default returns Sluice's built-in configuration: lal's shipped values, except
// a one-GOP cache for instant start, logs to stdout only at info level, TLS,
// HLS, RTSP-over-WebSocket, pprof and webhooks off, and "/" as the FLV/TS route.
func Default() *Config {
	c := defaults()
	c.applyLalRules(nil)
	return c
}

// defaults is Default before the lal rules: the per-protocol HTTP listen
// fields are still empty so that they inherit default_http after loading.
func defaults() *Config {
	const notify = "http://127.0.0.1:10101/"
	return &Config{
		ConfVersion: ConfVersion,
		ServerID:    "1",
		RTMP: RTMPConfig{
			Enable:        true,
			Addr:          ":1935",
			RTMPSEnable:   false,
			RTMPSAddr:     ":4935",
			RTMPSCertFile: "./conf/cert.pem",
			RTMPSKeyFile:  "./conf/key.pem",
			GOPNum:        1,
		},
		InSession: InSessionConfig{AddDummyAudioWaitAudioMS: 150},
		DefaultHTTP: HTTPListenConfig{
			HTTPListenAddr:  ":8080",
			HTTPSListenAddr: ":4433",
			HTTPSCertFile:   "./conf/cert.pem",
			HTTPSKeyFile:    "./conf/key.pem",
		},
		HTTPFLV: HTTPStreamConfig{Enable: true, URLPattern: "/", GOPNum: 1},
		HTTPTS:  HTTPStreamConfig{Enable: true, URLPattern: "/", GOPNum: 1},
		HLS: HLSConfig{
			URLPattern:          "/hls/",
			OutPath:             "./lal_record/hls/",
			FragmentDurationMS:  3000,
			FragmentNum:         6,
			DeleteThreshold:     6,
			CleanupMode:         1,
			SubSessionTimeoutMS: 30000,
		},
		RTSP: RTSPConfig{
			Enable:              true,
			Addr:                ":5544",
			RTSPSAddr:           ":5322",
			RTSPSCertFile:       "./conf/cert.pem",
			RTSPSKeyFile:        "./conf/key.pem",
			OutWaitKeyFrameFlag: true,
			AuthMethod:          1,
			Username:            "q191201771",
			Password:            "pengrl",
			WSRTSPAddr:          ":5566",
			DescribeWaitMS:      5000,
			UDPRTPAddr:          ":8000",
			UDPRTCPAddr:         ":8001",
		},
		Record: RecordConfig{
			FLVOutPath:    "./lal_record/flv/",
			MPEGTSOutPath: "./lal_record/mpegts",
		},
		RelayPush:       RelayPushConfig{AddrList: []string{}},
		StaticRelayPull: StaticRelayPullConfig{AutoStopPullAfterNoOutMS: 3000},
		HTTPAPI:         HTTPAPIConfig{Enable: true, Addr: ":8083"},
		HTTPAuth:        HTTPAuthConfig{TimeoutMS: 2000, CacheTTLSec: 30},
		HTTPNotify: HTTPNotifyConfig{
			UpdateIntervalSec: 5,
			OnServerStart:     notify + "on_server_start",
			OnUpdate:          notify + "on_update",
			OnPubStart:        notify + "on_pub_start",
			OnPubStop:         notify + "on_pub_stop",
			OnSubStart:        notify + "on_sub_start",
			OnSubStop:         notify + "on_sub_stop",
			OnRelayPullStart:  notify + "on_relay_pull_start",
			OnRelayPullStop:   notify + "on_relay_pull_stop",
			OnRTMPConnect:     notify + "on_rtmp_connect",
			OnHLSMakeTS:       notify + "on_hls_make_ts",
			QueueSize:         10000,
			TimeoutMS:         3000,
			FlushTimeoutMS:    5000,
		},
		SimpleAuth: SimpleAuthConfig{Key: "q191201771", DangerousLalSecret: "pengrl"},
		Pprof:      PprofConfig{Addr: ":8084"},
		Log: LogConfig{
			Level:               LogLevelInfo,
			IsToStdout:          true,
			IsRotateDaily:       true,
			ShortFileFlag:       true,
			TimestampFlag:       true,
			TimestampWithMsFlag: true,
			LevelFlag:           true,
			AssertBehavior:      1,
		},
		Debug: DebugConfig{
			LogGroupIntervalSec:       30,
			LogGroupMaxGroupNum:       10,
			LogGroupMaxSubNumPerGroup: 10,
		},
		Timeouts: TimeoutsConfig{
			HandshakeTimeoutMS:     10000,
			IdleTimeoutMS:          10000,
			HeaderTimeoutMS:        10000,
			PublisherIdleTimeoutMS: 10000,
		},
	}
}

// applyLalRules applies lal's derived values once every key is known. present
// holds the keys set by the file or the environment.
func (c *Config) applyLalRules(present map[string]bool) {
	for _, s := range []*HTTPListenConfig{&c.HTTPFLV.HTTPListenConfig, &c.HTTPTS.HTTPListenConfig, &c.HLS.HTTPListenConfig} {
		s.inherit(c.DefaultHTTP)
	}
	// Each section keeps its own fixed pattern; lal writes the httpts and hls
	// results into httpflv (compat spec §10 #15), which is not copied.
	c.HTTPFLV.URLPattern = fixURLPattern(c.HTTPFLV.URLPattern)
	c.HTTPTS.URLPattern = fixURLPattern(c.HTTPTS.URLPattern)
	c.HLS.URLPattern = fixURLPattern(c.HLS.URLPattern)

	if !present["hls.delete_threshold"] {
		c.HLS.DeleteThreshold = c.HLS.FragmentNum
	}
	if c.HLS.SubSessionHashKey != "" && c.HLS.SubSessionTimeoutMS == 0 {
		c.HLS.SubSessionTimeoutMS = c.HLS.FragmentNum * c.HLS.FragmentDurationMS * 2
	}
}

// inherit fills each empty field from d.
func (h *HTTPListenConfig) inherit(d HTTPListenConfig) {
	if h.HTTPListenAddr == "" {
		h.HTTPListenAddr = d.HTTPListenAddr
	}
	if h.HTTPSListenAddr == "" {
		h.HTTPSListenAddr = d.HTTPSListenAddr
	}
	if h.HTTPSCertFile == "" {
		h.HTTPSCertFile = d.HTTPSCertFile
	}
	if h.HTTPSKeyFile == "" {
		h.HTTPSKeyFile = d.HTTPSKeyFile
	}
}

// fixURLPattern makes p start and end with "/", as lal does.
func fixURLPattern(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// Listeners returns every enabled plain (non-TLS) listen address with the key
// that set it, httpflv, httpts and hls sharing one entry, named after the
// first of them, when their addresses are equal.
func (c *Config) Listeners() []Listener {
	var ls []Listener
	add := func(enabled bool, key, addr string) {
		if enabled {
			ls = append(ls, Listener{Key: key, Addr: addr})
		}
	}
	add(c.RTMP.Enable, "rtmp.addr", c.RTMP.Addr)
	httpStart := len(ls)
	for _, h := range []struct {
		enabled bool
		key     string
		addr    string
	}{
		{c.HTTPFLV.Enable, "httpflv.http_listen_addr", c.HTTPFLV.HTTPListenAddr},
		{c.HTTPTS.Enable, "httpts.http_listen_addr", c.HTTPTS.HTTPListenAddr},
		{c.HLS.Enable, "hls.http_listen_addr", c.HLS.HTTPListenAddr},
	} {
		shared := false
		for _, l := range ls[httpStart:] {
			shared = shared || l.Addr == h.addr
		}
		add(h.enabled && !shared, h.key, h.addr)
	}
	add(c.RTSP.Enable, "rtsp.addr", c.RTSP.Addr)
	add(c.RTSP.WSRTSPEnable, "rtsp.ws_rtsp_addr", c.RTSP.WSRTSPAddr)
	add(c.HTTPAPI.Enable, "http_api.addr", c.HTTPAPI.Addr)
	add(c.Pprof.Enable, "pprof.addr", c.Pprof.Addr)
	return ls
}

// validate checks the values lal would accept but no server can run with. It
// runs before applyLalRules so that an HTTP address left empty in httpflv,
// httpts or hls is reported under the default_http key it inherits from.
func (c *Config) validate() error {
	if c.Log.Level < LogLevelTrace || c.Log.Level > LogLevelFatal {
		return keyErrorf("log.level", "%d is out of range %d..%d", c.Log.Level, LogLevelTrace, LogLevelFatal)
	}
	for _, n := range []struct {
		key string
		val int
	}{
		{"rtmp.gop_num", c.RTMP.GOPNum},
		{"rtmp.single_gop_max_frame_num", c.RTMP.SingleGOPMaxFrameNum},
		{"httpflv.gop_num", c.HTTPFLV.GOPNum},
		{"httpflv.single_gop_max_frame_num", c.HTTPFLV.SingleGOPMaxFrameNum},
		{"httpts.gop_num", c.HTTPTS.GOPNum},
		{"httpts.single_gop_max_frame_num", c.HTTPTS.SingleGOPMaxFrameNum},
		{"http_notify.update_interval_sec", c.HTTPNotify.UpdateIntervalSec},
		{"http_notify.queue_size", c.HTTPNotify.QueueSize},
		{"http_notify.timeout_ms", c.HTTPNotify.TimeoutMS},
		{"http_notify.flush_timeout_ms", c.HTTPNotify.FlushTimeoutMS},
		{"static_relay_pull.auto_stop_pull_after_no_out_ms", c.StaticRelayPull.AutoStopPullAfterNoOutMS},
		{"http_auth.timeout_ms", c.HTTPAuth.TimeoutMS},
		{"http_auth.cache_ttl_sec", c.HTTPAuth.CacheTTLSec},
		{"rtsp.describe_wait_ms", c.RTSP.DescribeWaitMS},
		{"limits.max_connections", c.Limits.MaxConnections},
		{"limits.max_connections_per_ip", c.Limits.MaxConnectionsPerIP},
		{"limits.max_streams", c.Limits.MaxStreams},
		{"limits.max_subscribers_per_stream", c.Limits.MaxSubscribersPerStream},
		{"timeouts.handshake_timeout_ms", c.Timeouts.HandshakeTimeoutMS},
		{"timeouts.idle_timeout_ms", c.Timeouts.IdleTimeoutMS},
		{"timeouts.header_timeout_ms", c.Timeouts.HeaderTimeoutMS},
		{"timeouts.publisher_idle_timeout_ms", c.Timeouts.PublisherIdleTimeoutMS},
	} {
		if n.val < 0 {
			return keyErrorf(n.key, "%d must not be negative", n.val)
		}
	}

	if c.HTTPNotify.Enable {
		n := &c.HTTPNotify
		for _, u := range []struct{ key, val string }{
			{"http_notify.on_server_start", n.OnServerStart}, {"http_notify.on_update", n.OnUpdate},
			{"http_notify.on_pub_start", n.OnPubStart}, {"http_notify.on_pub_stop", n.OnPubStop},
			{"http_notify.on_sub_start", n.OnSubStart}, {"http_notify.on_sub_stop", n.OnSubStop},
			{"http_notify.on_relay_pull_start", n.OnRelayPullStart}, {"http_notify.on_relay_pull_stop", n.OnRelayPullStop},
			{"http_notify.on_rtmp_connect", n.OnRTMPConnect}, {"http_notify.on_hls_make_ts", n.OnHLSMakeTS},
		} {
			if u.val == "" {
				continue
			}
			if pu, err := url.Parse(u.val); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				return keyErrorf(u.key, "%q is not an http(s) URL", u.val)
			}
		}
	}

	if c.HTTPAuth.Enable {
		for _, u := range []struct{ key, val string }{{"http_auth.on_pub", c.HTTPAuth.OnPub}, {"http_auth.on_sub", c.HTTPAuth.OnSub}} {
			if u.val == "" {
				continue
			}
			if pu, err := url.Parse(u.val); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				return keyErrorf(u.key, "%q is not an http(s) URL", u.val)
			}
		}
	}

	// Only addresses in use are checked, so a lal file with a stale value in
	// a disabled section still loads.
	uses := []addrUse{
		{c.RTMP.Enable, "rtmp.addr", c.RTMP.Addr},
		{c.RTMP.RTMPSEnable, "rtmp.rtmps_addr", c.RTMP.RTMPSAddr},
	}
	for _, s := range []struct {
		name        string
		http, https bool
		own         HTTPListenConfig
	}{
		{"httpflv", c.HTTPFLV.Enable, c.HTTPFLV.EnableHTTPS, c.HTTPFLV.HTTPListenConfig},
		{"httpts", c.HTTPTS.Enable, c.HTTPTS.EnableHTTPS, c.HTTPTS.HTTPListenConfig},
		{"hls", c.HLS.Enable, c.HLS.EnableHTTPS, c.HLS.HTTPListenConfig},
	} {
		uses = append(uses,
			inherited(s.http, s.name, "http_listen_addr", s.own.HTTPListenAddr, c.DefaultHTTP.HTTPListenAddr),
			inherited(s.https, s.name, "https_listen_addr", s.own.HTTPSListenAddr, c.DefaultHTTP.HTTPSListenAddr))
	}
	uses = append(uses,
		addrUse{c.RTSP.Enable, "rtsp.addr", c.RTSP.Addr},
		addrUse{c.RTSP.RTSPSEnable, "rtsp.rtsps_addr", c.RTSP.RTSPSAddr},
		addrUse{c.RTSP.WSRTSPEnable, "rtsp.ws_rtsp_addr", c.RTSP.WSRTSPAddr},
		addrUse{c.RTSP.Enable && c.RTSP.UDPRTPAddr != "", "rtsp.udp_rtp_addr", c.RTSP.UDPRTPAddr},
		addrUse{c.RTSP.Enable && c.RTSP.UDPRTCPAddr != "", "rtsp.udp_rtcp_addr", c.RTSP.UDPRTCPAddr},
		addrUse{c.StaticRelayPull.Enable, "static_relay_pull.addr", c.StaticRelayPull.Addr},
		addrUse{c.HTTPAPI.Enable, "http_api.addr", c.HTTPAPI.Addr},
		addrUse{c.Pprof.Enable, "pprof.addr", c.Pprof.Addr})
	if err := c.RTSP.checkUDPPorts(); err != nil {
		return err
	}
	for i, a := range c.RelayPush.AddrList {
		uses = append(uses, addrUse{c.RelayPush.Enable, fmt.Sprintf("relay_push.addr_list[%d]", i), a})
	}
	for _, u := range uses {
		if !u.enabled {
			continue
		}
		if err := checkHostPort(u.addr); err != nil {
			return keyErrorf(u.key, "%q is not a host:port address: %v", u.addr, err)
		}
	}
	return nil
}

// addrUse is one address validate checks, with the key it is reported under.
type addrUse struct {
	enabled bool
	key     string
	addr    string
}

// inherited returns the addrUse of one HTTP listen field of section, named
// after default_http when the section leaves the field empty.
func inherited(enabled bool, section, field, own, def string) addrUse {
	if own == "" {
		return addrUse{enabled, "default_http." + field, def}
	}
	return addrUse{enabled, section + "." + field, own}
}

// checkHostPort accepts what net.Listen and net.Dial accept for TCP, except an empty port.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	switch {
	case port == "":
		return errors.New("missing port")
	case port[0] >= '0' && port[0] <= '9':
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("invalid port %q", port)
		}
	default:
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("unknown port %q", port)
		}
	}
	return nil
}

// checkUDPPorts checks the RTSP UDP port pair: both set or both empty, the
// RTP port even and the RTCP port the next one (the RTP stack requires it).
func (r *RTSPConfig) checkUDPPorts() error {
	if !r.Enable {
		return nil
	}
	if err := r.checkUDPPortRange(); err != nil {
		return err
	}
	if r.UDPRTPAddr == "" && r.UDPRTCPAddr == "" {
		return nil
	}
	if r.UDPRTPAddr == "" {
		return keyErrorf("rtsp.udp_rtp_addr", "is empty but rtsp.udp_rtcp_addr is %q: set both or neither", r.UDPRTCPAddr)
	}
	if r.UDPRTCPAddr == "" {
		return keyErrorf("rtsp.udp_rtcp_addr", "is empty but rtsp.udp_rtp_addr is %q: set both or neither", r.UDPRTPAddr)
	}
	rtp, err1 := numericPort(r.UDPRTPAddr)
	rtcp, err2 := numericPort(r.UDPRTCPAddr)
	if err1 != nil {
		return keyErrorf("rtsp.udp_rtp_addr", "%q: %v", r.UDPRTPAddr, err1)
	}
	if err2 != nil {
		return keyErrorf("rtsp.udp_rtcp_addr", "%q: %v", r.UDPRTCPAddr, err2)
	}
	if rtp == 0 || rtcp == 0 {
		return r.checkUDPPortZero(rtp, rtcp)
	}
	if r.UDPPortMin != 0 && (rtp < r.UDPPortMin || rtcp > r.UDPPortMax) {
		return keyErrorf("rtsp.udp_rtp_addr", "%q: the pair %d-%d is outside rtsp.udp_port_min..udp_port_max (%d..%d); use port 0 in both addresses to take the first free pair of the range",
			r.UDPRTPAddr, rtp, rtcp, r.UDPPortMin, r.UDPPortMax)
	}
	if rtp%2 != 0 {
		return keyErrorf("rtsp.udp_rtp_addr", "%q: the RTP port must be even", r.UDPRTPAddr)
	}
	if rtcp != rtp+1 {
		return keyErrorf("rtsp.udp_rtcp_addr", "%q: the RTCP port must be the RTP port plus one (%d)", r.UDPRTCPAddr, rtp+1)
	}
	return nil
}

// numericPort returns the port of a host:port address whose port is a number.
func numericPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("the port must be a number")
	}
	return int(n), nil
}
