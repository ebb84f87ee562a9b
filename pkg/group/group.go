// Package group is the core of the server: one Group per stream name, with
// one publisher and any number of subscribers of any output format.
//
// A Group keeps a log of the stream's recent frames. Each frame is encoded
// once per active output format (RTMP chunks, FLV tag, TS packets...) when it
// is appended, and every subscriber is only a cursor into the log: the
// publisher's cost per packet does not depend on the number of subscribers,
// it never blocks on one, and no subscriber holds a private copy of any media.
// The GOP cache is the log's retention policy; a late joiner's cursor starts at
// a cached keyframe. A subscriber that falls too far behind skips ahead to the
// latest keyframe (the skipped frames are counted) and is ended if it stays
// behind longer than its write timeout.
package group

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// Format identifies an output format: its index in Config.Formats.
type Format int

// Muxer encodes the packets of one stream into the bytes of one output
// format. The returned bytes are shared by every subscriber and must never be
// modified afterwards. A nil result means the format does not carry the packet.
type Muxer interface {
	Mux(pkt *av.Packet) []byte
}

// SegmentMuxer is a Muxer whose encoding is slices, which may alias the
// packet's bytes: a format made of a few headers around media bytes that the
// group keeps anyway (FLV tags, RTP over RTSP) then keeps no copy of the
// media. Each slice is an iovec of every subscriber's writev: few per frame. in is the frame's slices when it was written with
// Publisher.WriteSegments, nil when it was written whole (pkt.Payload). The
// result is shared by every subscriber and never modified afterwards.
type SegmentMuxer interface {
	Muxer
	MuxSegments(pkt *av.Packet, in [][]byte) [][]byte
}

// JoinHeaderMuxer is a Muxer whose format needs bytes of its own before a
// subscriber's first frame when that frame is not a keyframe, as on an
// audio-only stream (MPEG-TS: the current PAT and PMT).
type JoinHeaderMuxer interface {
	Muxer
	JoinHeader() []byte
}

// FormatSpec describes one output format served by the Manager.
type FormatSpec struct {
	Name string
	// NewMuxer makes the format's muxer for one stream.
	NewMuxer func(streamName string) Muxer
	// GOPNum is how many GOPs a new subscriber of this format is given at
	// once; 0 makes it wait for the next keyframe.
	GOPNum int
}

// Config configures a Manager.
type Config struct {
	Formats []FormatSpec
	// SingleGOPMaxFrameNum caps the frames of one cached GOP (0: no cap). A GOP
	// that grows past it is no longer offered to late joiners.
	SingleGOPMaxFrameNum int
	// MaxLag is how far (in arrival time) a subscriber may fall behind the live
	// edge before it skips to the latest keyframe. Default 5 s.
	MaxLag time.Duration
	// WriteTimeout is how long a subscriber may stay behind before it is ended.
	// Default 10 s. Protocol sessions use the same value as their socket write
	// deadline.
	WriteTimeout time.Duration
	// MaxRetainedBytes bounds the media a group keeps, GOP cache included.
	// Default 64 MiB.
	MaxRetainedBytes uint64
	// MaxStreams bounds the groups that have a publisher (0: no limit): a
	// Publish beyond it gives ErrStreamLimit.
	MaxStreams int
	// MaxSubscribersPerStream bounds the subscribers of one group that
	// TrySubscribe admits (0: no limit); internal subscribers are not
	// counted.
	MaxSubscribersPerStream int
	Observer                Observer
	Logger                  *zap.Logger
}

// Errors returned by the Manager and by subscribers.
var (
	ErrStreamExists = errors.New("stream already has a publisher")
	ErrClosed       = errors.New("session closed")
	ErrTooSlow      = errors.New("subscriber stayed behind the live edge longer than its write timeout")
)

const maxRetainedFrames = 1 << 16

// Manager owns the groups, keyed by stream name only (the app name is
// recorded but not matched, as lal does).
type Manager struct {
	cfg    Config
	log    *zap.Logger
	epoch  time.Time
	mu     sync.Mutex
	groups map[string]*Group
	// pushWG counts the groups' push delivery goroutines.
	pushWG sync.WaitGroup
}

// WaitPush waits until no group has a push delivery goroutine; each ends
// once its group's push subscribers are all closed.
func (m *Manager) WaitPush() { m.pushWG.Wait() }

