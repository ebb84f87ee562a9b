package rtsp

import (
	"bytes"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/group"
)

// Stream limits.
const (
	// maxQueue bounds the packets waiting for the feeder; more are dropped.
	maxQueue = 8192
	// trackSettleMS is how much media (by timestamp) a stream that has shown
	// only audio or only video must have before it is described without
	// the other kind.
	trackSettleMS = 1000
	// activationWait bounds how long the feeder holds a key frame back
	// while the players it released finish their PLAY.
	activationWait = time.Second
	// keyFrameWait bounds how long a PLAY waits for the next key frame.
	keyFrameWait = 5 * time.Second
	// maxTimestampJump is the forward jump of the stream's timestamps
	// beyond which the output clock is rebased (a new publisher, a wrap);
	// any backward jump of more than a second also rebases it.
	maxTimestampJump = 10000
)

// Stream is the RTSP output of one stream: a gortsplib.ServerStream that
// every player of the stream reads, fed with the stream's av.Packets. Each
// packet is packetised into RTP once and gortsplib shares the bytes among
// the players. WritePacket never blocks: a goroutine of the Stream (the
// feeder) does the work.
//
// The play description follows the packets: it is built once the decoder
// configuration is known, updated in place when only the H.264/H.265
// parameter sets change, and replaced (its players disconnected) when a
// track's codec or AAC configuration changes.
type Stream struct {
	srv  *Server
	name string
	log  *zap.Logger

	mu      sync.Mutex
	queue   []*av.Packet
	wake    chan struct{} // 1-buffered: the queue has packets or closed is set
	closed  bool
	gen     *generation
	changed chan struct{} // closed and replaced whenever gen changes
	waiters map[*playWaiter]struct{}
	dropped bool
	done    chan struct{}

	// Feeder state.
	cfg         trackConfig
	loggedCodec map[av.Codec]bool
	firstMedia  int64
	haveMedia   bool
	lastTS      int64
	haveTS      bool
	tsOffset    int64
}

// generation is one play description and the ServerStream that serves it.
type generation struct {
	stream       *gortsplib.ServerStream
	video, audio *outputTrack
	// ntpBase is the wall-clock time of media time 0 (the RTCP sender
	// reports' mapping).
	ntpBase time.Time
	// Feeder state: video held back for the audio, and the audio's
	// presentation time so far.
	held     []heldVideo
	audioPTS int64

	// Direct play (direct.go): the shadow stream its players' SETUP and
	// PLAY name, the fan group its frames go to, and its players.
	shadow    *gortsplib.ServerStream
	fanKey    string
	fanPub    *group.Publisher
	fanKeyed  bool // the fan has had its first key frame
	ssrc      [2]uint32
	dmu       sync.Mutex
	directs   map[*directPlay]struct{}
	withdrawn bool
}

// playWaiter is a PLAY held back until the next key frame.
type playWaiter struct {
	gen       *generation
	release   chan struct{} // closed by the feeder: activate now
	activated chan struct{} // closed once the PLAY response is out (or never will be)
	once      sync.Once
}

func (w *playWaiter) activate() { w.once.Do(func() { close(w.activated) }) }

func newStream(srv *Server, name string) *Stream {
	st := &Stream{
		srv:         srv,
		name:        name,
		log:         srv.log.With(zap.String("stream_name", name)),
		wake:        make(chan struct{}, 1),
		changed:     make(chan struct{}),
		waiters:     map[*playWaiter]struct{}{},
		done:        make(chan struct{}),
		loggedCodec: map[av.Codec]bool{},
	}
	go st.run()
	return st
}

// Name returns the stream name.
func (st *Stream) Name() string { return st.name }

// WritePacket queues pkt for the stream's players. pkt is read, never
// modified, and may be shared with other readers.
func (st *Stream) WritePacket(pkt *av.Packet) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	if len(st.queue) >= maxQueue {
		if !st.dropped {
			st.dropped = true
			st.log.Warn("rtsp output queue full, dropping packets")
		}
		st.mu.Unlock()
		return
	}
	st.queue = append(st.queue, pkt)
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// Close stops the stream and disconnects its players.
func (st *Stream) Close() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		<-st.done
		return
	}
	st.closed = true
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
	<-st.done
}

