package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"sluice/pkg/connstat"
	"sluice/pkg/rtmp"
)

// Protocols a subscriber speaks.
const (
	protoRTMP = "rtmp"
	protoFLV  = "flv"
	protoTS   = "ts"
	protoRTSP = "rtsp"
)

// subscribe plays one URL and records what it receives in st until ctx
// ends or the connection fails. bufSize is its read buffer.
func subscribe(ctx context.Context, proto, rawURL string, bufSize int, st *subStat, hook frameHook) error {
	addr, err := dialAddr(proto, rawURL)
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	conn := connstat.New(raw)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	defer raw.Close()
	// The setup exchange is bounded; streaming is not (ctx ends it).
	raw.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReaderSize(conn, bufSize)
	in := newInput(br, raw)
	st.conn.Store(conn)
	st.in.Store(in)
	switch proto {
	case protoFLV, protoTS:
		br, err = httpGet(br, conn, rawURL, bufSize, st)
		if err != nil {
			return err
		}
		if br != in.br { // chunked: no skipping in the kernel
			in = &input{br: br}
		}
		raw.SetDeadline(time.Time{})
		st.state.Store(statePlaying)
		if proto == protoFLV {
			return readFLV(in, st, hook)
		}
		return readTS(in, st)
	case protoRTMP:
		_, tcURL, app, name, err := rtmp.ParseURL(rawURL)
		if err != nil {
			return err
		}
		r := newRTMPReader(in, st.bytesRead, conn)
		if err := rtmpPlay(r, conn, tcURL, app, name, st); err != nil {
			return err
		}
		raw.SetDeadline(time.Time{})
		st.state.Store(statePlaying)
		return readRTMPMedia(r, st, hook)
	case protoRTSP:
		c := &rtspClient{in: in, br: br, w: conn, url: rawURL}
		if err := c.play(st); err != nil {
			return err
		}
		raw.SetDeadline(time.Time{})
		st.state.Store(statePlaying)
		return c.readInterleaved(st, c.keepaliveRequest)
	}
	return fmt.Errorf("unknown protocol %q", proto)
}

// dialAddr returns the host:port a URL of proto connects to.
func dialAddr(proto, raw string) (string, error) {
	switch proto {
	case protoRTMP:
		addr, _, _, _, err := rtmp.ParseURL(raw)
		return addr, err
	case protoRTSP:
		return rtspHostPort(raw)
	case protoFLV, protoTS:
		u, err := url.Parse(raw)
		if err != nil {
			return "", err
		}
		if u.Scheme != "http" {
			return "", fmt.Errorf("url %q: only http:// is supported for %s", raw, proto)
		}
		if u.Port() == "" {
			return u.Hostname() + ":80", nil
		}
		return u.Host, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want rtmp, flv, ts or rtsp)", proto)
}

// httpGet sends the GET and reads the response head. A chunked body is
// decoded through a second reader.
func httpGet(br *bufio.Reader, w io.Writer, rawURL string, bufSize int, st *subStat) (*bufio.Reader, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	st.reqAt = time.Now()
	if _, err := io.WriteString(w, "GET "+u.RequestURI()+" HTTP/1.1\r\nHost: "+u.Host+
		"\r\nUser-Agent: sluice-bench\r\nAccept: */*\r\n\r\n"); err != nil {
		return nil, err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("http: reading status line: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return nil, fmt.Errorf("http: bad status line %q", strings.TrimSpace(line))
	}
	if code, _ := strconv.Atoi(f[1]); code != 200 {
		return nil, fmt.Errorf("http: status %s", strings.TrimSpace(strings.Join(f[1:], " ")))
	}
	hs := map[string]string{}
	if err := readHeaders(br, hs); err != nil {
		return nil, fmt.Errorf("http: reading headers: %w", err)
	}
	if strings.Contains(strings.ToLower(hs["transfer-encoding"]), "chunked") {
		return bufio.NewReaderSize(httputil.NewChunkedReader(br), bufSize), nil
	}
	return br, nil
}

// expandURL fills the {i} placeholder of a URL template.
func expandURL(tmpl string, i int) string {
	return strings.ReplaceAll(tmpl, "{i}", strconv.Itoa(i))
}

// protoOfURL guesses the protocol of a play URL.
func protoOfURL(raw string) string {
	switch {
	case strings.HasPrefix(raw, "rtmp://"):
		return protoRTMP
	case strings.HasPrefix(raw, "rtsp://"):
		return protoRTSP
	case strings.Contains(raw, ".ts"):
		return protoTS
	}
	return protoFLV
}
