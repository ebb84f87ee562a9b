package httpstream

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/netx"
)

// Plain HTTP subscribers on a TCP socket are served in push mode: after the
// response head, the handler returns and its goroutine ends; the group's
// delivery goroutine writes the stream to the socket without waiting
// (netx), a goroutine exists for the subscriber only while its socket is
// full, and one watcher per handler (epoll) notices at once a client that
// leaves or sends something, even while nothing is being written. WebSocket (which must read the client's frames)
// and TLS subscribers keep a goroutine each.

// Pushable is a Subscription the group can deliver itself (group.Sub).
type Pushable interface {
	Subscription
	Push(deliver func(bufs [][]byte) bool, end func(err error))
	Resume()
}

// errClientLeft ends a push session whose client closed the connection or
// sent bytes after its request (which ends an HTTP-FLV/TS session, as lal).
var errClientLeft = errors.New("client closed the connection or sent data")

// pusher is the sink of one push subscriber (see group.Sub.Push).
type pusher struct {
	netx.Pusher
	h       *Handler
	s       *Session
	sub     Pushable
	watchID uint64 // h.pushMu
	ended   bool   // h.pushMu: unregister ran; register must not watch
	endOnce sync.Once
}

// End is the group ending the subscription.
func (p *pusher) End(err error) { p.end(err) }

// end ends the session once: the watch, the connection, the subscription.
func (p *pusher) end(reason error) {
	p.endOnce.Do(func() {
		p.h.unregister(p) // before the close: the watch needs the descriptor
		p.s.closeConn()
		p.sub.Close()
		if errors.Is(reason, errSessionClosed) {
			reason = nil
		}
		p.h.logger().Info("subscriber ended", zap.String("session_id", p.s.id), zap.String("stream_name", p.s.StreamName),
			zap.String("remote_addr", p.s.remoteAddr), zap.NamedError("reason", reason), zap.Uint64("wrote_bytes", p.s.WrittenBytes()))
	})
}

// servePush serves s in push mode when its connection allows: it writes the
// response head and start bytes, hands the subscription to the group and
// returns true. It returns false, having written nothing, when s must be
// served by a goroutine of its own.
func (h *Handler) servePush(s *Session, sub Subscription, pending int) bool {
	ps, ok := sub.(Pushable)
	if !ok || s.websocket || pending > 0 {
		return false
	}
	w, err := netx.New(s.conn)
	if err != nil {
		return false
	}
	timeout := h.WriteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	p := &pusher{h: h, s: s, sub: ps}
	p.Pusher = netx.Pusher{W: w, Timeout: timeout, Written: s.conn.AddWritten, Resume: ps.Resume, Fail: p.end}
	head := []byte(h.responseHead("", false))
	if h.Start != nil {
		head = append(head, h.Start(sub)...)
	}
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err = s.conn.Write(head)
	s.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		p.end(err)
		return true
	}
	// Stored before the watch: a Session.Close from now on ends p, and an
	// end that runs before register makes register refuse. (Closing the
	// descriptor alone would leave the watch without an event, and the
	// watcher running.)
	s.push.Store(p)
	if err := h.register(p); err != nil {
		if errors.Is(err, errSessionClosed) {
			return true
		}
		s.push.Store(nil)
		h.logger().Warn("cannot watch the connection: serving with a goroutine", zap.Error(err))
		return false
	}
	ps.Push(p.Deliver, p.End)
	return true
}

// register watches p's client, starting the handler's watcher if needed.
func (h *Handler) register(p *pusher) error {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	if p.ended {
		return errSessionClosed
	}
	if h.watcher == nil {
		w, err := netx.NewWatcher()
		if err != nil {
			return err
		}
		h.watcher = w
	}
	id, err := h.watcher.Add(p.W, func() { go p.end(errClientLeft) })
	if err != nil {
		// E.g. the connection was closed meanwhile. The watcher stops with
		// the last push session: if there is none, now.
		if h.pushCount == 0 {
			h.watcher.Close()
			h.watcher = nil
		}
		return err
	}
	p.watchID = id
	h.pushCount++
	return nil
}

// unregister stops watching p's client; the watcher stops with the last.
func (h *Handler) unregister(p *pusher) {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	p.ended = true
	if p.watchID == 0 || h.watcher == nil {
		return
	}
	h.watcher.Remove(p.W, p.watchID)
	p.watchID = 0
	h.pushCount--
	if h.pushCount == 0 {
		h.watcher.Close()
		h.watcher = nil
	}
}
