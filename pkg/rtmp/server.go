package rtmp

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/netx"
)

// Publisher receives the packets of a publishing session.
type Publisher interface {
	WritePacket(pkt *av.Packet)
	Close()
}

// Subscription yields the shared RTMP chunk bytes a playing session sends:
// see Muxer for their form.
type Subscription interface {
	Next(dst [][]byte) ([][]byte, error)
	Close()
}

// Handler decides what happens to a server session's requests. It is called
// from the session's goroutine.
type Handler interface {
	// OnConnect reports a connect command (app, tcUrl and flashVer are set).
	OnConnect(s *ServerSession)
	// OnPublish accepts a publish request, or refuses it with an error that
	// the client is told as NetStream.Publish.BadName.
	OnPublish(s *ServerSession) (Publisher, error)
	// OnPlay accepts a play request, or refuses it with an error that the
	// client is told as NetStream.Play.Failed.
	OnPlay(s *ServerSession) (Subscription, error)
}

// CloseHandler is an optional Handler method: OnClose reports the end of
// every session that reached the handler (after its publisher or
// subscription is closed).
type CloseHandler interface {
	OnClose(s *ServerSession)
}

// Server accepts RTMP connections and runs a ServerSession on each.
type Server struct {
	Handler Handler
	Logger  *zap.Logger
	// NewSessionID names each accepted connection; lal uses RTMPPUBSUB<n>.
	NewSessionID func() string
	// HandshakeTimeout bounds the handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout bounds the time from the end of the handshake to publish
	// or play: a peer that does not start anything by then is closed.
	// Default 10 s.
	IdleTimeout time.Duration
	// ReadTimeout is a publisher's socket read timeout. Default 120 s.
	ReadTimeout time.Duration
	// PublisherIdleTimeout closes a publisher that sends no audio or video
	// for this long, whatever else it sends. 0: only ReadTimeout applies.
	PublisherIdleTimeout time.Duration
	// Refuse, when set, is asked at the connect command whether the
	// connection (as accepted from the listener) is refused; a non-nil
	// error is answered _error NetConnection.Connect.Rejected with the
	// error's text, and the connection is closed.
	Refuse func(net.Conn) error
	// WriteTimeout is a player's socket write timeout. Default 10 s.
	WriteTimeout time.Duration
	// Limits bound what a peer may send.
	Limits ReaderLimits

	mu       sync.Mutex
	lns      []net.Listener // every listener Serve runs on (RTMP and RTMPS share the server)
	sessions map[*ServerSession]struct{}
	wg       sync.WaitGroup
	watch    netx.LazyWatcher // wakes parked players (park.go)
	closed   bool
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("rtmp: server closed")

// Serve accepts connections on ln until Shutdown. It may run on several
// listeners at once; their sessions are one set.
func (srv *Server) Serve(ln net.Listener) error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		return ErrServerClosed
	}
	srv.lns = append(srv.lns, ln)
	if srv.sessions == nil {
		srv.sessions = map[*ServerSession]struct{}{}
	}
	srv.mu.Unlock()
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			srv.mu.Lock()
			closed := srv.closed
			srv.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else if tempDelay *= 2; tempDelay > time.Second {
					tempDelay = time.Second
				}
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		s := newServerSession(srv, conn)
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		srv.sessions[s] = struct{}{}
		srv.wg.Add(1) // done by s.finish
		srv.mu.Unlock()
		go s.run()
	}
}

// Shutdown closes the listener and every session, and waits for their
// goroutines to end or ctx to expire.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.closed = true
	for _, ln := range srv.lns {
		ln.Close()
	}
	for s := range srv.sessions {
		s.Close()
	}
	srv.mu.Unlock()
	done := make(chan struct{})
	go func() {
		srv.wg.Wait()
		srv.watch.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (srv *Server) logger() *zap.Logger {
	if srv.Logger == nil {
		return zap.NewNop()
	}
	return srv.Logger
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
