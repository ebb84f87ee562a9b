// Package server builds Sluice from its configuration: the listeners, the
// protocol servers, the group manager, and the wiring between them. It is
// the only package that sees every other one.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/api"
	"sluice/pkg/config"
	"sluice/pkg/group"
	"sluice/pkg/httpflv"
	"sluice/pkg/httpstream"
	"sluice/pkg/mpegts"
	"sluice/pkg/notify"
	"sluice/pkg/relay"
	"sluice/pkg/rtmp"
	"sluice/pkg/sessionid"
)

// Version is Sluice's version.
const Version = "0.1.0"

// Protocol strings of sessions, as the webhook document spells them.
const (
	ProtocolRTMP    = "RTMP"
	ProtocolHTTPFLV = "HTTP-FLV"
	ProtocolHTTPTS  = "HTTP-TS"
)

const (
	tsSuffix      = ".ts"
	tsContentType = "video/mp2t"
)

// Server is a running Sluice: every listener the configuration enables.
type Server struct {
	cfg    *config.Config
	log    *zap.Logger
	groups *group.Manager

	formatRTMP group.Format
	formatFLV  group.Format
	formatTS   group.Format
	formatRTSP group.Format // -1 when RTSP is off

	rtsp rtspState // see rtsp.go

	pulls      *relay.PullManager
	pushes     *relay.PushManager
	formatPush group.Format // -1 when relay push is off

	access accessControl
	limits limits     // see limits.go
	live   liveConfig // what Reload changes; see reload.go
	// on_rtmp_connect bodies waiting for their stream (see rtmpConnect).
	pendingConnects sync.Map

	notify    *notify.Dispatcher
	api       *api.Server
	bitrates  *api.Bitrates
	startTime time.Time
	done      chan struct{}

	rtmpServer *rtmp.Server
	rtmpLn     net.Listener
	rtmpsLn    net.Listener // TCP, served with rtmpsTLS by rtmpServer too (see tls.go)
	rtmpsTLS   *tls.Config
	httpLns    []httpListener

	wg       sync.WaitGroup
	serveErr chan error
}

type httpListener struct {
	key        string
	configured string // the address as configured
	ln         net.Listener
	server     *http.Server
	tlsConfig  *tls.Config // HTTPS when set: ln is the TCP listener (see tls.go)
}

