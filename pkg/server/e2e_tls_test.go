package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sluice/pkg/config"
	"sluice/pkg/group"
	"sluice/pkg/server"
)

// testCert is a self-signed certificate for 127.0.0.1 and its key, written
// as PEM files, and a pool that trusts it.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// newTestCert generates a self-signed ECDSA certificate for 127.0.0.1 and
// localhost into a temporary directory.
func newTestCert(t *testing.T) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tc := testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), pool: x509.NewCertPool()}
	tc.pool.AddCert(cert)
	writePEM(t, tc.certFile, "CERTIFICATE", der)
	writePEM(t, tc.keyFile, "PRIVATE KEY", marshalKey(t, key))
	return tc
}

func marshalKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// withTLS turns on the TLS listeners (RTMPS, HTTPS for FLV and TS on one
// address, RTSPS) on loopback ports with cert.
func withTLS(cfg *config.Config, cert testCert) {
	cfg.RTMP.RTMPSEnable = true
	cfg.RTMP.RTMPSAddr = "127.0.0.1:0"
	cfg.RTMP.RTMPSCertFile, cfg.RTMP.RTMPSKeyFile = cert.certFile, cert.keyFile
	for _, h := range []*config.HTTPStreamConfig{&cfg.HTTPFLV, &cfg.HTTPTS} {
		h.EnableHTTPS = true
		h.HTTPSListenAddr = "127.0.0.1:0"
		h.HTTPSCertFile, h.HTTPSKeyFile = cert.certFile, cert.keyFile
	}
	cfg.RTSP.RTSPSEnable = true
	cfg.RTSP.RTSPSAddr = "127.0.0.1:0"
	cfg.RTSP.RTSPSCertFile, cfg.RTSP.RTSPSKeyFile = cert.certFile, cert.keyFile
}

func rtmpsURL(srv *server.Server, stream string) string {
	return "rtmps://" + srv.RTMPSAddr() + "/live/" + stream
}

func httpsURL(srv *server.Server, stream, suffix string) string {
	return "https://" + srv.HTTPSAddr() + "/live/" + stream + suffix
}

func rtspsURL(srv *server.Server, stream string) string {
	return "rtsps://" + srv.RTSPSAddr() + "/live/" + stream
}

