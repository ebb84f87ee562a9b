// Package relay moves streams between servers: pulls a remote stream into a
// local group (started by the API, or on demand from an origin), and pushes
// local streams to other servers.
package relay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/group"
	"sluice/pkg/rtmp"
	"sluice/pkg/sessionid"
)

// Source is a remote stream being pulled.
type Source interface {
	ReadPacket() (*av.Packet, error)
	RemoteAddr() string
	ReadBytes() uint64
	WrittenBytes() uint64
	Close() error
}

// DialFunc opens a remote stream for reading.
type DialFunc func(ctx context.Context, rawURL string, opt PullOptions) (Source, error)

// PullOptions describe one pull (the body of /api/ctrl/start_relay_pull).
type PullOptions struct {
	URL        string
	StreamName string
	// Timeout bounds connect, handshake and play of each attempt. Default 10 s.
	Timeout time.Duration
	// RetryNum: -1 retries forever, 0 never, N at most N times.
	RetryNum int
	// AutoStopNoOut stops the pull once the stream has had no subscriber for
	// this long; negative never stops.
	AutoStopNoOut time.Duration
	// RTSPMode: 0 TCP, 1 UDP (RTSP pulls only).
	RTSPMode int
}

// Errors of StartPull and StopPull, with lal's texts where lal has one.
var (
	ErrInputExists = errors.New("lal.logic: in stream already exist at group")
	ErrAutoStop    = errors.New("should auto stop pull")
	ErrNoPull      = errors.New("no relay pull for this stream")
)

// PullManager runs the pulls, one at most per stream.
type PullManager struct {
	Groups *group.Manager
	// DialRTMP and DialRTSP open sources for rtmp:// and rtsp:// URLs; a
	// nil one makes such URLs an error.
	DialRTMP DialFunc
	DialRTSP DialFunc
	// OnAttemptFailed reports an attempt that never joined the group (its
	// on_relay_pull_stop has no matching start).
	OnAttemptFailed func(info group.SessionInfo, err error)
	Logger          *zap.Logger

	mu    sync.Mutex
	pulls map[string]*pull
	wg    sync.WaitGroup
}

type pull struct {
	m      *PullManager
	opt    PullOptions
	dial   DialFunc
	prefix string
	ctx    context.Context
	cancel context.CancelFunc
	log    *zap.Logger

	mu        sync.Mutex
	currentID string
	src       Source
	connected bool
	noOutFrom time.Time
}

// redact hides the password of a URL's user info.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// StreamNameFromURL is the default local stream name of a pull: the last path
// segment of the URL, without its query.
func StreamNameFromURL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	p := strings.TrimRight(u.Path, "/")
	name := p[strings.LastIndexByte(p, '/')+1:]
	if name == "" {
		return "", fmt.Errorf("url %q has no stream name", rawURL)
	}
	return name, nil
}

// StartPull starts pulling opt.URL into the stream opt.StreamName and returns
// the session id of the first attempt. It fails with ErrInputExists when the
// stream has a publisher or a pull already.
func (m *PullManager) StartPull(opt PullOptions) (string, error) {
	if opt.StreamName == "" {
		name, err := StreamNameFromURL(opt.URL)
		if err != nil {
			return "", err
		}
		opt.StreamName = name
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	p := &pull{m: m, opt: opt, log: m.logger().With(zap.String("stream_name", opt.StreamName), zap.String("url", redact(opt.URL)))}
	switch {
	case strings.HasPrefix(opt.URL, "rtmp://"):
		p.dial, p.prefix = m.DialRTMP, sessionid.RTMPPull
	case strings.HasPrefix(opt.URL, "rtsp://"):
		p.dial, p.prefix = m.DialRTSP, sessionid.RTSPPull
	}
	if p.dial == nil {
		return "", fmt.Errorf("cannot pull %q: unsupported protocol", opt.URL)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pulls == nil {
		m.pulls = map[string]*pull{}
	}
	if m.pulls[opt.StreamName] != nil {
		return "", ErrInputExists
	}
	if g := m.Groups.Group(opt.StreamName); g != nil && g.HasInSession() {
		return "", ErrInputExists
	}
	if opt.AutoStopNoOut == 0 && !m.hasOut(opt.StreamName) {
		return "", ErrAutoStop
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.currentID = sessionid.Next(p.prefix)
	id := p.currentID // read before run may replace it with a retry's id
	p.noOutFrom = time.Now()
	m.pulls[opt.StreamName] = p
	// The group exists from now on (as lal): the stat API shows it with an
	// empty pull while connecting, and a publisher arriving meanwhile is refused.
	release := m.Groups.HoldInput(opt.StreamName)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		p.run()
		m.mu.Lock()
		if m.pulls[opt.StreamName] == p {
			delete(m.pulls, opt.StreamName)
		}
		m.mu.Unlock()
		release()
	}()
	return id, nil
}

// StopPull stops the stream's pull and its retries. It returns the id of the
// connected session, or ErrNoPull when no pull is connected (a pull still
// connecting is stopped all the same).
func (m *PullManager) StopPull(stream string) (string, error) {
	m.mu.Lock()
	p := m.pulls[stream]
	m.mu.Unlock()
	if p == nil {
		return "", ErrNoPull
	}
	p.mu.Lock()
	id, connected := p.currentID, p.connected
	p.mu.Unlock()
	p.stop()
	if !connected {
		return "", ErrNoPull
	}
	return id, nil
}

// HasPull reports whether a pull runs (or retries) for stream.
func (m *PullManager) HasPull(stream string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pulls[stream] != nil
}

// Shutdown stops every pull and waits for them.
func (m *PullManager) Shutdown() {
	m.mu.Lock()
	for _, p := range m.pulls {
		p.stop() // cancel alone would leave a connected source reading
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *PullManager) hasOut(stream string) bool {
	g := m.Groups.Group(stream)
	return g != nil && g.HasOutSession()
}

func (m *PullManager) logger() *zap.Logger {
	if m.Logger == nil {
		return zap.NewNop()
	}
	return m.Logger
}

// stop ends the pull for good: no retry follows.
func (p *pull) stop() {
	p.cancel()
	p.mu.Lock()
	if p.src != nil {
		p.src.Close()
	}
	p.mu.Unlock()
}

func (p *pull) run() {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.mu.Lock()
			p.currentID = sessionid.Next(p.prefix)
			p.mu.Unlock()
		}
		joined, err := p.attempt()
		p.log.Info("relay pull attempt ended", zap.Int("attempt", attempt), zap.Error(err))
		if p.ctx.Err() != nil || errors.Is(err, ErrInputExists) || errors.Is(err, ErrAutoStop) {
			return
		}
		if p.opt.RetryNum >= 0 && attempt >= p.opt.RetryNum {
			return
		}
		if p.autoStopDue() {
			p.log.Info("relay pull stopped: no subscriber")
			return
		}
		if joined {
			backoff = time.Second
		}
		if p.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// sleep waits d before a retry, watching the auto stop meanwhile; it reports
// whether the pull must end instead.
func (p *pull) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return true
		case <-timer.C:
			return false
		case <-tick.C:
			if p.autoStopDue() {
				p.log.Info("relay pull stopped: no subscriber")
				return true
			}
		}
	}
}

