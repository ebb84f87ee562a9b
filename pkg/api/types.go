// Package api is the HTTP API (/api/stat/*, /api/ctrl/*) and the JSON the
// webhooks carry. Every stat and event body is built here, once: the
// on_update and on_server_start webhooks use the same builders as
// /api/stat/all_group and /api/stat/lal_info. Field names and order are
// lalserver's (spec §2, §3), so existing lal integrations keep working.
package api

// Version strings reported in lal_info, at the lal interface level Sluice
// implements.
const (
	LalVersion    = "v0.37.4"
	APIVersion    = "v0.4.9"
	NotifyVersion = "v0.2.5"
	WebUIVersion  = "v0.0.3"
)

// Error codes and their texts (spec §2.1).
const (
	CodeSucc            = 0
	CodePageNotFound    = 404
	CodeGroupNotFound   = 1001
	CodeParamMissing    = 1002
	CodeSessionNotFound = 1003
)

// Texts of the error codes.
const (
	DespSucc            = "succ"
	DespPageNotFound    = "page not found, check this document out: lal"
	DespGroupNotFound   = "group not found"
	DespParamMissing    = "param missing"
	DespSessionNotFound = "session not found"
)

// LalInfo is the data of /api/stat/lal_info and the on_server_start body.
type LalInfo struct {
	ServerID      string `json:"server_id"`
	BinInfo       string `json:"bin_info"`
	LalVersion    string `json:"lal_version"`
	APIVersion    string `json:"api_version"`
	NotifyVersion string `json:"notify_version"`
	WebUIVersion  string `json:"WebUiVersion"`
	StartTime     string `json:"start_time"`
}

// StatSession is one session in the stat JSON.
type StatSession struct {
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

// FrameCount is one entry of in_frame_per_sec.
type FrameCount struct {
	UnixSec int64 `json:"unix_sec"`
	V       int   `json:"v"`
}

// StatGroup is one stream in the stat JSON. Subs is null when empty; Pub
// and Pull are always objects (all fields empty when absent), as lal.
type StatGroup struct {
	StreamName    string        `json:"stream_name"`
	AppName       string        `json:"app_name"`
	AudioCodec    string        `json:"audio_codec"`
	VideoCodec    string        `json:"video_codec"`
	VideoWidth    int           `json:"video_width"`
	VideoHeight   int           `json:"video_height"`
	Pub           StatSession   `json:"pub"`
	Subs          []StatSession `json:"subs"`
	Pull          StatSession   `json:"pull"`
	InFramePerSec []FrameCount  `json:"in_frame_per_sec"`
}

// AllGroups is the data of /api/stat/all_group.
type AllGroups struct {
	Groups []StatGroup `json:"groups"`
}

// UpdateBody is the on_update webhook body.
type UpdateBody struct {
	ServerID string      `json:"server_id"`
	Groups   []StatGroup `json:"groups"`
}

// SessionEventBody is the body of on_pub_start/stop and on_sub_start/stop.
type SessionEventBody struct {
	ServerID      string `json:"server_id"`
	SessionID     string `json:"session_id"`
	Protocol      string `json:"protocol"`
	BaseType      string `json:"base_type"`
	RemoteAddr    string `json:"remote_addr"`
	URL           string `json:"url"`
	AppName       string `json:"app_name"`
	StreamName    string `json:"stream_name"`
	URLParam      string `json:"url_param"`
	HasInSession  bool   `json:"has_in_session"`
	HasOutSession bool   `json:"has_out_session"`
	ReadBytesSum  uint64 `json:"read_bytes_sum"`
	WroteBytesSum uint64 `json:"wrote_bytes_sum"`
}

// RTMPConnectBody is the on_rtmp_connect body; the key case is lal's.
type RTMPConnectBody struct {
	ServerID   string `json:"server_id"`
	SessionID  string `json:"session_id"`
	RemoteAddr string `json:"remote_addr"`
	App        string `json:"app"`
	FlashVer   string `json:"flashVer"`
	TcURL      string `json:"tcUrl"`
}

// KickSessionRequest is the body of /api/ctrl/kick_session.
type KickSessionRequest struct {
	StreamName string `json:"stream_name"`
	SessionID  string `json:"session_id"`
}
