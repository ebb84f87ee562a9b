package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/config"
	"sluice/pkg/httpflv"
)

// CertError is a TLS certificate or key file that cannot be used; it names
// the config key that set it.
type CertError struct {
	Key  string
	File string
	Err  error
}

func (e *CertError) Error() string {
	return fmt.Sprintf("cannot use %s = %q: %v", e.Key, e.File, e.Err)
}

func (e *CertError) Unwrap() error { return e.Err }

// certFiles is a certificate file and its key file, with the config keys
// that name them.
type certFiles struct {
	certKey, cert string
	keyKey, key   string
}

// loadTLSConfig reads a PEM certificate (chain) and its private key. Every
// failure is a *CertError naming the file at fault: the certificate when it
// is unreadable or holds no valid certificate, the key otherwise (unreadable,
// invalid, or not the certificate's).
func loadTLSConfig(f certFiles) (*tls.Config, error) {
	certPEM, err := os.ReadFile(f.cert)
	if err != nil {
		return nil, &CertError{Key: f.certKey, File: f.cert, Err: err}
	}
	keyPEM, err := os.ReadFile(f.key)
	if err != nil {
		return nil, &CertError{Key: f.keyKey, File: f.key, Err: err}
	}
	if err := checkCertificates(certPEM); err != nil {
		return nil, &CertError{Key: f.certKey, File: f.cert, Err: err}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &CertError{Key: f.keyKey, File: f.key,
			Err: fmt.Errorf("%w (certificate: %s = %q)", err, f.certKey, f.cert)}
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// checkCertificates requires at least one PEM CERTIFICATE block and every
// one to parse; other blocks (a key in the same file) are skipped.
func checkCertificates(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("invalid certificate: %w", err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	return nil
}

// listenTCP opens the TCP listener of a TLS listener; a failure is a
// *ListenError naming key.
func listenTCP(key, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Key: key, Addr: addr, Err: err}
	}
	return ln, nil
}

// listenTLS opens the RTMPS and HTTPS listeners the config enables (RTSPS
// belongs to the RTSP server, see rtspsConfig). RTMPS is served by the RTMP
// server and HTTPS by the same FLV/TS handlers as plain HTTP, so sessions,
// ids and events are those of the plain protocols. The listeners are TCP:
// Start puts TLS on top of the connection limits' counting.
func (s *Server) listenTLS() error {
	cfg := s.cfg
	if cfg.RTMP.RTMPSEnable {
		tc, err := loadTLSConfig(certFiles{"rtmp.rtmps_cert_file", cfg.RTMP.RTMPSCertFile, "rtmp.rtmps_key_file", cfg.RTMP.RTMPSKeyFile})
		if err != nil {
			return err
		}
		ln, err := listenTCP("rtmp.rtmps_addr", cfg.RTMP.RTMPSAddr)
		if err != nil {
			return err
		}
		s.rtmpsLn, s.rtmpsTLS = ln, tc
	}
	// As over plain HTTP, FLV and TS share one listener per address. Its
	// certificate is that of the first section naming the address (as lal).
	type site struct {
		key      string
		files    certFiles
		handlers map[string]http.Handler // suffix -> handler
	}
	sites := map[string]*site{}
	var addrs []string
	for _, sec := range []struct {
		name    string
		c       *config.HTTPStreamConfig
		suffix  string
		handler func() http.Handler
	}{
		{"httpflv", &cfg.HTTPFLV, httpflv.Suffix, s.flvHandler},
		{"httpts", &cfg.HTTPTS, tsSuffix, s.tsHandler},
	} {
		if !sec.c.EnableHTTPS {
			continue
		}
		addr, d := sec.c.HTTPSListenAddr, cfg.DefaultHTTP
		files := certFiles{
			httpsKey(sec.name, "https_cert_file", sec.c.HTTPSCertFile, d.HTTPSCertFile), sec.c.HTTPSCertFile,
			httpsKey(sec.name, "https_key_file", sec.c.HTTPSKeyFile, d.HTTPSKeyFile), sec.c.HTTPSKeyFile,
		}
		st := sites[addr]
		if st == nil {
			st = &site{key: httpsKey(sec.name, "https_listen_addr", addr, d.HTTPSListenAddr), files: files, handlers: map[string]http.Handler{}}
			sites[addr] = st
			addrs = append(addrs, addr)
		} else if st.files.cert != files.cert || st.files.key != files.key {
			s.log.Warn("https: "+sec.name+" shares its listener with another section and serves that section's certificate",
				zap.String("addr", addr), zap.String("cert_file", st.files.cert))
		}
		st.handlers[sec.suffix] = sec.handler()
	}
	for _, addr := range addrs {
		st := sites[addr]
		tc, err := loadTLSConfig(st.files)
		if err != nil {
			return err
		}
		// Streams run on the hijacked connection: HTTP/1.1 only.
		tc.NextProtos = []string{"http/1.1"}
		ln, err := listenTCP(st.key, addr)
		if err != nil {
			return err
		}
		s.httpLns = append(s.httpLns, httpListener{
			key:        st.key,
			configured: addr,
			ln:         ln,
			tlsConfig:  tc,
			server: &http.Server{
				Handler:           s.streamMux(st.handlers),
				ReadHeaderTimeout: 10 * time.Second,
				ErrorLog:          zap.NewStdLog(s.log),
			},
		})
	}
	return nil
}

// httpsKey names an HTTPS setting of section: after loading, a section's
// empty field holds default_http's value, which is then reported under
// default_http.
func httpsKey(section, field, value, defaultValue string) string {
	if value == defaultValue {
		return "default_http." + field
	}
	return section + "." + field
}

// rtspsConfig returns the RTSPS address and TLS configuration when RTSPS is
// on.
func (s *Server) rtspsConfig() (string, *tls.Config, error) {
	c := s.cfg.RTSP
	if !c.RTSPSEnable {
		return "", nil, nil
	}
	tc, err := loadTLSConfig(certFiles{"rtsp.rtsps_cert_file", c.RTSPSCertFile, "rtsp.rtsps_key_file", c.RTSPSKeyFile})
	if err != nil {
		return "", nil, err
	}
	return c.RTSPSAddr, tc, nil
}

// RTMPSAddr returns the RTMPS listener's address ("" if RTMPS is off).
func (s *Server) RTMPSAddr() string {
	if s.rtmpsLn == nil {
		return ""
	}
	return s.rtmpsLn.Addr().String()
}

// HTTPSAddr returns the address of the HTTPS listener of HTTP-FLV, or of
// HTTP-TS when only it has HTTPS ("" if HTTPS is off).
func (s *Server) HTTPSAddr() string {
	addr := ""
	switch {
	case s.cfg.HTTPFLV.EnableHTTPS:
		addr = s.cfg.HTTPFLV.HTTPSListenAddr
	case s.cfg.HTTPTS.EnableHTTPS:
		addr = s.cfg.HTTPTS.HTTPSListenAddr
	default:
		return ""
	}
	for _, hl := range s.httpLns {
		if hl.tlsConfig != nil && hl.configured == addr {
			return hl.ln.Addr().String()
		}
	}
	return ""
}

// RTSPSAddr returns the RTSPS listener's address ("" if RTSPS is off).
func (s *Server) RTSPSAddr() string {
	if s.rtsp.srv == nil {
		return ""
	}
	return s.rtsp.srv.TLSAddr()
}
