// Package rtsp is Sluice's RTSP server, on gortsplib: publishers (ANNOUNCE,
// SETUP, RECORD over TCP interleaved or UDP) whose RTP is turned into
// av.Packets, and players (DESCRIBE, SETUP, PLAY) fed from one Stream per
// stream name that packetises av.Packets into RTP once for all of them.
//
// The package knows nothing of groups: a Handler (the server wiring) admits
// publishers and players, and feeds each Stream.
package rtsp

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/auth"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/liberrors"
	"github.com/pion/rtp"
	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/netx"
	"sluice/pkg/sessionid"
	"sluice/pkg/streamurl"
)

// ErrStreamBusy is what a Handler's OnPublish returns (wrapped) for a stream
// that already has a publisher; the ANNOUNCE gets 455 Method Not Valid in
// This State and the existing publisher keeps streaming.
var ErrStreamBusy = errors.New("rtsp: stream already has a publisher")

// Auth methods of Config.AuthMethod, as lal numbers them.
const (
	AuthBasic  = 0
	AuthDigest = 1
)

// Config configures a Server.
type Config struct {
	// Addr is the RTSP (TCP) listen address; empty leaves plain RTSP off
	// (then TLSAddr must be set).
	Addr string
	// TLSAddr, when not empty, is the RTSPS listen address, served with
	// TLSConfig by the same server: RTSPS publishers and players share the
	// streams and sessions of RTSP ones. RTSPS carries RTP interleaved in
	// the TLS connection only; a SETUP asking for UDP over it gets 461.
	TLSAddr   string
	TLSConfig *tls.Config
	// UDPRTPAddr and UDPRTCPAddr are the UDP port pair for RTP and RTCP
	// over UDP (RTP port even, RTCP port next); both empty turns UDP off.
	// With port 0 in both, the pair is the first free one of UDPPorts on
	// their host.
	UDPRTPAddr, UDPRTCPAddr string
	UDPPorts                PortRange
	// AuthEnable requires credentials on ANNOUNCE, DESCRIBE and on a SETUP
	// that was not preceded by a DESCRIBE.
	AuthEnable         bool
	AuthMethod         int // AuthBasic or AuthDigest
	Username, Password string
	// OutWaitKeyFrame holds a new player's PLAY until the stream's next key
	// frame (at most 5 s), so that it gets nothing before it.
	OutWaitKeyFrame bool
	// DescribeWait bounds how long a DESCRIBE waits for the stream to have a
	// publisher and a known decoder configuration before it gets 404.
	DescribeWait time.Duration
	// WriteTimeout is the socket write timeout (default 10 s).
	WriteTimeout time.Duration
	// FirstRequestTimeout closes a connection whose first request head is
	// not complete this long after it was accepted (0: gortsplib's idle
	// timeout only). HeaderTimeout bounds each later request head.
	FirstRequestTimeout, HeaderTimeout time.Duration
	// PublisherIdleTimeout closes a recording publisher that sends no RTP
	// or RTCP for this long (default 10 s).
	PublisherIdleTimeout time.Duration
	// Admit, when set, is called for each accepted connection: it returns
	// the function that releases the connection's count at close, or why
	// it is refused; a refused connection's first request is answered 503
	// Service Unavailable (with Retry-After when the error has a
	// RetryAfterSeconds() int method) and the connection closed.
	Admit func(net.Conn) (release func(), refused error)
	// ServerName goes in the Server header.
	ServerName string
	Handler    Handler
	Logger     *zap.Logger
}

// Handler admits publishers and players. Its methods are called on the
// session's connection goroutine and may block briefly.
type Handler interface {
	// OnPublish is called at ANNOUNCE, with the session's id assigned. An
	// error refuses the publisher: ErrStreamBusy (wrapped) gives 455, an
	// error with an RTSPStatus() int method that status (see
	// refusalResponse), any other 403.
	OnPublish(*PubSession) (Publisher, error)
	// OnSubscribe is called at DESCRIBE (or at a SETUP without one), with
	// the session's id assigned. An error gives 403, or the status of its
	// RTSPStatus() int method.
	OnSubscribe(*SubSession) (Subscription, error)
}

// Publisher receives a publisher's packets.
type Publisher interface {
	WritePacket(*av.Packet)
	Close()
}