// NewManager makes a Manager serving the formats of cfg.
func NewManager(cfg Config) *Manager {
	if len(cfg.Formats) > maxFormats {
		panic(fmt.Sprintf("group: %d formats configured, at most %d supported", len(cfg.Formats), maxFormats))
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 5 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxRetainedBytes == 0 {
		cfg.MaxRetainedBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return &Manager{cfg: cfg, log: cfg.Logger, epoch: time.Now(), groups: map[string]*Group{}}
}

// WriteTimeout is the configured subscriber write timeout.
func (m *Manager) WriteTimeout() time.Duration { return m.cfg.WriteTimeout }

func (m *Manager) now() int64 { return int64(time.Since(m.epoch)) }

// Group returns the group of a stream, or nil.
func (m *Manager) Group(streamName string) *Group {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.groups[streamName]
}

// Groups returns the current groups.
func (m *Manager) Groups() []*Group {
	m.mu.Lock()
	defer m.mu.Unlock()
	gs := make([]*Group, 0, len(m.groups))
	for _, g := range m.groups {
		gs = append(gs, g)
	}
	return gs
}

// groupFor returns the group of streamName, creating it; m.mu must be held.
func (m *Manager) groupFor(streamName, appName string) *Group {
	g := m.groups[streamName]
	if g == nil {
		g = newGroup(m, streamName, appName)
		m.groups[streamName] = g
	}
	return g
}

// removeIfEmpty deletes g when it has no publisher, no subscriber and no
// input hold; m.mu and g.mu must be held.
func (m *Manager) removeIfEmpty(g *Group) {
	if g.pub == nil && len(g.subs) == 0 && g.inputHolds == 0 && m.groups[g.name] == g {
		delete(m.groups, g.name)
		m.log.Debug("group removed", zap.String("stream_name", g.name))
	}
}

func (m *Manager) emit(ev Event) {
	if m.cfg.Observer != nil {
		m.cfg.Observer.OnEvent(ev)
	}
}

// HoldInput reserves the input of streamName for a relay pull: the group is
// created (app "") if missing and lives until release is called, even with
// no session, so the stat API shows it while the pull connects; meanwhile
// only a BasePull publisher may publish to it (lal refuses a publisher that
// arrives while a pull connects). release may be called more than once.
func (m *Manager) HoldInput(streamName string) (release func()) {
	m.mu.Lock()
	g := m.groupFor(streamName, "")
	g.mu.Lock()
	g.inputHolds++
	g.mu.Unlock()
	m.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			g.mu.Lock()
			g.inputHolds--
			m.removeIfEmpty(g)
			g.mu.Unlock()
			m.mu.Unlock()
		})
	}
}

// Publish makes info the publisher of its stream. A stream that already has
// a publisher gives ErrStreamExists and the existing one keeps streaming; so
// does a stream whose input is held for a relay pull, unless info is that pull.
func (m *Manager) Publish(info SessionInfo) (*Publisher, error) {
	m.mu.Lock()
	g := m.groupFor(info.StreamName, info.AppName)
	g.mu.Lock()
	if g.pub != nil || (g.inputHolds > 0 && info.BaseType != BasePull) {
		existing := "relay pull in progress"
		if g.pub != nil {
			existing = g.pub.info.ID
		}
		m.removeIfEmpty(g)
		g.mu.Unlock()
		m.mu.Unlock()
		return nil, fmt.Errorf("%w (%s)", ErrStreamExists, existing)
	}
	if err := m.checkStreamLimit(g); err != nil {
		m.removeIfEmpty(g)
		g.mu.Unlock()
		m.mu.Unlock()
		return nil, err
	}
	p := &Publisher{g: g, info: info}
	g.pub = p
	g.startPublisher()
	ev := g.event(EventPubStart, &info)
	g.mu.Unlock()
	m.mu.Unlock()
	m.emit(ev)
	return p, nil
}

// Subscribe adds a subscriber of format f to its stream's group, creating
// the group if the stream has no publisher yet (the subscriber then waits).
func (m *Manager) Subscribe(info SessionInfo, f Format) *Sub {
	s, _ := m.subscribe(info, f, false)
	return s
}

