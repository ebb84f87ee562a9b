// Command sluice is the Sluice live-streaming server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"sluice/pkg/config"
	"sluice/pkg/server"
)

func main() {
	os.Exit(run())
}

func run() int {
	confPath := flag.String("c", "", "config file (JSON as lalserver's, or .yaml/.toml); built-in defaults when absent")
	chdir := flag.String("p", "", "change to this directory first")
	showVersion := flag.Bool("v", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("sluice " + server.Version)
		return 0
	}
	if *chdir != "" {
		if err := os.Chdir(*chdir); err != nil {
			fmt.Fprintf(os.Stderr, "sluice: -p %s: %v\n", *chdir, err)
			return 2
		}
	}
	cfg, warnings, err := config.Load(*confPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
		return 2
	}
	log, closeLog, err := server.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
		return 2
	}
	defer closeLog()
	defer log.Sync()
	for _, w := range warnings {
		log.Warn(w)
	}
	if *confPath == "" {
		log.Info("no -c given: running on built-in defaults")
	}
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
		log.Error("start failed", zap.Error(err))
		var le *server.ListenError
		var ce *server.CertError
		if errors.As(err, &le) || errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	log.Info("sluice started", zap.String("version", server.Version))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	status := 0
wait:
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				reload(log, srv, *confPath) // see reload.go
				continue
			}
			log.Info("signal received, shutting down", zap.String("signal", s.String()))
		case err := <-srv.Errors():
			log.Error("listener failed, shutting down", zap.Error(err))
			status = 1
		}
		break wait
	}
	// Sessions close at once; queued webhooks get up to flush_timeout_ms (as last reloaded).
	ctx, cancel := context.WithTimeout(context.Background(), srv.FlushTimeout())
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown incomplete", zap.Error(err))
	}
	return status
}
