package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/netx"
)

// Direct play. gortsplib writes every RTP packet to every TCP player with a
// system call of its own, from a goroutine and a queue per player: a
// thousand players of one stream cost a core. Players on plain TCP
// connections are served the way HTTP-FLV players are instead: each
// generation of a Stream frames its RTP and RTCP packets as interleaved
// binary data once ("$", channel, length, packet), and appends them, one
// access unit per frame, to a group of the server's private fan-out
// (group.Manager). The group keeps the last GOP and writes to all its
// players from one goroutine, many frames per writev, without waiting on
// any socket (netx). A player starts at the cached key frame: no wait for
// the next one.
//
// gortsplib still runs the RTSP side of such a session: its SETUP and PLAY
// name a shadow ServerStream of the generation, with the same description,
// into which nothing is ever written. The connection (guardConn) lets the
// direct writes and gortsplib's responses take turns (wmu), and starts the
// direct writes right after the PLAY response, whose RTP-Info names the
// first packet of each track the player gets.
//
// Players that cannot be served this way (UDP, RTSPS, a connection netx
// cannot write, interleaved channels outside fanMaps) read the generation's
// gortsplib ServerStream as before.

// fanMaps are the interleaved channel maps direct play serves: the RTP
// channel of the description's first and second media, -1 for a media not
// set up. A media's RTCP channel is the next one. Clients number their
// channel pairs from 0 in SETUP order, so these cover a player that sets up
// both medias in order, or either one alone.
var fanMaps = [...][2]int{{0, 2}, {0, -1}, {-1, 0}, {-1, 2}}

// fanMuxer gives each fan format its bytes: the frames of the generation,
// written with the channels of fanMaps[0], renumbered to its map (copied
// once per stream, not per player) or left out for a media not set up. A
// frame is written as slices (fanWrite): the headers it makes, and the media
// bytes of the stream's packets, which no format copies.
type fanMuxer struct{ m [2]int }

func (f fanMuxer) Mux(pkt *av.Packet) []byte {
	out := f.MuxSegments(pkt, nil)
	if len(out) != 1 {
		return nil
	}
	return out[0]
}

// MuxSegments renumbers the channels by copying the slices that hold the
// frames' headers; the others stay shared.
func (f fanMuxer) MuxSegments(pkt *av.Packet, in [][]byte) [][]byte {
	if in == nil {
		in = [][]byte{pkt.Payload}
	}
	if len(in) == 0 || len(in[0]) < 4 {
		return nil
	}
	mi := int(in[0][1] / 2)
	if mi >= len(f.m) || f.m[mi] < 0 {
		return nil
	}
	ch := byte(f.m[mi])
	if ch == in[0][1]&^1 {
		return in
	}
	out := append([][]byte(nil), in...)
	copied := -1
	ok := interleavedFrames(in, func(i int, head []byte) {
		if copied != i {
			out[i], copied = bytes.Clone(in[i]), i
		}
		out[i][len(in[i])-len(head)+1] = ch | head[1]&1
	})
	if !ok {
		return nil
	}
	return out
}

// interleavedFrames calls fn with the start of every interleaved frame
// ('$', channel, length, packet) in bufs: the slice it begins in (its index)
// from the frame's first byte on. A frame may span slices, but its first 4
// bytes are in one (fanWrite keeps each frame's headers in one slice). It
// returns false at bytes that are not a frame.
func interleavedFrames(bufs [][]byte, fn func(i int, head []byte)) bool {
	skip := 0
	for i, b := range bufs {
		for skip < len(b) {
			head := b[skip:]
			if len(head) < 4 || head[0] != '$' {
				return false
			}
			fn(i, head)
			skip += 4 + int(binary.BigEndian.Uint16(head[2:]))
		}
		skip -= len(b)
	}
	return skip == 0
}

