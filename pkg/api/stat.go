package api

import (
	"sort"
	"sync"
	"time"

	"sluice/pkg/group"
)

// TimeLayout is lal's start_time format: local time, milliseconds with
// trailing zeros trimmed, e.g. "2026-11-26 20:31:09.938 Z UTC".
const TimeLayout = "2006-01-02 15:04:05.999 Z0700 MST"

// FormatTime formats t as lal's start_time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(TimeLayout)
}

// bitrateWindow is the span bitrates are averaged over (lal: 5 s).
const bitrateWindow = 5

// Bitrates turns the byte counters of every session, sampled once a second,
// into bitrates over the last 5 seconds.
type Bitrates struct {
	mu      sync.Mutex
	samples map[string]*byteSamples
	scratch []sessionCounters // Sample's list, kept between calls
}

type sessionCounters struct {
	id       string
	counters group.Counters
}

type byteSamples struct {
	n      int // samples taken, capped at len(read)
	next   int
	read   [bitrateWindow + 1]uint64
	wrote  [bitrateWindow + 1]uint64
	marked bool
}

// NewBitrates makes an empty tracker.
func NewBitrates() *Bitrates { return &Bitrates{samples: map[string]*byteSamples{}} }

// Sample records the counters of every session of every group of m; call it
// once a second. Sessions that are gone are forgotten.
func (b *Bitrates) Sample(m *group.Manager) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The records are listed under each group's lock, and the counters read
	// after it is released: a session's counters may take its own locks.
	b.scratch = b.scratch[:0]
	list := func(info *group.SessionInfo) {
		if info.Counters != nil {
			b.scratch = append(b.scratch, sessionCounters{info.ID, info.Counters})
		}
	}
	for _, g := range m.Groups() {
		g.EachSession(list)
	}
	for _, s := range b.samples {
		s.marked = false
	}
	for _, sc := range b.scratch {
		s := b.samples[sc.id]
		if s == nil {
			s = &byteSamples{}
			b.samples[sc.id] = s
		}
		s.read[s.next] = sc.counters.ReadBytes()
		s.wrote[s.next] = sc.counters.WrittenBytes()
		s.next = (s.next + 1) % len(s.read)
		if s.n < len(s.read) {
			s.n++
		}
		s.marked = true
	}
	clear(b.scratch) // drop the references to sessions that may end
	for id, s := range b.samples {
		if !s.marked {
			delete(b.samples, id)
		}
	}
}

// Kbits returns a session's read and write bitrates in kbit/s (bytes × 8 /
// 1024 per second, as lal), over the samples of the last 5 seconds.
func (b *Bitrates) Kbits(id string) (read, write int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.samples[id]
	if s == nil || s.n < 2 {
		return 0, 0
	}
	newest := (s.next + len(s.read) - 1) % len(s.read)
	oldest := (s.next + len(s.read) - s.n) % len(s.read)
	secs := uint64(s.n - 1)
	return int((s.read[newest] - s.read[oldest]) * 8 / 1024 / secs),
		int((s.wrote[newest] - s.wrote[oldest]) * 8 / 1024 / secs)
}

// StatSessionOf builds the stat JSON of one session.
func (b *Bitrates) StatSessionOf(info *group.SessionInfo) StatSession {
	if info == nil {
		return StatSession{}
	}
	st := StatSession{
		SessionID:  info.ID,
		Protocol:   info.Protocol,
		BaseType:   info.BaseType,
		RemoteAddr: info.RemoteAddr,
		StartTime:  FormatTime(info.StartTime),
	}
	if info.Counters != nil {
		st.ReadBytesSum = info.Counters.ReadBytes()
		st.WroteBytesSum = info.Counters.WrittenBytes()
	}
	st.ReadBitrateKbits, st.WriteBitrateKbits = b.Kbits(info.ID)
	switch info.BaseType {
	case group.BasePub, group.BasePull:
		st.BitrateKbits = st.ReadBitrateKbits
	default:
		st.BitrateKbits = st.WriteBitrateKbits
	}
	return st
}

// protocolOrder is lal's order of subscribers in the stat JSON.
var protocolOrder = map[string]int{"RTMP": 0, "HTTP-FLV": 1, "HTTP-TS": 2, "RTSP": 3}

// StatGroupOf builds the stat JSON of one group.
func (b *Bitrates) StatGroupOf(st group.Stat) StatGroup {
	g := StatGroup{
		StreamName:    st.StreamName,
		AppName:       st.AppName,
		AudioCodec:    st.Tracks.AudioCodec.String(),
		VideoCodec:    st.Tracks.VideoCodec.String(),
		VideoWidth:    st.Tracks.Width,
		VideoHeight:   st.Tracks.Height,
		InFramePerSec: make([]FrameCount, 0, len(st.VideoFramesPerSec)),
	}
	if st.Pub != nil {
		if st.Pub.BaseType == group.BasePull {
			g.Pull = b.StatSessionOf(st.Pub)
		} else {
			g.Pub = b.StatSessionOf(st.Pub)
		}
	}
	subs := append([]group.SessionInfo(nil), st.Subs...)
	sort.SliceStable(subs, func(i, j int) bool {
		pi, pj := protocolOrder[subs[i].Protocol], protocolOrder[subs[j].Protocol]
		if pi != pj {
			return pi < pj
		}
		if !subs[i].StartTime.Equal(subs[j].StartTime) {
			return subs[i].StartTime.Before(subs[j].StartTime)
		}
		return subs[i].ID < subs[j].ID
	})
	for i := range subs {
		g.Subs = append(g.Subs, b.StatSessionOf(&subs[i]))
	}
	for _, fc := range st.VideoFramesPerSec {
		g.InFramePerSec = append(g.InFramePerSec, FrameCount{UnixSec: fc.UnixSec, V: fc.Count})
	}
	return g
}

// StatGroups builds the stat JSON of every group, sorted by stream name;
// nil when there is none (lal sends "groups":null).
func (b *Bitrates) StatGroups(stats []group.Stat) []StatGroup {
	sort.Slice(stats, func(i, j int) bool { return stats[i].StreamName < stats[j].StreamName })
	var out []StatGroup
	for _, st := range stats {
		out = append(out, b.StatGroupOf(st))
	}
	return out
}

// GroupStats snapshots every group of m.
func GroupStats(m *group.Manager) []group.Stat {
	gs := m.Groups()
	stats := make([]group.Stat, 0, len(gs))
	for _, g := range gs {
		stats = append(stats, g.Stat())
	}
	return stats
}

// SessionEvent builds the webhook body of a session lifecycle event.
func SessionEvent(serverID string, ev group.Event) SessionEventBody {
	s := ev.Session
	return SessionEventBody{
		ServerID:      serverID,
		SessionID:     s.ID,
		Protocol:      s.Protocol,
		BaseType:      s.BaseType,
		RemoteAddr:    s.RemoteAddr,
		URL:           s.URL,
		AppName:       s.AppName,
		StreamName:    s.StreamName,
		URLParam:      s.URLParam,
		HasInSession:  ev.HasInSession,
		HasOutSession: ev.HasOutSession,
		ReadBytesSum:  ev.ReadBytes,
		WroteBytesSum: ev.WrittenBytes,
	}
}