// autoStopDue reports whether the stream has had no subscriber for the
// auto-stop delay.
func (p *pull) autoStopDue() bool {
	if p.opt.AutoStopNoOut < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m.hasOut(p.opt.StreamName) {
		p.noOutFrom = time.Time{}
		return false
	}
	if p.noOutFrom.IsZero() {
		p.noOutFrom = time.Now()
	}
	return time.Since(p.noOutFrom) >= p.opt.AutoStopNoOut
}

// attempt connects once and relays until the source ends. joined reports
// whether the attempt became the group's input.
func (p *pull) attempt() (joined bool, err error) {
	p.mu.Lock()
	id := p.currentID
	p.mu.Unlock()
	info := group.SessionInfo{
		ID:         id,
		Protocol:   "RTMP",
		BaseType:   group.BasePull,
		URL:        redact(p.opt.URL), // stat and webhooks never show a password
		StreamName: p.opt.StreamName,
		StartTime:  time.Now(),
	}
	if g := p.m.Groups.Group(p.opt.StreamName); g != nil {
		info.AppName = g.AppName() // the events name the local group
	}
	if p.prefix == sessionid.RTSPPull {
		info.Protocol = "RTSP"
	}
	if u, err := url.Parse(p.opt.URL); err == nil {
		info.URLParam = u.RawQuery
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opt.Timeout)
	src, err := p.dial(ctx, p.opt.URL, p.opt)
	cancel()
	if err != nil {
		p.failed(info, err)
		return false, err
	}
	info.RemoteAddr = src.RemoteAddr()
	info.Counters = src
	info.Close = p.stop     // a kick stops the pull and its retries
	if p.ctx.Err() != nil { // stopped while connecting: never join
		src.Close()
		return false, p.ctx.Err()
	}
	pub, err := p.m.Groups.Publish(info)
	if err != nil {
		src.Close()
		p.failed(info, err)
		return false, ErrInputExists
	}
	p.mu.Lock()
	p.src, p.connected = src, true
	p.mu.Unlock()
	if p.ctx.Err() != nil { // stopped while connecting
		src.Close()
	}

	watchDone := make(chan struct{})
	autoStopped := make(chan struct{})
	go p.watchAutoStop(src, watchDone, autoStopped)
	for {
		var pkt *av.Packet
		pkt, err = src.ReadPacket()
		if err != nil {
			break
		}
		pub.WritePacket(pkt)
	}
	close(watchDone)
	src.Close()
	pub.Close()
	p.mu.Lock()
	p.src, p.connected = nil, false
	p.mu.Unlock()
	select {
	case <-autoStopped:
		return true, ErrAutoStop
	default:
	}
	return true, err
}

// watchAutoStop closes src once the stream has had no subscriber for the
// auto-stop delay.
func (p *pull) watchAutoStop(src Source, done <-chan struct{}, stopped chan<- struct{}) {
	if p.opt.AutoStopNoOut < 0 {
		return
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if p.autoStopDue() {
				p.log.Info("relay pull stopped: no subscriber", zap.Duration("auto_stop_pull_after_no_out", p.opt.AutoStopNoOut))
				close(stopped)
				src.Close()
				return
			}
		}
	}
}

func (p *pull) failed(info group.SessionInfo, err error) {
	p.log.Info("relay pull attempt failed", zap.String("session_id", info.ID), zap.Error(err))
	if p.m.OnAttemptFailed != nil {
		p.m.OnAttemptFailed(info, err)
	}
}

// DialRTMP opens an RTMP play session: the DialFunc for rtmp:// URLs.
func DialRTMP(ctx context.Context, rawURL string, opt PullOptions) (Source, error) {
	c, err := rtmp.Dial(ctx, rawURL, rtmp.ClientOptions{Timeout: opt.Timeout, FlashVer: "LNX 9,0,124,2"})
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Play(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