// waitSub waits until the stream has a subscriber of protocol whose URL
// starts with prefix.
func waitSub(t *testing.T, srv *server.Server, stream, protocol, prefix string) group.SessionInfo {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		var seen []string
		if g := srv.Groups().Group(stream); g != nil {
			for _, s := range g.Stat().Subs {
				if s.Protocol == protocol && strings.HasPrefix(s.URL, prefix) {
					return s
				}
				seen = append(seen, s.Protocol+" "+s.URL)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s subscriber with URL %s... on %q after %v; subscribers: %q", protocol, prefix, stream, readyTimeout, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTLSRTMPSPublishPlayEverywhere publishes over RTMPS and plays over
// HTTPS-FLV, HTTPS-TS, RTMPS and plain RTMP (ffprobe sees the streams,
// ffmpeg decodes cleanly), and over WSS and HTTPS from Go clients that
// verify the certificate: the sessions are the plain protocols' ones, with
// https:// URLs.
func TestTLSRTMPSPublishPlayEverywhere(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cert := newTestCert(t)
	srv := startServerWith(t, func(c *config.Config) {
		withTLS(c, cert)
		// A connection limit far above what the test opens: connections are
		// counted under the TLS layer, which must stay outermost.
		c.Limits.MaxConnections = 1000
	})
	const stream = "tls_rtmps"
	pub := startFFmpegPublisher(t, "RTMPS publisher", "-re", "-stream_loop", "-1", "-i", mediaPath(fileH264AAC),
		"-c", "copy", "-f", "flv", rtmpsURL(srv, stream))
	st := waitReady(t, srv, stream, pub, true, true)
	if st.Pub.Protocol != server.ProtocolRTMP || !strings.HasPrefix(st.Pub.ID, "RTMPPUBSUB") {
		t.Errorf("publisher = %s %s, want RTMP RTMPPUBSUB<n>", st.Pub.Protocol, st.Pub.ID)
	}

	t.Run("wss", func(t *testing.T) {
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: cert.pool}, HandshakeTimeout: 10 * time.Second}
		ws, resp, err := d.Dial("wss://"+srv.HTTPSAddr()+"/live/"+stream+".flv", nil)
		if err != nil {
			t.Fatalf("wss dial: %v (response %v)", err, resp)
		}
		defer ws.Close()
		ws.SetReadDeadline(time.Now().Add(readyTimeout))
		typ, msg, err := ws.ReadMessage()
		if err != nil || typ != websocket.BinaryMessage || !bytes.HasPrefix(msg, []byte("FLV\x01")) {
			t.Fatalf("first wss message: type %d %q, %v; want the binary FLV header", typ, msg, err)
		}
		for i := range 20 {
			if _, _, err := ws.ReadMessage(); err != nil {
				t.Fatalf("wss message %d: %v", i+1, err)
			}
		}
		sub := waitSub(t, srv, stream, server.ProtocolHTTPFLV, "https://")
		if !strings.HasPrefix(sub.ID, "FLVSUB") {
			t.Errorf("wss session id %q, want FLVSUB<n>", sub.ID)
		}
	})

	t.Run("https_ts_verified", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool}, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, httpsURL(srv, stream, ".ts"), nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "video/mp2t" {
			t.Fatalf("status %s, content type %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		buf := make([]byte, 188*20)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || buf[0] != 0x47 {
			t.Fatalf("TS over HTTPS: %v, first byte %#x", err, buf[0])
		}
		sub := waitSub(t, srv, stream, server.ProtocolHTTPTS, "https://")
		if !strings.HasPrefix(sub.ID, "TSSUB") {
			t.Errorf("https TS session id %q, want TSSUB<n>", sub.ID)
		}
	})

	want := []string{"aac", "h264 640x360"}
	checkPlayers(t, []player{
		{name: "https_flv", args: []string{"-i", httpsURL(srv, stream, ".flv")}},
		{name: "https_ts", args: []string{"-i", httpsURL(srv, stream, ".ts")}},
		{name: "rtmps", args: []string{"-i", rtmpsURL(srv, stream)}},
		{name: "rtmp", args: []string{"-i", rtmpURL(srv, stream)}},
	}, want)
}

// TestTLSRTSPS publishes over RTSPS and plays over RTSPS and plain RTSP
// (and RTMP), with and without the plain RTSP listener.
func TestTLSRTSPS(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cert := newTestCert(t)
	for _, plain := range []bool{true, false} {
		name := "with_rtsp"
		if !plain {
			name = "rtsps_only"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startServerWith(t, func(c *config.Config) {
				withTLS(c, cert)
				c.RTSP.Enable = plain
			})
			if got := srv.RTSPAddr() != ""; got != plain {
				t.Errorf("plain RTSP listening = %v, want %v", got, plain)
			}
			stream := "tls_rtsps_" + name
			pub := startFFmpegPublisher(t, "RTSPS publisher", "-re", "-stream_loop", "-1", "-i", mediaPath(fileH264AAC),
				"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", rtspsURL(srv, stream))
			st := waitReady(t, srv, stream, pub, true, true)
			if st.Pub.Protocol != server.ProtocolRTSP || !strings.HasPrefix(st.Pub.ID, "RTSPPUB") || !strings.HasPrefix(st.Pub.URL, "rtsps://") {
				t.Errorf("publisher = %s %s %s, want RTSP RTSPPUB<n> rtsps://...", st.Pub.Protocol, st.Pub.ID, st.Pub.URL)
			}
			players := []player{
				{name: "rtsps", args: []string{"-rtsp_transport", "tcp", "-i", rtspsURL(srv, stream)}},
				{name: "rtmp", args: []string{"-i", rtmpURL(srv, stream)}},
			}
			if plain {
				players = append(players, rtspPlayer(srv, stream, "tcp"))
			}
			checkPlayers(t, players, []string{"aac", "h264 640x360"})
		})
	}
}