// current returns the current generation (nil while the tracks are not
// known) and a channel closed when it changes.
func (st *Stream) current() (*generation, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, nil
	}
	return st.gen, st.changed
}

func (st *Stream) run() {
	defer close(st.done)
	for {
		st.mu.Lock()
		for len(st.queue) == 0 && !st.closed {
			st.mu.Unlock()
			<-st.wake
			st.mu.Lock()
		}
		if st.closed {
			st.mu.Unlock()
			st.setGen(nil, "stream closed")
			return
		}
		batch := st.queue
		st.queue = nil
		st.dropped = false
		st.mu.Unlock()
		for _, p := range batch {
			st.process(p)
		}
	}
}

// setGen replaces the current generation, closing the old one's stream
// (which disconnects its players) and releasing PLAYs waiting on it.
func (st *Stream) setGen(g *generation, why string) {
	st.mu.Lock()
	old := st.gen
	if old == g {
		st.mu.Unlock()
		return
	}
	st.gen = g
	close(st.changed)
	st.changed = make(chan struct{})
	var released []*playWaiter
	for w := range st.waiters {
		if w.gen == old {
			delete(st.waiters, w)
			released = append(released, w)
		}
	}
	st.mu.Unlock()
	for _, w := range released {
		close(w.release)
	}
	if old != nil {
		old.withdraw()
		old.stream.Close()
		st.log.Info("rtsp description withdrawn", zap.String("reason", why))
	}
}

// process handles one packet in the feeder.
func (st *Stream) process(p *av.Packet) {
	switch p.Kind {
	case av.KindVideo:
		if p.Codec != av.CodecH264 && p.Codec != av.CodecH265 {
			st.unsupported(p.Codec, "video")
			return
		}
		if p.SeqHeader {
			vc, err := flv.ParseVideoConfig(p.Codec, p.Data())
			if err != nil {
				st.log.Warn("rtsp: video sequence header not usable", zap.Error(err))
				return
			}
			st.updateVideo(p.Codec, vc)
			return
		}
		if st.cfg.videoCodec != p.Codec || st.cfg.video == nil || len(p.Data()) == 0 {
			return
		}
	case av.KindAudio:
		switch p.Codec {
		case av.CodecAAC:
			if p.SeqHeader {
				st.updateAAC(p.Data())
				return
			}
			if st.cfg.audioCodec != av.CodecAAC || st.cfg.ascParsed == nil {
				return
			}
		case av.CodecPCMA, av.CodecPCMU, av.CodecOpus:
			if st.cfg.audioCodec != p.Codec {
				st.cfg.audioCodec, st.cfg.asc, st.cfg.ascParsed = p.Codec, nil, nil
				st.configChanged("audio codec is now " + p.Codec.String())
			}
		default:
			st.unsupported(p.Codec, "audio")
			return
		}
		if len(p.Data()) == 0 {
			return
		}
	default:
		return
	}

	ts := st.timestamp(p.Timestamp)
	g := st.currentGen()
	if g == nil {
		if !st.haveMedia {
			st.haveMedia, st.firstMedia = true, ts
		}
		if !(st.cfg.hasVideo() && st.cfg.hasAudio()) && ts-st.firstMedia < trackSettleMS && !st.sourceComplete() {
			return
		}
		g = st.build(ts)
		if g == nil {
			return
		}
	}
	if p.Kind == av.KindVideo {
		if g.video == nil {
			return
		}
		if g.audio == nil {
			st.write(g, g.video, p, ts)
			return
		}
		// Video waits until the audio has reached its presentation time
		// (see heldVideo), then goes out in decode order.
		g.held = append(g.held, heldVideo{p, ts})
		st.releaseVideo(g, ts)
		return
	}
	if g.audio == nil {
		return
	}
	st.write(g, g.audio, p, ts)
	if pts := ts + int64(p.CTS); pts > g.audioPTS {
		g.audioPTS = pts
	}
	st.releaseVideo(g, -1)
}

// heldVideo is a video packet waiting for the audio to catch up. Players
// (ffmpeg among them) place a stream's timeline at its first packet until
// the first RTCP sender report, then at the report's NTP time: an audio
// track whose first packet presents before the first video frame then jumps
// backwards. So a key frame goes out (and players waiting for it are let in)
// only once the audio that presents before it has gone out: a player's
// first audio packet never presents before its first video frame. The video
// is delayed by about its composition offset.
type heldVideo struct {
	p  *av.Packet
	ts int64
}

