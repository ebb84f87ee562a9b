// Command sluice-bench measures a live-streaming server under load: N
// subscribers of one protocol (RTMP, HTTP-FLV, HTTP-TS, RTSP over TCP), a
// real-time RTMP publisher that can also measure the server-added latency
// of each video frame, the rawcopy baseline server, and the standard matrix
// of docs/PERFORMANCE.md. Each measurement prints one JSON line.
//
//	sluice-bench load     -url URL -proto rtmp|flv|ts|rtsp -n N -ramp D -duration D [-pid PID]
//	sluice-bench publish  -file F.flv -url rtmp://... [-loop] [-latency -sub-url URL -others N -pid PID]
//	sluice-bench rawcopy  -file F.flv -listen 127.0.0.1:PORT
//	sluice-bench matrix   [-file F.flv] [-runs flv:1000,...] [-duration D] ...
//	sluice-bench serve    [-cpuprofile F] [-memprofile F]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

const usage = `sluice-bench measures a live-streaming server under load.

Usage:
  sluice-bench load    -url URL -proto rtmp|flv|ts|rtsp -n N [-ramp 10s] [-duration 20s] [-pid PID]
  sluice-bench publish -file F.flv -url rtmp://HOST/APP/NAME [-loop] [-n N] [-duration D]
  sluice-bench publish -file F.flv -url rtmp://... -latency -sub-url URL [-others N] [-pid PID]
  sluice-bench rawcopy -file F.flv -listen 127.0.0.1:PORT
  sluice-bench matrix  [-file F.flv] [-runs flv:1000,rtmp:1000,...] [-duration 20s] [-ramp 10s] [-profile DIR]
  sluice-bench serve   [-c CONF] [-cpuprofile F] [-memprofile F]   (Sluice in-process, for profiles)

URLs may hold {i}, replaced by the subscriber's (or publisher's) index.
Every measurement prints one JSON line on stdout; progress goes to stderr.
Run "sluice-bench COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "load":
		err = cmdLoad(ctx, args)
	case "publish":
		err = cmdPublish(ctx, args)
	case "rawcopy":
		err = cmdRawcopy(ctx, args)
	case "matrix":
		err = cmdMatrix(ctx, args)
	case "serve":
		err = cmdServe(ctx, args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "sluice-bench: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if err == errUsage {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "sluice-bench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// errUsage reports bad flags (already explained on stderr): exit status 2.
var errUsage = errors.New("usage")

var logMu sync.Mutex

// logf writes a progress line to stderr.
func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	fmt.Fprintf(os.Stderr, "%s sluice-bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func printResult(res result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", fs.Args())
		return errUsage
	}
	return nil
}

func cmdLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	u := fs.String("url", "", "play URL template, e.g. http://127.0.0.1:8080/live/test.flv ({i}: subscriber index)")
	proto := fs.String("proto", "", "rtmp, flv, ts or rtsp (default: from the URL)")
	n := fs.Int("n", 100, "subscribers")
	ramp := fs.Duration("ramp", 10*time.Second, "start the subscribers evenly over this time")
	settle := fs.Duration("settle", 2*time.Second, "wait after the ramp before the window opens")
	dur := fs.Duration("duration", 20*time.Second, "measurement window")
	pid := fs.Int("pid", 0, "server process id, for its CPU time and RSS (0: not measured)")
	buf := fs.Int("bufsize", 16<<10, "read buffer per subscriber in bytes (4 to 32 KiB)")
	label := fs.String("label", "", "label copied into the JSON line")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile here")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *u == "" || *n <= 0 {
		fs.Usage()
		return errUsage
	}
	if *proto == "" {
		*proto = protoOfURL(*u)
	}
	if _, err := dialAddr(*proto, expandURL(*u, 0)); err != nil {
		return err
	}
	cfg := loadConfig{URL: *u, Proto: *proto, N: *n, Ramp: *ramp, Settle: *settle, Duration: *dur,
		PID: *pid, BufSize: min(max(*buf, 4096), 32<<10), Label: *label}
	logf("load: %d %s subscribers of %s over %v, window %v", cfg.N, cfg.Proto, cfg.URL, cfg.Ramp, cfg.Duration)
	return printResult(runLoad(ctx, cfg))
}

func cmdPublish(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	file := fs.String("file", "", "FLV file to publish")
	u := fs.String("url", "", "RTMP publish URL ({i}: publisher index)")
	loop := fs.Bool("loop", false, "loop the file with continuous timestamps")
	n := fs.Int("n", 1, "publishers (each publishes the file to its own URL)")
	dur := fs.Duration("duration", 0, "stop after this time (0: until interrupted, or the end of the file)")
	latency := fs.Bool("latency", false, "also subscribe and measure the server-added latency of each video frame")
	subURL := fs.String("sub-url", "", "latency mode: play URL (http://...flv or rtmp://...)")
	others := fs.Int("others", 0, "latency mode: extra subscribers of -sub-url attached during the measurement")
	ramp := fs.Duration("ramp", 5*time.Second, "latency mode: ramp of the other subscribers")
	window := fs.Duration("window", 20*time.Second, "latency mode: measurement window")
	warmup := fs.Duration("warmup", 3*time.Second, "latency mode: publish this long before subscribing")
	pid := fs.Int("pid", 0, "latency mode: server process id, for its CPU time and RSS")
	buf := fs.Int("bufsize", 16<<10, "read buffer per subscriber in bytes (4 to 32 KiB)")
	label := fs.String("label", "", "label copied into the JSON line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" || *u == "" || *n <= 0 || (*latency && *subURL == "") {
		fs.Usage()
		return errUsage
	}
	m, err := loadFLV(*file)
	if err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	pubCtx, cancelPub := context.WithCancel(ctx)
	defer cancelPub()
	var rec *latencyRecorder
	if *latency {
		rec = newLatencyRecorder()
		*loop = true
	}
	errs := make(chan error, *n)
	for i := range *n {
		var stamp func(uint32, time.Time)
		if i == 0 && rec != nil {
			stamp = rec.stamp
		}
		go func(url string) {
			errs <- publishFile(pubCtx, m, url, *loop, stamp)
		}(expandURL(*u, i))
	}
	logf("publish: %d publisher(s) of %s to %s (loop %v)", *n, *file, *u, *loop)
	if !*latency {
		var first error
		for range *n {
			if err := <-errs; err != nil && first == nil && ctx.Err() == nil {
				first = err
				logf("publisher: %v", err)
			}
		}
		return first
	}
	sleepCtx(ctx, *warmup)
	select {
	case err := <-errs:
		return fmt.Errorf("publisher ended: %v", err)
	default:
	}
	proto := protoOfURL(*subURL)
	if proto != protoFLV && proto != protoRTMP {
		return fmt.Errorf("latency subscriber must be HTTP-FLV or RTMP, not %s", proto)
	}
	cfg := loadConfig{URL: *subURL, Proto: proto, N: *others + 1, Ramp: *ramp, Settle: 2 * time.Second,
		Duration: *window, PID: *pid, BufSize: min(max(*buf, 4096), 32<<10), Label: *label,
		Hook0: rec.arrived, OnWindow: rec.setOpen}
	logf("latency: subscriber %s plus %d others", *subURL, *others)
	res := runLoad(ctx, cfg)
	rec.fill(&res)
	cancelPub()
	return printResult(res)
}

func cmdRawcopy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rawcopy", flag.ContinueOnError)
	file := fs.String("file", "", "FLV file to serve")
	listen := fs.String("listen", "127.0.0.1:8090", "HTTP listen address")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here when stopped")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *file == "" {
		fs.Usage()
		return errUsage
	}
	m, err := loadFLV(*file)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	rc := newRawcopy(m)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go rc.feed(ctx)
	logf("rawcopy: serving %s on http://%s/ (any path)", *file, ln.Addr())
	err = rc.serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// startCPUProfile writes a CPU profile of this process to path until the
// returned function is called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
