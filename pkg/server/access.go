package server

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/api"
	"sluice/pkg/auth"
	"sluice/pkg/config"
	"sluice/pkg/group"
)

// accessControl is the set of checks a session passes before it starts.
type accessControl struct {
	// blacklist is managed through the API and outlives every reload.
	blacklist *auth.Blacklist
	// rules are the checks SIGHUP reloads, swapped as one value so that a
	// session is decided by one consistent set of settings.
	rules *atomic.Pointer[accessRules]
}

// accessRules are simple_auth and http_auth as configured at one moment.
// They are never modified: Reload stores new ones.
type accessRules struct {
	simpleCfg config.SimpleAuthConfig
	simple    *auth.SimpleAuth
	httpCfg   config.HTTPAuthConfig
	http      *auth.HTTPAuth // nil when http_auth is off
}

func (s *Server) newAccessControl() accessControl {
	ac := accessControl{blacklist: &auth.Blacklist{}, rules: new(atomic.Pointer[accessRules])}
	ac.rules.Store(newAccessRules(s.cfg, nil, s.log))
	return ac
}

// newAccessRules builds the rules of cfg. The http_auth checker of old is
// kept, decision cache included, when its settings did not change; changed
// settings start with an empty cache, so that no decision of the old back
// end or policy outlives them.
func newAccessRules(cfg *config.Config, old *accessRules, log *zap.Logger) *accessRules {
	r := &accessRules{
		simpleCfg: cfg.SimpleAuth,
		simple:    &auth.SimpleAuth{Key: cfg.SimpleAuth.Key, MasterSecret: cfg.SimpleAuth.DangerousLalSecret},
		httpCfg:   cfg.HTTPAuth,
	}
	switch {
	case !cfg.HTTPAuth.Enable:
	case old != nil && old.http != nil && old.httpCfg == cfg.HTTPAuth:
		r.http = old.http
	default:
		r.http = &auth.HTTPAuth{
			OnPub:    cfg.HTTPAuth.OnPub,
			OnSub:    cfg.HTTPAuth.OnSub,
			Timeout:  time.Duration(cfg.HTTPAuth.TimeoutMS) * time.Millisecond,
			FailOpen: cfg.HTTPAuth.FailOpen,
			CacheTTL: time.Duration(cfg.HTTPAuth.CacheTTLSec) * time.Second,
			Logger:   log,
		}
	}
	return r
}

// simpleAuthOn says whether simple_auth applies to a protocol and action.
func (r *accessRules) simpleAuthOn(protocol string, action auth.Action) bool {
	c := &r.simpleCfg
	switch {
	case action == auth.Publish && protocol == ProtocolRTMP:
		return c.PubRTMPEnable
	case action == auth.Publish && protocol == ProtocolRTSP:
		return c.PubRTSPEnable
	case protocol == ProtocolRTMP:
		return c.SubRTMPEnable
	case protocol == ProtocolHTTPFLV:
		return c.SubHTTPFLVEnable
	case protocol == ProtocolHTTPTS:
		return c.SubHTTPTSEnable
	case protocol == ProtocolRTSP:
		return c.SubRTSPEnable
	}
	return false
}

// authorize runs every check for a session about to publish or play: the IP
// blacklist, simple_auth where its switch is on, and the http_auth back end.
// A refusal is an *auth.Denied. Only the calling session waits.
func (s *Server) authorize(ctx context.Context, action auth.Action, info group.SessionInfo) error {
	if err := s.access.blacklist.Check(info.RemoteAddr); err != nil {
		return err
	}
	rules := s.access.rules.Load()
	if rules.simpleAuthOn(info.Protocol, action) {
		if err := rules.simple.Check(info.StreamName, info.URLParam); err != nil {
			return err
		}
	}
	if rules.http == nil {
		return nil
	}
	// The body of the on_pub_start/on_sub_start this session would cause.
	ev := group.Event{Session: info}
	if g := s.groups.Group(info.StreamName); g != nil {
		ev.HasInSession, ev.HasOutSession = g.HasInSession(), g.HasOutSession()
	}
	if action == auth.Publish {
		ev.HasInSession = true
	} else {
		ev.HasOutSession = true
	}
	if info.Counters != nil {
		ev.ReadBytes, ev.WrittenBytes = info.Counters.ReadBytes(), info.Counters.WrittenBytes()
	}
	body, err := json.Marshal(api.SessionEvent(s.cfg.ServerID, ev))
	if err != nil {
		return err
	}
	return rules.http.Check(ctx, action, info.StreamName, info.URLParam, body)
}
