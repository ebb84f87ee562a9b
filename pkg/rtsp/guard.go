package rtsp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
)

// The guard sits between each RTSP connection and gortsplib's reader. It
// follows the message framing as gortsplib's reader does (requests,
// responses, '$' interleaved frames) with the same limits, and where
// gortsplib would fail a request without answering (a bad request line, a
// header beyond its limits, a bad Content-Length) or would silently skip
// bytes that start no message, the guard answers 400 Bad Request (505 for
// another RTSP version) itself and ends the connection. Well-formed traffic
// passes through untouched.

// Limits of gortsplib's reader (pkg/base), mirrored.
const (
	maxMethodLen   = 64   // method and its ' '
	maxURLLen      = 2048 // URL and its ' '
	maxProtoLen    = 64   // protocol and its '\r'
	maxHeaders     = 255
	maxKeyLen      = 511  // after the key's first byte, with the ':'
	maxValueLen    = 2048 // value and its '\r'
	maxBodyLen     = 128 * 1024
	rtspVersion    = "RTSP/1.0"
	guardWriteWait = 5 * time.Second
)

// errMalformed ends a connection the guard has answered.
var errMalformed = errors.New("rtsp: malformed request, answered 400")

// scanner states.
const (
	sStart       = iota // between messages
	sFrameHdr           // in a '$' frame header
	sFrameBody          // skipping a frame's payload
	sMethod             // request line: method
	sURL                // request line: URL
	sProto              // request line: protocol
	sProtoLF            // '\n' after the request line
	sHeaderStart        // first byte of a header line, or '\r'
	sHeaderEndLF        // '\n' after the empty line
	sKey                // header key
	sSpaces             // spaces after ':'
	sValue              // header value
	sValueLF            // '\n' after a value
	sBody               // skipping a body
	sPass               // not RTSP requests (HTTP tunnel, a response): no more checks
	sHTTPHead           // the head of an HTTP tunnel request, up to its empty line
)

// methodPrefixes are the first two bytes gortsplib takes as a request.
var methodPrefixes = []string{"AN", "DE", "GE", "OP", "PA", "PL", "RE", "SE", "TE"}

// Scanner follows an RTSP byte stream from a client and reports the first
// malformed request. Its zero value is ready at the start of a connection.
type Scanner struct {
	state    int
	started  bool // the connection's first 4 bytes were checked for HTTP
	head     []byte
	tok      []byte // token being read (method, URL, protocol, key, value)
	n        int    // bytes left (frame header, frame payload, body) or count
	headers  int
	key      string
	cseq     string
	clen     []string
	status   int // the status to answer when malformed
	proto    bool
	prefixOK bool
	heads    int  // request heads read completely (an HTTP tunnel's included)
	http     bool // the connection started as an HTTP tunnel
}

// inHead reports whether the scanner is inside a request head.
func (s *Scanner) inHead() bool {
	switch s.state {
	case sStart:
		return len(s.head) > 0
	case sMethod, sURL, sProto, sProtoLF, sHeaderStart, sHeaderEndLF, sKey, sSpaces, sValue, sValueLF, sHTTPHead:
		return true
	}
	return false
}

// Malformed describes a request the guard answers itself.
type Malformed struct {
	Status int
	CSeq   string
	Reason string
}

// Feed scans b. It returns the number of bytes that belong to well-formed
// traffic and, when it found a malformed request, what to answer (the
// bytes from n on are not to be passed on).
func (s *Scanner) Feed(b []byte) (n int, bad *Malformed) {
	if !s.started {
		// gortsplib reads the connection's first 4 bytes to detect an
		// HTTP tunnel.
		need := 4 - len(s.head)
		if need > len(b) {
			need = len(b)
		}
		s.head = append(s.head, b[:need]...)
		if len(s.head) < 4 {
			return len(b), nil
		}
		s.started = true
		if h := string(s.head); h == "GET " || h == "POST" {
			// Only the end of the HTTP head is followed, for its timeout.
			s.state, s.n, s.http, s.head = sHTTPHead, 0, true, nil
			s.feed(b[need:])
			return len(b), nil
		}
		head := s.head
		s.head = nil
		if _, bad := s.feed(head); bad != nil {
			return 0, bad
		}
		m, bad := s.feed(b[need:])
		return need + m, bad
	}
	return s.feed(b)
}

