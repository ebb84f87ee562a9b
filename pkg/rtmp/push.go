package rtmp

import (
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

// startPush serves s's subscription in push mode when the connection
// allows; it reports whether it did. Media and control messages share
// writeMu (netx.Pusher.Mu).
func (s *ServerSession) startPush(sub Subscription) bool {
	ps, ok := sub.(Pushable)
	if !ok {
		return false
	}
	w, err := netx.New(s.conn)
	if err != nil {
		return false
	}
	s.push = &netx.Pusher{
		W:       w,
		Timeout: durationOr(s.srv.WriteTimeout, 10*time.Second),
		Mu:      &s.writeMu,
		Written: s.conn.AddWritten,
		Resume:  ps.Resume,
		Fail: func(err error) {
			s.logger().Info("rtmp write failed", zap.Error(err))
			s.Close()
		},
	}
	ps.Push(s.push.Deliver, func(err error) { // the group ending it (ErrTooSlow)
		s.logger().Info("rtmp subscription ended", zap.Error(err))
		s.Close()
	})
	return true
}
