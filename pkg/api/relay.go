package api

import (
	"errors"
	"net/http"
	"time"

	"sluice/pkg/relay"
)

// CodeStartRelayPullFailed is start_relay_pull's error code; desp is the error text.
const CodeStartRelayPullFailed = 2001

// StartRelayPullRequest is the body of /api/ctrl/start_relay_pull.
type StartRelayPullRequest struct {
	URL                      string `json:"url"`
	StreamName               string `json:"stream_name"`
	PullTimeoutMS            int    `json:"pull_timeout_ms"`
	PullRetryNum             int    `json:"pull_retry_num"`
	AutoStopPullAfterNoOutMS int    `json:"auto_stop_pull_after_no_out_ms"`
	RTSPMode                 int    `json:"rtsp_mode"`
	DebugDumpPacket          string `json:"debug_dump_packet"`
}

// RelayPullData is the data of start_relay_pull.
type RelayPullData struct {
	StreamName string `json:"stream_name"`
	SessionID  string `json:"session_id"`
}

// SessionIDData is the data of stop_relay_pull.
type SessionIDData struct {
	SessionID string `json:"session_id"`
}

func (a *Server) startRelayPull(w http.ResponseWriter, r *http.Request) {
	type resp struct {
		Code int           `json:"error_code"`
		Desp string        `json:"desp"`
		Data RelayPullData `json:"data"`
	}
	req := StartRelayPullRequest{PullTimeoutMS: 10000, AutoStopPullAfterNoOutMS: -1}
	if !decodeRequired(r, &req, "url") || req.URL == "" {
		a.reply(w, resp{Code: CodeParamMissing, Desp: DespParamMissing})
		return
	}
	if a.Pulls == nil {
		a.reply(w, resp{Code: CodeStartRelayPullFailed, Desp: "relay pull is not available"})
		return
	}
	autoStop := time.Duration(req.AutoStopPullAfterNoOutMS) * time.Millisecond
	if req.AutoStopPullAfterNoOutMS < 0 {
		autoStop = -1
	}
	opt := relay.PullOptions{
		URL:           req.URL,
		StreamName:    req.StreamName,
		Timeout:       time.Duration(req.PullTimeoutMS) * time.Millisecond,
		RetryNum:      req.PullRetryNum,
		AutoStopNoOut: autoStop,
		RTSPMode:      req.RTSPMode,
	}
	if opt.StreamName == "" {
		name, err := relay.StreamNameFromURL(req.URL)
		if err != nil {
			a.reply(w, resp{Code: CodeStartRelayPullFailed, Desp: err.Error()})
			return
		}
		opt.StreamName = name
	}
	id, err := a.Pulls.StartPull(opt)
	if err != nil {
		a.reply(w, resp{Code: CodeStartRelayPullFailed, Desp: err.Error()})
		return
	}
	a.reply(w, resp{CodeSucc, DespSucc, RelayPullData{StreamName: opt.StreamName, SessionID: id}})
}

func (a *Server) stopRelayPull(w http.ResponseWriter, r *http.Request) {
	type resp struct {
		Code int           `json:"error_code"`
		Desp string        `json:"desp"`
		Data SessionIDData `json:"data"`
	}
	name := r.URL.Query().Get("stream_name")
	if name == "" {
		a.reply(w, resp{Code: CodeParamMissing, Desp: DespParamMissing})
		return
	}
	if a.Groups.Group(name) == nil && (a.Pulls == nil || !a.Pulls.HasPull(name)) {
		a.reply(w, resp{Code: CodeGroupNotFound, Desp: DespGroupNotFound})
		return
	}
	if a.Pulls == nil {
		a.reply(w, resp{Code: CodeSessionNotFound, Desp: DespSessionNotFound})
		return
	}
	id, err := a.Pulls.StopPull(name)
	if errors.Is(err, relay.ErrNoPull) {
		a.reply(w, resp{Code: CodeSessionNotFound, Desp: DespSessionNotFound})
		return
	}
	a.reply(w, resp{CodeSucc, DespSucc, SessionIDData{SessionID: id}})
}
