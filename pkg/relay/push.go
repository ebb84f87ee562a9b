package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/group"
	"sluice/pkg/rtmp"
	"sluice/pkg/sessionid"
)

// PushManager pushes every published stream to each configured address over
// RTMP, reconnecting with backoff; a failing target never affects the local
// stream. The pushes share the chunk bytes of one push format of the group.
type PushManager struct {
	Groups *group.Manager
	// Format is the group format whose bytes are rtmp.PushMuxer's.
	Format  group.Format
	Targets []string // host:port
	Logger  *zap.Logger

	mu     sync.Mutex
	pushes map[string]context.CancelFunc // by stream
	wg     sync.WaitGroup
}

// Start pushes stream (published under app with the publisher's query) to
// every target, until Stop.
func (m *PushManager) Start(stream, app, query string) {
	if len(m.Targets) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pushes == nil {
		m.pushes = map[string]context.CancelFunc{}
	}
	if m.pushes[stream] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.pushes[stream] = cancel
	for _, addr := range m.Targets {
		u := fmt.Sprintf("rtmp://%s/%s/%s", addr, app, stream)
		if query != "" {
			u += "?" + query
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.run(ctx, stream, u)
		}()
	}
}

// Stop ends the pushes of stream.
func (m *PushManager) Stop(stream string) {
	m.mu.Lock()
	cancel := m.pushes[stream]
	delete(m.pushes, stream)
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Shutdown stops every push and waits for them.
func (m *PushManager) Shutdown() {
	m.mu.Lock()
	for s, cancel := range m.pushes {
		cancel()
		delete(m.pushes, s)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *PushManager) logger() *zap.Logger {
	if m.Logger == nil {
		return zap.NewNop()
	}
	return m.Logger
}

// run keeps one target fed until ctx ends.
func (m *PushManager) run(ctx context.Context, stream, u string) {
	backoff := time.Second
	for ctx.Err() == nil {
		id := sessionid.Next(sessionid.RTMPPush)
		log := m.logger().With(zap.String("session_id", id), zap.String("stream_name", stream), zap.String("url", u))
		sent, err := m.pushOnce(ctx, id, stream, u)
		if ctx.Err() != nil {
			return
		}
		log.Info("relay push ended, reconnecting", zap.Error(err), zap.Duration("backoff", backoff))
		if sent {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (m *PushManager) pushOnce(ctx context.Context, id, stream, u string) (sent bool, err error) {
	c, err := rtmp.Dial(ctx, u, rtmp.ClientOptions{})
	if err != nil {
		return false, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Publish(); err != nil {
		return false, err
	}
	if c.StreamID() != rtmp.MediaStreamID {
		return false, fmt.Errorf("target gave message stream id %d; shared push chunks need %d", c.StreamID(), rtmp.MediaStreamID)
	}
	sub := m.Groups.Subscribe(group.SessionInfo{
		ID:         id,
		Protocol:   "RTMP",
		BaseType:   group.BasePush,
		RemoteAddr: c.RemoteAddr(),
		URL:        u,
		StreamName: stream,
		StartTime:  time.Now(),
		Counters:   c,
		Close:      func() { c.Close() },
		Internal:   true,
	}, m.Format)
	defer sub.Close()
	stopSub := context.AfterFunc(ctx, sub.Close)
	defer stopSub()
	m.logger().Info("relay push started", zap.String("session_id", id), zap.String("stream_name", stream), zap.String("url", u))
	var bufs [][]byte
	for {
		bufs, err = sub.Next(bufs[:0])
		if err != nil {
			return sent, err
		}
		if err = c.WriteChunks(bufs); err != nil {
			return sent, err
		}
		clear(bufs)
		sent = true
	}
}
