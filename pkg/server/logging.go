package server

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"sluice/pkg/config"
)

// zapLevel maps lal's log levels (0 trace … 5 fatal) to zap's.
func zapLevel(level int) zapcore.Level {
	switch level {
	case config.LogLevelTrace, config.LogLevelDebug:
		return zapcore.DebugLevel
	case config.LogLevelInfo:
		return zapcore.InfoLevel
	case config.LogLevelWarn:
		return zapcore.WarnLevel
	case config.LogLevelError:
		return zapcore.ErrorLevel
	}
	return zapcore.FatalLevel
}

// NewLogger builds the logger the log section describes: to stdout and/or
// the file log.filename (created with its directory; not rotated).
func NewLogger(c config.LogConfig) (*zap.Logger, func(), error) {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	if !c.TimestampFlag {
		encCfg.TimeKey = ""
	}
	if !c.LevelFlag {
		encCfg.LevelKey = ""
	}
	if c.ShortFileFlag {
		encCfg.EncodeCaller = zapcore.ShortCallerEncoder
	} else {
		encCfg.EncodeCaller = zapcore.FullCallerEncoder
	}
	enc := zapcore.NewConsoleEncoder(encCfg)
	level := zap.NewAtomicLevelAt(zapLevel(c.Level))
	var cores []zapcore.Core
	closeFn := func() {}
	if c.IsToStdout {
		cores = append(cores, zapcore.NewCore(enc, zapcore.Lock(os.Stdout), level))
	}
	if c.Filename != "" {
		if err := os.MkdirAll(filepath.Dir(c.Filename), 0o755); err != nil {
			return nil, nil, fmt.Errorf("log.filename %q: %w", c.Filename, err)
		}
		f, err := os.OpenFile(c.Filename, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log.filename %q: %w", c.Filename, err)
		}
		cores = append(cores, zapcore.NewCore(enc, zapcore.AddSync(f), level))
		closeFn = func() { f.Close() }
	}
	if len(cores) == 0 {
		return zap.NewNop(), closeFn, nil
	}
	return zap.New(zapcore.NewTee(cores...), zap.AddCaller()), closeFn, nil
}
