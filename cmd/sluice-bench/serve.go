package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"sluice/pkg/config"
	"sluice/pkg/server"
)

// cmdServe runs Sluice in this process, configured as cmd/sluice is (a
// config file or the defaults, then SLUICE_* environment overrides), with a
// CPU profile of its whole life and a heap profile at the end: Sluice has
// no pprof listener, and this is how the matrix profiles it (-profile).
func cmdServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	conf := fs.String("c", "", "config file (default: built-in defaults; SLUICE_* variables apply)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here when the server stops")
	memProfile := fs.String("memprofile", "", "write a heap profile here when the server stops (or at -memprofile-at)")
	memAt := fs.Duration("memprofile-at", 0, "write the heap profile this long after the start, under load, instead of at the end")
	memLog := fs.Duration("memlog", 0, "log the runtime's memory classes (heap in use, free, released, stacks, GC goal) at this interval")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := config.Load(*conf)
	if err != nil {
		return err
	}
	log, closeLog, err := server.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer closeLog()
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		return err
	}
	logf("serve: Sluice %s running in-process", server.Version)
	if *memProfile != "" && *memAt > 0 {
		t := time.AfterFunc(*memAt, func() {
			if err := writeHeapProfile(*memProfile); err != nil {
				logf("serve: %v", err)
			}
		})
		defer t.Stop()
	}
	if *memLog > 0 {
		go logMemory(ctx, *memLog)
	}
	select {
	case <-ctx.Done():
	case err := <-srv.Errors():
		logf("serve: %v", err)
	}
	if *memProfile != "" && *memAt <= 0 {
		if err := writeHeapProfile(*memProfile); err != nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// writeHeapProfile writes a heap profile and logs where the memory is.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	logf("serve: %d goroutines; heap in use %.1f MiB, stacks %.1f MiB, Sys %.1f MiB",
		runtime.NumGoroutine(), float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys)/(1<<20))
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// logMemory logs where the process's memory is, as the runtime sees it,
// every interval until ctx ends: what RSS per subscriber is made of.
func logMemory(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		logf("serve: mem heap alloc %.1f inuse %.1f idle %.1f released %.1f; stacks %.1f; other sys %.1f; next GC %.1f MiB; %d GCs; %d goroutines",
			mib(ms.HeapAlloc), mib(ms.HeapInuse), mib(ms.HeapIdle), mib(ms.HeapReleased), mib(ms.StackInuse),
			mib(ms.Sys-ms.HeapSys-ms.StackSys), mib(ms.NextGC), ms.NumGC, runtime.NumGoroutine())
	}
}
