package group

import (
	"errors"
	"fmt"
)

// Errors of the configured maximums (Config.MaxStreams and
// Config.MaxSubscribersPerStream), wrapped with the limit's value.
var (
	ErrStreamLimit     = errors.New("stream limit reached")
	ErrSubscriberLimit = errors.New("subscriber limit of the stream reached")
)

// LimitError is a refusal by a configured maximum.
type LimitError struct {
	Err error // ErrStreamLimit or ErrSubscriberLimit
	Max int
}

func (e *LimitError) Error() string { return fmt.Sprintf("%v (%d)", e.Err, e.Max) }

func (e *LimitError) Unwrap() error { return e.Err }

// TrySubscribe is Subscribe, refused with a *LimitError wrapping
// ErrSubscriberLimit when the stream has MaxSubscribersPerStream
// subscribers already.
func (m *Manager) TrySubscribe(info SessionInfo, f Format) (*Sub, error) {
	return m.subscribe(info, f, true)
}

// checkStreamLimit refuses a new publisher of g when MaxStreams other
// groups have one; m.mu and g.mu are held.
func (m *Manager) checkStreamLimit(g *Group) error {
	max := m.cfg.MaxStreams
	if max <= 0 {
		return nil
	}
	n := 0
	for _, o := range m.groups {
		if o == g {
			continue
		}
		// Lock order is m.mu then one group's mu; no path holds a group's
		// mu while taking another's, so reading o under m.mu is safe.
		o.mu.RLock()
		if o.pub != nil {
			n++
		}
		o.mu.RUnlock()
	}
	if n >= max {
		return &LimitError{Err: ErrStreamLimit, Max: max}
	}
	return nil
}

// checkSubscriberLimit refuses one more subscriber of g; m.mu and g.mu are
// held.
func (m *Manager) checkSubscriberLimit(g *Group) error {
	max := m.cfg.MaxSubscribersPerStream
	if max <= 0 {
		return nil
	}
	n := 0
	for s := range g.subs {
		if !s.info.Internal {
			n++
		}
	}
	if n >= max {
		return &LimitError{Err: ErrSubscriberLimit, Max: max}
	}
	return nil
}