// maxVideoHoldMS bounds how far (in DTS) video is held while no audio
// comes.
const maxVideoHoldMS = 1000

// releaseVideo writes the held video packets whose presentation time the
// audio has reached, in order; lastDTS (or -1) is the newest video DTS.
func (st *Stream) releaseVideo(g *generation, lastDTS int64) {
	n := 0
	for _, h := range g.held {
		pts := h.ts + int64(h.p.CTS)
		if pts > g.audioPTS && (lastDTS < 0 || lastDTS-h.ts < maxVideoHoldMS) {
			break
		}
		st.write(g, g.video, h.p, h.ts)
		n++
	}
	if n > 0 {
		g.held = append(g.held[:0], g.held[n:]...)
	}
}

// write packetises one packet and hands its RTP packets to the stream; a
// key frame (or any packet of a stream without video) first lets in the
// players waiting for one.
func (st *Stream) write(g *generation, t *outputTrack, p *av.Packet, ts int64) {
	if (p.Kind == av.KindVideo && p.KeyFrame) || g.video == nil {
		st.releaseWaiters(g)
	}
	ticks := t.rtpTime(ts + int64(p.CTS))
	pkts, err := t.encode(p, uint32(ticks))
	if err != nil {
		st.log.Debug("rtsp: packetising failed", zap.Error(err))
		return
	}
	ntp := t.ntpTime(g.ntpBase, ticks)
	if g.fanPub != nil {
		g.fanWrite(t, p, pkts, uint32(ticks), ntp, ts)
	}
	for i := range pkts {
		if err := g.stream.WritePacketRTPWithNTP(t.media, pkts[i].packet(), ntp); err != nil {
			st.log.Debug("rtsp: writing RTP failed", zap.Error(err))
			return
		}
	}
}

// timestamp maps a packet's DTS onto the output clock, which stays
// continuous when the input's timestamps jump (a new publisher).
func (st *Stream) timestamp(in int64) int64 {
	ts := in + st.tsOffset
	if st.haveTS && (ts < st.lastTS-1000 || ts > st.lastTS+maxTimestampJump) {
		st.tsOffset += st.lastTS + 1 - ts
		ts = st.lastTS + 1
	}
	if !st.haveTS || ts > st.lastTS {
		st.lastTS, st.haveTS = ts, true
	}
	return ts
}

func (st *Stream) currentGen() *generation {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gen
}

func (st *Stream) unsupported(c av.Codec, kind string) {
	if !st.loggedCodec[c] {
		st.loggedCodec[c] = true
		st.log.Info("rtsp output leaves out a track it cannot carry", zap.String("kind", kind), zap.String("codec", c.String()))
	}
}

// sourceComplete reports whether the stream's RTSP publisher announced no
// supported track that has not shown up yet.
func (st *Stream) sourceComplete() bool {
	src := st.srv.sourceDescription(st.name)
	if src == nil {
		return false
	}
	wantVideo, wantAudio := false, false
	for _, m := range src.Medias {
		for _, f := range m.Formats {
			switch f.(type) {
			case *format.H264, *format.H265:
				wantVideo = true
			case *format.MPEG4Audio, *format.G711, *format.Opus:
				wantAudio = true
			}
		}
	}
	return (st.cfg.hasVideo() || !wantVideo) && (st.cfg.hasAudio() || !wantAudio) && (wantVideo || wantAudio)
}

// build makes a generation from the current track configuration.
func (st *Stream) build(ts int64) *generation {
	desc, video, audio, err := buildOutput(&st.cfg, st.srv.sourceDescription(st.name))
	if err != nil {
		st.log.Warn("rtsp: cannot describe the stream", zap.Error(err))
		return nil
	}
	ss := &gortsplib.ServerStream{Server: st.srv.rs, Desc: desc}
	if err := ss.Initialize(); err != nil {
		st.log.Warn("rtsp: cannot set up the stream", zap.Error(err))
		return nil
	}
	g := &generation{stream: ss, video: video, audio: audio, ntpBase: time.Now().Add(-time.Duration(ts) * time.Millisecond)}
	st.setupDirect(g, desc)
	fields := []zap.Field{}
	for _, m := range desc.Medias {
		fields = append(fields, zap.String(string(m.Type), formatName(m.Formats[0])))
	}
	st.log.Info("rtsp description ready", fields...)
	st.setGen(g, "")
	return g
}

