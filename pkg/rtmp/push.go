package rtmp

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/netx"
)

// A player on a plain TCP connection is served in push mode: its media
// chunks are written by the group's delivery goroutine without waiting
// (see group.Sub.Push); the session's own goroutine only reads the player's
// messages. Control messages (user control, acknowledgements, onStatus)
// share writeMu with the media, so that no message is cut by another.

// Pushable is a Subscription the group can deliver itself (group.Sub).
type Pushable interface {
	Subscription
	Push(deliver func(bufs [][]byte) bool, end func(err error))
	Resume()
}

// pusher is the sink of a push player.
type pusher struct {
	s       *ServerSession
	sub     Pushable
	w       *netx.Writer
	timeout time.Duration
	kept    [][]byte // chunks the socket did not take; written by flush
	flushes sync.WaitGroup
}

// startPush serves s's subscription in push mode when the connection
// allows; it reports whether it did.
func (s *ServerSession) startPush(sub Subscription) bool {
	ps, ok := sub.(Pushable)
	if !ok {
		return false
	}
	w, err := netx.New(s.conn)
	if err != nil {
		return false
	}
	p := &pusher{s: s, sub: ps, w: w, timeout: durationOr(s.srv.WriteTimeout, 10*time.Second)}
	s.push = p
	ps.Push(p.deliver, p.end)
	return true
}

// deliver writes what the socket takes now (see group.Sub.Push).
func (p *pusher) deliver(bufs [][]byte) bool {
	if !p.s.writeMu.TryLock() {
		// A control message is being written: all of it waits for it.
		p.kept = netx.Rest(p.kept[:0], bufs, 0)
		p.flushes.Add(1)
		go p.flush(false)
		return false
	}
	n, err := p.w.TryWrite(bufs)
	p.s.conn.AddWritten(n)
	if err != nil {
		p.s.writeMu.Unlock()
		p.fail(err)
		return true
	}
	if n == netx.Buffered(bufs) {
		p.s.writeMu.Unlock()
		return true
	}
	// The socket is full: the rest of the message must go before anything
	// else, so the flush keeps writeMu until it is written.
	p.kept = netx.Rest(p.kept[:0], bufs, n)
	p.flushes.Add(1)
	go p.flush(true)
	return false
}

// flush writes the kept chunks, waiting for room in the socket; locked says
// whether writeMu is already held (handed over by deliver).
func (p *pusher) flush(locked bool) {
	defer p.flushes.Done()
	if !locked {
		p.s.writeMu.Lock()
	}
	n, err := p.w.WriteAll(p.kept, time.Now().Add(p.timeout))
	p.s.writeMu.Unlock()
	p.s.conn.AddWritten(n)
	p.kept = nil
	if err != nil {
		p.fail(err)
		return
	}
	p.sub.Resume()
}

// end is the group ending the subscription (ErrTooSlow).
func (p *pusher) end(err error) {
	p.s.logger().Info("rtmp subscription ended", zap.Error(err))
	p.s.Close()
}

func (p *pusher) fail(err error) {
	p.s.logger().Info("rtmp write failed", zap.Error(err))
	p.s.Close()
}
