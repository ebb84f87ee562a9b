package rtsp

// This file is Sluice's RTSP pull client, on gortsplib's Client: it plays a
// remote stream (DESCRIBE, SETUP, PLAY over TCP interleaved or UDP) and turns
// its RTP into av.Packets with the converters a RECORD session uses
// (to_packets.go), so a pulled stream looks exactly like an RTSP publisher's.
//
// Credentials come from the URL (rtsp://user:pass@host/path): gortsplib's
// client answers a 401 with Basic or Digest (MD5 or SHA-256), whichever the
// server's WWW-Authenticate asks for, and signs every later request. Keep-
// alives are gortsplib's too: while playing it sends GET_PARAMETER when the
// server lists it in the Public header of its OPTIONS answer (OPTIONS
// otherwise), every session timeout minus 5 s (30 s when the server gives no
// timeout), and over UDP RTCP receiver reports every 5 s.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"
	"go.uber.org/zap"

	"sluice/pkg/av"
)

// Transport is the lower transport of a pull's RTP.
type Transport int

// Transports, numbered as the rtsp_mode of start_relay_pull.
const (
	TransportTCP Transport = 0 // RTP interleaved in the RTSP connection
	TransportUDP Transport = 1 // RTP and RTCP in UDP, unicast
)

func (t Transport) String() string {
	switch t {
	case TransportTCP:
		return "TCP"
	case TransportUDP:
		return "UDP"
	}
	return fmt.Sprintf("transport(%d)", int(t))
}

// TransportFromMode maps rtsp_mode (0 TCP, 1 UDP) to a Transport.
func TransportFromMode(mode int) (Transport, error) {
	switch mode {
	case 0:
		return TransportTCP, nil
	case 1:
		return TransportUDP, nil
	}
	return 0, fmt.Errorf("rtsp_mode %d: want 0 (TCP) or 1 (UDP)", mode)
}

// Client defaults.
const (
	defaultClientTimeout     = 10 * time.Second
	defaultClientReadTimeout = 10 * time.Second
	defaultClientQueueSize   = 1024
	defaultClientQueueWait   = 500 * time.Millisecond
)

// ClientOptions configure Dial.
type ClientOptions struct {
	// Transport is TCP (interleaved) or UDP; there is no fallback from one to
	// the other.
	Transport Transport
	// Timeout bounds connect, DESCRIBE, SETUP and PLAY together (on top of
	// the deadline of Dial's context). Default 10 s.
	Timeout time.Duration
	// ReadTimeout ends the session when no packet has come for this long:
	// ReadPacket returns an error, and gortsplib gives up on a connection
	// (TCP) or on UDP ports that received nothing for as long. Default 10 s.
	ReadTimeout time.Duration
	// QueueSize is the number of av.Packets waiting for ReadPacket (the
	// callbacks of gortsplib's goroutines put them there). Default 1024,
	// some seconds of a usual stream.
	QueueSize int
	// QueueWait is how long a callback waits for room in a full queue
	// before it drops the packet. Default 500 ms.
	QueueWait time.Duration
	// UserAgent goes in every request (gortsplib's default when empty).
	UserAgent string
	Logger    *zap.Logger
	// UDPPorts, when set, is where UDP transport takes its local RTP/RTCP
	// pairs, one free pair (RTP even) per media; else gortsplib's
	// 10000-65535. UDPHost is the local address they bind (all interfaces
	// when empty).
	UDPPorts PortRange
	UDPHost  string
}

// ErrClientClosed is what ReadPacket returns once Close was called.
var ErrClientClosed = errors.New("rtsp client: closed")