// subscribe is Subscribe, refused with ErrSubscriberLimit when limited and
// the group has MaxSubscribersPerStream subscribers already.
func (m *Manager) subscribe(info SessionInfo, f Format, limited bool) (*Sub, error) {
	if int(f) < 0 || int(f) >= len(m.cfg.Formats) {
		panic(fmt.Sprintf("group: unknown format %d", f))
	}
	m.mu.Lock()
	g := m.groupFor(info.StreamName, info.AppName)
	g.mu.Lock()
	if limited {
		if err := m.checkSubscriberLimit(g); err != nil {
			m.removeIfEmpty(g)
			g.mu.Unlock()
			m.mu.Unlock()
			return nil, err
		}
	}
	s := &Sub{g: g, format: f, info: info, done: make(chan struct{})}
	g.activate(f)
	g.subs[s] = struct{}{}
	g.placeJoiner(s)
	ev := g.event(EventSubStart, &info)
	g.mu.Unlock()
	m.mu.Unlock()
	if !info.Internal {
		m.emit(ev)
	}
	return s, nil
}

// Group is one stream: a publisher, its subscribers and the log of recent
// frames they read from.
type Group struct {
	m       *Manager
	name    string
	appName string
	created time.Time

	mu     sync.RWMutex
	pub    *Publisher
	subs   map[*Sub]struct{}
	muxers [maxFormats]Muxer
	active [maxFormats]bool
	log    *frameLog
	wake   chan struct{}
	// stopMu orders the stop events of the group's sessions as their
	// removals happened: a stop holds it from its removal until its event
	// is emitted (so a subscriber's on_sub_stop cannot overtake by its
	// publisher's on_pub_stop that followed it). Taken before m.mu; not by
	// internal subscribers, which an observer may close while handling an
	// event.
	stopMu sync.Mutex
	// lastWake is when wake was last closed, on the Manager's clock.
	lastWake int64
	// Push-mode subscribers and their delivery goroutine (push.go).
	pushSubs    []*Sub
	pushRunning bool
	pushKick    chan struct{}

	// Decoder configuration currently in effect, sent to joiners first.
	meta, videoHeader, audioHeader *Frame
	hasVideo, hasAudio             bool
	mediaSeen                      bool     // a non-header audio or video frame arrived
	gopStarts                      []uint64 // seqs of cached keyframes, oldest first
	gopFrames                      int      // frames in the newest GOP
	gopTooBigLogged                bool

	tracks av.TrackInfo
	stats  groupStats

	inputHolds int // HoldInput reservations (relay pulls) keeping the group
}

func newGroup(m *Manager, name, app string) *Group {
	g := &Group{
		m:        m,
		name:     name,
		appName:  app,
		created:  time.Now(),
		subs:     map[*Sub]struct{}{},
		log:      newFrameLog(),
		wake:     make(chan struct{}),
		pushKick: make(chan struct{}, 1),
	}
	return g
}

// HasInSession reports whether the group has a publisher (or pull).
func (g *Group) HasInSession() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.pub != nil
}

// HasOutSession reports whether the group has any subscriber, internal
// ones (relay pushes) included.
func (g *Group) HasOutSession() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.subs) > 0
}

// Name returns the stream name.
func (g *Group) Name() string { return g.name }

// AppName returns the app name of the session that created the group.
func (g *Group) AppName() string { return g.appName }

// activate starts encoding format f in this group. A format stays active for
// the group's life, so the only time a frame's bytes for f are written after
// the frame was published is here, while no reader of f exists. g.mu held.
func (g *Group) activate(f Format) {
	if g.active[f] {
		return
	}
	spec := g.m.cfg.Formats[f]
	g.muxers[f] = spec.NewMuxer(g.name)
	g.active[f] = true
	// Replay the decoder configuration and the retained frames through the
	// new muxer, in stream order, so that a stateful muxer (TS) is primed.
	for _, fr := range []*Frame{g.meta, g.videoHeader, g.audioHeader} {
		if fr != nil && fr.seq < g.log.tail {
			fr.mux(f, g.muxers[f])
		}
	}
	for s := g.log.tail; s < g.log.head; s++ {
		g.log.at(s).mux(f, g.muxers[f])
	}
}

// placeJoiner sets a new subscriber's cursor: at a cached keyframe of its
// format's GOP cache, else at the live edge (waiting for the next keyframe
// when the stream has video). g.mu held.
func (g *Group) placeJoiner(s *Sub) {
	s.cursor = g.log.head
	if g.pub == nil {
		return
	}
	s.needInit = true
	if !g.hasVideo {
		return
	}
	n := g.m.cfg.Formats[s.format].GOPNum
	if n > 0 && len(g.gopStarts) > 0 {
		i := len(g.gopStarts) - n
		if i < 0 {
			i = 0
		}
		s.cursor = g.gopStarts[i]
		return
	}
	s.waitKey = true
}