// Subscription is a player's place in its stream, for accounting only: the
// media comes from the stream's Stream.
type Subscription interface {
	// Publishing reports whether the stream has a publisher now.
	Publishing() bool
	Close()
}

// BindError is a listen address that could not be opened; Key names it as
// the rtsp config section does ("addr", "udp_rtp_addr", "udp_rtcp_addr").
type BindError struct {
	Key, Addr string
	Err       error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("rtsp: listen on %s %q: %v", e.Key, e.Addr, e.Err)
}
func (e *BindError) Unwrap() error { return e.Err }

// Server is an RTSP server.
type Server struct {
	cfg   Config
	log   *zap.Logger
	rs    *gortsplib.Server
	ln    net.Listener // plain RTSP
	tlsLn net.Listener // RTSPS
	udp   *udpPair

	fan *group.Manager // direct play (direct.go)
	// Detached direct players and their watcher (direct_park.go); mu.
	detached map[*directPlay]struct{}
	watch    netx.LazyWatcher
	mu       sync.Mutex
	streams  map[string]*Stream
	pubs     map[string]*PubSession // accepted publishers by stream name
	closing  chan struct{}
	closed   bool
	bg       sync.WaitGroup // streams being closed in the background
}

// New makes a server; nothing listens until Start.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "sluice"
	}
	return &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		fan:      newFan(cfg.WriteTimeout, cfg.Logger),
		detached: map[*directPlay]struct{}{},
		streams:  map[string]*Stream{},
		pubs:     map[string]*PubSession{},
		closing:  make(chan struct{}),
	}
}

// Start opens the listeners. A failure is a *BindError or a configuration error.
func (s *Server) Start() error {
	methods := []auth.VerifyMethod{auth.VerifyMethodDigestMD5}
	if s.cfg.AuthMethod == AuthBasic {
		methods = []auth.VerifyMethod{auth.VerifyMethodBasic}
	}
	udp, err := openUDPPair(s.cfg.UDPRTPAddr, s.cfg.UDPRTCPAddr, s.cfg.UDPPorts)
	if err != nil {
		return err
	}
	s.udp = udp
	s.rs = &gortsplib.Server{
		Handler:           &handler{s: s},
		RTSPAddress:       cmp.Or(s.cfg.Addr, s.cfg.TLSAddr),
		UDPRTPAddress:     udp.rtpAddr,
		UDPRTCPAddress:    udp.rtcpAddr,
		UDPReadBufferSize: udpReadBuffer(),
		WriteTimeout:      s.cfg.WriteTimeout,
		ReadTimeout:       s.cfg.PublisherIdleTimeout,
		// The queue of each player gortsplib writes to (UDP, RTSPS, other
		// channel maps): a key frame's packets fit. Direct players (TCP)
		// never use theirs, but gortsplib allocates it for every player.
		WriteQueueSize: 512,
		AuthMethods:    methods,
		Listen: func(network, _ string) (net.Listener, error) {
			ln, err := s.listen(network)
			if err != nil {
				return nil, err
			}
			return guardListener{Listener: ln, serverName: s.cfg.ServerName, onBad: func(remote string, m *Malformed) {
				s.log.Info("rtsp: malformed request answered", zap.String("remote_addr", remote),
					zap.Int("status", m.Status), zap.String("reason", m.Reason))
			}, admit: s.cfg.Admit, firstRequest: s.cfg.FirstRequestTimeout, header: s.cfg.HeaderTimeout}, nil
		},
		ListenPacket: udp.listenPacket,
	}
	err = s.rs.Start()
	udp.closeUnused()
	return err
}

// UDPAddrs returns the UDP pair RTP and RTCP use ("" when UDP is off).
func (s *Server) UDPAddrs() (rtp, rtcp string) {
	if s.udp == nil {
		return "", ""
	}
	return s.udp.rtpAddr, s.udp.rtcpAddr
}

// Addr returns the RTSP listener's address.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Wait blocks until the server stops and returns why (nil after Close).
func (s *Server) Wait() error {
	err := s.rs.Wait()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	return err
}

