package rtsp

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/streamurl"
)

// session is what publishers and players have in common: the identity the
// group sees and the byte counters of the RTSP connection plus, over UDP,
// of the RTP/RTCP traffic.
type session struct {
	id     string
	info   streamurl.Info
	remote string
	start  time.Time
	// conn is the RTSP connection, until direct play detaches it; base
	// then holds its final counters (read, written).
	conn   atomic.Pointer[gortsplib.ServerConn]
	base   [2]atomic.Uint64
	srvLog *zap.Logger // the session's logger is made per line (logger): one kept per player costs a KiB

	ss    atomic.Pointer[gortsplib.ServerSession]
	mu    sync.Mutex
	ended bool
	final [2]uint64 // read, written at the end
	// direct is a player's direct play (direct.go), from its first SETUP
	// when its connection allows it.
	direct atomic.Pointer[directPlay]
}

// init sets up a new session in place (it holds atomics: not copied).
func (s *session) init(srv *Server, id string, sc *gortsplib.ServerConn, info streamurl.Info) {
	remote := sc.NetConn().RemoteAddr().String()
	s.id, s.info, s.remote, s.start = id, info, remote, time.Now()
	s.srvLog = srv.log
	s.conn.Store(sc)
}

// logger is the session's logger: its lines carry the session's id, stream
// name and remote address.
func (s *session) logger() *zap.Logger {
	return s.srvLog.With(zap.String("session_id", s.id), zap.String("stream_name", s.info.StreamName),
		zap.String("remote_addr", s.remote))
}

// ID returns the session id (RTSPPUB<n> or RTSPSUB<n>).
func (s *session) ID() string { return s.id }

// RemoteAddr returns the peer's ip:port.
func (s *session) RemoteAddr() string { return s.remote }

// URL returns the Request-URI of the ANNOUNCE or DESCRIBE, without credentials.
func (s *session) URL() string { return s.info.URL }

// AppName returns the path without its last segment.
func (s *session) AppName() string { return s.info.AppName }

// StreamName returns the last path segment.
func (s *session) StreamName() string { return s.info.StreamName }

// URLParam returns the raw query.
func (s *session) URLParam() string { return s.info.URLParam }

// StartTime returns when the session began.
func (s *session) StartTime() time.Time { return s.start }

// ReadBytes returns the bytes read from the peer.
func (s *session) ReadBytes() uint64 { r, _ := s.counters(); return r }

// WrittenBytes returns the bytes written to the peer.
func (s *session) WrittenBytes() uint64 { _, w := s.counters(); return w }

func (s *session) counters() (read, written uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.final[0], s.final[1]
	}
	return s.liveCounters()
}

// liveCounters reads the counters of the connection and, over UDP, of the
// session. s.mu held.
func (s *session) liveCounters() (read, written uint64) {
	if c := s.conn.Load(); c != nil {
		cs := c.Stats()
		read, written = cs.InboundBytes, cs.OutboundBytes
	} else {
		read, written = s.base[0].Load(), s.base[1].Load()
	}
	if d := s.direct.Load(); d != nil {
		written += d.written.Load()
		read += d.read.Load()
	}
	if ss := s.ss.Load(); ss != nil {
		if tr := ss.Transport(); tr != nil && tr.Protocol != gortsplib.ProtocolTCP {
			st := ss.Stats()
			read += st.InboundBytes
			written += st.OutboundBytes
		}
	}
	return read, written
}

// freeze keeps the final counters; the session's objects are going away.
func (s *session) freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.final[0], s.final[1] = s.liveCounters()
		s.ended = true
	}
}

// Close ends the session (a kick, or a direct player's failed write): its
// detached connection, its RTSP session, or its connection while it has
// none.
func (s *session) Close() {
	if d := s.direct.Load(); d != nil && d.isDetached.Load() {
		d.kill(errKicked)
		return
	}
	if ss := s.ss.Load(); ss != nil {
		ss.Close()
		return
	}
	if c := s.conn.Load(); c != nil {
		c.Close()
	}
}

// PubSession is an RTSP publisher, from ANNOUNCE to the end of its session.
type PubSession struct {
	session
	srv    *Server
	desc   *description.Session // the announced medias Sluice can carry
	tracks []*inputTrack
	pub    Publisher

	errMu      sync.Mutex
	lastErrLog time.Time
	errCount   int
}

// Description returns the announced description, reduced to the medias
// Sluice carries.
func (p *PubSession) Description() *description.Session { return p.desc }

func (p *PubSession) emit(pkt *av.Packet) { p.pub.WritePacket(pkt) }

// decodeError logs decoding errors, at most one line every 5 s.
func (p *PubSession) decodeError(what string, err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	p.errCount++
	if time.Since(p.lastErrLog) < 5*time.Second {
		return
	}
	p.logger().Warn("rtsp publisher: "+what, zap.Error(err), zap.Int("errors", p.errCount))
	p.lastErrLog, p.errCount = time.Now(), 0
}

// end removes the publisher from its stream.
func (p *PubSession) end(reason error) {
	p.freeze()
	p.srv.unregisterPub(p)
	if p.pub != nil {
		p.pub.Close()
	}
	r, w := p.counters()
	p.logger().Info("rtsp publisher ended", zap.NamedError("reason", reason), zap.Uint64("read_bytes", r), zap.Uint64("wrote_bytes", w))
}

// SubSession is an RTSP player, from DESCRIBE (or a SETUP without one) to
// the end of its session.
type SubSession struct {
	session
	sub  Subscription
	once sync.Once
}

// end removes the player from its stream.
func (s *SubSession) end(reason error) {
	s.once.Do(func() {
		if d := s.direct.Load(); d != nil {
			d.close()
		}
		s.freeze()
		if s.sub != nil {
			s.sub.Close()
		}
		r, w := s.counters()
		s.logger().Info("rtsp player ended", zap.NamedError("reason", reason), zap.Uint64("read_bytes", r), zap.Uint64("wrote_bytes", w))
	})
}

// requestInfo splits a request's URI as spec §5.2 says: url is the
// Request-URI without credentials, app the path without its last segment,
// stream the last segment, url_param the raw query.
func requestInfo(req *base.Request, path, query string) streamurl.Info {
	app, stream := streamurl.FromPath(path, "")
	u := ""
	if req.URL != nil {
		u = req.URL.CloneWithoutCredentials().String()
	}
	return streamurl.Info{URL: u, AppName: app, StreamName: stream, URLParam: query}
}

// letGo drops the session's references to gortsplib's connection and
// session (direct play detached it), keeping the connection's counters:
// what gortsplib allocated for it can then be collected.
func (s *session) letGo() {
	if c := s.conn.Load(); c != nil {
		cs := c.Stats()
		s.base[0].Store(cs.InboundBytes)
		s.base[1].Store(cs.OutboundBytes)
	}
	s.conn.Store(nil)
	s.ss.Store(nil)
}
