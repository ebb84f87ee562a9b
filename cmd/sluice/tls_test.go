package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSCertErrorExitsTwo: an RTMPS certificate file that does not exist
// stops the binary at startup with exit status 2 and a message naming the
// key and the file.
func TestTLSCertErrorExitsTwo(t *testing.T) {
	bin := buildSluice(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), loopbackEnv...)
	cmd.Env = append(cmd.Env, "SLUICE_RTMP_RTMPS_ENABLE=true", "SLUICE_RTMP_RTMPS_ADDR=127.0.0.1:0",
		"SLUICE_RTMP_RTMPS_CERT_FILE="+missing)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
	}
	for _, want := range []string{"rtmp.rtmps_cert_file", missing} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not name %q:\n%s", want, out)
		}
	}
}
