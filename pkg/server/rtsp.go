package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/auth"
	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/rtsp"
)

// ProtocolRTSP is the protocol string of RTSP sessions.
const ProtocolRTSP = "RTSP"

// rtspJanitorPeriod is how often streams whose group is gone are closed.
const rtspJanitorPeriod = 2 * time.Second

// rtspState is the RTSP part of the server: the RTSP server and the RTSP
// output (rtsp.Stream) of each group that has had an RTSP player.
type rtspState struct {
	srv *rtsp.Server

	mu      sync.Mutex
	streams map[string]*rtspStream

	stop    chan struct{}
	stopped bool // guarded by mu
	wg      sync.WaitGroup
}

// rtspStream is the RTSP output of one group. The group's format muxer
// feeds it; g is learned at the first subscription, and the janitor closes
// the stream once the stream name no longer maps to that group (the group
// core has no close hook for muxers).
type rtspStream struct {
	st *rtsp.Stream
	g  *group.Group
}

// rtspMuxer is the group muxer of the RTSP format: it hands each packet to
// the stream's rtsp.Stream, which packetises it once for every player, and
// keeps no bytes in the group's log.
type rtspMuxer struct{ st *rtsp.Stream }

func (m rtspMuxer) Mux(pkt *av.Packet) []byte {
	m.st.WritePacket(pkt)
	return nil
}

type nilMuxer struct{}

func (nilMuxer) Mux(*av.Packet) []byte { return nil }

// newRTSPMuxer makes the per-stream RTSP output. It runs under the group
// locks: it only registers the stream.
func (s *Server) newRTSPMuxer(streamName string) group.Muxer {
	if s.rtsp.srv == nil {
		return nilMuxer{}
	}
	st := s.rtsp.srv.NewStream(streamName)
	s.rtsp.mu.Lock()
	s.rtsp.streams[streamName] = &rtspStream{st: st}
	s.rtsp.mu.Unlock()
	return rtspMuxer{st: st}
}

// RTSPAddr returns the RTSP listener's address ("" if RTSP is off).
func (s *Server) RTSPAddr() string {
	if s.rtsp.srv == nil {
		return ""
	}
	return s.rtsp.srv.Addr()
}

func (s *Server) startRTSP() error {
	c := s.cfg.RTSP
	if !c.Enable && !c.RTSPSEnable {
		return nil
	}
	tlsAddr, tlsConfig, err := s.rtspsConfig()
	if err != nil {
		return err
	}
	addr, udpRTP, udpRTCP := c.Addr, c.UDPRTPAddr, c.UDPRTCPAddr
	if !c.Enable {
		addr, udpRTP, udpRTCP = "", "", "" // RTSPS only, which is TCP only
	}
	s.rtsp.streams = map[string]*rtspStream{}
	s.rtsp.stop = make(chan struct{})
	srv := rtsp.New(rtsp.Config{
		Addr:            addr,
		UDPRTPAddr:      udpRTP,
		UDPRTCPAddr:     udpRTCP,
		UDPPorts:        rtsp.PortRange{Min: c.UDPPortMin, Max: c.UDPPortMax},
		TLSAddr:         tlsAddr,
		TLSConfig:       tlsConfig,
		AuthEnable:      c.AuthEnable,
		AuthMethod:      c.AuthMethod,
		Username:        c.Username,
		Password:        c.Password,
		OutWaitKeyFrame: c.OutWaitKeyFrameFlag,
		DescribeWait:    time.Duration(c.DescribeWaitMS) * time.Millisecond,
		WriteTimeout:    s.groups.WriteTimeout(),

		FirstRequestTimeout:  timeout(s.cfg.Timeouts.IdleTimeoutMS, defaultTimeout),
		HeaderTimeout:        timeout(s.cfg.Timeouts.HeaderTimeoutMS, defaultTimeout),
		PublisherIdleTimeout: cmp.Or(s.publisherIdleTimeout(), lalPublisherReadTimeout),
		Admit:                s.admitRTSP,

		ServerName: "sluice/" + Version,
		Handler:    &rtspHandler{s: s},
		Logger:     s.log,
	})
	if err := srv.Start(); err != nil {
		var be *rtsp.BindError
		if errors.As(err, &be) {
			return &ListenError{Key: "rtsp." + be.Key, Addr: be.Addr, Err: be.Err}
		}
		return &ListenError{Key: "rtsp.addr", Addr: c.Addr, Err: err}
	}
	s.rtsp.srv = srv
	s.goServe("rtsp.addr", srv.Wait)
	s.rtsp.wg.Add(1)
	go s.rtspJanitor()
	udp := "off"
	if rtp, rtcp := srv.UDPAddrs(); rtp != "" {
		udp = rtp + "," + rtcp
	}
	s.log.Info("rtsp listening", zap.String("addr", srv.Addr()), zap.String("udp", udp), zap.String("rtsps_addr", srv.TLSAddr()))
	return nil
}

