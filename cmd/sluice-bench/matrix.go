package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// matrixRun is one cell of the matrix: a protocol and a subscriber count.
type matrixRun struct {
	proto string
	n     int
}

func parseRuns(s string) ([]matrixRun, error) {
	var runs []matrixRun
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, ns, ok := strings.Cut(part, ":")
		n, err := strconv.Atoi(ns)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("run %q: want PROTO:N", part)
		}
		switch p {
		case protoFLV, protoRTMP, protoTS, protoRTSP:
		default:
			return nil, fmt.Errorf("run %q: protocol must be flv, rtmp, ts or rtsp", part)
		}
		runs = append(runs, matrixRun{p, n})
	}
	return runs, nil
}

type matrix struct {
	self, sluice, file string
	serverCPU, toolCPU string
	ramp, settle, dur  time.Duration
	warmup             time.Duration
	bufSize            int
	workDir            string
	logDir             string
	profDir            string
}

func cmdMatrix(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	file := fs.String("file", "../shared/media/h264_aac_720p_2m.flv", "FLV file the publisher loops")
	runsFlag := fs.String("runs", "flv:1000,flv:3000,rtmp:1000,rtmp:3000,ts:1000,rtsp:1000", "PROTO:N cells against Sluice")
	raw := fs.Bool("rawcopy", true, "measure the rawcopy baseline (HTTP-FLV) at each N of -runs")
	latOthers := fs.Int("latency-others", 500, "latency run with this many other subscribers (-1: no latency run)")
	sluiceBin := fs.String("sluice", "", "Sluice binary (default: go build ./cmd/sluice into a temporary directory)")
	dur := fs.Duration("duration", 20*time.Second, "measurement window of each run")
	ramp := fs.Duration("ramp", 10*time.Second, "subscriber ramp of each run")
	settle := fs.Duration("settle", 2*time.Second, "wait between the ramp and the window")
	warmup := fs.Duration("warmup", 3*time.Second, "publish this long before the subscribers start")
	serverCPU := fs.String("server-cpu", "0", "taskset CPU list of the server (\"\": no pinning)")
	toolCPU := fs.String("tool-cpu", "1", "taskset CPU list of the publisher and the load tool (\"\": no pinning)")
	buf := fs.Int("bufsize", 16<<10, "read buffer per subscriber")
	profDir := fs.String("profile", "", "run Sluice in-process (sluice-bench serve) and write its CPU and heap profiles of each run here")
	logDir := fs.String("logdir", "", "keep the servers' and tools' logs here (default: a temporary directory, removed)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	runs, err := parseRuns(*runsFlag)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*file); err != nil {
		return fmt.Errorf("media file: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	mx := &matrix{self: self, sluice: *sluiceBin, file: *file, serverCPU: *serverCPU, toolCPU: *toolCPU,
		ramp: *ramp, settle: *settle, dur: *dur, warmup: *warmup, bufSize: *buf, workDir: work, logDir: *logDir, profDir: *profDir}
	if mx.logDir == "" {
		mx.logDir = work
	} else if err := os.MkdirAll(mx.logDir, 0o755); err != nil {
		return err
	}
	if mx.profDir != "" {
		if err := os.MkdirAll(mx.profDir, 0o755); err != nil {
			return err
		}
	} else if mx.sluice == "" {
		mx.sluice = filepath.Join(work, "sluice")
		logf("matrix: go build -o %s ./cmd/sluice", mx.sluice)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", mx.sluice, "./cmd/sluice")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building sluice: %w", err)
		}
	}
	if _, err := exec.LookPath("taskset"); err != nil && (mx.serverCPU != "" || mx.toolCPU != "") {
		logf("matrix: taskset not found: running unpinned")
		mx.serverCPU, mx.toolCPU = "", ""
	}

	rawDone := map[int]bool{}
	for _, r := range runs {
		if ctx.Err() != nil {
			break
		}
		if *raw && !rawDone[r.n] {
			rawDone[r.n] = true
			if err := mx.rawcopyRun(ctx, r.n); err != nil {
				logf("matrix: rawcopy n=%d: %v", r.n, err)
			}
		}
		if err := mx.sluiceRun(ctx, r, -1); err != nil {
			logf("matrix: sluice %s n=%d: %v", r.proto, r.n, err)
		}
	}
	if *latOthers >= 0 && ctx.Err() == nil {
		if err := mx.sluiceRun(ctx, matrixRun{proto: protoFLV}, *latOthers); err != nil {
			logf("matrix: latency run: %v", err)
		}
	}
	if *logDir == "" {
		logf("matrix: done")
	} else {
		logf("matrix: done; logs in %s", mx.logDir)
	}
	return ctx.Err()
}

