package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/auth"
	"sluice/pkg/group"
	"sluice/pkg/notify"
	"sluice/pkg/relay"
)

// maxRequestBody bounds a ctrl request's JSON body.
const maxRequestBody = 64 << 10

// Server answers the HTTP API.
type Server struct {
	ServerID   string
	StartTime  time.Time
	Version    string // Sluice's version, in bin_info
	ServerName string // the Server header
	Groups     *group.Manager
	Bitrates   *Bitrates
	// Blacklist is fed by /api/ctrl/add_ip_blacklist.
	Blacklist *auth.Blacklist
	// AuthToken, when set, is required as "Authorization: Bearer <token>".
	AuthToken string
	// Pulls runs the relay pulls of /api/ctrl/start_relay_pull.
	Pulls *relay.PullManager
	// Notify, when set, feeds /api/stat/notify and /api/events.
	Notify *notify.Dispatcher
	Logger *zap.Logger
	// Done ends the streaming responses (/api/events) when closed.
	Done <-chan struct{}
	// LimitRefusals, when set, feeds /api/stat/limits: refusals per limit key.
	LimitRefusals func() map[string]uint64
}

// LalInfo builds the data of /api/stat/lal_info (and on_server_start).
func (a *Server) LalInfo() LalInfo {
	return LalInfo{
		ServerID: a.ServerID,
		BinInfo: fmt.Sprintf("Sluice=%s. GoVersion=%s. runtime=%s/%s.",
			a.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH),
		LalVersion:    LalVersion,
		APIVersion:    APIVersion,
		NotifyVersion: NotifyVersion,
		WebUIVersion:  WebUIVersion,
		StartTime:     FormatTime(a.StartTime),
	}
}

// AllGroups builds the stat JSON of every group (nil when none).
func (a *Server) AllGroups() []StatGroup {
	return a.Bitrates.StatGroups(GroupStats(a.Groups))
}

