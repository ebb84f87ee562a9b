package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"go.uber.org/zap"
)

// Once its PLAY is answered, a direct player's connection leaves gortsplib
// (detach): gortsplib reads EOF and ends its session, whose goroutines
// (connection, reader, session, writer, RTCP senders) and buffers go away,
// while the socket stays open and the fan keeps writing to it. A player
// mostly sends nothing more: RTCP receiver reports, a keep-alive now and
// then, a TEARDOWN at the end. The server's watcher (one epoll for all
// players, netx.Watcher) starts a goroutine when it does; that goroutine
// answers what it sent and parks the player again. A thousand RTSP players
// then cost no goroutine while they watch, as RTMP and HTTP-FLV players.

// Limits and errors of detached players.
const (
	// detachedHeadLimit bounds a request (head and body) or an interleaved
	// frame a detached player may send.
	detachedHeadLimit = 16 << 10
	// detachedReadTimeout bounds the wait for the rest of a message.
	detachedReadTimeout = 10 * time.Second
)

var (
	errDetachedTooLong = errors.New("rtsp: request of a player too long")
	errDetachedBad     = errors.New("rtsp: malformed request of a player")
	errTornDown        = errors.New("torn down by the player")
	errPlayerLeft      = errors.New("the player closed the connection")
	errKicked          = errors.New("closed by the server")
	errWithdrawn       = errors.New("stream description withdrawn")
)

// addDetached registers a detached player, so that Close ends it; false
// once the server is closed.
func (s *Server) addDetached(d *directPlay) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.detached[d] = struct{}{}
	return true
}

func (s *Server) removeDetached(d *directPlay) {
	s.mu.Lock()
	delete(s.detached, d)
	s.mu.Unlock()
}

// detach takes the connection from gortsplib; it runs right after the PLAY
// response and the start of the writes, with the connection's write lock
// held. A connection the watcher cannot serve stays with gortsplib.
func (d *directPlay) detach() {
	w, err := d.srv.watch.Get()
	if err != nil {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	if !d.srv.addDetached(d) {
		return
	}
	d.watch = w
	d.isDetached.Store(true)
	d.conn.detach()
	d.s.letGo()
	go d.serve(nil, true)
}

// serve reads and answers what the player sent, then parks it again. first
// is true right after the detach: what gortsplib's last read took comes
// first, and the player is parked (or served) from there.
func (d *directPlay) serve(buf []byte, first bool) {
	if first {
		buf = d.conn.takeStash()
	} else {
		// The one-shot watch has fired: drop it before the next park.
		d.mu.Lock()
		id := d.watchID
		d.watchID = 0
		d.mu.Unlock()
		if id != 0 {
			d.watch.Remove(d.w, id)
		}
		if !d.readMore(&buf) {
			return
		}
	}
	for {
		var err error
		buf, err = d.answer(buf)
		if err != nil {
			d.kill(err)
			return
		}
		if len(buf) == 0 {
			if err := d.park(); err != nil {
				d.kill(err)
			}
			return
		}
		if len(buf) > detachedHeadLimit {
			d.kill(errDetachedTooLong)
			return
		}
		if !d.readMore(&buf) {
			return
		}
	}
}

// readMore reads what the player sent (waiting at most
// detachedReadTimeout) onto *buf; false when the player is gone.
func (d *directPlay) readMore(buf *[]byte) bool {
	var tmp [2048]byte
	d.conn.Conn.SetReadDeadline(time.Now().Add(detachedReadTimeout))
	n, err := d.conn.Conn.Read(tmp[:])
	d.read.Add(uint64(n))
	*buf = append(*buf, tmp[:n]...)
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			err = errPlayerLeft
		}
		d.kill(err)
		return false
	}
	return true
}

// park waits, without a goroutine, for the player's next bytes.
func (d *directPlay) park() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.killed {
		return net.ErrClosed
	}
	id, err := d.watch.Add(d.w, func() { go d.serve(nil, false) })
	if err != nil {
		return err
	}
	d.watchID = id
	return nil
}

// answer handles the complete messages at the start of buf and returns the
// rest: interleaved frames (RTCP receiver reports) are read and dropped,
// requests answered.
func (d *directPlay) answer(buf []byte) ([]byte, error) {
	for len(buf) > 0 {
		if buf[0] == '$' {
			if len(buf) < 4 {
				return buf, nil
			}
			n := 4 + int(binary.BigEndian.Uint16(buf[2:]))
			if len(buf) < n {
				return buf, nil
			}
			buf = buf[n:]
			continue
		}
		end := bytes.Index(buf, []byte("\r\n\r\n"))
		if end < 0 {
			return buf, nil
		}
		head := string(buf[:end])
		lines := strings.Split(head, "\r\n")
		method, _, ok := strings.Cut(lines[0], " ")
		if !ok || method == "" {
			return nil, errDetachedBad
		}
		var cseq, session string
		length := 0
		for _, l := range lines[1:] {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				return nil, errDetachedBad
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "cseq":
				cseq = v
			case "session":
				session, _, _ = strings.Cut(v, ";")
			case "content-length":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > detachedHeadLimit {
					return nil, errDetachedBad
				}
				length = n
			}
		}
		total := end + 4 + length
		if len(buf) < total {
			return buf, nil
		}
		body := buf[end+4 : total]
		buf = buf[total:]
		if err := d.respond(method, cseq, session, len(body)); err != nil {
			return nil, err
		}
		if method == "TEARDOWN" {
			return nil, errTornDown
		}
	}
	return buf, nil
}

// respond answers one request of a playing player: keep-alives and a
// repeated PLAY are fine, TEARDOWN ends it, PAUSE is not implemented (as
// before the detach), anything else is not valid while playing.
func (d *directPlay) respond(method, cseq, session string, bodyLen int) error {
	status, extra := 200, ""
	switch method {
	case "OPTIONS":
		extra = "Public: DESCRIBE, SETUP, PLAY, GET_PARAMETER, SET_PARAMETER, TEARDOWN\r\n"
	case "GET_PARAMETER":
		extra = "Content-Type: text/parameters\r\nContent-Length: 0\r\n"
	case "SET_PARAMETER":
		if bodyLen > 0 {
			status = 451
		}
	case "PLAY", "TEARDOWN":
	case "PAUSE":
		status = 501
	default:
		status = 455
	}
	var b strings.Builder
	b.WriteString("RTSP/1.0 " + strconv.Itoa(status) + " " + base.StatusMessages[base.StatusCode(status)] + "\r\n")
	if cseq != "" {
		b.WriteString("CSeq: " + cseq + "\r\n")
	}
	b.WriteString("Server: " + d.srv.cfg.ServerName + "\r\n")
	if session != "" {
		b.WriteString("Session: " + session + "\r\n")
	}
	b.WriteString(extra + "\r\n")
	return d.conn.writeOwn([]byte(b.String()), d.timeout)
}

// kill ends a detached player: the watch, the fan, the socket, the
// session. Safe to call more than once, from any goroutine.
func (d *directPlay) kill(reason error) {
	d.mu.Lock()
	if d.killed {
		d.mu.Unlock()
		return
	}
	d.killed = true
	id := d.watchID
	d.watchID = 0
	d.mu.Unlock()
	if id != 0 {
		d.watch.Remove(d.w, id)
	}
	d.close()
	d.conn.closeSocket()
	d.srv.removeDetached(d)
	if errors.Is(reason, errTornDown) || errors.Is(reason, errPlayerLeft) {
		d.s.logger().Debug("rtsp player left", zap.Error(reason))
	}
	d.s.end(reason)
}
