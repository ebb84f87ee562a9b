// Package limit counts client connections against a total and a per-IP
// maximum, and names the limit that refuses a connection, a stream or a
// subscriber. A refused connection is still accepted: the protocol that
// serves it answers the refusal in its own terms (an RTMP _error, an HTTP or
// RTSP 503) rather than the client seeing a silent close.
package limit

import (
	"fmt"
	"net"
	"sync"
)

// RetryAfter is the delay, in seconds, a refused client is told to wait
// before trying again (HTTP and RTSP Retry-After).
const RetryAfter = 5

// Refusal is a client refused because a configured maximum is reached.
type Refusal struct {
	Key string // the config key of the limit, e.g. "limits.max_connections_per_ip"
	Max int    // its value
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s (%d) reached: try again later", r.Key, r.Max)
}

// HTTPStatus is 503 Service Unavailable.
func (r *Refusal) HTTPStatus() int { return 503 }

// RTSPStatus is 503 Service Unavailable.
func (r *Refusal) RTSPStatus() int { return 503 }

// RetryAfterSeconds is the delay of the Retry-After header.
func (r *Refusal) RetryAfterSeconds() int { return RetryAfter }

// Config keys of the connection limits, as refusals name them.
const (
	KeyMaxConnections      = "limits.max_connections"
	KeyMaxConnectionsPerIP = "limits.max_connections_per_ip"
)

// Conns counts open connections against MaxTotal and MaxPerIP (0: no
// limit). It is safe for concurrent use; one Conns may count the
// connections of several listeners together.
type Conns struct {
	MaxTotal int
	MaxPerIP int
	// OnRefuse, when set, is called once for each refused connection (to log
	// and count it), on the accepting goroutine.
	OnRefuse func(c net.Conn, r *Refusal)

	mu    sync.Mutex
	total int
	perIP map[string]int
}

// Acquire counts one connection from ip. It returns the function that
// releases it (safe to call more than once), or the limit that refuses it,
// in which case nothing is counted.
func (l *Conns) Acquire(ip string) (release func(), refused *Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxTotal > 0 && l.total >= l.MaxTotal {
		return nil, &Refusal{Key: KeyMaxConnections, Max: l.MaxTotal}
	}
	if l.MaxPerIP > 0 && l.perIP[ip] >= l.MaxPerIP {
		return nil, &Refusal{Key: KeyMaxConnectionsPerIP, Max: l.MaxPerIP}
	}
	if l.perIP == nil {
		l.perIP = map[string]int{}
	}
	l.total++
	l.perIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.perIP[ip]--; l.perIP[ip] <= 0 {
				delete(l.perIP, ip)
			}
		})
	}, nil
}

// Open returns the number of connections counted now, in total and from ip.
func (l *Conns) Open(ip string) (total, fromIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[ip]
}

// Listener wraps ln: every accepted connection is counted until it is
// closed, or, over a limit, returned refused (see RefusalOf) and not
// counted.
func (l *Conns) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, l: l}
}

type listener struct {
	net.Listener
	l *Conns
}

func (ln *listener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	release, refused := ln.l.Admit(c)
	return &Conn{Conn: c, release: release, refused: refused}, nil
}

// Admit counts c by its remote IP, as Acquire does, and reports a refusal to
// OnRefuse.
func (l *Conns) Admit(c net.Conn) (release func(), refused *Refusal) {
	release, refused = l.Acquire(hostOf(c.RemoteAddr()))
	if refused != nil && l.OnRefuse != nil {
		l.OnRefuse(c, refused)
	}
	return release, refused
}

// hostOf returns the IP of a TCP address, or the address's string.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// Conn is a connection accepted by a Conns listener.
type Conn struct {
	net.Conn
	release func() // nil when refused
	refused *Refusal
	once    sync.Once
}

// Close closes the connection and releases its count, once.
func (c *Conn) Close() error {
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return c.Conn.Close()
}

// Refusal returns the limit that refuses the connection, or nil.
func (c *Conn) Refusal() error {
	if c.refused == nil {
		return nil
	}
	return c.refused
}

// TransparentConn returns the wrapped connection: bytes pass through
// unchanged, so netx may write to it directly (Close still goes through c).
func (c *Conn) TransparentConn() net.Conn { return c.Conn }

// WriteBuffers writes bufs to the underlying connection, so that a TCP
// connection keeps using writev (net.Buffers only does for its own types).
func (c *Conn) WriteBuffers(bufs *net.Buffers) (int64, error) {
	return bufs.WriteTo(c.Conn)
}

// RefusalOf returns the refusal of a connection accepted by a Conns
// listener, looking through wrappers that expose NetConn (such as
// *tls.Conn); nil when the connection is not refused.
func RefusalOf(c net.Conn) error {
	for c != nil {
		if rc, ok := c.(interface{ Refusal() error }); ok {
			return rc.Refusal()
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
	return nil
}
