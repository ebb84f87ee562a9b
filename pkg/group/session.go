package group

import "time"

// Base types of a session, as lal's JSON spells them.
const (
	BasePub  = "PUB"
	BaseSub  = "SUB"
	BasePull = "PULL"
	BasePush = "PUSH"
)

// SessionInfo is what the group knows about one publisher or subscriber.
type SessionInfo struct {
	ID         string
	Protocol   string // "RTMP", "RTSP", "HTTP-FLV", "HTTP-TS"
	BaseType   string // BasePub, BaseSub, ...
	RemoteAddr string
	URL        string
	AppName    string
	StreamName string
	URLParam   string
	StartTime  time.Time
	// Counters reports the session's socket byte totals; may be nil.
	Counters Counters
	// Close ends the session (used by kick_session); may be nil.
	Close func()
	// Internal marks a subscriber that is part of the server (a relay push):
	// it counts as an out session but gets no events and no stat entry.
	Internal bool
}

// Counters reports the bytes a session has read from and written to its peer.
type Counters interface {
	ReadBytes() uint64
	WrittenBytes() uint64
}

func (s *SessionInfo) bytes() (read, written uint64) {
	if s.Counters == nil {
		return 0, 0
	}
	return s.Counters.ReadBytes(), s.Counters.WrittenBytes()
}

// EventType names a session lifecycle event.
type EventType int

// Lifecycle events reported to the Observer.
const (
	EventPubStart EventType = iota + 1
	EventPubStop
	EventSubStart
	EventSubStop
)

func (t EventType) String() string {
	switch t {
	case EventPubStart:
		return "pub_start"
	case EventPubStop:
		return "pub_stop"
	case EventSubStart:
		return "sub_start"
	case EventSubStop:
		return "sub_stop"
	}
	return "unknown"
}

// Event is one session lifecycle event. HasInSession and HasOutSession are
// evaluated after the add or remove the event reports.
type Event struct {
	Type          EventType
	Session       SessionInfo
	ReadBytes     uint64
	WrittenBytes  uint64
	HasInSession  bool
	HasOutSession bool
}

// Observer receives lifecycle events. It is called without any group lock
// held and must not block: queue and return.
type Observer interface {
	OnEvent(Event)
}