func (s *Scanner) fail(status int, reason string) *Malformed {
	return &Malformed{Status: status, CSeq: s.cseq, Reason: reason}
}

func (s *Scanner) feed(b []byte) (int, *Malformed) {
	i := 0
	for i < len(b) {
		c := b[i]
		switch s.state {
		case sPass:
			return len(b), nil
		case sHTTPHead:
			i++
			// s.n counts the bytes of "\r\n\r\n" matched so far.
			switch {
			case c == "\r\n\r\n"[s.n]:
				s.n++
			case c == '\r':
				s.n = 1
			default:
				s.n = 0
			}
			if s.n == 4 {
				s.heads++
				s.state = sPass
				return len(b), nil
			}
		case sStart:
			if len(s.head) == 0 {
				switch {
				case c == '$':
					s.state, s.n = sFrameHdr, 3
					s.tok = s.tok[:0]
				case c == '\r' || c == '\n' || c == ' ' || c == '\t':
					// Stray line ends between messages: gortsplib skips them.
				case c >= 'A' && c <= 'Z':
					s.head = append(s.head, c)
				default:
					return i, s.fail(400, "bytes that start no RTSP message")
				}
				i++
				continue
			}
			first := s.head[0]
			s.head = s.head[:0]
			pair := string([]byte{first, c})
			if pair == "RT" {
				// A response from a client: gortsplib ends the connection.
				s.state = sPass
				return len(b), nil
			}
			known := false
			for _, p := range methodPrefixes {
				known = known || p == pair
			}
			if !known {
				return i, s.fail(400, "unknown method")
			}
			s.state, s.tok, s.headers, s.cseq, s.clen = sMethod, append(s.tok[:0], first), 0, "", s.clen[:0]
			// c is read again as the method's second byte.
		case sFrameHdr:
			s.n--
			s.tok = append(s.tok, c)
			i++
			if s.n == 0 {
				s.n = int(s.tok[1])<<8 | int(s.tok[2])
				s.state = sFrameBody
				if s.n == 0 {
					s.state = sStart
				}
			}
		case sFrameBody, sBody:
			skip := min(s.n, len(b)-i)
			i += skip
			s.n -= skip
			if s.n == 0 {
				s.state = sStart
			}
		case sMethod:
			i++
			switch {
			case c == ' ':
				s.state, s.tok = sURL, s.tok[:0]
			case c == '\r' || c == '\n':
				return i - 1, s.fail(400, "request line without a URL")
			case len(s.tok)+1 >= maxMethodLen:
				return i - 1, s.fail(400, "method too long")
			default:
				s.tok = append(s.tok, c)
			}
		case sURL:
			i++
			switch {
			case c == ' ':
				if u := string(s.tok); u != "*" {
					if _, err := base.ParseURL(u); err != nil {
						return i - 1, s.fail(400, "invalid URL")
					}
				}
				s.state, s.tok = sProto, s.tok[:0]
			case c == '\r' || c == '\n':
				return i - 1, s.fail(400, "request line without a protocol")
			case len(s.tok)+1 >= maxURLLen:
				return i - 1, s.fail(414, "URL too long")
			default:
				s.tok = append(s.tok, c)
			}
		case sProto:
			i++
			switch {
			case c == '\r':
				if p := string(s.tok); p != rtspVersion {
					if strings.HasPrefix(p, "RTSP/") {
						return i - 1, s.fail(505, "RTSP version not supported")
					}
					return i - 1, s.fail(400, "not an RTSP request")
				}
				s.state = sProtoLF
			case c == '\n' || len(s.tok)+1 >= maxProtoLen:
				return i - 1, s.fail(400, "bad protocol")
			default:
				s.tok = append(s.tok, c)
			}
		case sProtoLF, sValueLF, sHeaderEndLF:
			i++
			if c != '\n' {
				return i - 1, s.fail(400, "bare CR")
			}
			switch s.state {
			case sHeaderEndLF:
				if bad := s.endHeaders(); bad != nil {
					return i - 1, bad
				}
			default:
				s.state = sHeaderStart
			}
		case sHeaderStart:
			i++
			if c == '\r' {
				s.state = sHeaderEndLF
				continue
			}
			if s.headers >= maxHeaders {
				return i - 1, s.fail(400, "too many headers")
			}
			s.state, s.tok = sKey, append(s.tok[:0], c)
			s.n = 0
		case sKey:
			i++
			s.n++
			if c == ':' {
				s.key = strings.ToLower(string(s.tok))
				s.state, s.tok = sSpaces, s.tok[:0]
				continue
			}
			if s.n >= maxKeyLen || c == '\r' || c == '\n' {
				return i - 1, s.fail(400, "header without a value, or key too long")
			}
			s.tok = append(s.tok, c)
		case sSpaces:
			if c == ' ' {
				i++
				continue
			}
			s.state, s.tok = sValue, s.tok[:0]
		case sValue:
			i++
			switch {
			case c == '\r':
				switch s.key {
				case "cseq":
					s.cseq = string(s.tok)
				case "content-length":
					s.clen = append(s.clen, string(s.tok))
				}
				s.headers++
				s.state = sValueLF
			case len(s.tok)+1 >= maxValueLen:
				return i - 1, s.fail(400, "header value too long")
			default:
				s.tok = append(s.tok, c)
			}
		}
	}
	return len(b), nil
}