// Close stops every stream, session and listener and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.closing)
	streams := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	s.streams = map[string]*Stream{}
	detached := make([]*directPlay, 0, len(s.detached))
	for d := range s.detached {
		detached = append(detached, d)
	}
	s.mu.Unlock()
	for _, st := range streams {
		st.Close()
	}
	for _, d := range detached {
		d.kill(errKicked)
	}
	if s.rs != nil {
		s.rs.Close()
	}
	s.fan.WaitPush()
	s.watch.Close()
	s.bg.Wait()
}

// NewStream makes the RTSP output of a stream, replacing (and closing) the
// previous one of that name. It does not block.
func (s *Server) NewStream(name string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		st := &Stream{srv: s, name: name, log: s.log, closed: true, done: make(chan struct{}), wake: make(chan struct{}, 1)}
		close(st.done)
		return st
	}
	st := newStream(s, name)
	if old := s.streams[name]; old != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			old.Close()
		}()
	}
	s.streams[name] = st
	return st
}

// RemoveStream closes st and forgets it, unless it was replaced already.
func (s *Server) RemoveStream(st *Stream) {
	s.mu.Lock()
	if s.streams[st.name] == st {
		delete(s.streams, st.name)
	}
	s.mu.Unlock()
	st.Close()
}

func (s *Server) stream(name string) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[name]
}

func (s *Server) registerPub(p *PubSession) {
	s.mu.Lock()
	s.pubs[p.info.StreamName] = p
	s.mu.Unlock()
}

func (s *Server) unregisterPub(p *PubSession) {
	s.mu.Lock()
	if s.pubs[p.info.StreamName] == p {
		delete(s.pubs, p.info.StreamName)
	}
	s.mu.Unlock()
}

// sourceDescription returns the description of the stream's RTSP
// publisher, reduced to what Sluice carries, or nil.
func (s *Server) sourceDescription(name string) *description.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pubs[name]; p != nil {
		return p.desc
	}
	return nil
}

// ---------------------------------------------------------------------------
// gortsplib handler

// connState is Sluice's state of one RTSP connection.
type connState struct {
	mu   sync.Mutex
	sub  *SubSession // made at DESCRIBE, not yet owned by an RTSP session
	play *playWaiter // PLAY being answered
	// Direct play (direct.go) of the SETUP or PLAY being answered.
	setup, direct *directPlay
	// Predictions made in OnRequest about gortsplib's answer.
	invalidState bool // the method is not valid in the session's state (400 → 455)
	noSession    bool // the method needs a session and names none (501 → 454)
}

type handler struct{ s *Server }

func stateOf(sc *gortsplib.ServerConn) *connState {
	cs, _ := sc.UserData().(*connState)
	if cs == nil {
		cs = &connState{}
	}
	return cs
}

func (h *handler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	ctx.Conn.SetUserData(&connState{})
	h.s.log.Debug("rtsp connection opened", zap.String("remote_addr", ctx.Conn.NetConn().RemoteAddr().String()))
}

func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	cs := stateOf(ctx.Conn)
	cs.mu.Lock()
	sub, play := cs.sub, cs.play
	cs.sub, cs.play = nil, nil
	cs.mu.Unlock()
	if play != nil {
		play.activate()
	}
	if sub != nil {
		sub.end(ctx.Error)
	}
	h.s.log.Debug("rtsp connection closed", zap.String("remote_addr", ctx.Conn.NetConn().RemoteAddr().String()), zap.Error(ctx.Error))
}

func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	switch v := ctx.Session.UserData().(type) {
	case *PubSession:
		v.end(ctx.Error)
	case *SubSession:
		if d := v.direct.Load(); d != nil && d.isDetached.Load() {
			return // gortsplib let go of it; direct play ends it (kill)
		}
		v.end(ctx.Error)
	}
}

// validStates lists the session states in which gortsplib accepts a method.
var validStates = map[base.Method][]gortsplib.ServerSessionState{
	base.Announce: {gortsplib.ServerSessionStateInitial},
	base.Setup:    {gortsplib.ServerSessionStateInitial, gortsplib.ServerSessionStatePrePlay, gortsplib.ServerSessionStatePreRecord},
	base.Play:     {gortsplib.ServerSessionStatePrePlay, gortsplib.ServerSessionStatePlay},
	base.Record:   {gortsplib.ServerSessionStatePreRecord},
}