// Handler returns the API's routes. Unknown paths get lal's 404 JSON.
func (a *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/stat/lal_info", func(w http.ResponseWriter, r *http.Request) {
		a.reply(w, struct {
			Code int     `json:"error_code"`
			Desp string  `json:"desp"`
			Data LalInfo `json:"data"`
		}{CodeSucc, DespSucc, a.LalInfo()})
	})
	mux.HandleFunc("/api/stat/all_group", func(w http.ResponseWriter, r *http.Request) {
		a.reply(w, struct {
			Code int       `json:"error_code"`
			Desp string    `json:"desp"`
			Data AllGroups `json:"data"`
		}{CodeSucc, DespSucc, AllGroups{Groups: a.AllGroups()}})
	})
	mux.HandleFunc("/api/stat/group", a.statGroup)
	mux.HandleFunc("/api/ctrl/kick_session", a.kickSession)
	mux.HandleFunc("/api/ctrl/start_relay_pull", a.startRelayPull)
	mux.HandleFunc("/api/ctrl/stop_relay_pull", a.stopRelayPull)
	mux.HandleFunc("/api/stat/notify", a.notifyStats)
	mux.HandleFunc("/api/stat/limits", a.limitStats)
	mux.HandleFunc("/api/events", a.events)
	mux.HandleFunc("/api/ctrl/add_ip_blacklist", a.addIPBlacklist)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.reply(w, codeOnly{CodePageNotFound, DespPageNotFound})
	})
	if a.AuthToken == "" {
		return mux
	}
	want := []byte("Bearer " + a.AuthToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error_code":401,"desp":"unauthorized"}`)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// AddIPBlacklistRequest is the body of /api/ctrl/add_ip_blacklist.
type AddIPBlacklistRequest struct {
	IP          string `json:"ip"`
	DurationSec int    `json:"duration_sec"`
}

// addIPBlacklist refuses an IP on every protocol for duration_sec.
func (a *Server) addIPBlacklist(w http.ResponseWriter, r *http.Request) {
	var req AddIPBlacklistRequest
	if !decodeRequired(r, &req, "ip", "duration_sec") || net.ParseIP(req.IP) == nil || req.DurationSec <= 0 || a.Blacklist == nil {
		a.reply(w, codeOnly{CodeParamMissing, DespParamMissing})
		return
	}
	a.Blacklist.Add(req.IP, time.Duration(req.DurationSec)*time.Second)
	a.logger().Info("ip blacklisted", zap.String("ip", req.IP), zap.Int("duration_sec", req.DurationSec))
	a.reply(w, codeOnly{CodeSucc, DespSucc})
}

type codeOnly struct {
	Code int    `json:"error_code"`
	Desp string `json:"desp"`
}

// reply writes v as lal does: HTTP 200, compact JSON, CORS headers.
func (a *Server) reply(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if a.ServerName != "" {
		h.Set("Server", a.ServerName)
	}
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	w.Write(body)
}

func (a *Server) statGroup(w http.ResponseWriter, r *http.Request) {
	type resp struct {
		Code int        `json:"error_code"`
		Desp string     `json:"desp"`
		Data *StatGroup `json:"data"`
	}
	name := r.URL.Query().Get("stream_name")
	if name == "" {
		a.reply(w, resp{CodeParamMissing, DespParamMissing, nil})
		return
	}
	g := a.Groups.Group(name)
	if g == nil {
		a.reply(w, resp{CodeGroupNotFound, DespGroupNotFound, nil})
		return
	}
	sg := a.Bitrates.StatGroupOf(g.Stat())
	a.reply(w, resp{CodeSucc, DespSucc, &sg})
}

// decodeRequired reads a JSON object body into v after checking that every
// key of required is present (a present null counts), as lal does.
func decodeRequired(r *http.Request, v any, required ...string) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		return false
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return false
	}
	for _, k := range required {
		if _, ok := keys[k]; !ok {
			return false
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	return dec.Decode(v) == nil
}

func (a *Server) kickSession(w http.ResponseWriter, r *http.Request) {
	var req KickSessionRequest
	if !decodeRequired(r, &req, "stream_name", "session_id") {
		a.reply(w, codeOnly{CodeParamMissing, DespParamMissing})
		return
	}
	g := a.Groups.Group(req.StreamName)
	if g == nil {
		a.reply(w, codeOnly{CodeGroupNotFound, DespGroupNotFound})
		return
	}
	st := g.Stat()
	var target *group.SessionInfo
	if st.Pub != nil && st.Pub.ID == req.SessionID {
		target = st.Pub
	}
	for i := range st.Subs {
		if st.Subs[i].ID == req.SessionID {
			target = &st.Subs[i]
		}
	}
	if target == nil || target.Close == nil {
		a.reply(w, codeOnly{CodeSessionNotFound, DespSessionNotFound})
		return
	}
	a.logger().Info("kick_session", zap.String("session_id", target.ID), zap.String("stream_name", req.StreamName),
		zap.String("remote_addr", target.RemoteAddr))
	target.Close()
	a.reply(w, codeOnly{CodeSucc, DespSucc})
}

// notifyStats answers /api/stat/notify: webhook delivery counters.
func (a *Server) notifyStats(w http.ResponseWriter, r *http.Request) {
	var stats notify.Stats
	if a.Notify != nil {
		stats = a.Notify.Stats()
	}
	a.reply(w, struct {
		Code int          `json:"error_code"`
		Desp string       `json:"desp"`
		Data notify.Stats `json:"data"`
	}{CodeSucc, DespSucc, stats})
}

// events streams every webhook event as Server-Sent Events: the event name,
// its id and the same JSON body the webhook carries.
func (a *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok || a.Notify == nil {
		a.reply(w, codeOnly{CodePageNotFound, DespPageNotFound})
		return
	}
	ch, cancel := a.Notify.Subscribe()
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.Done:
			return
		case <-keepAlive.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			data := strings.ReplaceAll(string(ev.Body), "\n", "")
			if _, err := fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", ev.Name, ev.ID, data); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func (a *Server) logger() *zap.Logger {
	if a.Logger == nil {
		return zap.NewNop()
	}
	return a.Logger
}
