package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/pkg/config"
)

// loopbackEnv keeps the binary's listeners on loopback ports of the
// kernel's choosing and off RTSP and the API, so it runs beside anything.
var loopbackEnv = []string{
	"SLUICE_RTMP_ADDR=127.0.0.1:0",
	"SLUICE_DEFAULT_HTTP_HTTP_LISTEN_ADDR=127.0.0.1:0",
	"SLUICE_RTSP_ENABLE=false",
	"SLUICE_HTTP_API_ENABLE=false",
}

// built is the binary the tests run, built once (see buildSluice).
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildSluice builds this command (once per test binary) and returns its path.
func buildSluice(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "sluice-test"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "sluice")
		if out, err := exec.Command(goTool, "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sluiceProc is a running sluice binary.
type sluiceProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

func startSluice(t *testing.T, bin string, args ...string) *sluiceProc {
	t.Helper()
	p := &sluiceProc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), loopbackEnv...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sluice output:\n%s", p.out.String())
		}
	})
	p.waitLog(t, "sluice started", 1)
	return p
}

// waitLog waits until the output holds want at least n times.
func (p *sluiceProc) waitLog(t *testing.T, want string, n int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); strings.Count(p.out.String(), want) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("no %q (×%d) in the output after 15 s", want, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *sluiceProc) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// stop sends SIGTERM and checks the exit status is 0.
func (p *sluiceProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("exit after SIGTERM: %v", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15 s after SIGTERM")
	}
}

// jsonText is s as it appears inside a JSON string (the log's fields).
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// TestSIGHUPReloadsConfig rewrites the -c file and sends SIGHUP: the
// reloadable sections are applied and the other changed keys are named in
// one warning; a broken file is logged with the startup's error and the
// server keeps running; SIGTERM still exits 0.
func TestSIGHUPReloadsConfig(t *testing.T) {
	bin := buildSluice(t)
	conf := filepath.Join(t.TempDir(), "sluice.conf.json")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"http_notify": {"enable": false}}`)
	p := startSluice(t, bin, "-c", conf)

	write(`{"http_notify": {"enable": true, "on_sub_start": "http://127.0.0.1:9/x"},
		"simple_auth": {"sub_httpflv_enable": true}, "rtmp": {"gop_num": 2}, "server_id": "edge"}`)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "config reloaded", 1)
	out := p.out.String()
	for _, want := range []string{
		`need a restart`, `"keys": ["server_id", "rtmp.gop_num"]`,
		`"changed": ["http_notify.enable", "http_notify.on_sub_start", "simple_auth.sub_httpflv_enable"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output after SIGHUP", want)
		}
	}

	for i, bad := range []string{`{"rtmp": {"gop_num": 2,}}`, `{"rtmp": {"gop_num": "two"}}`} {
		write(bad)
		_, _, loadErr := config.Load(conf)
		if loadErr == nil {
			t.Fatalf("%s loads", bad)
		}
		p.signal(t, syscall.SIGHUP)
		p.waitLog(t, "config reload failed, keeping the running configuration", i+1)
		if !strings.Contains(p.out.String(), jsonText(loadErr.Error())) {
			t.Errorf("the reload of %s does not log the startup's error %q", bad, loadErr)
		}
	}
	if n := strings.Count(p.out.String(), "config reloaded"); n != 1 {
		t.Errorf("%d reloads applied, want 1", n)
	}
	p.stop(t)
}

// TestSIGHUPWithoutConfigFile: on built-in defaults there is nothing to
// reload, which SIGHUP says; the server runs on.
func TestSIGHUPWithoutConfigFile(t *testing.T) {
	p := startSluice(t, buildSluice(t))
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "nothing to reload", 1)
	p.stop(t)
}
