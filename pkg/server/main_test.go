package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine running: every
// server, session and client must be gone once the tests end. The
// end-to-end tests need ffmpeg and ffprobe on PATH; each one skips itself
// with a message when they are missing (SLUICE_E2E_REQUIRE_FFMPEG=1 turns
// the skip into a failure).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