func (g *Group) startPublisher() {
	g.gopStarts = g.gopStarts[:0]
	g.gopFrames = 0
	g.meta, g.videoHeader, g.audioHeader = nil, nil, nil
	g.hasVideo, g.hasAudio, g.mediaSeen = false, false, false
	g.stats.reset()
}

// maxGOPNum is the largest GOP cache of any format.
func (g *Group) maxGOPNum() int {
	n := 0
	for _, f := range g.m.cfg.Formats {
		if f.GOPNum > n {
			n = f.GOPNum
		}
	}
	return n
}

// write appends one packet of the publisher to the log. g.mu held.
func (g *Group) write(pkt *av.Packet, seg *segments) {
	fr := &Frame{Packet: pkt, seg: seg}
	for f := range g.m.cfg.Formats {
		if g.active[f] {
			fr.mux(Format(f), g.muxers[f])
		}
	}
	g.updateTracks(pkt, fr)

	isKey := pkt.Kind == av.KindVideo && pkt.KeyFrame && !pkt.SeqHeader
	if isKey {
		g.hasVideo = true
		if max := g.maxGOPNum(); max > 0 {
			g.gopStarts = append(g.gopStarts, g.log.head)
			if len(g.gopStarts) > max {
				g.gopStarts = append(g.gopStarts[:0], g.gopStarts[len(g.gopStarts)-max:]...)
			}
		}
		g.gopFrames = 0
		g.gopTooBigLogged = false
	}
	switch pkt.Kind {
	case av.KindVideo:
		g.hasVideo = true
		g.mediaSeen = g.mediaSeen || !pkt.SeqHeader
	case av.KindAudio:
		g.hasAudio = true
		g.mediaSeen = g.mediaSeen || !pkt.SeqHeader
	}
	g.gopFrames++
	if limit := g.m.cfg.SingleGOPMaxFrameNum; limit > 0 && g.gopFrames > limit && len(g.gopStarts) > 0 {
		// The newest GOP is too long to cache: joiners start at an older one
		// or wait for the next keyframe.
		g.gopStarts = g.gopStarts[:len(g.gopStarts)-1]
		if !g.gopTooBigLogged {
			g.gopTooBigLogged = true
			g.m.log.Warn("GOP exceeds single_gop_max_frame_num, not cached",
				zap.String("stream_name", g.name), zap.Int("single_gop_max_frame_num", limit))
		}
	}

	now := g.m.now()
	fr.arrival = now
	g.log.append(fr)
	g.evict(now)
	g.stats.onPacket(pkt)

	// Video frames, headers and metadata wake the subscribers at once; audio
	// frames of a stream with video ride along with the next wake unless
	// the last one is audioWakeInterval old. One writev then carries a video
	// frame and the audio around it: about half the system calls and
	// goroutine wake-ups per subscriber, with no delay added to video.
	if pkt.Kind != av.KindAudio || pkt.SeqHeader || !g.hasVideo || now-g.lastWake >= int64(audioWakeInterval) {
		g.lastWake = now
		close(g.wake)
		g.wake = make(chan struct{})
	}
}

// audioWakeInterval bounds how long an audio frame of a stream with video
// waits for the next wake (a video frame normally comes first).
const audioWakeInterval = 50 * time.Millisecond

// evict drops frames that neither the GOP cache nor the lag window needs.
func (g *Group) evict(now int64) {
	keep := g.log.head
	if len(g.gopStarts) > 0 {
		keep = g.gopStarts[0]
	}
	minArrival := now - int64(g.m.cfg.MaxLag)
	for g.log.tail < g.log.head {
		hard := g.log.len() > maxRetainedFrames || g.log.bytesFrom(g.log.tail) > g.m.cfg.MaxRetainedBytes
		if !hard && (g.log.tail >= keep || g.log.at(g.log.tail).arrival >= minArrival) {
			break
		}
		g.log.evictOldest()
	}
	for len(g.gopStarts) > 0 && g.gopStarts[0] < g.log.tail {
		g.gopStarts = g.gopStarts[1:]
	}
}

