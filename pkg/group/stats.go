package group

import (
	"time"

	"sluice/pkg/av"
)

// frameRateWindow is how many whole seconds of video frame counts a group
// keeps for in_frame_per_sec.
const frameRateWindow = 32

// groupStats counts a group's input for the stat API.
type groupStats struct {
	videoFrames [frameRateWindow]struct {
		unixSec int64
		n       int
	}
}

func (st *groupStats) reset() { *st = groupStats{} }

func (st *groupStats) onPacket(pkt *av.Packet) {
	if pkt.Kind != av.KindVideo || pkt.SeqHeader {
		return
	}
	sec := time.Now().Unix()
	slot := &st.videoFrames[sec%frameRateWindow]
	if slot.unixSec != sec {
		slot.unixSec, slot.n = sec, 0
	}
	slot.n++
}

// FrameCount is the number of video frames received in one wall-clock second.
type FrameCount struct {
	UnixSec int64
	Count   int
}

// Stat is a snapshot of a group for the stat API.
type Stat struct {
	StreamName string
	AppName    string
	Tracks     av.TrackInfo
	Pub        *SessionInfo
	Subs       []SessionInfo
	// VideoFramesPerSec lists the complete seconds of the last 32, newest first.
	VideoFramesPerSec []FrameCount
}

// EachSession calls fn with the publisher's and every listed subscriber's
// record (internal subscribers are not listed), under the group's read lock:
// fn must not keep info or call back into g. It is Stat without the copies,
// for work done every second over every session (bitrate sampling).
func (g *Group) EachSession(fn func(info *SessionInfo)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.pub != nil {
		fn(&g.pub.info)
	}
	for s := range g.subs {
		if !s.info.Internal {
			fn(&s.info)
		}
	}
}

// Stat returns a snapshot of the group.
func (g *Group) Stat() Stat {
	g.mu.RLock()
	defer g.mu.RUnlock()
	st := Stat{StreamName: g.name, AppName: g.appName, Tracks: g.tracks}
	if g.pub != nil {
		info := g.pub.info
		st.Pub = &info
	}
	for s := range g.subs {
		if !s.info.Internal {
			st.Subs = append(st.Subs, s.info)
		}
	}
	now := time.Now().Unix()
	st.VideoFramesPerSec = []FrameCount{}
	for sec := now - 1; sec > now-frameRateWindow; sec-- {
		slot := g.stats.videoFrames[sec%frameRateWindow]
		if slot.unixSec == sec {
			st.VideoFramesPerSec = append(st.VideoFramesPerSec, FrameCount{UnixSec: sec, Count: slot.n})
		}
	}
	return st
}
