package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// sdpTrack is one media section of an SDP.
type sdpTrack struct {
	media   string // "video", "audio", ...
	control string
	codec   string // encoding name of the first rtpmap, upper case
	rate    int    // clock rate of the first rtpmap
}

// parseSDP returns the session-level control and the media sections.
func parseSDP(sdp string) (sessionControl string, tracks []sdpTrack) {
	var cur *sdpTrack
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "m="):
			f := strings.Fields(line[2:])
			if len(f) == 0 {
				continue
			}
			tracks = append(tracks, sdpTrack{media: f[0]})
			cur = &tracks[len(tracks)-1]
		case strings.HasPrefix(line, "a=control:"):
			v := strings.TrimSpace(line[len("a=control:"):])
			if cur == nil {
				sessionControl = v
			} else {
				cur.control = v
			}
		case strings.HasPrefix(line, "a=rtpmap:") && cur != nil && cur.codec == "":
			// a=rtpmap:96 H264/90000
			_, enc, _ := strings.Cut(line[len("a=rtpmap:"):], " ")
			parts := strings.Split(strings.TrimSpace(enc), "/")
			cur.codec = strings.ToUpper(parts[0])
			if len(parts) > 1 {
				cur.rate, _ = strconv.Atoi(parts[1])
			}
		}
	}
	return sessionControl, tracks
}

// controlURL resolves a track's a=control against the base URL the way
// RTSP clients do: absolute URLs stay, "*" or "" is the base, anything else
// is appended to the base with a "/".
func controlURL(base, control string) string {
	switch {
	case control == "" || control == "*":
		return base
	case strings.HasPrefix(strings.ToLower(control), "rtsp://"), strings.HasPrefix(strings.ToLower(control), "rtsps://"):
		return control
	case strings.HasSuffix(base, "/"):
		return base + control
	default:
		return base + "/" + control
	}
}

// rtspResponse is a response's status, headers (lower-case keys) and body.
type rtspResponse struct {
	status  int
	headers map[string]string
	body    string
}

// readRTSPResponse reads a response whose status line starts at br.
func readRTSPResponse(br *bufio.Reader) (*rtspResponse, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "RTSP/") {
		return nil, fmt.Errorf("rtsp: bad status line %q", strings.TrimSpace(line))
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, fmt.Errorf("rtsp: bad status line %q", strings.TrimSpace(line))
	}
	resp := &rtspResponse{status: status, headers: map[string]string{}}
	if err := readHeaders(br, resp.headers); err != nil {
		return nil, err
	}
	if cl := resp.headers["content-length"]; cl != "" {
		n, err := strconv.Atoi(strings.TrimSpace(cl))
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("rtsp: bad Content-Length %q", cl)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		resp.body = string(b)
	}
	return resp, nil
}