// OnRequest predicts the requests gortsplib answers with a generic status
// where RFC 2326 has a precise one; OnResponse then corrects the status.
func (h *handler) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	cs := stateOf(sc)
	invalid, noSession := false, false
	if ss := sc.Session(); ss != nil {
		if states, ok := validStates[req.Method]; ok {
			invalid = true
			st := ss.State()
			for _, v := range states {
				invalid = invalid && v != st
			}
		}
	} else if _, has := req.Header["Session"]; !has {
		switch req.Method {
		case base.Play, base.Record, base.Pause, base.Teardown:
			noSession = true
		}
	}
	cs.mu.Lock()
	cs.invalidState, cs.noSession = invalid, noSession
	cs.mu.Unlock()
}

func (h *handler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	cs := stateOf(sc)
	cs.mu.Lock()
	switch {
	case cs.invalidState && res.StatusCode == base.StatusBadRequest:
		res.StatusCode, res.StatusMessage = base.StatusMethodNotValidInThisState, ""
	case cs.noSession && res.StatusCode == base.StatusNotImplemented:
		res.StatusCode, res.StatusMessage = base.StatusSessionNotFound, ""
	}
	cs.invalidState, cs.noSession = false, false
	play, setup, direct := cs.play, cs.setup, cs.direct
	cs.play, cs.setup, cs.direct = nil, nil, nil
	cs.mu.Unlock()
	res.Header["Server"] = base.HeaderValue{h.s.cfg.ServerName}
	if play != nil {
		play.activate()
	}
	if setup != nil {
		setup.setupAnswered(res)
	}
	if direct != nil {
		direct.answerPlay(res)
	}
}

// authorized checks the request's credentials when auth is on. On false the
// caller answers 401 with liberrors.ErrServerAuth: gortsplib then adds the
// WWW-Authenticate challenge when no credentials were sent, and closes the
// connection after the 401 when wrong ones were.
func (h *handler) authorized(sc *gortsplib.ServerConn, req *base.Request) bool {
	if !h.s.cfg.AuthEnable {
		return true
	}
	return sc.VerifyCredentials(req, h.s.cfg.Username, h.s.cfg.Password)
}

func status(code base.StatusCode) *base.Response { return &base.Response{StatusCode: code} }

func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if !h.authorized(ctx.Conn, ctx.Request) {
		return status(base.StatusUnauthorized), nil, liberrors.ErrServerAuth{}
	}
	info := requestInfo(ctx.Request, ctx.Path, ctx.Query)
	if info.StreamName == "" {
		return status(base.StatusNotFound), nil, nil
	}
	sub, refused := h.subscriber(ctx.Conn, info)
	if sub == nil {
		return refused, nil, nil
	}
	g := h.waitDescription(info.StreamName, sub)
	if g == nil {
		sub.logger().Info("rtsp DESCRIBE: no such stream (no publisher or decoder configuration)", zap.Duration("waited", h.s.cfg.DescribeWait))
		cs := stateOf(ctx.Conn)
		cs.mu.Lock()
		if cs.sub == sub {
			cs.sub = nil
		}
		cs.mu.Unlock()
		sub.end(errors.New("404 not found"))
		return status(base.StatusNotFound), nil, nil
	}
	return status(base.StatusOK), g.stream, nil
}

// subscriber returns the connection's player of stream info, making it (and
// its group subscription) when the connection has none for that stream.
func (h *handler) subscriber(sc *gortsplib.ServerConn, info streamurl.Info) (*SubSession, *base.Response) {
	cs := stateOf(sc)
	cs.mu.Lock()
	old := cs.sub
	if old != nil && old.info.StreamName == info.StreamName {
		cs.mu.Unlock()
		return old, nil
	}
	cs.sub = nil
	cs.mu.Unlock()
	if old != nil {
		old.end(errors.New("DESCRIBE of another stream"))
	}
	sub := &SubSession{}
	sub.init(h.s, sessionid.Next(sessionid.RTSPSub), sc, info)
	subscription, err := h.s.cfg.Handler.OnSubscribe(sub)
	if err != nil {
		sub.logger().Info("rtsp player refused", zap.Error(err))
		return nil, refusalResponse(err)
	}
	sub.sub = subscription
	sub.logger().Info("rtsp player", zap.String("url", info.URL))
	cs.mu.Lock()
	cs.sub = sub
	cs.mu.Unlock()
	return sub, nil
}

