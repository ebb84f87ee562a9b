package rtmp

import (
	"bufio"
	"errors"
	"net"

	"sluice/pkg/netx"
)

// A player in push mode mostly sends nothing: an acknowledgement every few
// megabytes, a ping response now and then. Once it has nothing buffered to
// read, its session parks: its goroutine and read buffer go away, and the
// server's watcher (one epoll for all sessions) starts a goroutine for it
// again when the player sends something or closes. A thousand players then
// cost no goroutine at all while they watch.

// errParked ends a session's goroutine without ending the session.
var errParked = errors.New("rtmp: session parked")

// parkedReadBuffer is the read buffer of a woken player: small, it only
// reads control messages.
const parkedReadBuffer = 512

// watcher returns the server's watcher, starting it if needed.
func (srv *Server) watcher() (*netx.Watcher, error) {
	srv.mu.Lock()
	closed := srv.closed
	srv.mu.Unlock()
	if closed {
		return nil, ErrServerClosed
	}
	return srv.watch.Get()
}

// park parks the session. It returns false (and the caller keeps reading)
// when parking is not possible; an error when the session is closing.
func (s *ServerSession) park() (bool, error) {
	w, err := s.srv.watcher()
	if err != nil {
		return false, nil
	}
	s.parkMu.Lock()
	defer s.parkMu.Unlock()
	if s.closing {
		return false, net.ErrClosed
	}
	s.parked = true
	id, err := w.Add(s.push.W, func() { go s.resume() })
	if err != nil {
		s.parked = false
		return false, nil
	}
	s.watchID, s.watch = id, w
	s.br = nil
	s.cr.SetReader(nil)
	if s.writeMu.TryLock() {
		s.writeBuf = nil // control messages are rare: no buffer kept meanwhile
		s.writeMu.Unlock()
	}
	return true, nil
}

// unwatchLocked stops the watch of a parked session; parkMu held (and
// maybe srv.mu: it must not take srv.mu).
func (s *ServerSession) unwatchLocked() {
	s.parked = false
	s.watch.Remove(s.push.W, s.watchID)
}

// resume is the watcher waking a parked session: it reads what the player
// sent, then parks again or ends the session.
func (s *ServerSession) resume() {
	s.parkMu.Lock()
	if !s.parked {
		s.parkMu.Unlock()
		return // closed meanwhile
	}
	s.unwatchLocked()
	s.parkMu.Unlock()
	s.br = bufio.NewReaderSize(s.conn, parkedReadBuffer)
	s.cr.SetReader(s.br)
	err := s.readLoop(true)
	if errors.Is(err, errParked) {
		return
	}
	s.finish(err)
}
