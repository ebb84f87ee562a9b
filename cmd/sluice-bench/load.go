package main

import (
	"context"
	"io"
	"math"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// loadConfig is one load run.
type loadConfig struct {
	URL      string // play URL template ({i} is the subscriber index)
	Proto    string
	N        int
	Ramp     time.Duration // subscribers start evenly over it
	Settle   time.Duration // wait after the ramp before the window opens
	Duration time.Duration // the measurement window
	PID      int           // server process to measure; 0: none
	BufSize  int           // read buffer per subscriber
	Label    string
	// Hook0 is given to subscriber 0 (the latency subscriber).
	Hook0 frameHook
	// OnWindow is called when the window opens (true) and closes (false).
	OnWindow func(open bool)
}

// runLoad starts the subscribers, measures one window and returns the result
// (latency fields are left to the caller).
func runLoad(ctx context.Context, cfg loadConfig) result {
	res := result{Proto: cfg.Proto, SubsAsked: cfg.N, Label: cfg.Label}
	var idleRSS int64
	var peakRSS atomic.Int64
	samplerDone := make(chan struct{})
	samplerStop := make(chan struct{})
	if cfg.PID > 0 {
		resetHWM(cfg.PID)
		if rss, _, err := procMem(cfg.PID); err == nil {
			idleRSS = rss
			peakRSS.Store(rss)
		} else {
			logf("cannot read the server's memory: %v", err)
		}
		go func() {
			defer close(samplerDone)
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-samplerStop:
					return
				case <-t.C:
				}
				if rss, _, err := procMem(cfg.PID); err == nil && rss > peakRSS.Load() {
					peakRSS.Store(rss)
				}
			}
		}()
	} else {
		close(samplerDone)
	}

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	subs := make([]*subStat, cfg.N)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cfg.N {
		if cfg.N > 1 {
			due := start.Add(cfg.Ramp * time.Duration(i) / time.Duration(cfg.N))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		st := &subStat{}
		subs[i] = st
		var hook frameHook
		if i == 0 {
			hook = cfg.Hook0
		}
		wg.Add(1)
		go func(u string) {
			defer wg.Done()
			err := subscribe(subCtx, cfg.Proto, u, cfg.BufSize, st, hook)
			if subCtx.Err() != nil {
				return
			}
			if err == nil {
				err = io.EOF
			}
			st.fail(err)
		}(expandURL(cfg.URL, i))
	}
	sleepCtx(ctx, cfg.Settle)

	// Window.
	type snap struct {
		media int64
		bytes uint64
	}
	take := func() []snap {
		s := make([]snap, len(subs))
		for i, st := range subs {
			s[i] = snap{st.media.Load(), st.bytesRead()}
		}
		return s
	}
	cpu := func(pid int) float64 {
		if pid <= 0 {
			return math.NaN()
		}
		v, err := procCPU(pid)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	busy := func(cpus []int) float64 {
		if cpus == nil {
			return math.NaN()
		}
		v, err := cpuBusy(cpus)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	var srvCPUs []int
	if cfg.PID > 0 {
		srvCPUs = pinnedCPUs(cfg.PID)
	}
	selfCPUs := pinnedCPUs(os.Getpid())
	t0 := time.Now()
	s0 := take()
	srv0, self0 := cpu(cfg.PID), cpu(os.Getpid())
	srvBusy0, selfBusy0 := busy(srvCPUs), busy(selfCPUs)
	if cfg.OnWindow != nil {
		cfg.OnWindow(true)
	}
	sleepCtx(ctx, cfg.Duration)
	if cfg.OnWindow != nil {
		cfg.OnWindow(false)
	}
	srv1, self1 := cpu(cfg.PID), cpu(os.Getpid())
	srvBusy1, selfBusy1 := busy(srvCPUs), busy(selfCPUs)
	s1 := take()
	window := time.Since(t0).Seconds()
	res.LoadAvg1m = num(loadAvg1m())
	if _, hwm, err := procMem(os.Getpid()); err == nil {
		res.ToolPeakRSSMiB = num(float64(hwm) / 1024)
	}
	res.WindowS = num(window)

	// Memory.
	close(samplerStop)
	<-samplerDone
	peak := peakRSS.Load()
	if cfg.PID > 0 {
		if _, hwm, err := procMem(cfg.PID); err == nil && hwm > peak {
			peak = hwm
		}
	}

	// Subscribers.
	var totalBytes uint64
	realtime := 0
	ratios := make([]float64, 0, len(subs))
	var firstKeys []float64
	errs := map[string]int{}
	for i, st := range subs {
		totalBytes += s1[i].bytes - s0[i].bytes
		ratio := float64(s1[i].media-s0[i].media) / ticksPerSecond / window
		ratios = append(ratios, ratio)
		playing := st.state.Load() == statePlaying
		if playing {
			res.SubsConnected++
			if ratio >= 0.95 {
				realtime++
			}
		}
		res.Gaps += int(st.gaps.Load())
		if fk := st.firstKey.Load(); fk > 0 {
			firstKeys = append(firstKeys, float64(fk)/1e6)
		} else if playing {
			res.NoKeyframe++
		}
		if e := st.err.Load(); e != nil {
			addError(errs, *e)
		}
	}
	cancel()
	waitTimeout(&wg, 5*time.Second)

	if cfg.N > 0 {
		res.RealtimeFraction = num(float64(realtime) / float64(cfg.N))
	}
	ratios = sortedCopy(ratios)
	res.MediaRatioP50 = num(percentile(ratios, 50))
	res.MediaRatioMin = num(percentile(ratios, 0))
	gbps := float64(totalBytes) * 8 / window / 1e9
	res.GbitPerS = num(gbps)
	cores := (srv1 - srv0) / window
	res.ServerCores = num(cores)
	res.CoresPerGbit = num(cores / gbps)
	res.ToolCores = num((self1 - self0) / window)
	res.ServerCPUBusy = num((srvBusy1 - srvBusy0) / window / float64(max(len(srvCPUs), 1)))
	res.ToolCPUBusy = num((selfBusy1 - selfBusy0) / window / float64(max(len(selfCPUs), 1)))
	if cfg.PID > 0 {
		res.IdleRSSMiB = num(float64(idleRSS) / 1024)
		res.PeakRSSMiB = num(float64(peak) / 1024)
		if res.SubsConnected > 0 {
			res.RSSPerSubKiB = num(float64(peak-idleRSS) / float64(res.SubsConnected))
		} else {
			res.RSSPerSubKiB = num(math.NaN())
		}
	} else {
		res.IdleRSSMiB, res.PeakRSSMiB, res.RSSPerSubKiB = num(math.NaN()), num(math.NaN()), num(math.NaN())
	}
	firstKeys = sortedCopy(firstKeys)
	res.FirstKeyP50 = num(percentile(firstKeys, 50))
	res.FirstKeyP99 = num(percentile(firstKeys, 99))
	if len(errs) > 0 {
		res.Errors = errs
	}
	return res
}

var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+(->\d+\.\d+\.\d+\.\d+:\d+)?`)

// addError counts an error message with its addresses blanked, keeping at
// most 8 distinct messages.
func addError(errs map[string]int, msg string) {
	msg = addrRE.ReplaceAllString(msg, "ADDR")
	if _, ok := errs[msg]; !ok && len(errs) >= 8 {
		msg = "other"
	}
	errs[msg]++
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// latencyRecorder matches the send time of each video frame (by timestamp)
// with its arrival at the latency subscriber.
type latencyRecorder struct {
	mu      sync.Mutex
	sent    map[uint32]time.Time
	samples []float64 // ms
	open    bool
}

func newLatencyRecorder() *latencyRecorder {
	return &latencyRecorder{sent: map[uint32]time.Time{}}
}

// stamp records that the frame with timestamp ts is being sent now.
func (l *latencyRecorder) stamp(ts uint32, at time.Time) {
	l.mu.Lock()
	l.sent[ts] = at
	if len(l.sent) > 4096 {
		for k, v := range l.sent {
			if at.Sub(v) > 30*time.Second {
				delete(l.sent, k)
			}
		}
	}
	l.mu.Unlock()
}

// arrived records the arrival of the frame with timestamp ts.
func (l *latencyRecorder) arrived(ts uint32) {
	now := time.Now()
	l.mu.Lock()
	if at, ok := l.sent[ts]; ok {
		delete(l.sent, ts)
		if l.open {
			l.samples = append(l.samples, float64(now.Sub(at))/1e6)
		}
	}
	l.mu.Unlock()
}

func (l *latencyRecorder) setOpen(open bool) {
	l.mu.Lock()
	l.open = open
	l.mu.Unlock()
}

// fill sets the latency fields of res.
func (l *latencyRecorder) fill(res *result) {
	l.mu.Lock()
	s := sortedCopy(l.samples)
	l.mu.Unlock()
	p50, p99, mx := num(percentile(s, 50)), num(percentile(s, 99)), num(percentile(s, 100))
	res.AddedLatP50, res.AddedLatP99, res.AddedLatMax = &p50, &p99, &mx
	res.LatencySamples = len(s)
}
