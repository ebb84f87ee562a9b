package server

import (
	"context"
	"encoding/json"
	"time"

	"sluice/pkg/api"
	"sluice/pkg/auth"
	"sluice/pkg/group"
)

// accessControl is the set of checks a session passes before it starts.
type accessControl struct {
	simple    *auth.SimpleAuth
	blacklist *auth.Blacklist
	http      *auth.HTTPAuth // nil when http_auth is off
}

func (s *Server) newAccessControl() accessControl {
	cfg := s.cfg
	ac := accessControl{
		simple:    &auth.SimpleAuth{Key: cfg.SimpleAuth.Key, MasterSecret: cfg.SimpleAuth.DangerousLalSecret},
		blacklist: &auth.Blacklist{},
	}
	if cfg.HTTPAuth.Enable {
		ac.http = &auth.HTTPAuth{
			OnPub:    cfg.HTTPAuth.OnPub,
			OnSub:    cfg.HTTPAuth.OnSub,
			Timeout:  time.Duration(cfg.HTTPAuth.TimeoutMS) * time.Millisecond,
			FailOpen: cfg.HTTPAuth.FailOpen,
			CacheTTL: time.Duration(cfg.HTTPAuth.CacheTTLSec) * time.Second,
			Logger:   s.log,
		}
	}
	return ac
}

// simpleAuthOn says whether simple_auth applies to a protocol and action.
func (s *Server) simpleAuthOn(protocol string, action auth.Action) bool {
	c := &s.cfg.SimpleAuth
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
	if s.simpleAuthOn(info.Protocol, action) {
		if err := s.access.simple.Check(info.StreamName, info.URLParam); err != nil {
			return err
		}
	}
	if s.access.http == nil {
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
	return s.access.http.Check(ctx, action, info.StreamName, info.URLParam, body)
}