// readHeaders reads header lines up to the empty line.
func readHeaders(br *bufio.Reader, into map[string]string) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return nil
		}
		k, v, ok := strings.Cut(line, ":")
		if ok && into != nil {
			into[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
}

// rtspClient is an RTSP-over-TCP (interleaved) player.
type rtspClient struct {
	in      *input
	br      *bufio.Reader
	w       io.Writer
	url     string
	cseq    int
	session string
	timeout time.Duration // session timeout announced by the server
	// Interleaved channel of the tracks' RTP; the measured track is media.
	mediaCh   int
	mediaRate int
	mediaIsAV bool
	hevc      bool
}

func (c *rtspClient) request(method, u string, headers ...string) (*rtspResponse, error) {
	c.cseq++
	var b strings.Builder
	b.WriteString(method + " " + u + " RTSP/1.0\r\nCSeq: " + strconv.Itoa(c.cseq) + "\r\nUser-Agent: sluice-bench\r\n")
	if c.session != "" {
		b.WriteString("Session: " + c.session + "\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return nil, err
	}
	resp, err := readRTSPResponse(c.br)
	if err != nil {
		return nil, fmt.Errorf("rtsp: %s: %w", method, err)
	}
	if resp.status != 200 {
		return nil, fmt.Errorf("rtsp: %s %s: status %d", method, u, resp.status)
	}
	return resp, nil
}

// play runs OPTIONS, DESCRIBE, SETUP (every track, interleaved) and PLAY.
// st.reqAt is set when PLAY is written.
func (c *rtspClient) play(st *subStat) error {
	if _, err := c.request("OPTIONS", c.url); err != nil {
		return err
	}
	resp, err := c.request("DESCRIBE", c.url, "Accept: application/sdp")
	if err != nil {
		return err
	}
	base := c.url
	if cb := resp.headers["content-base"]; cb != "" {
		base = cb
	} else if cl := resp.headers["content-location"]; cl != "" {
		base = cl
	}
	sessCtl, tracks := parseSDP(resp.body)
	if len(tracks) == 0 {
		return errors.New("rtsp: DESCRIBE: SDP has no media")
	}
	pick := -1
	for i, t := range tracks {
		if t.media == "video" {
			pick = i
			break
		}
	}
	if pick < 0 {
		pick = 0
	}
	c.mediaCh = -1
	for i, t := range tracks {
		ch := 2 * i
		resp, err := c.request("SETUP", controlURL(base, t.control),
			fmt.Sprintf("Transport: RTP/AVP/TCP;unicast;interleaved=%d-%d", ch, ch+1))
		if err != nil {
			return err
		}
		if s := resp.headers["session"]; s != "" {
			id, params, _ := strings.Cut(s, ";")
			c.session = strings.TrimSpace(id)
			if _, v, ok := strings.Cut(params, "timeout="); ok {
				if sec, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && sec > 0 {
					c.timeout = time.Duration(sec) * time.Second
				}
			}
		}
		if got, ok := interleavedOf(resp.headers["transport"]); ok {
			ch = got
		}
		if i == pick {
			c.mediaCh = ch
			c.mediaRate = t.rate
			c.mediaIsAV = t.media == "video"
			c.hevc = t.codec == "H265" || t.codec == "HEVC"
		}
	}
	if c.mediaRate <= 0 {
		c.mediaRate = 90000
	}
	if c.timeout <= 0 {
		c.timeout = 60 * time.Second
	}
	st.reqAt = time.Now()
	_, err = c.request("PLAY", controlURL(base, sessCtl), "Range: npt=0.000-")
	return err
}

// interleavedOf returns the first channel of "interleaved=a-b" in a Transport header.
func interleavedOf(transport string) (int, bool) {
	for _, p := range strings.Split(transport, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "interleaved="); ok {
			a, _, _ := strings.Cut(v, "-")
			if n, err := strconv.Atoi(a); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// rtpHeader is what the subscriber needs of an RTP packet.
type rtpHeader struct {
	marker     bool
	timestamp  uint32
	payloadOff int // offset of the payload in the packet
}

// parseRTP parses an RTP fixed header (with CSRCs and extension); b may be
// only the start of the packet, as long as it holds the header.
func parseRTP(b []byte) (h rtpHeader, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return h, false
	}
	h.marker = b[1]&0x80 != 0
	h.timestamp = binary.BigEndian.Uint32(b[4:8])
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return h, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:off+4]))
	}
	h.payloadOff = off
	return h, true
}

// rtpKeyStart says whether an H.264 (RFC 6184) or H.265 (RFC 7798) RTP
// payload starts a keyframe: an IDR/IRAP NAL unit or a parameter set,
// alone, first in an aggregation packet, or in the first fragment of a
// fragmentation unit.
func rtpKeyStart(p []byte, hevc bool) bool {
	if hevc {
		if len(p) < 2 {
			return false
		}
		typ := (p[0] >> 1) & 0x3f
		switch typ {
		case 48: // AP: 2-byte header, 2-byte size, NAL header
			if len(p) < 5 {
				return false
			}
			typ = (p[4] >> 1) & 0x3f
		case 49: // FU: 2-byte header, FU header
			if len(p) < 3 || p[2]&0x80 == 0 {
				return false
			}
			typ = p[2] & 0x3f
		}
		return (typ >= 16 && typ <= 21) || (typ >= 32 && typ <= 34)
	}
	if len(p) < 1 {
		return false
	}
	typ := p[0] & 0x1f
	switch typ {
	case 24: // STAP-A: 1-byte header, 2-byte size, NAL header
		if len(p) < 4 {
			return false
		}
		typ = p[3] & 0x1f
	case 28: // FU-A: indicator, FU header
		if len(p) < 2 || p[1]&0x80 == 0 {
			return false
		}
		typ = p[1] & 0x1f
	}
	return typ == 5 || typ == 7
}