// waitDescription waits, at most DescribeWait, until the stream has a
// publisher and a play description.
func (h *handler) waitDescription(name string, sub *SubSession) *generation {
	deadline := time.NewTimer(h.s.cfg.DescribeWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var changed <-chan struct{}
		if st := h.s.stream(name); st != nil {
			var g *generation
			g, changed = st.current()
			if g != nil && sub.sub.Publishing() {
				return g
			}
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			return nil
		case <-h.s.closing:
			return nil
		}
	}
}

func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if !h.authorized(ctx.Conn, ctx.Request) {
		return status(base.StatusUnauthorized), liberrors.ErrServerAuth{}
	}
	info := requestInfo(ctx.Request, ctx.Path, ctx.Query)
	if info.StreamName == "" {
		return status(base.StatusBadRequest), nil
	}
	p := &PubSession{srv: h.s}
	p.init(h.s, sessionid.Next(sessionid.RTSPPub), ctx.Conn, info)
	p.desc = &description.Session{Title: ctx.Description.Title}
	for _, m := range ctx.Description.Medias {
		for _, f := range m.Formats {
			t, err := newInputTrack(m, f)
			if err != nil {
				p.logger().Info("rtsp publisher: track left out", zap.String("media", string(m.Type)), zap.String("format", formatName(f)), zap.Error(err))
				continue
			}
			p.tracks = append(p.tracks, t)
			p.desc.Medias = append(p.desc.Medias, &description.Media{Type: m.Type, Formats: []format.Format{f}})
			break
		}
	}
	if len(p.tracks) == 0 {
		p.logger().Info("rtsp publisher refused: no track Sluice can carry")
		return status(base.StatusUnsupportedMediaType), nil
	}
	pub, err := h.s.cfg.Handler.OnPublish(p)
	if err != nil {
		p.logger().Info("rtsp publisher refused", zap.Error(err))
		if errors.Is(err, ErrStreamBusy) {
			return status(base.StatusMethodNotValidInThisState), nil
		}
		return refusalResponse(err), nil
	}
	p.pub = pub
	p.ss.Store(ctx.Session)
	ctx.Session.SetUserData(p)
	h.s.registerPub(p)
	p.logger().Info("rtsp publisher", zap.String("url", info.URL), zap.Int("tracks", len(p.tracks)))
	return status(base.StatusOK), nil
}

func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Transport.Protocol != gortsplib.ProtocolTCP && isTLS(ctx.Conn.NetConn()) {
		// RTP over UDP would leave the TLS connection in clear text.
		return status(base.StatusUnsupportedTransport), nil, nil
	}
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return status(base.StatusOK), nil, nil
	}
	info := requestInfo(ctx.Request, ctx.Path, ctx.Query)
	sub, _ := ctx.Session.UserData().(*SubSession)
	if sub == nil {
		cs := stateOf(ctx.Conn)
		cs.mu.Lock()
		if cs.sub != nil && cs.sub.info.StreamName == info.StreamName {
			sub, cs.sub = cs.sub, nil
		}
		cs.mu.Unlock()
		if sub == nil {
			// A SETUP without a DESCRIBE on this connection.
			if !h.authorized(ctx.Conn, ctx.Request) {
				return status(base.StatusUnauthorized), nil, liberrors.ErrServerAuth{}
			}
			var refused *base.Response
			if sub, refused = h.subscriber(ctx.Conn, info); sub == nil {
				return refused, nil, nil
			}
			cs.mu.Lock()
			if cs.sub == sub {
				cs.sub = nil
			}
			cs.mu.Unlock()
		}
		sub.ss.Store(ctx.Session)
		ctx.Session.SetUserData(sub)
	}
	st := h.s.stream(sub.info.StreamName)
	if st == nil {
		return status(base.StatusNotFound), nil, nil
	}
	g, _ := st.current()
	cur := ctx.Session.Stream()
	if g == nil || (cur != nil && cur != g.stream && (cur != g.shadow || g.shadow == nil)) {
		return status(base.StatusNotFound), nil, nil
	}
	if cur == nil && sub.direct.Load() == nil {
		if d := directEligible(ctx, h.s, sub, g); d != nil {
			sub.direct.Store(d)
		}
	}
	if d := sub.direct.Load(); d != nil && d.gen == g && cur != g.stream {
		if err := d.setup(ctx.Request); err != nil {
			sub.logger().Info("rtsp SETUP refused", zap.Error(err))
			return status(base.StatusUnsupportedTransport), nil, nil
		}
		cs := stateOf(ctx.Conn)
		cs.mu.Lock()
		cs.setup = d
		cs.mu.Unlock()
		return status(base.StatusOK), g.shadow, nil
	}
	return status(base.StatusOK), g.stream, nil
}