// ClientSession is a remote stream being played.
//
// Packets reach ReadPacket through a bounded queue. A gortsplib callback
// that finds the queue full waits up to QueueWait for the reader, then
// drops the packet (counted in Dropped, logged at most every 5 s) rather
// than stall gortsplib's reading any longer: over UDP a stalled reader
// loses datagrams in the kernel anyway, over TCP it would stall keep-alive
// answers and the server's writes. After a dropped video packet the track
// skips to the next key frame, so that no decoder gets a frame whose
// references are missing; a dropped sequence header is sent again before
// the track's next packet.
type ClientSession struct {
	c       *gortsplib.Client
	log     *zap.Logger
	udp     bool
	tracks  []*clientTrack
	pkts    chan *av.Packet
	wait    time.Duration
	readTO  time.Duration
	readTmr *time.Timer // ReadPacket's; one reader at a time

	remote atomic.Value // string
	done   chan struct{}
	once   sync.Once
	err    error // set before done is closed

	closeOnce sync.Once
	dropped   atomic.Uint64
	dropMu    sync.Mutex
	dropLog   time.Time
	errMu     sync.Mutex
	errLog    time.Time
	errCount  int
}

// clientTrack is one played media: its converter and its queue state,
// touched only by the goroutine gortsplib reads that media on.
type clientTrack struct {
	*inputTrack
	resync  bool       // video packets were dropped: wait for a key frame
	seq     *av.Packet // the last sequence header
	seqLost bool       // the last sequence header was dropped
}

// Dial plays rawURL: it connects, sends DESCRIBE, sets up the medias Sluice
// can carry (the first usable video and audio media; the others are left
// out with one log line each, and Dial fails when none is left), and sends
// PLAY. ctx bounds all of it, as opt.Timeout does; ctx ending after Dial
// returns has no effect on the session.
func Dial(ctx context.Context, rawURL string, opt ClientOptions) (*ClientSession, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text has the URL, password included
		}
		return nil, fmt.Errorf("rtsp client: bad url %s: %w", redactURL(rawURL), err)
	}
	if u.Scheme != "rtsp" {
		return nil, fmt.Errorf("rtsp client: url %s: scheme %q not supported (rtsp:// only)", u.CloneWithoutCredentials(), u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("rtsp client: url %s has no host", u.CloneWithoutCredentials())
	}
	var proto gortsplib.Protocol
	switch opt.Transport {
	case TransportTCP:
		proto = gortsplib.ProtocolTCP
	case TransportUDP:
		proto = gortsplib.ProtocolUDP
	default:
		return nil, fmt.Errorf("rtsp client: unknown transport %v", opt.Transport)
	}
	if opt.UDPPorts.IsSet() {
		if err := opt.UDPPorts.validate(); err != nil {
			return nil, fmt.Errorf("rtsp client: %w", err)
		}
	}
	if opt.Timeout <= 0 {
		opt.Timeout = defaultClientTimeout
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = defaultClientReadTimeout
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = defaultClientQueueSize
	}
	if opt.QueueWait <= 0 {
		opt.QueueWait = defaultClientQueueWait
	}
	log := opt.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &ClientSession{
		log:    log.With(zap.String("url", u.CloneWithoutCredentials().String()), zap.Stringer("transport", opt.Transport)),
		udp:    opt.Transport == TransportUDP,
		pkts:   make(chan *av.Packet, opt.QueueSize),
		wait:   opt.QueueWait,
		readTO: opt.ReadTimeout,
		done:   make(chan struct{}),
	}
	s.remote.Store("")
	dialer := &net.Dialer{}
	s.c = &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		Protocol:    &proto,
		ReadTimeout: opt.ReadTimeout,
		UserAgent:   opt.UserAgent,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			nc, err := dialer.DialContext(ctx, network, address)
			if err == nil {
				s.remote.Store(nc.RemoteAddr().String())
			}
			return nc, err
		},
		OnTransportSwitch: func(err error) { s.log.Info("rtsp pull: transport switch", zap.Error(err)) },
		OnPacketsLost: func(lost uint64) {
			s.decodeError("packets lost", fmt.Errorf("%d RTP packets lost", lost))
		},
		OnDecodeError: func(err error) { s.decodeError("decode error", err) },
	}
	if opt.UDPPorts.IsSet() {
		s.c.UDPSourcePortRange = [2]uint16{uint16(opt.UDPPorts.Min), uint16(opt.UDPPorts.Max)}
	}
	if opt.UDPHost != "" {
		s.c.ListenPacket = clientUDPListen(opt.UDPHost)
	}

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	if err := s.c.Start(); err != nil {
		return nil, fmt.Errorf("rtsp client: %w", err)
	}
	// Closing the client makes a pending request return at once.
	stop := context.AfterFunc(ctx, s.c.Close)
	fail := func(step string, err error) (*ClientSession, error) {
		stop()
		s.c.Close() // also waits for the AfterFunc's Close, if it ran
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, fmt.Errorf("rtsp client: %s %s: %w", step, u.CloneWithoutCredentials(), err)
	}

	desc, _, err := s.c.Describe(u)
	if err != nil {
		return fail("DESCRIBE", err)
	}
	medias := s.chooseMedias(desc)
	if len(medias) == 0 {
		return fail("DESCRIBE", errors.New("no media Sluice can carry"))
	}
	for _, m := range medias {
		if _, err := s.c.Setup(desc.BaseURL, m, 0, 0); err != nil {
			return fail("SETUP", err)
		}
	}
	for _, t := range s.tracks {
		s.c.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) {
			pts, ok := s.c.PacketPTS(t.media, pkt)
			if !ok {
				return
			}
			if err := t.handle(pkt, pts, func(p *av.Packet) { s.deliver(t, p) }); err != nil {
				s.decodeError(string(t.media.Type)+" "+t.codec.String(), err)
			}
		})
	}
	if _, err := s.c.Play(nil); err != nil {
		return fail("PLAY", err)
	}
	if !stop() {
		return fail("PLAY", ctx.Err())
	}
	go func() {
		err := s.c.Wait()
		if err == nil {
			err = errors.New("session ended")
		}
		s.end(fmt.Errorf("rtsp client: %w", err))
	}()
	s.readTmr = time.NewTimer(s.readTO)
	s.readTmr.Stop()
	codecs := make([]string, 0, len(s.tracks))
	for _, t := range s.tracks {
		codecs = append(codecs, t.codec.String())
	}
	s.log.Info("rtsp pull playing", zap.String("remote_addr", s.RemoteAddr()), zap.Strings("tracks", codecs))
	return s, nil
}