// ListenError is a listener that could not be opened; it names the config key.
type ListenError struct {
	Key  string
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("cannot listen on %s = %q: %v", e.Key, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// New builds a server from cfg; nothing listens until Start.
func New(cfg *config.Config, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		serveErr:  make(chan error, 4),
		bitrates:  api.NewBitrates(),
		startTime: time.Now(),
		done:      make(chan struct{}),
	}
	s.notify = newDispatcher(&cfg.HTTPNotify, log)
	s.access = s.newAccessControl()
	formats := []group.FormatSpec{
		{Name: "rtmp", GOPNum: cfg.RTMP.GOPNum, NewMuxer: func(string) group.Muxer { return rtmp.Muxer{} }},
		{Name: "flv", GOPNum: cfg.HTTPFLV.GOPNum, NewMuxer: func(string) group.Muxer { return httpflv.Muxer{} }},
		{Name: "ts", GOPNum: cfg.HTTPTS.GOPNum, NewMuxer: func(stream string) group.Muxer {
			return mpegts.NewMuxer(func(msg string) { log.Info(msg, zap.String("stream_name", stream)) })
		}},
	}
	s.formatRTMP, s.formatFLV, s.formatTS, s.formatRTSP = 0, 1, 2, -1
	if cfg.RTSP.Enable || cfg.RTSP.RTSPSEnable {
		s.formatRTSP = group.Format(len(formats))
		formats = append(formats, group.FormatSpec{Name: "rtsp", NewMuxer: s.newRTSPMuxer})
	}
	s.formatPush = -1
	if cfg.RelayPush.Enable && len(cfg.RelayPush.AddrList) > 0 {
		s.formatPush = group.Format(len(formats))
		formats = append(formats, group.FormatSpec{Name: "rtmp-push", GOPNum: cfg.RTMP.GOPNum,
			NewMuxer: func(string) group.Muxer { return rtmp.PushMuxer{} }})
	}
	s.groups = group.NewManager(group.Config{
		Formats:              formats,
		SingleGOPMaxFrameNum: maxNonZero(cfg.RTMP.SingleGOPMaxFrameNum, maxNonZero(cfg.HTTPFLV.SingleGOPMaxFrameNum, cfg.HTTPTS.SingleGOPMaxFrameNum)),
		Observer:             s,
		Logger:               log,

		MaxStreams:              cfg.Limits.MaxStreams,
		MaxSubscribersPerStream: cfg.Limits.MaxSubscribersPerStream,
	})
	s.pulls = &relay.PullManager{
		Groups:          s.groups,
		DialRTMP:        relay.DialRTMP,
		DialRTSP:        s.rtspPullDialer(),
		OnAttemptFailed: s.relayAttemptFailed,
		Logger:          log,
	}
	if s.formatPush >= 0 {
		s.pushes = &relay.PushManager{Groups: s.groups, Format: s.formatPush, Targets: cfg.RelayPush.AddrList, Logger: log}
	}
	s.api = &api.Server{
		Pulls:      s.pulls,
		Blacklist:  s.access.blacklist,
		AuthToken:  cfg.HTTPAPI.AuthToken,
		ServerID:   cfg.ServerID,
		StartTime:  s.startTime,
		Version:    Version,
		ServerName: "sluice/" + Version,
		Groups:     s.groups,
		Bitrates:   s.bitrates,
		Notify:     s.notify,
		Logger:     log,
		Done:       s.done,

		LimitRefusals: s.LimitRefusals,
	}
	return s
}

// maxNonZero picks the larger cap; 0 (no cap) wins over any cap.
func maxNonZero(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	return max(a, b)
}

// Groups returns the group manager.
func (s *Server) Groups() *group.Manager { return s.groups }

// Start opens every enabled listener and starts serving. A listener that
// cannot be opened is a *ListenError naming its config key; nothing is left
// open then.
func (s *Server) Start() error {
	s.emit(eventServerStart, "", s.api.LalInfo())
	s.initLimits()
	if err := s.listen(); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.listenTLS(); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.startRTSP(); err != nil {
		s.closeListeners()
		return err
	}
	if s.rtmpLn != nil || s.rtmpsLn != nil {
		s.rtmpServer = &rtmp.Server{
			Handler:      &rtmpHandler{s: s},
			Logger:       s.log,
			NewSessionID: func() string { return sessionid.Next(sessionid.RTMPServer) },
			WriteTimeout: s.groups.WriteTimeout(),

			HandshakeTimeout:     timeout(s.cfg.Timeouts.HandshakeTimeoutMS, defaultTimeout),
			IdleTimeout:          timeout(s.cfg.Timeouts.IdleTimeoutMS, defaultTimeout),
			ReadTimeout:          lalPublisherReadTimeout,
			PublisherIdleTimeout: s.publisherIdleTimeout(),
			Refuse:               refusedConn,
		}
	}
	if s.rtmpLn != nil {
		ln := s.countedListener(s.rtmpLn)
		s.goServe("rtmp.addr", func() error { return s.rtmpServer.Serve(ln) })
		s.log.Info("rtmp listening", zap.String("addr", s.rtmpLn.Addr().String()))
	}
	if s.rtmpsLn != nil {
		// TLS outermost: connections are counted (and refused) as TCP.
		ln := tls.NewListener(s.countedListener(s.rtmpsLn), s.rtmpsTLS)
		s.goServe("rtmp.rtmps_addr", func() error { return s.rtmpServer.Serve(ln) })
		s.log.Info("rtmps listening", zap.String("addr", s.rtmpsLn.Addr().String()))
	}
	for _, hl := range s.httpLns {
		hl := hl
		ln := s.prepareHTTP(hl)
		if hl.tlsConfig != nil {
			// Outermost, so that http.Server sees *tls.Conn (r.TLS).
			ln = tls.NewListener(ln, hl.tlsConfig)
		}
		s.goServe(hl.key, func() error { return hl.server.Serve(ln) })
		s.log.Info("http listening", zap.String("key", hl.key), zap.String("addr", hl.ln.Addr().String()))
	}
	s.sendUpdate()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.tick(s.done)
	}()
	return nil
}

func (s *Server) goServe(key string, serve func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := serve()
		if err != nil && !errors.Is(err, rtmp.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener stopped", zap.String("key", key), zap.Error(err))
			select {
			case s.serveErr <- fmt.Errorf("%s: %w", key, err):
			default:
			}
		}
	}()
}