// newFan makes the private fan-out of direct play.
func newFan(writeTimeout time.Duration, log *zap.Logger) *group.Manager {
	specs := make([]group.FormatSpec, len(fanMaps))
	for i, m := range fanMaps {
		specs[i] = group.FormatSpec{
			Name:     "rtsp-interleaved-" + strconv.Itoa(i),
			GOPNum:   1,
			NewMuxer: func(string) group.Muxer { return fanMuxer{m} },
		}
	}
	return group.NewManager(group.Config{Formats: specs, WriteTimeout: writeTimeout, Logger: log})
}

// fanFormat is the fan format of a session's channel map.
func fanFormat(m [2]int) (group.Format, bool) {
	for i, fm := range fanMaps {
		if fm == m {
			return group.Format(i), true
		}
	}
	return 0, false
}

// srInterval is how often an audio-only generation sends RTCP sender
// reports; with video, each track's report goes out with each key frame.
const srInterval = time.Second

// fanWrite frames the RTP packets of one access unit of track t and appends
// them to the generation's fan group; a key frame (and the first audio after
// it) is preceded by its track's sender report, so that a player starting
// there can place the tracks on one clock at once.
func (g *generation) fanWrite(t *outputTrack, p *av.Packet, pkts []rtpOut, rtpTS uint32, ntp time.Time, ts int64) {
	key := p.Kind == av.KindVideo && p.KeyFrame
	if g.video != nil && !g.fanKeyed {
		// The fan starts at a key frame: a player that joins before the
		// first one then gets it first (the group knows of no video yet).
		if !key {
			return
		}
		g.fanKeyed = true
	}
	sr := key
	if t == g.audio {
		switch {
		case t.srDue:
			sr, t.srDue = true, false
		case g.video == nil && ntp.Sub(t.lastSR) >= srInterval:
			sr = true
		}
	}
	if key && g.audio != nil {
		g.audio.srDue = true
	}
	// The frame's slices: every header (interleaving, RTCP, RTP, payload
	// headers) in one buffer, cut around the packets' media bytes, which
	// stay the packetizer's slices of p (the stream's group keeps p).
	size := 0
	for i := range pkts {
		size += 4 + pkts[i].hdr.MarshalSize()
		for _, b := range pkts[i].payload {
			if len(b) <= inlinePayload {
				size += len(b)
			}
		}
	}
	if sr {
		size += 4 + srSize
	}
	hdrs := make([]byte, 0, size)
	segs := make([][]byte, 0, 2*len(pkts)+1)
	run := 0 // where the headers not yet in segs start
	ch := byte(2 * t.idx)
	if sr {
		t.lastSR = ntp
		hdrs = append(hdrs, '$', ch+1, 0, srSize)
		hdrs = appendSR(hdrs, g.ssrc[t.idx], ntp, rtpTS, t.packets, t.octets)
	}
	for i := range pkts {
		rp := &pkts[i]
		rp.hdr.SSRC = g.ssrc[t.idx]
		hn, pn := rp.hdr.MarshalSize(), rp.payloadLen()
		n := hn + pn
		hdrs = append(hdrs, '$', ch, byte(n>>8), byte(n))
		at := len(hdrs)
		hdrs = hdrs[:at+hn]
		if _, err := rp.hdr.MarshalTo(hdrs[at:]); err != nil {
			return
		}
		for _, b := range rp.payload {
			if len(b) <= inlinePayload {
				hdrs = append(hdrs, b...)
				continue
			}
			if run < len(hdrs) {
				segs = append(segs, hdrs[run:])
			}
			segs = append(segs, b)
			run = len(hdrs)
		}
		t.packets++
		t.octets += uint32(pn)
	}
	if run < len(hdrs) {
		segs = append(segs, hdrs[run:])
	}
	g.fanPub.WriteSegments(&av.Packet{Kind: p.Kind, Codec: p.Codec, KeyFrame: key, Timestamp: ts}, segs)
}

// inlinePayload is the largest payload slice fanWrite copies next to the
// headers (payload headers, tiny NAL units) rather than referencing.
const inlinePayload = 32

// srSize is the size of an RTCP sender report without report blocks.
const srSize = 28