// proc is a child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs argv pinned to cpus, output to logName in the log directory
// (stdout to out when not nil).
func (mx *matrix) start(name, cpus string, env []string, out *bytes.Buffer, argv ...string) (*proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	logFile, err := os.Create(filepath.Join(mx.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if out != nil {
		cmd.Stdout = out
	}
	// The child dies with the matrix, even if the matrix is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after 3 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// wait waits for the process to exit, killing it after d.
func (p *proc) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.stop()
		return fmt.Errorf("%s did not finish within %v", p.name, d)
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// freePort returns a loopback address with a free port.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listens on %s", p.name, addr)
}

// load runs the load tool against url and prints its JSON line.
func (mx *matrix) load(ctx context.Context, name, proto, url string, n, pid int) error {
	var out bytes.Buffer
	p, err := mx.start(name, mx.toolCPU, nil, &out, mx.self, "load", "-url", url, "-proto", proto,
		"-n", strconv.Itoa(n), "-ramp", mx.ramp.String(), "-settle", mx.settle.String(),
		"-duration", mx.dur.String(), "-pid", strconv.Itoa(pid), "-bufsize", strconv.Itoa(mx.bufSize),
		"-label", name)
	if err != nil {
		return err
	}
	err = p.wait(ctx, mx.ramp+mx.settle+mx.dur+90*time.Second)
	return emit(name, &out, err)
}

// emit prints the JSON line a child wrote.
func emit(name string, out *bytes.Buffer, err error) error {
	line := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if strings.HasPrefix(line, "{") {
		fmt.Println(line)
		return nil
	}
	if err == nil {
		err = errors.New("no result")
	}
	return fmt.Errorf("%s: %w", name, err)
}

func (mx *matrix) rawcopyRun(ctx context.Context, n int) error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("rawcopy-flv-%d", n)
	argv := []string{mx.self, "rawcopy", "-file", mx.file, "-listen", addr}
	if mx.profDir != "" {
		argv = append(argv, "-cpuprofile", filepath.Join(mx.profDir, name+".cpu.prof"))
	}
	srv, err := mx.start(name+"-server", mx.serverCPU, nil, nil, argv...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := waitListening(ctx, srv, addr); err != nil {
		return err
	}
	sleepCtx(ctx, mx.warmup)
	logf("matrix: %s", name)
	return mx.load(ctx, name, protoFLV, "http://"+addr+"/live/bench.flv", n, srv.cmd.Process.Pid)
}

// sluiceRun starts Sluice and a publisher and measures one cell; with
// latencyOthers >= 0 it is the latency run instead (the publisher measures).
func (mx *matrix) sluiceRun(ctx context.Context, r matrixRun, latencyOthers int) error {
	var addrs [3]string
	for i := range addrs {
		a, err := freePort()
		if err != nil {
			return err
		}
		addrs[i] = a
	}
	rtmpAddr, httpAddr, rtspAddr := addrs[0], addrs[1], addrs[2]
	env := []string{
		"SLUICE_LOG_LEVEL=3",
		"SLUICE_RTMP_ADDR=" + rtmpAddr,
		"SLUICE_DEFAULT_HTTP_HTTP_LISTEN_ADDR=" + httpAddr,
		"SLUICE_HTTPFLV_HTTP_LISTEN_ADDR=" + httpAddr,
		"SLUICE_HTTPTS_HTTP_LISTEN_ADDR=" + httpAddr,
		"SLUICE_RTSP_ADDR=" + rtspAddr,
		"SLUICE_RTSP_UDP_RTP_ADDR=",
		"SLUICE_RTSP_UDP_RTCP_ADDR=",
		"SLUICE_HTTP_API_ENABLE=false",
		"SLUICE_PPROF_ENABLE=false",
		"SLUICE_HLS_ENABLE=false",
		"SLUICE_HTTP_NOTIFY_ENABLE=false",
	}
	name := fmt.Sprintf("sluice-%s-%d", r.proto, r.n)
	if latencyOthers >= 0 {
		name = fmt.Sprintf("sluice-latency-%d", latencyOthers)
	}
	argv := []string{mx.sluice}
	if mx.profDir != "" {
		argv = []string{mx.self, "serve", "-cpuprofile", filepath.Join(mx.profDir, name+".cpu.prof"),
			"-memprofile", filepath.Join(mx.profDir, name+".heap.prof"),
			"-memprofile-at", (mx.warmup + mx.ramp + mx.settle + mx.dur/2).String(), "-memlog", "1s"}
	}
	srv, err := mx.start(name+"-server", mx.serverCPU, env, nil, argv...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := waitListening(ctx, srv, rtmpAddr); err != nil {
		return err
	}
	if err := waitListening(ctx, srv, httpAddr); err != nil {
		return err
	}
	pubURL := "rtmp://" + rtmpAddr + "/live/bench"
	pid := srv.cmd.Process.Pid
	if latencyOthers >= 0 {
		logf("matrix: %s", name)
		var out bytes.Buffer
		p, err := mx.start(name, mx.toolCPU, nil, &out, mx.self, "publish", "-file", mx.file, "-url", pubURL,
			"-latency", "-sub-url", "http://"+httpAddr+"/live/bench.flv", "-others", strconv.Itoa(latencyOthers),
			"-ramp", mx.ramp.String(), "-window", mx.dur.String(), "-warmup", mx.warmup.String(),
			"-pid", strconv.Itoa(pid), "-bufsize", strconv.Itoa(mx.bufSize), "-label", name)
		if err != nil {
			return err
		}
		err = p.wait(ctx, mx.warmup+mx.ramp+mx.dur+90*time.Second)
		return emit(name, &out, err)
	}
	pub, err := mx.start(name+"-publisher", mx.toolCPU, nil, nil, mx.self, "publish", "-file", mx.file, "-url", pubURL, "-loop")
	if err != nil {
		return err
	}
	defer pub.stop()
	sleepCtx(ctx, mx.warmup)
	if !pub.alive() {
		return fmt.Errorf("publisher exited: %v", pub.err)
	}
	var url string
	switch r.proto {
	case protoRTMP:
		url = pubURL
	case protoFLV:
		url = "http://" + httpAddr + "/live/bench.flv"
	case protoTS:
		url = "http://" + httpAddr + "/live/bench.ts"
	case protoRTSP:
		url = "rtsp://" + rtspAddr + "/live/bench"
	}
	logf("matrix: %s", name)
	return mx.load(ctx, name, r.proto, url, r.n, pid)
}