// Errors reports a listener that stopped serving on its own.
func (s *Server) Errors() <-chan error { return s.serveErr }

func (s *Server) listen() error {
	cfg := s.cfg
	if cfg.RTMP.Enable {
		ln, err := net.Listen("tcp", cfg.RTMP.Addr)
		if err != nil {
			return &ListenError{Key: "rtmp.addr", Addr: cfg.RTMP.Addr, Err: err}
		}
		s.rtmpLn = ln
	}
	if cfg.HTTPAPI.Enable {
		addr := cfg.HTTPAPI.Addr
		if host, port, err := net.SplitHostPort(addr); err == nil && host == "" && cfg.HTTPAPI.AuthToken == "" {
			// An API without a token controls the server: keep it off the network.
			addr = net.JoinHostPort("127.0.0.1", port)
			s.log.Warn("http_api has no auth_token: listening on loopback only; set http_api.auth_token (or a host in http_api.addr) to expose it",
				zap.String("addr", addr))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return &ListenError{Key: "http_api.addr", Addr: addr, Err: err}
		}
		s.httpLns = append(s.httpLns, httpListener{
			key:        "http_api.addr",
			configured: cfg.HTTPAPI.Addr,
			ln:         ln,
			server: &http.Server{
				Handler:           s.api.Handler(),
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          zap.NewStdLog(s.log),
			},
		})
	}
	// FLV and TS share one handler per address, told apart by suffix (as lal).
	routes := map[string]map[string]http.Handler{} // addr -> suffix -> handler
	keys := map[string]string{}
	add := func(key, addr, suffix string, h http.Handler) {
		if routes[addr] == nil {
			routes[addr] = map[string]http.Handler{}
			keys[addr] = key
		}
		routes[addr][suffix] = h
	}
	if cfg.HTTPFLV.Enable {
		add("httpflv.http_listen_addr", cfg.HTTPFLV.HTTPListenAddr, httpflv.Suffix, s.flvHandler())
	}
	if cfg.HTTPTS.Enable {
		add("httpts.http_listen_addr", cfg.HTTPTS.HTTPListenAddr, tsSuffix, s.tsHandler())
	}
	for _, addr := range sortedKeys(routes) {
		mux := s.streamMux(routes[addr])
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return &ListenError{Key: keys[addr], Addr: addr, Err: err}
		}
		s.httpLns = append(s.httpLns, httpListener{
			key:        keys[addr],
			configured: addr,
			ln:         ln,
			server: &http.Server{
				Handler:           mux,
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          zap.NewStdLog(s.log),
			},
		})
	}
	return nil
}

// tracked counts h's running requests in the server's wait group: streaming
// responses run on hijacked connections that http.Server no longer tracks,
// and Shutdown must wait for them.
func (s *Server) tracked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.wg.Add(1)
		defer s.wg.Done()
		h.ServeHTTP(w, r)
	})
}

// flvHandler serves HTTP-FLV and WebSocket-FLV subscribers.
func (s *Server) flvHandler() http.Handler {
	return &httpstream.Handler{
		Suffix:       httpflv.Suffix,
		ContentType:  httpflv.ContentType,
		Start:        httpflv.Start,
		MessageSize:  httpflv.TagLen,
		Subscribe:    s.subscriber(ProtocolHTTPFLV, s.formatFLV),
		NewSessionID: func() string { return sessionid.Next(sessionid.FLVSub) },
		Logger:       s.log,
		WriteTimeout: s.groups.WriteTimeout(),
		ServerName:   "sluice/" + Version,
	}
}

// tsHandler serves HTTP-TS and WebSocket-TS subscribers.
func (s *Server) tsHandler() http.Handler {
	return &httpstream.Handler{
		Suffix:       tsSuffix,
		ContentType:  tsContentType,
		Subscribe:    s.subscriber(ProtocolHTTPTS, s.formatTS),
		NewSessionID: func() string { return sessionid.Next(sessionid.TSSub) },
		Logger:       s.log,
		WriteTimeout: s.groups.WriteTimeout(),
		ServerName:   "sluice/" + Version,
	}
}