// appendSR appends an RTCP sender report (RFC 3550 §6.4.1).
func appendSR(b []byte, ssrc uint32, ntp time.Time, rtpTS, packets, octets uint32) []byte {
	b = append(b, 0x80, 200, 0, srSize/4-1)
	b = binary.BigEndian.AppendUint32(b, ssrc)
	b = binary.BigEndian.AppendUint64(b, ntpTimestamp(ntp))
	b = binary.BigEndian.AppendUint32(b, rtpTS)
	b = binary.BigEndian.AppendUint32(b, packets)
	return binary.BigEndian.AppendUint32(b, octets)
}

// ntpTimestamp is t in the 64-bit NTP format (seconds since 1900, 32.32).
func ntpTimestamp(t time.Time) uint64 {
	const unixToNTP = 2208988800
	sec := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return sec<<32 | frac
}

// directPlay is one player served by direct play, from its first SETUP.
type directPlay struct {
	s    *SubSession
	gen  *generation
	conn *guardConn
	w    *netx.Writer
	// channels maps each media of the description to its RTP channel (-1:
	// not set up); pending is the media of the SETUP being answered.
	channels [2]int
	pending  int
	timeout  time.Duration // write timeout

	srv *Server

	// Detached (direct_park.go): the watcher and the watch of the parked
	// player, the bytes read from it since, and whether it is ended.
	isDetached atomic.Bool
	watch      *netx.Watcher
	watchID    uint64 // mu
	killed     bool   // mu
	read       atomic.Uint64

	mu      sync.Mutex
	sub     *group.Sub // from PLAY
	push    *netx.Pusher
	first   [][]byte // the first frames, written after the PLAY response
	rtpInfo map[int]*headers.RTPInfoEntry
	closed  bool
	written atomic.Uint64
}

// directEligible returns a directPlay for a player's first SETUP when the
// connection can be written directly, or nil.
func directEligible(ctx *gortsplib.ServerHandlerOnSetupCtx, srv *Server, s *SubSession, g *generation) *directPlay {
	if ctx.Transport.Protocol != gortsplib.ProtocolTCP || g.shadow == nil {
		return nil
	}
	gc, ok := ctx.Conn.NetConn().(*guardConn)
	if !ok {
		return nil
	}
	mi, ch, ok := setupChannel(ctx.Request, len(g.shadow.Desc.Medias))
	if !ok || (ch >= 0 && ch != 0 && ch != 2*mi) {
		return nil
	}
	w, err := netx.New(gc)
	if err != nil {
		return nil // RTSPS, or not a TCP socket
	}
	return &directPlay{s: s, srv: srv, gen: g, conn: gc, w: w, channels: [2]int{-1, -1}, pending: -1, timeout: srv.cfg.WriteTimeout}
}

// setupChannel returns the media a SETUP names (its trackID) and the RTP
// channel it asks for (-1: none asked, the server picks).
func setupChannel(req *base.Request, medias int) (media, channel int, ok bool) {
	if req.URL == nil {
		return 0, 0, false
	}
	i := strings.LastIndex(req.URL.Path, "trackID=")
	if i < 0 {
		return 0, 0, false
	}
	media, err := strconv.Atoi(req.URL.Path[i+len("trackID="):])
	if err != nil || media < 0 || media >= medias || media >= len(fanMaps[0]) {
		return 0, 0, false
	}
	var ths headers.Transports
	if err := ths.Unmarshal(req.Header["Transport"]); err != nil {
		return 0, 0, false
	}
	for _, th := range ths {
		if th.Protocol == headers.TransportProtocolTCP {
			if th.InterleavedIDs == nil {
				return media, -1, true
			}
			return media, th.InterleavedIDs[0], true
		}
	}
	return 0, 0, false
}

// errChannels refuses a SETUP whose interleaved channels direct play cannot
// serve once the session is bound to it.
var errChannels = errors.New("interleaved channels not served: use 0-1 for the first media set up and 2-3 for the second")

// setup takes a SETUP of the session: the media it names, checked against
// the channel maps served.
func (d *directPlay) setup(req *base.Request) error {
	mi, ch, ok := setupChannel(req, len(d.gen.shadow.Desc.Medias))
	if !ok {
		return errChannels
	}
	if ch >= 0 {
		m := d.channels
		m[mi] = ch
		if _, ok := fanFormat(m); !ok {
			return errChannels
		}
	}
	d.pending = mi
	return nil
}

