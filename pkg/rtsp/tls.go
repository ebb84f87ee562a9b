package rtsp

import (
	"crypto/tls"
	"net"
	"sync"
)

// listen opens the RTSP and RTSPS listeners the config asks for, as one
// listener: gortsplib serves a single listener, and serving both through it
// lets RTSP and RTSPS clients share every stream and session. gortsplib's
// own TLSConfig is left unset on purpose: with it, streams are described
// with the SRTP profile (RTP/SAVP and MIKEY keys), which ffmpeg and lal's
// RTSPS players do not speak; RTP interleaved in the TLS connection is what
// they expect.
func (s *Server) listen(network string) (net.Listener, error) {
	var lns []net.Listener
	if s.cfg.Addr != "" {
		ln, err := net.Listen(network, s.cfg.Addr)
		if err != nil {
			return nil, &BindError{Key: "addr", Addr: s.cfg.Addr, Err: err}
		}
		s.ln = ln
		lns = append(lns, ln)
	}
	if s.cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSAddr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, &BindError{Key: "rtsps_addr", Addr: s.cfg.TLSAddr, Err: err}
		}
		s.tlsLn = ln
		lns = append(lns, tls.NewListener(ln, s.cfg.TLSConfig))
	}
	if len(lns) == 1 {
		return lns[0], nil
	}
	return newMultiListener(lns), nil
}

// TLSAddr returns the RTSPS listener's address ("" without one).
func (s *Server) TLSAddr() string {
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// isTLS reports whether a connection gortsplib serves came in over RTSPS.
func isTLS(c net.Conn) bool {
	if g, ok := c.(*guardConn); ok {
		c = g.Conn
	}
	_, ok := c.(*tls.Conn)
	return ok
}

// multiListener accepts the connections of several listeners.
type multiListener struct {
	lns   []net.Listener
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newMultiListener(lns []net.Listener) *multiListener {
	m := &multiListener{lns: lns, conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	for _, ln := range lns {
		m.wg.Add(1)
		go m.accept(ln)
	}
	return m
}

// accept hands ln's connections to Accept until ln fails; its error is
// Accept's then.
func (m *multiListener) accept(ln net.Listener) {
	defer m.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case m.errs <- err:
			case <-m.done:
			}
			return
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case err := <-m.errs:
		return nil, err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close closes every listener and waits for their accept loops.
func (m *multiListener) Close() error {
	m.once.Do(func() {
		close(m.done)
		for _, ln := range m.lns {
			ln.Close()
		}
	})
	m.wg.Wait()
	return nil
}

// Addr returns the first listener's address.
func (m *multiListener) Addr() net.Addr { return m.lns[0].Addr() }