func (s *Server) shutdownRTSP(ctx context.Context) error {
	if s.rtsp.srv == nil {
		return nil
	}
	s.rtsp.mu.Lock()
	stopped := s.rtsp.stopped
	s.rtsp.stopped = true
	s.rtsp.mu.Unlock()
	if !stopped {
		close(s.rtsp.stop)
	}
	done := make(chan struct{})
	go func() {
		s.rtsp.srv.Close()
		s.rtsp.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rtsp shutdown: %w", ctx.Err())
	}
}

// rtspJanitor closes the RTSP output of groups that are gone.
func (s *Server) rtspJanitor() {
	defer s.rtsp.wg.Done()
	t := time.NewTicker(rtspJanitorPeriod)
	defer t.Stop()
	for {
		select {
		case <-s.rtsp.stop:
			return
		case <-t.C:
		}
		var gone []*rtspStream
		s.rtsp.mu.Lock()
		for name, e := range s.rtsp.streams {
			if e.g != nil && s.groups.Group(name) != e.g {
				gone = append(gone, e)
				delete(s.rtsp.streams, name)
			}
		}
		s.rtsp.mu.Unlock()
		for _, e := range gone {
			s.rtsp.srv.RemoveStream(e.st)
		}
	}
}

// rtspHandler connects RTSP sessions to the groups.
type rtspHandler struct{ s *Server }

type rtspSession interface {
	ID() string
	RemoteAddr() string
	URL() string
	AppName() string
	StreamName() string
	URLParam() string
	StartTime() time.Time
	ReadBytes() uint64
	WrittenBytes() uint64
	Close()
}

func rtspSessionInfo(sess rtspSession, baseType string) group.SessionInfo {
	return group.SessionInfo{
		ID:         sess.ID(),
		Protocol:   ProtocolRTSP,
		BaseType:   baseType,
		RemoteAddr: sess.RemoteAddr(),
		URL:        sess.URL(),
		AppName:    sess.AppName(),
		StreamName: sess.StreamName(),
		URLParam:   sess.URLParam(),
		StartTime:  sess.StartTime(),
		Counters:   sess,
		Close:      sess.Close,
	}
}

func (h *rtspHandler) OnPublish(p *rtsp.PubSession) (rtsp.Publisher, error) {
	info := rtspSessionInfo(p, group.BasePub)
	if err := h.s.authorize(context.Background(), auth.Publish, info); err != nil {
		return nil, err // 403
	}
	pub, err := h.s.groups.Publish(info)
	if r := h.s.streamRefusal(err, info); r != nil {
		return nil, r // 503
	}
	if errors.Is(err, group.ErrStreamExists) {
		return nil, fmt.Errorf("%w: %w", rtsp.ErrStreamBusy, err)
	}
	if err != nil {
		return nil, err
	}
	return pub, nil
}

func (h *rtspHandler) OnSubscribe(sess *rtsp.SubSession) (rtsp.Subscription, error) {
	if h.s.formatRTSP < 0 {
		return nil, errors.New("rtsp output is off")
	}
	info := rtspSessionInfo(sess, group.BaseSub)
	if err := h.s.authorize(context.Background(), auth.Play, info); err != nil {
		return nil, err // 403
	}
	sub, err := h.s.groups.TrySubscribe(info, h.s.formatRTSP)
	if err != nil {
		if r := h.s.streamRefusal(err, info); r != nil {
			return nil, r // 503
		}
		return nil, err
	}
	name := sess.StreamName()
	h.s.rtsp.mu.Lock()
	if e := h.s.rtsp.streams[name]; e != nil && e.g == nil {
		e.g = sub.Group()
	}
	h.s.rtsp.mu.Unlock()
	return rtspSub{sub}, nil
}

// rtspSub is an RTSP player's group subscription. It is for accounting
// only (events, stat, kick): its Next is never called, the media comes from
// the stream's rtsp.Stream.
type rtspSub struct{ *group.Sub }

// Publishing is asked at every DESCRIBE and while it waits: HasInSession
// reads one field, where Stat would copy every subscriber (O(n²) garbage
// over a thousand joining players).
func (r rtspSub) Publishing() bool { return r.Group().HasInSession() }