// chooseMedias picks the medias to set up: for each media its first format
// Sluice can carry, and at most one video and one audio track (the first
// ones). It fills s.tracks.
func (s *ClientSession) chooseMedias(desc *description.Session) []*description.Media {
	var out []*description.Media
	have := map[av.Kind]bool{}
	for _, m := range desc.Medias {
		if m.IsBackChannel {
			s.log.Info("rtsp pull: track left out", zap.String("media", string(m.Type)), zap.String("reason", "back channel"))
			continue
		}
		var track *inputTrack
		var errs []error
		for _, f := range m.Formats {
			t, err := newInputTrack(m, f)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", formatName(f), err))
				continue
			}
			track = t
			break
		}
		if track == nil {
			s.log.Info("rtsp pull: track left out", zap.String("media", string(m.Type)), zap.Error(errors.Join(errs...)))
			continue
		}
		kind := codecKind(track.codec)
		if have[kind] {
			s.log.Info("rtsp pull: track left out", zap.String("media", string(m.Type)), zap.String("format", formatName(track.format)),
				zap.String("reason", "a stream carries one "+kind.String()+" track"))
			continue
		}
		have[kind] = true
		s.tracks = append(s.tracks, &clientTrack{inputTrack: track})
		out = append(out, m)
	}
	return out
}

// codecKind says whether the packets of codec are video or audio.
func codecKind(c av.Codec) av.Kind {
	if c == av.CodecH264 || c == av.CodecH265 {
		return av.KindVideo
	}
	return av.KindAudio
}

// deliver queues a converted packet for ReadPacket (see ClientSession).
func (s *ClientSession) deliver(t *clientTrack, pkt *av.Packet) {
	if pkt.SeqHeader {
		t.seq, t.seqLost = pkt, false
	} else if t.resync && pkt.Kind == av.KindVideo && !pkt.KeyFrame {
		s.drop(pkt)
		return
	}
	if t.seqLost {
		if !s.push(t.seq) {
			s.drop(pkt)
			if pkt.Kind == av.KindVideo {
				t.resync = true
			}
			return
		}
		t.seqLost = false
	}
	if !s.push(pkt) {
		s.drop(pkt)
		if pkt.Kind == av.KindVideo {
			t.resync = true
		}
		if pkt.SeqHeader {
			t.seqLost = true
		}
		return
	}
	if pkt.KeyFrame {
		t.resync = false
	}
}

