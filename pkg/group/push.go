package group

import (
	"runtime"
	"sync/atomic"
)

// Push mode: instead of a goroutine per subscriber blocked in Next, one
// delivery goroutine per group hands every push subscriber its pending bytes
// whenever the publisher wakes the group. The subscriber's sink writes what
// its socket takes without waiting; only a subscriber whose socket is full
// needs a goroutine of its own (the sink's), until it has drained. A
// thousand viewers of a stream then cost one goroutine, not a thousand.

// A push subscriber's bytes go to two functions (a sink; func types keep
// the packages that provide them free of an import of this one):
//
// deliver is called from the group's delivery goroutine (the first time,
// from Push's caller) with the subscriber's pending bytes (shared, read-only; bufs itself is reused
// after the call). It must not block. It returns true when it wrote
// everything; false when it kept the rest (the slice headers) to write
// later, and then deliver is not called again until the sink calls
// Sub.Resume.
//
// end is called once, from the delivery goroutine, when the group ends the
// subscription (ErrTooSlow). The sink closes its connection and the Sub. It
// is not called for a Close made by someone else.

type pushState struct {
	deliver func(bufs [][]byte) bool
	end     func(err error)
	// blocked: the sink holds bytes it has not written; no Deliver until
	// Resume.
	blocked atomic.Bool
	ended   bool // End was called; delivery goroutine only
}

// Push switches the subscriber to push mode: from now on the group hands
// its bytes to deliver (see above), and Next must not be called. Call it
// once, after whatever the connection needs first (a response head) has
// been written.
func (s *Sub) Push(deliver func(bufs [][]byte) bool, end func(err error)) {
	g := s.g
	g.mu.Lock()
	select {
	case <-s.done:
		g.mu.Unlock()
		return // closed meanwhile
	default:
	}
	if s.push != nil {
		g.mu.Unlock()
		panic("group: Sub.Push called twice")
	}
	p := &pushState{deliver: deliver, end: end}
	s.push = p
	g.mu.Unlock()

	// The first delivery (the cached GOP) is made here, in the caller's
	// goroutine, before the delivery goroutine knows the subscriber: a
	// joiner does not wait for its pass over every other subscriber.
	g.mu.RLock()
	bufs, err := s.collect(nil)
	g.mu.RUnlock()
	if err != nil {
		if err != ErrClosed {
			p.ended = true
			end(err)
		}
		return
	}
	if len(bufs) > 0 {
		p.blocked.Store(true)
		if deliver(bufs) {
			p.blocked.Store(false)
		}
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-s.done:
		return // closed meanwhile: never handed to the delivery goroutine
	default:
	}
	g.pushSubs = append(g.pushSubs, s)
	if !g.pushRunning {
		g.pushRunning = true
		g.m.pushWG.Add(1)
		go g.runPush()
	}
	g.kickPush()
}

// Resume tells the group that the sink has written what it kept: deliver
// may be called again.
func (s *Sub) Resume() {
	if p := s.push; p != nil {
		p.blocked.Store(false)
		s.g.kickPush()
	}
}

func (g *Group) kickPush() {
	select {
	case g.pushKick <- struct{}{}:
	default:
	}
}

// removePush drops s from the push subscribers. g.mu held for writing.
func (g *Group) removePush(s *Sub) {
	if s.push == nil {
		return
	}
	for i, p := range g.pushSubs {
		if p == s {
			last := len(g.pushSubs) - 1
			copy(g.pushSubs[i:], g.pushSubs[i+1:])
			g.pushSubs[last] = nil
			g.pushSubs = g.pushSubs[:last]
			break
		}
	}
	g.kickPush()
}

// pushYieldEvery is how many subscribers a delivery pass serves between
// yields of its core.
const pushYieldEvery = 64

// runPush is the group's delivery goroutine: it runs while the group has
// push subscribers.
func (g *Group) runPush() {
	defer g.m.pushWG.Done()
	var (
		subs []*Sub
		bufs [][]byte
	)
	for {
		g.mu.Lock()
		if len(g.pushSubs) == 0 {
			g.pushRunning = false
			g.mu.Unlock()
			return
		}
		wake := g.wake
		subs = append(subs[:0], g.pushSubs...)
		g.mu.Unlock()

		again := false
		for i, s := range subs {
			if i%pushYieldEvery == pushYieldEvery-1 {
				// A pass over thousands of subscribers takes tens of
				// milliseconds of one core: let the sessions that are
				// starting (handshakes, requests, joiners) run meanwhile.
				runtime.Gosched()
			}
			p := s.push
			if p.ended || p.blocked.Load() {
				continue
			}
			g.mu.RLock()
			var err error
			bufs, err = s.collect(bufs[:0])
			more := s.cursor < g.log.head
			g.mu.RUnlock()
			if err != nil {
				if err != ErrClosed {
					p.ended = true
					p.end(err)
				}
				clear(bufs)
				continue
			}
			if len(bufs) == 0 {
				continue
			}
			// Blocked before the call: a sink that drains and resumes
			// before Deliver returns must find it set.
			p.blocked.Store(true)
			if p.deliver(bufs) {
				p.blocked.Store(false)
				again = again || more
			}
			clear(bufs)
		}
		clear(subs)
		if again {
			continue // a subscriber catching up has more than one batch
		}
		select {
		case <-wake:
		case <-g.pushKick:
		}
	}
}