// updateTracks keeps the decoder configuration and the stat fields current.
func (g *Group) updateTracks(pkt *av.Packet, fr *Frame) {
	switch pkt.Kind {
	case av.KindData:
		g.meta = fr
	case av.KindVideo:
		g.tracks.VideoCodec = pkt.Codec
		if pkt.SeqHeader {
			g.videoHeader = fr
			g.tracks.VideoConfig = pkt.Data()
			if vc, err := flv.ParseVideoConfig(pkt.Codec, pkt.Data()); err == nil {
				g.tracks.Width, g.tracks.Height = vc.Width, vc.Height
			} else {
				g.m.log.Debug("video sequence header not parsed", zap.String("stream_name", g.name), zap.Error(err))
			}
		}
	case av.KindAudio:
		g.tracks.AudioCodec = pkt.Codec
		if pkt.SeqHeader {
			g.audioHeader = fr
			g.tracks.AudioConfig = pkt.Data()
			if ac, err := flv.ParseAudioConfig(pkt.Data()); err == nil {
				g.tracks.SampleRate, g.tracks.Channels = ac.SampleRate, ac.Channels
			}
		}
	}
}

// event builds a lifecycle event with the group's state after the change.
// g.mu held.
func (g *Group) event(t EventType, info *SessionInfo) Event {
	r, w := info.bytes()
	return Event{
		Type:          t,
		Session:       *info,
		ReadBytes:     r,
		WrittenBytes:  w,
		HasInSession:  g.pub != nil,
		HasOutSession: len(g.subs) > 0,
	}
}

// Publisher is the input side of a group.
type Publisher struct {
	g      *Group
	info   SessionInfo
	closed bool
}

// Info returns the publisher's session info.
func (p *Publisher) Info() SessionInfo { return p.info }

// WritePacket appends pkt to the stream. The group takes ownership of pkt and
// its payload. It never blocks on subscribers.
func (p *Publisher) WritePacket(pkt *av.Packet) {
	g := p.g
	g.mu.Lock()
	if !p.closed {
		g.write(pkt, nil)
	}
	g.mu.Unlock()
}

// WriteSegments publishes one frame whose bytes are the slices in (joined,
// they are what pkt.Payload would be; pkt carries the rest). Formats whose
// muxer is a SegmentMuxer encode it from in, and may keep referencing in's
// slices: neither in nor the bytes it refers to may be modified afterwards.
// Other muxers get pkt as it is.
func (p *Publisher) WriteSegments(pkt *av.Packet, in [][]byte) {
	g := p.g
	g.mu.Lock()
	if !p.closed {
		g.write(pkt, &segments{in: in})
	}
	g.mu.Unlock()
}

// Close removes the publisher. Subscribers stay and resume when a new
// publisher arrives.
func (p *Publisher) Close() {
	g := p.g
	m := g.m
	g.stopMu.Lock() // see stopMu
	defer g.stopMu.Unlock()
	m.mu.Lock()
	g.mu.Lock()
	if p.closed {
		g.mu.Unlock()
		m.mu.Unlock()
		return
	}
	p.closed = true
	g.pub = nil
	g.startPublisher()
	g.log.reset()
	for s := range g.subs {
		s.cursor = g.log.head
	}
	ev := g.event(EventPubStop, &p.info)
	m.removeIfEmpty(g)
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
	m.mu.Unlock()
	m.emit(ev)
}

// Sub is one subscriber: a cursor into its group's log, read by the
// subscriber's writer.
type Sub struct {
	g      *Group
	format Format
	info   SessionInfo
	done   chan struct{}
	once   sync.Once

	// Read position and catch-up state; guarded by g.mu.
	cursor      uint64
	needInit    bool
	waitKey     bool
	behindSince int64 // start of the current episode of skips
	lastSkip    int64
	dropped     atomic.Uint64

	// Push mode (push.go): set once by Push, before the sub is listed in
	// g.pushSubs.
	push *pushState
}

// Info returns the subscriber's session info.
func (s *Sub) Info() SessionInfo { return s.info }

// Group returns the subscriber's group.
func (s *Sub) Group() *Group { return s.g }

// Done is closed when the subscriber has been closed.
func (s *Sub) Done() <-chan struct{} { return s.done }

// maxBatch bounds the frames one Next returns, so one writev stays modest.
const maxBatch = 128