// endHeaders starts the body of a request whose headers are complete.
func (s *Scanner) endHeaders() *Malformed {
	s.state = sStart
	s.heads++
	if len(s.clen) != 1 {
		return nil
	}
	n, err := strconv.ParseUint(s.clen[0], 10, 64)
	if err != nil {
		return s.fail(400, "invalid Content-Length")
	}
	if n > maxBodyLen {
		return s.fail(413, "body too large")
	}
	if n > 0 {
		s.state, s.n = sBody, int(n)
	}
	return nil
}

// statusText is the reason phrase of the statuses the guard sends.
func statusText(code int) string {
	switch code {
	case 413:
		return "Request Entity Too Large"
	case 414:
		return "Request-URI Too Long"
	case 505:
		return "RTSP Version Not Supported"
	}
	return "Bad Request"
}

// guardListener wraps each accepted connection in a guardConn.
type guardListener struct {
	net.Listener
	serverName string
	onBad      func(remote string, m *Malformed)
	// admit, when set, counts each connection (release undoes it) or
	// refuses it; a refused connection's first request is answered 503.
	admit func(net.Conn) (release func(), refused error)
	// firstRequest bounds the time from accept to the end of the first
	// request head; header bounds each later request head (0: no bound).
	firstRequest, header time.Duration
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	g := &guardConn{Conn: c, l: &l}
	if l.admit != nil {
		g.release, g.refused = l.admit(c)
	}
	if l.firstRequest > 0 {
		g.headDeadline = time.Now().Add(l.firstRequest)
		c.SetReadDeadline(g.headDeadline)
	}
	return g, nil
}

// guardConn passes well-formed bytes to gortsplib and answers a malformed
// request itself before ending the connection. It also bounds the time a
// request head may take to arrive, whatever read deadline gortsplib sets.
type guardConn struct {
	net.Conn
	l       *guardListener
	mu      sync.Mutex
	scanner Scanner
	bad     *Malformed

	release   func()
	refused   error
	closeOnce sync.Once

	userDeadline time.Time // the read deadline gortsplib asked for
	headDeadline time.Time // the end of the current request head's time; zero outside a head
	headsSeen    int       // scanner.heads when headDeadline was set
	firstDone    bool      // the first request head is complete

	// wmu orders the writers of the connection: gortsplib's responses and
	// direct play's media (direct.go). after runs once after the next
	// Write, wmu still held.
	wmu   sync.Mutex
	after func()
	// wdl is the write deadline gortsplib asked for (unix ns, 0: none),
	// applied around its writes only: direct play writes without one.
	wdl atomic.Int64
	// detached: direct play owns the connection from its PLAY on
	// (direct.go): gortsplib reads EOF, and its Close and read deadlines
	// no longer reach the socket. stash keeps what gortsplib's last read
	// took from the socket after that (mu).
	detached atomic.Bool
	stash    []byte
	inRead   atomic.Int32 // gortsplib's reads in the socket now
}