// push queues pkt, waiting at most s.wait for room.
func (s *ClientSession) push(pkt *av.Packet) bool {
	select {
	case s.pkts <- pkt:
		return true
	case <-s.done:
		return false
	default:
	}
	t := time.NewTimer(s.wait)
	defer t.Stop()
	select {
	case s.pkts <- pkt:
		return true
	case <-s.done:
		return false
	case <-t.C:
		return false
	}
}

func (s *ClientSession) drop(pkt *av.Packet) {
	select {
	case <-s.done:
		return // the session is over: nothing to count
	default:
	}
	n := s.dropped.Add(1)
	s.dropMu.Lock()
	defer s.dropMu.Unlock()
	if time.Since(s.dropLog) >= 5*time.Second {
		s.dropLog = time.Now()
		s.log.Warn("rtsp pull: reader too slow, packets dropped", zap.Stringer("kind", pkt.Kind), zap.Uint64("dropped_total", n))
	}
}

// decodeError logs depacketisation errors and losses, at most one line
// every 5 s.
func (s *ClientSession) decodeError(what string, err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.errCount++
	if time.Since(s.errLog) < 5*time.Second {
		return
	}
	s.log.Warn("rtsp pull: "+what, zap.Error(err), zap.Int("errors", s.errCount))
	s.errLog, s.errCount = time.Now(), 0
}

// end records why the session ended (the first reason wins).
func (s *ClientSession) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// ReadPacket returns the next packet. It blocks until one comes, the
// session ends (an error saying why), or ReadTimeout passes without a
// packet (an error; the session is closed then).
func (s *ClientSession) ReadPacket() (*av.Packet, error) {
	select {
	case <-s.done:
		return nil, s.err
	default:
	}
	select {
	case pkt := <-s.pkts:
		return pkt, nil
	default:
	}
	s.readTmr.Reset(s.readTO)
	defer s.readTmr.Stop()
	select {
	case pkt := <-s.pkts:
		return pkt, nil
	case <-s.done:
		return nil, s.err
	case <-s.readTmr.C:
		s.end(fmt.Errorf("rtsp client: no packet for %v", s.readTO))
		s.Close()
		return nil, s.err
	}
}

// RemoteAddr returns the server's ip:port.
func (s *ClientSession) RemoteAddr() string { return s.remote.Load().(string) }

// ReadBytes returns the bytes received: the RTSP connection's (with the
// interleaved RTP and RTCP) plus, over UDP, the RTP and RTCP datagrams'.
func (s *ClientSession) ReadBytes() uint64 {
	st := s.c.Stats()
	n := st.Conn.InboundBytes
	if s.udp {
		n += st.Session.InboundBytes
	}
	return n
}

// WrittenBytes returns the bytes sent (requests, keep-alives and RTCP).
func (s *ClientSession) WrittenBytes() uint64 {
	st := s.c.Stats()
	n := st.Conn.OutboundBytes
	if s.udp {
		n += st.Session.OutboundBytes
	}
	return n
}

// Dropped returns the packets dropped because the reader fell behind.
func (s *ClientSession) Dropped() uint64 { return s.dropped.Load() }

// Close ends the session (TEARDOWN, then the connection closes). It may be
// called from any goroutine, more than once, also while ReadPacket blocks.
func (s *ClientSession) Close() error {
	s.end(ErrClientClosed)
	s.closeOnce.Do(func() {
		s.c.Close()
		r, w := s.ReadBytes(), s.WrittenBytes()
		s.log.Info("rtsp pull ended", zap.NamedError("reason", s.err), zap.Uint64("read_bytes", r),
			zap.Uint64("wrote_bytes", w), zap.Uint64("dropped_packets", s.dropped.Load()))
	})
	return nil
}

// redactURL hides the credentials of a URL that did not parse.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndexByte(raw, '@'); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
			return "xxxxx" + raw[i:]
		}
		return raw
	}
	return u.Redacted()
}
