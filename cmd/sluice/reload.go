package main

import (
	"go.uber.org/zap"

	"sluice/pkg/config"
	"sluice/pkg/server"
)

// reload answers SIGHUP: it reads the -c file again and applies its
// http_notify, http_auth and simple_auth sections (server.Reload says what
// else is left for a restart). A file that does not load is logged with the
// error startup would give, and the running configuration stays.
func reload(log *zap.Logger, srv *server.Server, path string) {
	if path == "" {
		log.Info("SIGHUP: no -c given (built-in defaults): nothing to reload")
		return
	}
	log.Info("SIGHUP: reloading the configuration", zap.String("file", path))
	cfg, warnings, err := config.Load(path)
	if err != nil {
		log.Error("config reload failed, keeping the running configuration", zap.Error(err))
		return
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := srv.Reload(cfg); err != nil {
		log.Error("config reload failed, keeping the running configuration", zap.Error(err))
	}
}