// rtpPeek is how much of an RTP packet is looked at: the fixed header,
// a few CSRCs or an extension header, and the payload's first bytes.
const rtpPeek = 64

// rtpClock unwraps 32-bit RTP timestamps and converts them to 90 kHz ticks.
type rtpClock struct {
	rate int
	last uint32
	ext  int64 // unwrapped, in the track's clock
	have bool
}

func (c *rtpClock) ticks(ts uint32) int64 {
	if !c.have {
		c.have, c.last, c.ext = true, ts, int64(ts)
	} else {
		c.ext += int64(int32(ts - c.last))
		c.last = ts
	}
	if c.rate == ticksPerSecond || c.rate <= 0 {
		return c.ext
	}
	return c.ext * ticksPerSecond / int64(c.rate)
}

// readInterleaved reads '$'-framed packets (and any RTSP message the server
// sends in between) until an error. keepalive, when not nil, is called now
// and then so the session can be kept alive.
func (c *rtspClient) readInterleaved(st *subStat, keepalive func() error) error {
	clk := rtpClock{rate: c.mediaRate}
	inKey := false // the current access unit started as a keyframe
	lastKeepalive := time.Now()
	var n int
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '$' {
			// An RTSP response (to a keepalive) or request from the server.
			if err := c.skipMessage(); err != nil {
				return err
			}
			continue
		}
		hdr, err := c.br.Peek(4)
		if err != nil {
			return err
		}
		ch := int(hdr[1])
		size := int(binary.BigEndian.Uint16(hdr[2:4]))
		if ch == c.mediaCh {
			p, err := c.br.Peek(4 + min(size, rtpPeek))
			if err != nil {
				return err
			}
			c.onRTP(p[4:], st, &clk, &inKey)
		}
		if err := c.in.skip(4 + size); err != nil {
			return err
		}
		if n++; n&1023 == 0 && keepalive != nil && time.Since(lastKeepalive) > c.timeout/2 {
			lastKeepalive = time.Now()
			if err := keepalive(); err != nil {
				return err
			}
		}
	}
}

// onRTP records one RTP packet of the measured track.
func (c *rtspClient) onRTP(p []byte, st *subStat, clk *rtpClock, inKey *bool) {
	h, ok := parseRTP(p)
	if !ok {
		return
	}
	ticks := clk.ticks(h.timestamp)
	if !c.mediaIsAV {
		st.onAudio(ticks)
		return
	}
	if h.payloadOff < len(p) && rtpKeyStart(p[h.payloadOff:], c.hevc) {
		*inKey = true
	}
	// A frame counts when its last packet (marker) arrives.
	if h.marker {
		st.onVideo(ticks, *inKey)
		*inKey = false
	}
}

// skipMessage reads and drops one RTSP message (start line, headers, body).
func (c *rtspClient) skipMessage() error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("rtsp: between packets: %w", err)
	}
	if !strings.HasPrefix(string(line), "RTSP/") && !strings.Contains(string(line), "RTSP/1.0") {
		return fmt.Errorf("rtsp: unexpected byte 0x%02x between packets", line[0])
	}
	hs := map[string]string{}
	if err := readHeaders(c.br, hs); err != nil {
		return err
	}
	if cl := hs["content-length"]; cl != "" {
		n, _ := strconv.Atoi(cl)
		if _, err := c.br.Discard(n); err != nil {
			return err
		}
	}
	return nil
}

// keepaliveRequest writes an OPTIONS on the session without waiting for the
// answer (readInterleaved skips it).
func (c *rtspClient) keepaliveRequest() error {
	c.cseq++
	_, err := io.WriteString(c.w, "OPTIONS "+c.url+" RTSP/1.0\r\nCSeq: "+strconv.Itoa(c.cseq)+
		"\r\nUser-Agent: sluice-bench\r\nSession: "+c.session+"\r\n\r\n")
	return err
}

// rtspHostPort returns host:port of an rtsp:// URL (default port 554).
func rtspHostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "rtsp" {
		return "", fmt.Errorf("rtsp: url %q is not rtsp://", raw)
	}
	if u.Port() == "" {
		return u.Hostname() + ":554", nil
	}
	return u.Host, nil
}
