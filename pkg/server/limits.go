package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/group"
	"sluice/pkg/limit"
)

// Config keys of the stream limits, as refusals name them.
const (
	keyMaxStreams              = "limits.max_streams"
	keyMaxSubscribersPerStream = "limits.max_subscribers_per_stream"
)

// maxHeaderBytes bounds an HTTP request head on every HTTP listener (net/http
// would take 1 MiB).
const maxHeaderBytes = 16 << 10

// limits is the limits and timeouts part of the server: the connection
// counter shared by the RTMP, HTTP stream and RTSP listeners, and the count
// of refusals per limit.
type limits struct {
	conns   *limit.Conns // nil when no connection limit is configured
	mu      sync.Mutex
	refused map[string]*atomic.Uint64
}

// initLimits sets up the connection counter; Start calls it before any
// listener serves.
func (s *Server) initLimits() {
	l := &s.cfg.Limits
	s.limits.refused = map[string]*atomic.Uint64{}
	if l.MaxConnections == 0 && l.MaxConnectionsPerIP == 0 {
		return
	}
	s.limits.conns = &limit.Conns{
		MaxTotal: l.MaxConnections,
		MaxPerIP: l.MaxConnectionsPerIP,
		OnRefuse: func(c net.Conn, r *limit.Refusal) {
			s.countRefusal(r, zap.String("remote_addr", c.RemoteAddr().String()),
				zap.String("local_addr", c.LocalAddr().String()))
		},
	}
}

// countRefusal logs and counts one refusal by a limit.
func (s *Server) countRefusal(r *limit.Refusal, fields ...zap.Field) {
	s.limits.mu.Lock()
	n := s.limits.refused[r.Key]
	if n == nil {
		n = new(atomic.Uint64)
		s.limits.refused[r.Key] = n
	}
	s.limits.mu.Unlock()
	n.Add(1)
	s.log.Warn("refused by a limit", append([]zap.Field{zap.String("limit", r.Key), zap.Int("max", r.Max)}, fields...)...)
}

// LimitRefusals returns how many clients each limit refused, by config key
// (e.g. "limits.max_connections_per_ip").
func (s *Server) LimitRefusals() map[string]uint64 {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	out := make(map[string]uint64, len(s.limits.refused))
	for k, n := range s.limits.refused {
		out[k] = n.Load()
	}
	return out
}

// countedListener returns ln counting its connections against the
// connection limits (ln itself when there are none).
func (s *Server) countedListener(ln net.Listener) net.Listener {
	if s.limits.conns == nil || ln == nil {
		return ln
	}
	return s.limits.conns.Listener(ln)
}

// admitRTSP counts an RTSP connection, or says which limit refuses it.
func (s *Server) admitRTSP(c net.Conn) (release func(), refused error) {
	if s.limits.conns == nil {
		return nil, nil
	}
	release, r := s.limits.conns.Admit(c)
	if r != nil {
		return nil, r // a nil *Refusal must not become a non-nil error
	}
	return release, nil
}

// refusedConn says whether an RTMP connection is over a connection limit.
func refusedConn(c net.Conn) error { return limit.RefusalOf(c) }

// streamRefusal turns a group limit error into the refusal clients are told
// (logged and counted), or returns nil for any other error.
func (s *Server) streamRefusal(err error, info group.SessionInfo) *limit.Refusal {
	var le *group.LimitError
	if !errors.As(err, &le) {
		return nil
	}
	r := &limit.Refusal{Key: keyMaxStreams, Max: le.Max}
	if errors.Is(err, group.ErrSubscriberLimit) {
		r.Key = keyMaxSubscribersPerStream
	}
	s.countRefusal(r, zap.String("protocol", info.Protocol), zap.String("session_id", info.ID),
		zap.String("stream_name", info.StreamName), zap.String("remote_addr", info.RemoteAddr))
	return r
}

// timeout converts a timeouts key's milliseconds, 0 taking def.
func timeout(ms int, def time.Duration) time.Duration {
	if ms <= 0 {
		return def
	}
	return time.Duration(ms) * time.Millisecond
}

// defaultTimeout is the built-in value of the timeouts keys.
const defaultTimeout = 10 * time.Second

// lalPublisherReadTimeout is lal's publisher socket read timeout, what is
// left when timeouts.publisher_idle_timeout_ms is 0.
const lalPublisherReadTimeout = 120 * time.Second

// publisherIdleTimeout is the media silence that ends a publisher (RTMP
// PublisherIdleTimeout, RTSP ReadTimeout); 0 when off.
func (s *Server) publisherIdleTimeout() time.Duration {
	return time.Duration(s.cfg.Timeouts.PublisherIdleTimeoutMS) * time.Millisecond
}

// connRefusalKey is the context key of an HTTP connection's refusal.
type connRefusalKey struct{}

// prepareHTTP applies the header and idle timeouts and the header size cap
// to an HTTP listener's server and, for the stream listeners (not the API),
// the connection limits: it returns the listener to serve.
func (s *Server) prepareHTTP(hl httpListener) net.Listener {
	srv := hl.server
	srv.ReadHeaderTimeout = timeout(s.cfg.Timeouts.HeaderTimeoutMS, defaultTimeout)
	srv.IdleTimeout = timeout(s.cfg.Timeouts.IdleTimeoutMS, defaultTimeout)
	srv.MaxHeaderBytes = maxHeaderBytes
	if hl.key == "http_api.addr" || s.limits.conns == nil {
		return hl.ln
	}
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if err := limit.RefusalOf(c); err != nil {
			return context.WithValue(ctx, connRefusalKey{}, err)
		}
		return ctx
	}
	srv.Handler = refuseOverLimit(srv.Handler)
	return s.countedListener(hl.ln)
}

// refuseOverLimit answers every request of a connection over a connection
// limit 503 Service Unavailable, with Retry-After and the limit named in the
// body, and closes the connection.
func refuseOverLimit(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err, _ := r.Context().Value(connRefusalKey{}).(error)
		if err == nil {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", strconv.Itoa(limit.RetryAfter))
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	})
}