// updateVideo takes a new video decoder configuration.
func (st *Stream) updateVideo(codec av.Codec, vc *flv.VideoConfig) {
	old := st.cfg.video
	st.cfg.videoCodec, st.cfg.video = codec, vc
	g := st.currentGen()
	if g == nil {
		return
	}
	if g.video == nil || old == nil || old.Codec != codec {
		st.configChanged("video codec is now " + codec.String())
		return
	}
	if sameSets(old, vc) && old.NALULengthSize == vc.NALULengthSize {
		return
	}
	// Same codec, new parameter sets: update the description in place;
	// players get the new sets in band in front of the next key frame.
	switch f := g.video.format.(type) {
	case *format.H264:
		f.SafeSetParams(vc.SPS[0], first(vc.PPS))
		g.video.vp.setParams(vc.NALULengthSize, [][]byte{vc.SPS[0], first(vc.PPS)})
	case *format.H265:
		f.SafeSetParams(first(vc.VPS), vc.SPS[0], first(vc.PPS))
		g.video.vp.setParams(vc.NALULengthSize, [][]byte{first(vc.VPS), vc.SPS[0], first(vc.PPS)})
	}
	g.stream.ReloadDesc()
	if g.shadow != nil {
		g.shadow.ReloadDesc()
	}
}

func sameSets(a, b *flv.VideoConfig) bool {
	eq := func(x, y [][]byte) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return eq(a.VPS, b.VPS) && eq(a.SPS, b.SPS) && eq(a.PPS, b.PPS)
}

// updateAAC takes a new AudioSpecificConfig.
func (st *Stream) updateAAC(asc []byte) {
	if st.cfg.audioCodec == av.CodecAAC && bytes.Equal(asc, st.cfg.asc) {
		return
	}
	var conf mpeg4audio.AudioSpecificConfig
	if err := conf.Unmarshal(asc); err != nil || conf.SampleRate <= 0 {
		st.log.Warn("rtsp: AAC sequence header not usable", zap.Error(err))
		return
	}
	st.cfg.audioCodec, st.cfg.asc, st.cfg.ascParsed = av.CodecAAC, bytes.Clone(asc), &conf
	st.configChanged("new AAC configuration")
}

// configChanged withdraws the current description: a new one is built
// from the next packets, and its players have to reconnect.
func (st *Stream) configChanged(why string) {
	if st.currentGen() != nil {
		st.setGen(nil, why)
		st.haveMedia = false
	}
}

// addWaiter registers a PLAY of a player of g, to be activated in front of
// the next key frame. It returns nil when g is no longer current.
func (st *Stream) addWaiter(g *generation) *playWaiter {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || st.gen != g {
		return nil
	}
	w := &playWaiter{gen: g, release: make(chan struct{}), activated: make(chan struct{})}
	st.waiters[w] = struct{}{}
	return w
}

// removeWaiter withdraws a waiter that gave up; it reports whether the
// feeder had not released it yet.
func (st *Stream) removeWaiter(w *playWaiter) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.waiters[w]
	delete(st.waiters, w)
	return ok
}

// releaseWaiters lets the PLAYs waiting on g go and waits (bounded) until
// their players are active, so that they get the packet about to be written.
func (st *Stream) releaseWaiters(g *generation) {
	st.mu.Lock()
	if len(st.waiters) == 0 {
		st.mu.Unlock()
		return
	}
	var ws []*playWaiter
	for w := range st.waiters {
		if w.gen == g {
			delete(st.waiters, w)
			ws = append(ws, w)
		}
	}
	st.mu.Unlock()
	for _, w := range ws {
		close(w.release)
	}
	timer := time.NewTimer(activationWait)
	defer timer.Stop()
	for _, w := range ws {
		select {
		case <-w.activated:
		case <-timer.C:
			st.log.Debug("rtsp: a player was not activated in time")
			return
		}
	}
}