// setupAnswered records the channel gortsplib gave the pending SETUP.
func (d *directPlay) setupAnswered(res *base.Response) {
	mi := d.pending
	d.pending = -1
	if mi < 0 || res.StatusCode != base.StatusOK {
		return
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil || th.InterleavedIDs == nil {
		return
	}
	d.channels[mi] = th.InterleavedIDs[0]
}

// play subscribes the player to the fan and takes its first frames (the
// cached GOP), waiting at most keyFrameWait for a key frame. The frames go
// out after the PLAY response (start).
func (d *directPlay) play(fan *group.Manager) (*base.Response, error) {
	f, ok := fanFormat(d.channels)
	if !ok {
		return status(base.StatusUnsupportedTransport), errChannels
	}
	if !d.gen.addDirect(d) {
		return status(base.StatusNotFound), errors.New("stream description changed")
	}
	sub := fan.Subscribe(group.SessionInfo{ID: d.s.id, StreamName: d.gen.fanKey}, f)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		sub.Close()
		return status(base.StatusNotFound), net.ErrClosed
	}
	d.sub = sub // close, from now on, ends the wait below
	d.mu.Unlock()
	stop := make(chan struct{})
	timer := time.AfterFunc(keyFrameWait, func() { close(stop) })
	first, err := sub.NextUntil(nil, stop)
	timer.Stop()
	if err != nil {
		return status(base.StatusNotFound), err
	}
	if len(first) == 0 {
		d.s.logger().Info("rtsp PLAY: no key frame in time, starting anyway", zap.Duration("waited", keyFrameWait))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return status(base.StatusNotFound), net.ErrClosed
	}
	d.first = first
	d.rtpInfo = firstPackets(first)
	return status(base.StatusOK), nil
}

// firstPackets reads the sequence number and timestamp of the first RTP
// packet of each channel in frames (the RTP-Info of a PLAY), by media.
func firstPackets(frames [][]byte) map[int]*headers.RTPInfoEntry {
	info := map[int]*headers.RTPInfoEntry{}
	interleavedFrames(frames, func(_ int, head []byte) {
		ch := int(head[1])
		if ch&1 != 0 || len(head) < 4+12 {
			return // RTCP
		}
		if _, ok := info[ch]; ok {
			return
		}
		seq := binary.BigEndian.Uint16(head[4+2:])
		ts := binary.BigEndian.Uint32(head[4+4:])
		info[ch] = &headers.RTPInfoEntry{SequenceNumber: &seq, Timestamp: &ts}
	})
	return info
}

// answerPlay completes the PLAY response: RTP-Info names the first packet
// of each track the player gets (gortsplib's names the shadow stream's,
// which has none), and the direct writes start right after the response.
func (d *directPlay) answerPlay(res *base.Response) {
	if res.StatusCode != base.StatusOK {
		d.close()
		return
	}
	var ri headers.RTPInfo
	if err := ri.Unmarshal(res.Header["RTP-Info"]); err == nil {
		for _, e := range ri {
			i := strings.LastIndex(e.URL, "trackID=")
			if i < 0 {
				continue
			}
			mi, err := strconv.Atoi(e.URL[i+len("trackID="):])
			if err != nil || mi < 0 || mi >= len(d.channels) {
				continue
			}
			d.mu.Lock()
			first := d.rtpInfo[d.channels[mi]]
			d.mu.Unlock()
			if first != nil {
				e.SequenceNumber, e.Timestamp = first.SequenceNumber, first.Timestamp
			}
		}
		res.Header["RTP-Info"] = ri.Marshal()
	}
	d.mu.Lock()
	d.rtpInfo = nil
	d.mu.Unlock()
	d.conn.afterNextWrite(d.start)
}