func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	sub, _ := ctx.Session.UserData().(*SubSession)
	if sub == nil || ctx.Session.State() != gortsplib.ServerSessionStatePrePlay {
		return status(base.StatusOK), nil
	}
	if d := sub.direct.Load(); d != nil && d.gen.shadow != nil && ctx.Session.Stream() == d.gen.shadow {
		res, err := d.play(h.s.fan)
		if err != nil {
			sub.logger().Info("rtsp PLAY refused", zap.Error(err))
			d.close()
			return res, nil
		}
		cs := stateOf(ctx.Conn)
		cs.mu.Lock()
		cs.direct = d
		cs.mu.Unlock()
		return res, nil
	}
	if !h.s.cfg.OutWaitKeyFrame {
		return status(base.StatusOK), nil
	}
	st := h.s.stream(sub.info.StreamName)
	if st == nil {
		return status(base.StatusOK), nil
	}
	g, _ := st.current()
	if g == nil || g.stream != ctx.Session.Stream() || g.video == nil {
		return status(base.StatusOK), nil
	}
	w := st.addWaiter(g)
	if w == nil {
		return status(base.StatusOK), nil
	}
	cs := stateOf(ctx.Conn)
	cs.mu.Lock()
	cs.play = w
	cs.mu.Unlock()
	timer := time.NewTimer(keyFrameWait)
	defer timer.Stop()
	select {
	case <-w.release:
	case <-timer.C:
		if st.removeWaiter(w) {
			sub.logger().Info("rtsp PLAY: no key frame in time, starting anyway", zap.Duration("waited", keyFrameWait))
		}
	case <-h.s.closing:
		st.removeWaiter(w)
	}
	return status(base.StatusOK), nil
}

func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	p, _ := ctx.Session.UserData().(*PubSession)
	if p == nil {
		return status(base.StatusMethodNotValidInThisState), nil
	}
	ss := ctx.Session
	for _, t := range p.tracks {
		t := t
		ss.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) {
			pts, ok := ss.PacketPTS(t.media, pkt)
			if !ok {
				return
			}
			if err := t.handle(pkt, pts, p.emit); err != nil {
				p.decodeError(string(t.media.Type)+" "+t.codec.String(), err)
			}
		})
	}
	tr := "TCP"
	if t := ss.Transport(); t != nil {
		tr = t.Protocol.String()
	}
	p.logger().Info("rtsp publisher recording", zap.String("transport", tr))
	return status(base.StatusOK), nil
}

// OnGetParameter answers keep-alives, with or without a session.
func (h *handler) OnGetParameter(*gortsplib.ServerHandlerOnGetParameterCtx) (*base.Response, error) {
	return &base.Response{
		StatusCode: base.StatusOK,
		Header:     base.Header{"Content-Type": base.HeaderValue{"text/parameters"}},
		Body:       []byte{},
	}, nil
}

// OnSetParameter accepts an empty SET_PARAMETER (a keep-alive); Sluice has
// no parameters to set, so any other gets 451 Parameter Not Understood.
func (h *handler) OnSetParameter(ctx *gortsplib.ServerHandlerOnSetParameterCtx) (*base.Response, error) {
	if len(ctx.Request.Body) == 0 {
		return status(base.StatusOK), nil
	}
	return status(base.StatusParameterNotUnderstood), nil
}

func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	if p, ok := ctx.Session.UserData().(*PubSession); ok {
		p.decodeError("decode error", ctx.Error)
	}
}

func (h *handler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	if p, ok := ctx.Session.UserData().(*PubSession); ok {
		p.decodeError("packets lost", fmt.Errorf("%d RTP packets lost", ctx.Lost))
	}
}

func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	if s, ok := ctx.Session.UserData().(*SubSession); ok {
		s.logger().Debug("rtsp player: write error", zap.Error(ctx.Error))
	}
}