// Next appends to dst the encoded bytes of the frames the subscriber has not
// had yet, waiting until there is at least one. It returns ErrClosed after
// Close and ErrTooSlow when the subscriber stayed behind too long.
func (s *Sub) Next(dst [][]byte) ([][]byte, error) { return s.NextUntil(dst, nil) }

// NextUntil is Next, giving up (with dst unchanged and a nil error) when
// stop is closed first.
func (s *Sub) NextUntil(dst [][]byte, stop <-chan struct{}) ([][]byte, error) {
	g := s.g
	for {
		// The read lock: only this subscriber's reader moves its cursor;
		// Publisher.Close and the join, which also set it, hold the write
		// lock. Many subscribers collect at once.
		g.mu.RLock()
		var err error
		dst, err = s.collect(dst)
		wake := g.wake
		g.mu.RUnlock()
		if err != nil || len(dst) > 0 {
			return dst, err
		}
		select {
		case <-wake:
		case <-s.done:
			return dst, ErrClosed
		case <-stop:
			return dst, nil
		}
	}
}

// collect gathers the subscriber's pending bytes. g.mu held, for reading at
// least: only the subscriber's own reader (its Next, or the push delivery)
// calls it.
func (s *Sub) collect(dst [][]byte) ([][]byte, error) {
	g := s.g
	select {
	case <-s.done:
		return dst, ErrClosed
	default:
	}
	l := g.log
	now := g.m.now()
	if s.cursor < l.head && (s.cursor < l.tail || l.at(s.cursor).arrival < now-int64(g.m.cfg.MaxLag)) {
		// Skips that follow each other within the write timeout are one
		// episode of being behind; an episode longer than that ends the
		// subscriber.
		timeout := int64(g.m.cfg.WriteTimeout)
		if s.lastSkip == 0 || now-s.lastSkip > timeout {
			s.behindSince = now
		} else if now-s.behindSince > timeout {
			return dst, ErrTooSlow
		}
		s.lastSkip = now
		target := l.head
		if n := len(g.gopStarts); n > 0 && g.gopStarts[n-1] > s.cursor {
			target = g.gopStarts[n-1]
		} else if g.hasVideo {
			s.waitKey = true
		}
		s.dropped.Add(target - s.cursor)
		s.cursor = target
		s.needInit = true
	}
	if s.needInit {
		s.needInit = false
		for _, fr := range []*Frame{g.meta, g.videoHeader, g.audioHeader} {
			if fr != nil && fr.seq < s.cursor {
				dst = fr.appendBytes(dst, s.format)
			}
		}
		if jh, ok := g.muxers[s.format].(JoinHeaderMuxer); ok && !g.hasVideo {
			if b := jh.JoinHeader(); b != nil {
				dst = append(dst, b)
			}
		}
	}
	for n := 0; s.cursor < l.head && n < maxBatch; n++ {
		fr := l.at(s.cursor)
		s.cursor++
		if s.waitKey {
			p := fr.Packet
			switch {
			case p.Kind == av.KindVideo && p.KeyFrame && !p.SeqHeader:
				s.waitKey = false
			case p.SeqHeader || p.Kind == av.KindData:
			default:
				continue
			}
		}
		dst = fr.appendBytes(dst, s.format)
	}
	return dst, nil
}

// Tracks says whether the stream has audio and video, as far as the
// publisher's first frames tell; both are true while that is not yet known.
func (s *Sub) Tracks() (hasAudio, hasVideo bool) {
	g := s.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.pub == nil || !g.mediaSeen {
		return true, true
	}
	return g.hasAudio, g.hasVideo
}

// Dropped returns the number of frames skipped because the subscriber fell
// behind.
func (s *Sub) Dropped() uint64 {
	return s.dropped.Load()
}

// Close removes the subscriber from its group. It is safe to call more than
// once and from any goroutine.
func (s *Sub) Close() {
	s.once.Do(func() {
		g := s.g
		m := g.m
		if !s.info.Internal {
			g.stopMu.Lock() // see stopMu
			defer g.stopMu.Unlock()
		}
		m.mu.Lock()
		g.mu.Lock()
		close(s.done)
		delete(g.subs, s)
		g.removePush(s)
		ev := g.event(EventSubStop, &s.info)
		m.removeIfEmpty(g)
		g.mu.Unlock()
		m.mu.Unlock()
		if !s.info.Internal {
			m.emit(ev)
		}
	})
}
