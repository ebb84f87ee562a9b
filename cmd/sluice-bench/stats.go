package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/pkg/connstat"
)

// ticksPerSecond is the clock every media time is kept in: the 90 kHz clock
// of MPEG-TS and RTP video; FLV/RTMP milliseconds are multiplied by 90.
const ticksPerSecond = 90000

// maxGapTicks is the largest step between two timestamps of a track that
// still counts as media received; a larger step means frames were skipped
// (by the server dropping a slow subscriber's backlog, or the publisher
// restarting) and is counted as a gap instead.
const maxGapTicks = 1 * ticksPerSecond

// mediaClock adds up the media time one track delivered: the sum of the
// forward steps of its (unwrapped) timestamps, each at most maxGapTicks.
// Backward steps (B-frame presentation times) are ignored, so the clock
// follows the largest timestamp seen.
type mediaClock struct {
	last  int64
	have  bool
	total int64
	gaps  int32
}

func (c *mediaClock) add(t int64) {
	if !c.have {
		c.have, c.last = true, t
		return
	}
	d := t - c.last
	if d <= 0 {
		return
	}
	if d <= maxGapTicks {
		c.total += d
	} else {
		c.gaps++
	}
	c.last = t
}

// Subscriber states.
const (
	stateConnecting int32 = iota
	statePlaying
	stateEnded
)

// subStat is what one subscriber tells the load runner. The subscriber's
// goroutine writes it; the runner reads the atomics at any time.
type subStat struct {
	video, audio mediaClock // owned by the subscriber goroutine
	reqAt        time.Time  // when the play request was written (subscriber goroutine)

	state    atomic.Int32
	media    atomic.Int64 // media ticks received: the video clock, or the audio clock on an audio-only stream
	gaps     atomic.Int32
	firstKey atomic.Int64                  // ns from the play request to the first keyframe; 0 = none yet
	conn     atomic.Pointer[connstat.Conn] // the socket, counting bytes read
	in       atomic.Pointer[input]         // counts the bytes skipped in the kernel
	err      atomic.Pointer[string]
}

// onVideo records a video frame with its (unwrapped) timestamp in ticks.
func (s *subStat) onVideo(ticks int64, key bool) {
	s.video.add(ticks)
	s.media.Store(s.video.total)
	s.gaps.Store(s.video.gaps)
	if key && s.firstKey.Load() == 0 && !s.reqAt.IsZero() {
		s.firstKey.Store(max(int64(time.Since(s.reqAt)), 1))
	}
}

// onAudio records an audio frame; it only counts while no video was seen.
func (s *subStat) onAudio(ticks int64) {
	s.audio.add(ticks)
	if !s.video.have {
		s.media.Store(s.audio.total)
		s.gaps.Store(s.audio.gaps)
	}
}

// bytesRead returns the bytes received so far (read or skipped).
func (s *subStat) bytesRead() uint64 {
	var n uint64
	if c := s.conn.Load(); c != nil {
		n = c.ReadBytes()
	}
	if in := s.in.Load(); in != nil {
		n += in.skipped.Load()
	}
	return n
}

func (s *subStat) fail(err error) {
	msg := err.Error()
	s.err.Store(&msg)
	s.state.Store(stateEnded)
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or NaN when it is empty.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// sortedCopy returns the values sorted, without touching v.
func sortedCopy(v []float64) []float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

// num is a float printed with 3 decimals in JSON, or null when NaN.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(f*1000)/1000, 'f', -1, 64), nil
}