// start writes the first frames and hands the player to the fan group; it
// runs right after the PLAY response is written, with the connection's
// write lock held.
func (d *directPlay) start() {
	d.mu.Lock()
	if d.closed || d.sub == nil {
		d.mu.Unlock()
		return
	}
	sub, first := d.sub, d.first
	d.first = nil
	timeout := d.timeout
	d.push = &netx.Pusher{
		W:       d.w,
		Timeout: timeout,
		Mu:      &d.conn.wmu,
		Written: func(n int) { d.written.Add(uint64(n)) },
		Resume:  sub.Resume,
		Fail:    d.fail,
	}
	d.mu.Unlock()
	if len(first) > 0 {
		n, err := d.w.WriteAll(first, time.Now().Add(timeout))
		d.written.Add(uint64(n))
		if err != nil {
			go d.fail(err)
			return
		}
	}
	sub.Push(d.push.Deliver, d.fail)
	d.detach()
}

// fail ends the player after a write error or when the fan ends it (too
// slow): its RTSP session closes, which ends the rest.
func (d *directPlay) fail(err error) {
	d.s.logger().Info("rtsp player: direct write ended", zap.Error(err))
	if d.isDetached.Load() {
		d.kill(err)
		return
	}
	d.s.Close()
}

// close leaves the fan. Safe to call more than once.
func (d *directPlay) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	sub := d.sub
	d.first = nil
	d.mu.Unlock()
	if sub != nil {
		sub.Close()
	}
	d.gen.removeDirect(d)
}

// addDirect registers a direct player of g; false once g is withdrawn.
func (g *generation) addDirect(d *directPlay) bool {
	g.dmu.Lock()
	defer g.dmu.Unlock()
	if g.withdrawn {
		return false
	}
	if g.directs == nil {
		g.directs = map[*directPlay]struct{}{}
	}
	g.directs[d] = struct{}{}
	return true
}

func (g *generation) removeDirect(d *directPlay) {
	g.dmu.Lock()
	delete(g.directs, d)
	g.dmu.Unlock()
}

// withdraw ends the direct play of g: its players leave the fan (their
// sessions end with the shadow stream) and its fan publisher closes.
func (g *generation) withdraw() {
	g.dmu.Lock()
	g.withdrawn = true
	ds := make([]*directPlay, 0, len(g.directs))
	for d := range g.directs {
		ds = append(ds, d)
	}
	g.dmu.Unlock()
	for _, d := range ds {
		if d.isDetached.Load() {
			d.kill(errWithdrawn) // gortsplib's shadow stream no longer knows it
		} else {
			d.close()
		}
	}
	if g.fanPub != nil {
		g.fanPub.Close()
	}
	if g.shadow != nil {
		g.shadow.Close()
	}
}

// fanKeys numbers the generations' fan groups.
var fanKeys atomic.Uint64

// newFanKey is the fan group name of a new generation of stream name.
func newFanKey(name string) string {
	return fmt.Sprintf("%s#%d", name, fanKeys.Add(1))
}

// setupDirect gives a new generation its shadow stream and fan group. When
// that fails, every player of the generation reads its gortsplib stream.
func (st *Stream) setupDirect(g *generation, desc *description.Session) {
	if st.srv.fan == nil || len(desc.Medias) > len(fanMaps[0]) {
		return
	}
	shadow := &gortsplib.ServerStream{Server: st.srv.rs, Desc: desc}
	if err := shadow.Initialize(); err != nil {
		st.log.Warn("rtsp: direct play off for this stream", zap.Error(err))
		return
	}
	stats := shadow.Stats()
	for i, m := range desc.Medias {
		for _, f := range stats.Medias[m].Formats {
			g.ssrc[i] = f.LocalSSRC
		}
		for _, t := range []*outputTrack{g.video, g.audio} {
			if t != nil && t.media == m {
				t.idx = i
			}
		}
	}
	key := newFanKey(st.name)
	pub, err := st.srv.fan.Publish(group.SessionInfo{ID: "RTSPFAN", StreamName: key})
	if err != nil {
		shadow.Close()
		st.log.Warn("rtsp: direct play off for this stream", zap.Error(err))
		return
	}
	g.shadow, g.fanKey, g.fanPub = shadow, key, pub
}