// detach hands the connection to direct play: gortsplib's reader wakes
// (a deadline in the past) and reads EOF, and gortsplib ends its session.
func (c *guardConn) detach() {
	c.detached.Store(true)
	c.Conn.SetReadDeadline(time.Unix(1, 0))
	c.mu.Lock()
	c.scanner.head, c.scanner.tok, c.scanner.clen = nil, nil, nil // gortsplib reads no more
	c.mu.Unlock()
}

// takeStash waits (briefly: its deadline has passed) until gortsplib's
// reader is out of the socket, and returns the bytes it took after the
// detach.
func (c *guardConn) takeStash() []byte {
	for i := 0; c.inRead.Load() > 0 && i < 1000; i++ {
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.stash
	c.stash = nil
	return b
}

// writeOwn writes a detached connection's own bytes (direct play's
// answers), whole, after any direct write in progress.
func (c *guardConn) writeOwn(b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(b)
	c.Conn.SetWriteDeadline(time.Time{})
	return err
}

// closeSocket closes the connection and releases its admission, detached
// or not.
func (c *guardConn) closeSocket() error {
	c.closeOnce.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return c.Conn.Close()
}

// SetWriteDeadline sets the deadline of gortsplib's writes (see wdl).
func (c *guardConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.wdl.Store(ns)
	return nil
}

// TransparentConn lets netx write to the TCP socket underneath.
func (c *guardConn) TransparentConn() net.Conn { return c.Conn }

// Write writes b whole, never cut by the direct writes.
func (c *guardConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if ns := c.wdl.Load(); ns != 0 {
		c.Conn.SetWriteDeadline(time.Unix(0, ns))
		defer c.Conn.SetWriteDeadline(time.Time{})
	}
	n, err := c.Conn.Write(b)
	if f := c.after; f != nil {
		c.after = nil
		if err == nil {
			f()
		}
	}
	return n, err
}

// afterNextWrite makes f run right after the next Write (the response
// being answered), before any other write.
func (c *guardConn) afterNextWrite(f func()) {
	c.wmu.Lock()
	c.after = f
	c.wmu.Unlock()
}

// Close closes the connection and releases its admission, once.
func (c *guardConn) Close() error {
	if c.detached.Load() {
		return nil // direct play closes it (closeSocket)
	}
	return c.closeSocket()
}

// SetReadDeadline sets gortsplib's deadline, kept no later than the end of
// the request head being read.
func (c *guardConn) SetReadDeadline(t time.Time) error {
	if c.detached.Load() {
		return nil
	}
	c.mu.Lock()
	c.userDeadline = t
	d := c.readDeadlineLocked()
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(d)
}

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (c *guardConn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// readDeadlineLocked is the earlier of the two deadlines; c.mu held.
func (c *guardConn) readDeadlineLocked() time.Time {
	if !c.headDeadline.IsZero() && (c.userDeadline.IsZero() || c.headDeadline.Before(c.userDeadline)) {
		return c.headDeadline
	}
	return c.userDeadline
}

// trackHeadLocked moves the head deadline after the scanner read bytes: the
// first request's deadline holds until its head is complete; each later
// head gets the header timeout from the read that started it. c.mu held.
func (c *guardConn) trackHeadLocked() {
	old := c.headDeadline
	if !c.firstDone {
		if c.scanner.heads == 0 {
			return
		}
		c.firstDone = true
		c.headDeadline = time.Time{}
		c.headsSeen = c.scanner.heads
	}
	switch in := c.scanner.inHead(); {
	case in && c.l.header > 0 && (c.headDeadline.IsZero() || c.headsSeen != c.scanner.heads):
		c.headDeadline = time.Now().Add(c.l.header)
		c.headsSeen = c.scanner.heads
	case !in:
		c.headDeadline = time.Time{}
	}
	if !c.headDeadline.Equal(old) {
		c.Conn.SetReadDeadline(c.readDeadlineLocked())
	}
}

func (c *guardConn) Read(b []byte) (int, error) {
	if c.refused != nil {
		return c.readRefused(b)
	}
	c.mu.Lock()
	if c.bad != nil {
		bad := c.bad
		c.mu.Unlock()
		c.answer(bad)
		return 0, errMalformed
	}
	c.mu.Unlock()
	if c.detached.Load() {
		return 0, io.EOF
	}
	c.inRead.Add(1)
	n, err := c.Conn.Read(b)
	defer c.inRead.Add(-1)
	if c.detached.Load() {
		c.mu.Lock()
		c.stash = append(c.stash, b[:n]...)
		c.mu.Unlock()
		return 0, io.EOF
	}
	if n > 0 {
		c.mu.Lock()
		ok, bad := c.scanner.Feed(b[:n])
		c.trackHeadLocked()
		if bad != nil {
			c.bad = bad
			c.mu.Unlock()
			if ok > 0 {
				// Pass the messages before the bad one first; the answer
				// goes out on the next Read, after theirs.
				return ok, nil
			}
			c.answer(bad)
			return 0, errMalformed
		}
		c.mu.Unlock()
	}
	return n, err
}

// errRefused ends a refused connection once its first request is answered.
var errRefused = errors.New("rtsp: connection refused by a limit, answered 503")

// readRefused reads the first request head of a refused connection, passes
// none of it on, and answers it 503 Service Unavailable (an HTTP one for an
// HTTP tunnel request).
func (c *guardConn) readRefused(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		c.mu.Lock()
		_, bad := c.scanner.Feed(b[:n])
		done, cseq, http := bad != nil || c.scanner.heads > 0, c.scanner.cseq, c.scanner.http
		c.mu.Unlock()
		if done {
			c.answerRefused(cseq, http)
			return 0, errRefused
		}
		if err != nil {
			return 0, err
		}
	}
}

func (c *guardConn) answerRefused(cseq string, http bool) {
	body := c.refused.Error() + "\n"
	var b bytes.Buffer
	if http {
		b.WriteString("HTTP/1.1 503 Service Unavailable\r\n")
	} else {
		b.WriteString("RTSP/1.0 503 Service Unavailable\r\n")
		if cseq != "" {
			b.WriteString("CSeq: " + cseq + "\r\n")
		}
	}
	var ra interface{ RetryAfterSeconds() int }
	if errors.As(c.refused, &ra) {
		b.WriteString("Retry-After: " + strconv.Itoa(ra.RetryAfterSeconds()) + "\r\n")
	}
	b.WriteString("Server: " + c.l.serverName + "\r\nConnection: close\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	c.Conn.SetWriteDeadline(time.Now().Add(guardWriteWait))
	c.Conn.Write(b.Bytes())
}

func (c *guardConn) answer(m *Malformed) {
	var b bytes.Buffer
	b.WriteString("RTSP/1.0 " + strconv.Itoa(m.Status) + " " + statusText(m.Status) + "\r\n")
	if m.CSeq != "" {
		b.WriteString("CSeq: " + m.CSeq + "\r\n")
	}
	b.WriteString("Server: " + c.l.serverName + "\r\nConnection: close\r\n\r\n")
	c.wmu.Lock()
	c.Conn.SetWriteDeadline(time.Now().Add(guardWriteWait))
	c.Conn.Write(b.Bytes())
	c.wmu.Unlock()
	if c.l.onBad != nil {
		c.l.onBad(c.Conn.RemoteAddr().String(), m)
	}
}