// TestTLSRTSPSNoUDP: a SETUP asking for RTP over UDP on an RTSPS connection
// gets 461 Unsupported Transport (the media would leave the TLS connection
// in clear text); interleaved RTP is accepted.
func TestTLSRTSPSNoUDP(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	srv := startRTSPServer(t, func(c *config.Config) { withTLS(c, cert) })
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.RTSPSAddr(), &tls.Config{RootCAs: cert.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &rtspConn{t: t, c: nc, br: bufio.NewReader(nc)}
	url := rtspsURL(srv, "noudp")
	res, err := c.request("ANNOUNCE", url, []string{"Content-Type: application/sdp"}, testSDP)
	if err != nil || res.Code != 200 {
		t.Fatalf("ANNOUNCE: %+v, %v", res, err)
	}
	session := "Session: " + sessionID(res)
	res, err = c.request("SETUP", url+"/streamid=0", []string{session, "Transport: RTP/AVP/UDP;unicast;client_port=40000-40001;mode=record"}, "")
	if err != nil || res.Code != 461 {
		t.Fatalf("SETUP over UDP: %+v, %v; want 461", res, err)
	}
	res, err = c.request("SETUP", url+"/streamid=0", []string{session, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"}, "")
	if err != nil || res.Code != 200 {
		t.Fatalf("SETUP interleaved: %+v, %v; want 200", res, err)
	}
}

// TestTLSPlainClientDropped: plain RTMP, HTTP and RTSP clients on the TLS
// ports are disconnected (HTTP gets Go's 400 first), and an RTMPS publisher
// and an HTTPS player of the same server go on undisturbed.
func TestTLSPlainClientDropped(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	cert := newTestCert(t)
	srv := startServerWith(t, func(c *config.Config) {
		withTLS(c, cert)
		c.RTSP.Enable = true
	})
	const stream = "tls_plain"
	pub := startFFmpegPublisher(t, "RTMPS publisher", "-re", "-stream_loop", "-1", "-i", mediaPath(fileH264AAC),
		"-c", "copy", "-f", "flv", rtmpsURL(srv, stream))
	waitReady(t, srv, stream, pub, true, true)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(httpsURL(srv, stream, ".flv"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readSome := func(what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(br, make([]byte, 64<<10))
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("HTTPS player %s: %v", what, err)
			}
		case <-time.After(readyTimeout):
			resp.Body.Close()
			<-done
			t.Fatalf("HTTPS player %s: no 64 KiB within %v", what, readyTimeout)
		}
	}
	readSome("before the plain clients")

	c0c1 := append([]byte{3}, make([]byte, 1536)...)
	for _, tc := range []struct {
		name, addr string
		hello      []byte
	}{
		{"rtmp", srv.RTMPSAddr(), c0c1},
		{"http", srv.HTTPSAddr(), []byte("GET /live/" + stream + ".flv HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"rtsp", srv.RTSPSAddr(), []byte("OPTIONS rtsp://x/live/" + stream + " RTSP/1.0\r\nCSeq: 1\r\n\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", tc.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(readyTimeout))
			if _, err := c.Write(tc.hello); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if isTimeout(err) {
				t.Fatalf("plain %s client on the TLS port still connected after %v (read %q)", tc.name, readyTimeout, got)
			}
			if tc.name == "http" && !strings.HasPrefix(string(got), "HTTP/1.0 400") {
				t.Errorf("plain HTTP on the HTTPS port: %q, want a 400", got)
			}
		})
	}
	readSome("after the plain clients")
	if st := mustGroup(t, srv, stream).Stat(); st.Pub == nil {
		t.Error("publisher gone")
	}
}

// TestTLSStartErrors: an unusable certificate or key file, or a TLS address
// that cannot be listened on, fails Start with an error naming the config
// key (and the file); goleak (TestMain) checks nothing is left running.
func TestTLSStartErrors(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	other := newTestCert(t) // its key does not match cert
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a PEM file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	type files struct{ cert, key string }
	// set configures one TLS listener alone (the others off) with f and addr.
	type listener struct {
		name, prefix string // prefix of its keys
		set          func(c *config.Config, f files, addr string)
	}
	listeners := []listener{
		{"rtmps", "rtmp.rtmps_", func(c *config.Config, f files, addr string) {
			c.RTMP.RTMPSEnable, c.RTMP.RTMPSAddr, c.RTMP.RTMPSCertFile, c.RTMP.RTMPSKeyFile = true, addr, f.cert, f.key
		}},
		{"https", "httpflv.https_", func(c *config.Config, f files, addr string) {
			c.HTTPFLV.EnableHTTPS, c.HTTPFLV.HTTPSListenAddr, c.HTTPFLV.HTTPSCertFile, c.HTTPFLV.HTTPSKeyFile = true, addr, f.cert, f.key
		}},
		{"https_default", "default_http.https_", func(c *config.Config, f files, addr string) {
			// httpts inheriting every HTTPS setting from default_http.
			c.DefaultHTTP.HTTPSListenAddr, c.DefaultHTTP.HTTPSCertFile, c.DefaultHTTP.HTTPSKeyFile = addr, f.cert, f.key
			c.HTTPTS.EnableHTTPS, c.HTTPTS.HTTPSListenAddr, c.HTTPTS.HTTPSCertFile, c.HTTPTS.HTTPSKeyFile = true, addr, f.cert, f.key
		}},
		{"rtsps", "rtsp.rtsps_", func(c *config.Config, f files, addr string) {
			c.RTSP.Enable = true
			c.RTSP.RTSPSEnable, c.RTSP.RTSPSAddr, c.RTSP.RTSPSCertFile, c.RTSP.RTSPSKeyFile = true, addr, f.cert, f.key
		}},
	}
	addrKey := map[string]string{"rtmps": "rtmp.rtmps_addr", "https": "httpflv.https_listen_addr",
		"https_default": "default_http.https_listen_addr", "rtsps": "rtsp.rtsps_addr"}
	cases := []struct {
		name    string
		f       files
		addr    string
		field   string // of the key named: cert_file, key_file or the address
		file    string // named in the error
		errText string
	}{
		{"missing_cert", files{missing, cert.keyFile}, "127.0.0.1:0", "cert_file", missing, "no such file"},
		{"garbage_cert", files{garbage, cert.keyFile}, "127.0.0.1:0", "cert_file", garbage, "no PEM CERTIFICATE"},
		{"missing_key", files{cert.certFile, missing}, "127.0.0.1:0", "key_file", missing, "no such file"},
		{"garbage_key", files{cert.certFile, garbage}, "127.0.0.1:0", "key_file", garbage, "PEM"},
		{"key_mismatch", files{cert.certFile, other.keyFile}, "127.0.0.1:0", "key_file", other.keyFile, "does not match"},
		{"busy_addr", files{cert.certFile, cert.keyFile}, busyAddr, "addr", busyAddr, "address already in use"},
	}
	for _, l := range listeners {
		for _, tc := range cases {
			t.Run(l.name+"_"+tc.name, func(t *testing.T) {
				cfg := testConfig()
				l.set(cfg, tc.f, tc.addr)
				srv := server.New(cfg, newTestLogger(t))
				err := srv.Start()
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					srv.Shutdown(ctx)
				}()
				if err == nil {
					t.Fatal("Start succeeded")
				}
				key := l.prefix + tc.field
				if tc.field == "addr" {
					key = addrKey[l.name]
					var le *server.ListenError
					if !errors.As(err, &le) || le.Key != key {
						t.Errorf("Start: %v, want a ListenError for %s", err, key)
					}
				} else {
					var ce *server.CertError
					if !errors.As(err, &ce) || ce.Key != key || ce.File != tc.file {
						t.Errorf("Start: %v, want a CertError for %s = %q", err, key, tc.file)
					}
				}
				msg := err.Error()
				for _, s := range []string{key, tc.file, tc.errText} {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q does not contain %q", msg, s)
					}
				}
			})
		}
	}
}

// TestTLSOffByDefault: the built-in defaults open no TLS listener, so a
// server starts without any certificate file around.
func TestTLSOffByDefault(t *testing.T) {
	t.Parallel()
	d := config.Default()
	if d.RTMP.RTMPSEnable || d.HTTPFLV.EnableHTTPS || d.HTTPTS.EnableHTTPS || d.RTSP.RTSPSEnable {
		t.Fatalf("TLS on by default: rtmps %v, httpflv %v, httpts %v, rtsps %v",
			d.RTMP.RTMPSEnable, d.HTTPFLV.EnableHTTPS, d.HTTPTS.EnableHTTPS, d.RTSP.RTSPSEnable)
	}
	srv := startServerWith(t, func(c *config.Config) {
		c.RTSP.Enable = true
		c.RTMP.RTMPSCertFile = filepath.Join(t.TempDir(), "absent.pem")
	})
	if a := fmt.Sprint(srv.RTMPSAddr(), srv.HTTPSAddr(), srv.RTSPSAddr()); a != "" {
		t.Errorf("TLS addresses %q, want none", a)
	}
}
