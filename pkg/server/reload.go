package server

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/config"
)

// liveConfig holds what Reload changes while the server runs; access rules
// live in accessControl.
type liveConfig struct {
	mu      sync.Mutex                              // serializes Reload
	applied *config.Config                          // the last configuration Reload applied; nil: s.cfg
	notify  atomic.Pointer[config.HTTPNotifyConfig] // nil until the first Reload: s.cfg.HTTPNotify
}

// reloadable reports whether Reload applies a key: the http_notify (except
// queue_size), http_auth and simple_auth sections.
func reloadable(key string) bool {
	if key == "http_notify.queue_size" {
		return false // a queue bound lowered live would drop queued events
	}
	section, _, _ := strings.Cut(key, ".")
	return section == "http_notify" || section == "http_auth" || section == "simple_auth"
}

// Reload applies the http_notify, http_auth and simple_auth sections of cfg
// to the running server without touching any stream or connection:
//   - webhooks: events from now on go to the new URLs (or nowhere when
//     disabled); the secret, timeout and on_update interval change for every
//     later request, retries of queued events included; queued and in-flight
//     events are kept and go to the URL they were queued for;
//   - access: simple_auth and http_auth are swapped at once for sessions
//     that start from now on; sessions already running stay. The http_auth
//     decision cache is emptied when http_auth changed. The IP blacklist is
//     kept.
//
// Any other key that differs from the configuration the server started with
// (http_notify.queue_size included) is not applied: one warning names them.
// cfg must be valid (as config.Load returns it).
func (s *Server) Reload(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("reload: no configuration")
	}
	select {
	case <-s.done:
		return errors.New("reload: the server is shutting down")
	default:
	}
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	prev := s.live.applied
	if prev == nil {
		prev = s.cfg
	}
	var restart, changed []string
	for _, k := range config.ChangedKeys(s.cfg, cfg) {
		if !reloadable(k) {
			restart = append(restart, k)
		}
	}
	for _, k := range config.ChangedKeys(prev, cfg) {
		if reloadable(k) {
			changed = append(changed, k)
		}
	}
	if len(restart) > 0 {
		s.log.Warn("config reload: these keys changed but need a restart; they keep their running values",
			zap.Strings("keys", restart))
	}

	n := cfg.HTTPNotify
	n.QueueSize = s.cfg.HTTPNotify.QueueSize
	s.live.notify.Store(&n)
	s.notify.Reconfigure(dispatcherConfig(&n, s.log))
	s.access.rules.Store(newAccessRules(cfg, s.access.rules.Load(), s.log))

	applied := *cfg
	applied.HTTPNotify = n
	s.live.applied = &applied
	s.log.Info("config reloaded: http_notify, http_auth and simple_auth applied", zap.Strings("changed", changed))
	return nil
}

// notifyConfig returns the http_notify settings in force.
func (s *Server) notifyConfig() *config.HTTPNotifyConfig {
	if n := s.live.notify.Load(); n != nil {
		return n
	}
	return &s.cfg.HTTPNotify
}

// FlushTimeout is http_notify.flush_timeout_ms as last (re)loaded: how long
// a shutdown should give queued webhooks.
func (s *Server) FlushTimeout() time.Duration {
	return time.Duration(s.notifyConfig().FlushTimeoutMS) * time.Millisecond
}