// streamMux routes the stream requests of one listener to handlers, by
// suffix. A request is routed by its longest matching URL pattern; that
// route serves every format whose own pattern also covers the path.
func (s *Server) streamMux(handlers map[string]http.Handler) *http.ServeMux {
	patternOf := map[string]string{httpflv.Suffix: s.cfg.HTTPFLV.URLPattern, tsSuffix: s.cfg.HTTPTS.URLPattern}
	mux := http.NewServeMux()
	registered := map[string]bool{}
	for _, pat := range patternOf {
		if registered[pat] {
			continue
		}
		registered[pat] = true
		hs := map[string]http.Handler{}
		for suffix, h := range handlers {
			if strings.HasPrefix(pat, patternOf[suffix]) {
				hs[suffix] = h
			}
		}
		if len(hs) > 0 {
			mux.Handle(pat, s.tracked(routeBySuffix(hs)))
		}
	}
	return mux
}

// routeBySuffix sends each request to the handler of its path's suffix, and
// answers 404 to any other path.
func routeBySuffix(handlers map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for suffix, h := range handlers {
			if strings.HasSuffix(r.URL.Path, suffix) {
				h.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	})
}

func (s *Server) closeListeners() {
	if s.rtmpLn != nil {
		s.rtmpLn.Close()
	}
	if s.rtmpsLn != nil {
		s.rtmpsLn.Close()
	}
	for _, hl := range s.httpLns {
		hl.ln.Close()
	}
}

// RTMPAddr returns the RTMP listener's address ("" if RTMP is off).
func (s *Server) RTMPAddr() string {
	if s.rtmpLn == nil {
		return ""
	}
	return s.rtmpLn.Addr().String()
}

// HTTPFLVAddr returns the HTTP-FLV listener's address ("" if it is off).
func (s *Server) HTTPFLVAddr() string {
	return s.httpAddr(s.cfg.HTTPFLV.Enable, s.cfg.HTTPFLV.HTTPListenAddr)
}

// HTTPTSAddr returns the HTTP-TS listener's address ("" if it is off).
func (s *Server) HTTPTSAddr() string {
	return s.httpAddr(s.cfg.HTTPTS.Enable, s.cfg.HTTPTS.HTTPListenAddr)
}

func (s *Server) httpAddr(enabled bool, configured string) string {
	if !enabled {
		return ""
	}
	for _, hl := range s.httpLns {
		if hl.configured == configured && hl.key != "http_api.addr" && hl.tlsConfig == nil {
			return hl.ln.Addr().String()
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// APIAddr returns the HTTP API listener's address ("" if it is off).
func (s *Server) APIAddr() string {
	for _, hl := range s.httpLns {
		if hl.key == "http_api.addr" {
			return hl.ln.Addr().String()
		}
	}
	return ""
}

// Shutdown stops every listener, closes every session (their stop events are
// queued), then delivers the queued webhooks until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	default:
		close(s.done)
	}
	var errs []error
	s.pulls.Shutdown()
	if s.pushes != nil {
		s.pushes.Shutdown()
	}
	errs = append(errs, s.shutdownRTSP(ctx))
	if s.rtmpServer != nil {
		errs = append(errs, s.rtmpServer.Shutdown(ctx))
	}
	// Streaming responses are hijacked connections, which http.Server does
	// not track: close them through the groups, before and after the HTTP
	// servers stop (a request may have been accepted meanwhile).
	s.closeAllSessions()
	for _, hl := range s.httpLns {
		if err := hl.server.Shutdown(ctx); err != nil {
			hl.server.Close()
			errs = append(errs, err)
		}
	}
	s.closeAllSessions()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.groups.WaitPush() // push delivery goroutines end with their last subscriber
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if err := s.notify.Flush(ctx); err != nil {
		st := s.notify.Stats()
		s.log.Warn("webhooks not all delivered before the shutdown deadline", zap.Int("pending", st.QueueDepth))
		errs = append(errs, err)
	}
	s.notify.Close()
	return errors.Join(errs...)
}

// closeAllSessions ends every publisher and subscriber still attached to a group.
func (s *Server) closeAllSessions() {
	for _, g := range s.groups.Groups() {
		st := g.Stat()
		if st.Pub != nil && st.Pub.Close != nil {
			st.Pub.Close()
		}
		for _, sub := range st.Subs {
			if sub.Close != nil {
				sub.Close()
			}
		}
	}
}