// result is the one JSON line a run prints. The first fields are the ones
// the issue asks for, in its order; the rest are diagnostics.
type result struct {
	Proto            string `json:"proto"`
	SubsAsked        int    `json:"subs_asked"`
	SubsConnected    int    `json:"subs_connected"`
	RealtimeFraction num    `json:"realtime_fraction"`
	GbitPerS         num    `json:"gbit_per_s"`
	ServerCores      num    `json:"server_cores"`
	CoresPerGbit     num    `json:"cores_per_gbit"`
	PeakRSSMiB       num    `json:"peak_rss_mib"`
	RSSPerSubKiB     num    `json:"rss_per_sub_kib"`
	FirstKeyP50      num    `json:"first_keyframe_ms_p50"`
	FirstKeyP99      num    `json:"first_keyframe_ms_p99"`
	AddedLatP50      *num   `json:"added_latency_ms_p50,omitempty"`
	AddedLatP99      *num   `json:"added_latency_ms_p99,omitempty"`
	AddedLatMax      *num   `json:"added_latency_ms_max,omitempty"`

	Label          string `json:"label,omitempty"`
	WindowS        num    `json:"window_s"`
	IdleRSSMiB     num    `json:"idle_rss_mib"`
	MediaRatioP50  num    `json:"media_ratio_p50"` // received media time / window, median subscriber
	MediaRatioMin  num    `json:"media_ratio_min"`
	Gaps           int    `json:"gaps"`        // skips of more than 1 s of media, all subscribers
	NoKeyframe     int    `json:"no_keyframe"` // connected subscribers that never got a keyframe
	LatencySamples int    `json:"latency_samples,omitempty"`
	ToolCores      num    `json:"tool_cores"` // CPU the load tool itself used in the window
	// Busy fraction of the CPUs the server (tool) is pinned to, softirq and
	// ksoftirqd included: on loopback much of the TCP work is done there
	// outside the process's own CPU time. null when not pinned.
	ServerCPUBusy  num            `json:"server_cpu_busy"`
	ToolCPUBusy    num            `json:"tool_cpu_busy"`
	LoadAvg1m      num            `json:"loadavg_1m"` // machine load at the end of the window (the machine is shared)
	ToolPeakRSSMiB num            `json:"tool_peak_rss_mib"`
	Errors         map[string]int `json:"errors,omitempty"`
}

// ---- /proc ------------------------------------------------------------------

var clkTck = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
})

// procCPU returns the user+system CPU time of process pid (all threads) in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat extracts utime+stime (fields 14 and 15) from a
// /proc/<pid>/stat line, in seconds. The command name (field 2) may hold
// spaces and parentheses, so the fields are counted after its last ')'.
func parseProcStat(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, errors.New("proc stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return float64(ut+st) / clkTck(), nil
}

// procMem returns VmRSS and VmHWM of process pid in KiB.
func procMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseProcStatus(b)
}

func parseProcStatus(b []byte) (rss, hwm int64, err error) {
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		v, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			return 0, 0, fmt.Errorf("proc status %s: %w", key, perr)
		}
		if key == "VmRSS" {
			rss = v
		} else {
			hwm = v
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("proc status: no VmRSS")
	}
	return rss, hwm, nil
}

// resetHWM resets the process's peak RSS (VmHWM) to its current RSS, so that
// VmHWM read later is the peak of the measurement only.
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cpusOf returns the CPUs process pid may run on (Cpus_allowed_list).
func cpusOf(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil, errors.New("proc status: no Cpus_allowed_list")
}

// parseCPUList parses a CPU list such as "0", "0-1" or "0,2-3".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range", s)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// cpuBusy returns the busy time in seconds (user, nice, system, irq,
// softirq and steal) of the given CPUs since boot, from /proc/stat. Unlike a
// process's own CPU time it includes the network softirq work the kernel
// does on that CPU for anyone (ksoftirqd included).
func cpuBusy(cpus []int) (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseCPUBusy(b, cpus)
}

func parseCPUBusy(b []byte, cpus []int) (float64, error) {
	want := map[string]bool{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	var ticks uint64
	found := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 9 || !want[f[0]] {
			continue
		}
		found++
		for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("proc stat %s: %w", f[0], err)
			}
			ticks += v
		}
	}
	if found != len(cpus) {
		return 0, fmt.Errorf("proc stat: %d of %d cpus found", found, len(cpus))
	}
	return float64(ticks) / clkTck(), nil
}

// pinnedCPUs returns the CPUs pid is pinned to, or nil when it may run on
// every online CPU (then a CPU's busy time says nothing about the process).
func pinnedCPUs(pid int) []int {
	cpus, err := cpusOf(pid)
	if err != nil {
		return nil
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	online := 0
	for line := range strings.Lines(string(b)) {
		if len(line) > 3 && strings.HasPrefix(line, "cpu") && line[3] >= '0' && line[3] <= '9' {
			online++
		}
	}
	if len(cpus) >= online {
		return nil
	}
	return cpus
}

// loadAvg1m returns the 1-minute load average.
func loadAvg1m() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}
