package server_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"sluice/pkg/group"
	"sluice/pkg/server"
)

// End-to-end tests of HTTP-TS and of the WebSocket twins of HTTP-FLV and
// HTTP-TS. They reuse the helpers of e2e_helpers_test.go.

// PIDs of the server's TS muxer (lal's layout).
const (
	pidPAT   = 0x0000
	pidPMT   = 0x1001
	pidVideo = 0x0100
	pidAudio = 0x0101
)

func tsURL(srv *server.Server, stream string) string {
	return "http://" + srv.HTTPTSAddr() + "/live/" + stream + ".ts"
}

// wsURL is the WebSocket URL of an HTTP-FLV or HTTP-TS URL.
func wsURL(httpURL string) string { return "ws://" + strings.TrimPrefix(httpURL, "http://") }

// ---------------------------------------------------------------------------
// A minimal TS parser: what the tests check of the server's output.

// tsPacket is one parsed 188-byte TS packet.
type tsPacket struct {
	PID        uint16
	PUSI       bool
	CC         byte
	HasPayload bool
	RAI        bool // random_access_indicator
	HasPCR     bool
	Payload    []byte
}

// parseTSPackets splits b into TS packets. b must be whole packets.
func parseTSPackets(b []byte) ([]tsPacket, error) {
	if len(b)%188 != 0 {
		return nil, fmt.Errorf("%d bytes: not a multiple of 188", len(b))
	}
	pkts := make([]tsPacket, 0, len(b)/188)
	for i := 0; i < len(b); i += 188 {
		p := b[i : i+188]
		if p[0] != 0x47 {
			return pkts, fmt.Errorf("packet %d: sync byte 0x%02x", i/188, p[0])
		}
		if p[1]&0x80 != 0 {
			return pkts, fmt.Errorf("packet %d: transport_error_indicator set", i/188)
		}
		pk := tsPacket{
			PID:  uint16(p[1]&0x1F)<<8 | uint16(p[2]),
			PUSI: p[1]&0x40 != 0,
			CC:   p[3] & 0x0F,
		}
		afc := p[3] >> 4 & 0x03
		if afc == 0 {
			return pkts, fmt.Errorf("packet %d: adaptation_field_control 0", i/188)
		}
		pos := 4
		if afc&0x02 != 0 {
			l := int(p[4])
			if l > 183 || (afc == 3 && l > 182) {
				return pkts, fmt.Errorf("packet %d: adaptation field length %d", i/188, l)
			}
			if l > 0 {
				pk.RAI = p[5]&0x40 != 0
				pk.HasPCR = p[5]&0x10 != 0
			}
			pos = 5 + l
		}
		if afc&0x01 != 0 {
			pk.HasPayload = true
			pk.Payload = p[pos:]
		}
		pkts = append(pkts, pk)
	}
	return pkts, nil
}

// ccErrors lists the continuity counter breaks of pkts: per PID the counter
// advances by one (mod 16) on every packet with payload and stays on one
// without; the first packet of a PID may have any counter.
func ccErrors(pkts []tsPacket) []string {
	last := map[uint16]byte{}
	var errs []string
	for i, p := range pkts {
		prev, seen := last[p.PID]
		last[p.PID] = p.CC
		if !seen {
			continue
		}
		want := prev
		if p.HasPayload {
			want = (prev + 1) & 0x0F
		}
		if p.CC != want {
			errs = append(errs, fmt.Sprintf("packet %d PID 0x%04x: CC %d after %d, want %d", i, p.PID, p.CC, prev, want))
		}
	}
	return errs
}

// firstPES returns the payload of the first whole PES on pid: from its first
// PUSI packet up to the next one.
func firstPES(pkts []tsPacket, pid uint16) []byte {
	var pes []byte
	started := false
	for _, p := range pkts {
		if p.PID != pid || !p.HasPayload {
			continue
		}
		if p.PUSI {
			if started {
				break
			}
			started = true
		}
		if started {
			pes = append(pes, p.Payload...)
		}
	}
	return pes
}

// h264NALTypes lists the NAL unit types of the Annex B elementary stream
// in a PES packet.
func h264NALTypes(pes []byte) []int {
	if len(pes) < 9 || pes[0] != 0 || pes[1] != 0 || pes[2] != 1 {
		return nil
	}
	es := pes[9+int(pes[8]):]
	var types []int
	for i := 0; i+3 < len(es); i++ {
		if es[i] == 0 && es[i+1] == 0 && es[i+2] == 1 {
			types = append(types, int(es[i+3]&0x1F))
			i += 2
		}
	}
	return types
}

func pids(pkts []tsPacket, n int) string {
	var s []string
	for _, p := range pkts[:min(n, len(pkts))] {
		s = append(s, fmt.Sprintf("0x%04x", p.PID))
	}
	return strings.Join(s, " ")
}

// ---------------------------------------------------------------------------
// Clients and tools

// readHTTPFor GETs url on a raw connection, checks the 200 response head
// and returns the body bytes received within d.
func readHTTPFor(t *testing.T, addr, path string, d time.Duration) (*http.Response, []byte) {
	t.Helper()
	resp, conn, _, err := rawHTTP(t, addr, "GET "+path+" HTTP/1.1\r\nHost: sluice\r\n\r\n", 10*time.Second)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s", path, resp.Status)
	}
	conn.SetReadDeadline(time.Now().Add(d))
	body, err := io.ReadAll(resp.Body)
	if !isTimeout(err) {
		t.Fatalf("GET %s: body ended before %v: %v after %d bytes", path, d, err, len(body))
	}
	resp.Body.Close()
	return resp, body
}

// readTSFor reads d of an HTTP-TS stream and parses the whole packets in it.
func readTSFor(t *testing.T, srv *server.Server, stream string, d time.Duration) []tsPacket {
	t.Helper()
	resp, body := readHTTPFor(t, srv.HTTPTSAddr(), "/live/"+stream+".ts", d)
	if ct := resp.Header.Get("Content-Type"); ct != "video/mp2t" {
		t.Errorf("Content-Type = %q, want video/mp2t", ct)
	}
	body = body[:len(body)/188*188] // the read deadline may cut a packet
	pkts, err := parseTSPackets(body)
	if err != nil {
		t.Fatalf("TS of %s: %v", stream, err)
	}
	if len(pkts) < 10 {
		t.Fatalf("only %d TS packets in %v", len(pkts), d)
	}
	return pkts
}

// readWSFor reads the binary messages of a WebSocket stream for d.
func readWSFor(t *testing.T, url string, d time.Duration) [][]byte {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("WebSocket dial %s: %v (response %v)", url, err, resp)
	}
	defer c.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket %s: status %s", url, resp.Status)
	}
	end := time.Now().Add(d)
	c.SetReadDeadline(end.Add(5 * time.Second))
	var msgs [][]byte
	for time.Now().Before(end) {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("WebSocket %s: %v after %d messages", url, err, len(msgs))
		}
		if typ != websocket.BinaryMessage {
			t.Fatalf("WebSocket %s: message %d of type %d, want binary", url, len(msgs), typ)
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// badLine matches what a clean decode of the server's output must not log.
var badLine = regexp.MustCompile(`(?i)non.monoton|continuity|packet corrupt|error`)

// decodeChecked runs `ffmpeg -v warning -i input -t seconds -f null -`: it
// must exit 0 without logging anything that badLine matches, and decode at
// least seconds-1 of media; other warnings are logged.
func decodeChecked(t *testing.T, input string, seconds int) {
	t.Helper()
	progress, stderr, err := runDecode(t, "warning", []string{"-i", input}, seconds)
	if err != nil {
		t.Fatalf("ffmpeg decode of %s failed: %v, stderr:\n%s", input, err, stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if badLine.MatchString(line) {
			t.Errorf("ffmpeg decode of %s: %q; stderr:\n%s", input, line, stderr)
			break
		}
	}
	if stderr != "" && !t.Failed() {
		t.Logf("ffmpeg decode of %s warned (not an error):\n%s", input, stderr)
	}
	if us, min := decodedUS(progress), int64(seconds-1)*1e6; us < min {
		t.Errorf("ffmpeg decoded only %d µs of %s, want ≥ %d µs", us, input, min)
	}
}

// startBFramePublisher publishes a live H.264 (with B-frames) + AAC stream
// encoded from lavfi sources; it runs until the test ends.
func startBFramePublisher(t *testing.T, srv *server.Server, stream string) *proc {
	t.Helper()
	return startFFmpegPublisher(t, "B-frame publisher",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", rtmpURL(srv, stream))
}

// ---------------------------------------------------------------------------
// Tests

// TestHTTPTSPlayback publishes each test file over RTMP and plays it over
// HTTP-TS: ffprobe sees the file's streams and ffmpeg decodes 4 s without
// a DTS, continuity, corruption or any other error.
func TestHTTPTSPlayback(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	for _, tc := range []struct {
		name, file   string
		video, audio bool
		want         []string
	}{
		{"h264_aac", fileH264AAC, true, true, []string{"aac", "h264 640x360"}},
		{"h264_only", fileH264Only, true, false, []string{"h264 640x360"}},
		{"aac_only", fileAACOnly, false, true, []string{"aac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			stream := "ts_" + tc.name
			pub := startPublisher(t, srv, stream, tc.file)
			waitReady(t, srv, stream, pub, tc.video, tc.audio)
			url := tsURL(srv, stream)
			if got := probeStreams(t, url); !slices.Equal(got, tc.want) {
				t.Errorf("ffprobe %s streams = %q, want %q", url, got, tc.want)
			}
			decodeChecked(t, url, 4)
		})
	}
}

// TestHTTPTSBFrames plays a live H.264 stream with B-frames over HTTP-TS:
// clean decode, PTS ≠ DTS on some video packets, DTS strictly increasing.
func TestHTTPTSBFrames(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "bframes"
	pub := startBFramePublisher(t, srv, stream)
	waitReady(t, srv, stream, pub, true, true)
	url := tsURL(srv, stream)
	if got, want := probeStreams(t, url), []string{"aac", "h264 640x360"}; !slices.Equal(got, want) {
		t.Errorf("ffprobe %s streams = %q, want %q", url, got, want)
	}
	decodeChecked(t, url, 4)

	out, stderr, err := runTool(t, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts,dts", "-of", "csv=p=0", "-read_intervals", "%+#75", url)
	if err != nil || stderr != "" {
		t.Fatalf("ffprobe packets: %v, stderr %q", err, stderr)
	}
	lines := strings.Fields(out)
	if len(lines) < 50 {
		t.Fatalf("ffprobe listed %d video packets, want 75: %q", len(lines), out)
	}
	reordered, ptsBack := 0, 0
	prevDTS, prevPTS := int64(-1<<62), int64(-1<<62)
	for i, l := range lines {
		f := strings.Split(strings.TrimRight(l, ","), ",")
		if len(f) != 2 {
			t.Fatalf("packet line %q", l)
		}
		pts, err1 := strconv.ParseInt(f[0], 10, 64)
		dts, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("packet %d: pts,dts = %q", i, l)
		}
		if pts != dts {
			reordered++
		}
		if pts < dts {
			t.Errorf("packet %d: pts %d < dts %d", i, pts, dts)
		}
		if dts <= prevDTS {
			t.Errorf("packet %d: dts %d after %d, not strictly increasing", i, dts, prevDTS)
		}
		if pts < prevPTS {
			ptsBack++ // a B-frame shown before the frame decoded ahead of it
		}
		prevDTS, prevPTS = dts, pts
	}
	if reordered == 0 || ptsBack == 0 {
		t.Errorf("%d of %d video packets with pts != dts, %d with pts going back: want B-frames in the TS (%q)",
			reordered, len(lines), ptsBack, out)
	}
	t.Logf("%d of %d video packets have pts != dts, %d have a pts below the previous one", reordered, len(lines), ptsBack)
}

// TestHTTPTSLateJoiner joins an H.264+AAC stream over HTTP-TS in the middle
// of a GOP, at least 3 s in: the stream starts with PAT, PMT, then a video
// PES that is a key frame (random access indicator, PCR, SPS+PPS+IDR), and
// the continuity counters of every PID are continuous.
func TestHTTPTSLateJoiner(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "tslate"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)
	t0 := time.Now()
	// The subtests run one after the other, each joining mid-GOP (parallel
	// subtests would wait for a free slot and join at any time).
	join := func(t *testing.T) {
		joinMidGOP(t, t0, pub)
		t.Logf("joining %v after the first key frame", time.Since(t0).Round(time.Millisecond))
	}

	t.Run("parse", func(t *testing.T) {
		join(t)
		pkts := readTSFor(t, srv, stream, 3*time.Second)
		if pkts[0].PID != pidPAT || !pkts[0].PUSI {
			t.Errorf("first packet: PID 0x%04x PUSI %v, want the PAT (first PIDs: %s)", pkts[0].PID, pkts[0].PUSI, pids(pkts, 8))
		}
		if pkts[1].PID != pidPMT {
			t.Errorf("second packet: PID 0x%04x, want the PMT 0x%04x (first PIDs: %s)", pkts[1].PID, pidPMT, pids(pkts, 8))
		}
		firstOf := map[uint16]int{}
		for i, p := range pkts {
			if _, ok := firstOf[p.PID]; !ok {
				firstOf[p.PID] = i
			}
		}
		for _, pid := range []uint16{pidPAT, pidPMT, pidVideo, pidAudio} {
			i, ok := firstOf[pid]
			if !ok {
				t.Errorf("no packet of PID 0x%04x in 3 s", pid)
				continue
			}
			if !pkts[i].PUSI {
				t.Errorf("first packet of PID 0x%04x (packet %d) does not start a PES/section", pid, i)
			}
		}
		if iv, ok := firstOf[pidVideo]; ok {
			if ia, ok := firstOf[pidAudio]; ok && ia < iv {
				t.Logf("audio (packet %d) before the first video packet (%d)", ia, iv)
			}
			v := pkts[iv]
			if !v.RAI || !v.HasPCR {
				t.Errorf("first video packet (%d): random_access_indicator %v, PCR %v; want both", iv, v.RAI, v.HasPCR)
			}
			nals := h264NALTypes(firstPES(pkts, pidVideo))
			for _, want := range []int{7, 8, 5} {
				if !slices.Contains(nals, want) {
					t.Errorf("first video PES: NAL types %v, no type %d (want SPS 7, PPS 8, IDR 5)", nals, want)
				}
			}
			if slices.Contains(nals, 1) {
				t.Errorf("first video PES has a non-IDR slice: NAL types %v", nals)
			}
		}
		if errs := ccErrors(pkts); len(errs) > 0 {
			t.Errorf("%d continuity errors in %d packets, first: %s", len(errs), len(pkts), strings.Join(errs[:min(5, len(errs))], "; "))
		}
		t.Logf("%d TS packets in 3 s; first PIDs %s", len(pkts), pids(pkts, 6))
	})
	t.Run("ffprobe", func(t *testing.T) {
		join(t)
		if f, out := probeVideoPackets(t, tsURL(srv, stream), "packet=flags", 1); len(f) == 0 || !strings.Contains(f[0], "K") {
			t.Errorf("first video packet flags %q, want a key frame (K)", out)
		}
	})
}

// TestHTTPTSAudioOnlyLateJoiner joins an audio-only stream over HTTP-TS
// twice, 3 s and 6.5 s in: each subscriber's first packets are PAT and PMT,
// then audio, and the continuity counters of every PID are continuous.
func TestHTTPTSAudioOnlyLateJoiner(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "tsaudio"
	pub := startPublisher(t, srv, stream, fileAACOnly)
	waitReady(t, srv, stream, pub, false, true)
	t0 := time.Now()
	// One after the other (parallel subtests would wait for a free slot).
	for _, at := range []time.Duration{3 * time.Second, 6500 * time.Millisecond} {
		t.Run(at.String(), func(t *testing.T) {
			time.Sleep(time.Until(t0.Add(at)))
			pkts := readTSFor(t, srv, stream, 3*time.Second)
			if pkts[0].PID != pidPAT || pkts[1].PID != pidPMT || !pkts[0].PUSI || !pkts[1].PUSI {
				t.Errorf("first packets %s, want PAT (0x0000) then PMT (0x1001)", pids(pkts, 6))
			}
			var nPAT, nAudio int
			for _, p := range pkts {
				switch p.PID {
				case pidPAT:
					nPAT++
				case pidAudio:
					nAudio++
				case pidPMT:
				default:
					t.Errorf("packet of PID 0x%04x in an audio-only stream", p.PID)
				}
			}
			if i := slices.IndexFunc(pkts, func(p tsPacket) bool { return p.PID == pidAudio }); i < 0 || !pkts[i].PUSI {
				t.Errorf("first audio packet (%d) does not start a PES", i)
			}
			if nPAT < 2 || nAudio == 0 {
				t.Errorf("%d PATs and %d audio packets in 3 s: want repeated PAT/PMT and audio", nPAT, nAudio)
			}
			if errs := ccErrors(pkts); len(errs) > 0 {
				t.Errorf("%d continuity errors in %d packets, first: %s", len(errs), len(pkts), strings.Join(errs[:min(5, len(errs))], "; "))
			}
			t.Logf("%d packets, %d PATs, first PIDs %s", len(pkts), nPAT, pids(pkts, 4))
		})
	}
}

// checkFLVMessages checks that a WebSocket-FLV stream is the 13-byte FLV
// file header as its own message, then exactly one tag per message.
func checkFLVMessages(t *testing.T, msgs [][]byte) {
	t.Helper()
	want := []byte{'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0}
	if !bytes.Equal(msgs[0], want) {
		t.Errorf("first message = % x, want the FLV header % x", msgs[0], want)
	}
	for i, m := range msgs[1:] {
		if len(m) < 15 {
			t.Errorf("message %d: %d bytes, shorter than a tag", i+1, len(m))
			continue
		}
		size := int(m[1])<<16 | int(m[2])<<8 | int(m[3])
		if m[0] != 8 && m[0] != 9 && m[0] != 18 {
			t.Errorf("message %d: tag type %d", i+1, m[0])
		}
		if len(m) != 11+size+4 {
			t.Errorf("message %d: %d bytes, want one tag of data size %d (%d bytes)", i+1, len(m), size, 11+size+4)
			continue
		}
		if prev := binary.BigEndian.Uint32(m[len(m)-4:]); prev != uint32(11+size) {
			t.Errorf("message %d: PreviousTagSize %d, want %d", i+1, prev, 11+size)
		}
	}
}

// checkTSMessages checks that every WebSocket-TS message is whole TS packets.
func checkTSMessages(t *testing.T, msgs [][]byte) {
	t.Helper()
	for i, m := range msgs {
		if len(m) == 0 || len(m)%188 != 0 || m[0] != 0x47 {
			t.Errorf("message %d: %d bytes starting % x, want whole TS packets", i, len(m), m[:min(4, len(m))])
			continue
		}
		if _, err := parseTSPackets(m); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	var all []byte
	for _, m := range msgs {
		all = append(all, m...)
	}
	if pkts, err := parseTSPackets(all); err == nil {
		if pkts[0].PID != pidPAT {
			t.Errorf("WebSocket-TS starts with PID 0x%04x, want the PAT", pkts[0].PID)
		}
		if errs := ccErrors(pkts); len(errs) > 0 {
			t.Errorf("%d continuity errors, first: %s", len(errs), strings.Join(errs[:min(5, len(errs))], "; "))
		}
	}
}

// TestWebSocketPlayback plays an H.264+AAC stream over WebSocket-FLV and
// WebSocket-TS for 4 s: the messages are framed as the formats promise, and
// their concatenation is a file that ffprobe reads as the same streams as
// the HTTP URL and that ffmpeg decodes without an error.
func TestWebSocketPlayback(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	want := []string{"aac", "h264 640x360"}
	for _, tc := range []struct {
		name  string
		url   func(*server.Server, string) string
		check func(*testing.T, [][]byte)
	}{
		{"flv", flvURL, checkFLVMessages},
		{"ts", tsURL, checkTSMessages},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each subtest has its own publisher, started once the subtest
			// runs: the 4 s captured are then the first seconds of the
			// looped file, whatever the wait for a parallel slot was. (A
			// capture across the loop point, where ffmpeg's -stream_loop
			// leaves a 49 ms frame interval, makes ffmpeg guess 24.92 fps
			// for a TS file and then complain of equal DTS in -f null.)
			t.Parallel()
			srv := startServer(t)
			stream := "ws" + tc.name
			pub := startPublisher(t, srv, stream, fileH264AAC)
			waitReady(t, srv, stream, pub, true, true)
			url := tc.url(srv, stream)
			msgs := readWSFor(t, wsURL(url), 4*time.Second)
			if len(msgs) < 10 {
				t.Fatalf("only %d messages in 4 s", len(msgs))
			}
			tc.check(t, msgs)
			file := filepath.Join(t.TempDir(), "ws."+tc.name)
			if err := os.WriteFile(file, bytes.Join(msgs, nil), 0o644); err != nil {
				t.Fatal(err)
			}
			fileStreams := probeStreams(t, file)
			if httpStreams := probeStreams(t, url); !slices.Equal(fileStreams, httpStreams) || !slices.Equal(fileStreams, want) {
				t.Errorf("streams of the WebSocket file %q, of the HTTP URL %q, want %q", fileStreams, httpStreams, want)
			}
			out, stderr, err := runTool(t, "ffmpeg", "-v", "error", "-i", file, "-f", "null", "-")
			if err != nil || stderr != "" {
				t.Errorf("ffmpeg decode of the WebSocket file: %v, stderr %q (stdout %q)", err, stderr, out)
			}
		})
	}
}

// TestHTTPStreamSessionIDs: HTTP-TS, HTTP-FLV and their WebSocket twins
// show up in the group's stat with their id prefix, protocol, base type and
// a byte count.
func TestHTTPStreamSessionIDs(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	srv := startServer(t)
	const stream = "ids"
	pub := startPublisher(t, srv, stream, fileH264AAC)
	waitReady(t, srv, stream, pub, true, true)

	type expect struct{ prefix, protocol, kind string }
	want := map[string]expect{} // client's local address -> expectation
	for _, c := range []struct {
		kind, addr, path, prefix, protocol string
	}{
		{"HTTP-TS", srv.HTTPTSAddr(), "/live/" + stream + ".ts", "TSSUB", server.ProtocolHTTPTS},
		{"HTTP-FLV", srv.HTTPFLVAddr(), "/live/" + stream + ".flv", "FLVSUB", server.ProtocolHTTPFLV},
	} {
		resp, conn, _, err := rawHTTP(t, c.addr, "GET "+c.path+" HTTP/1.1\r\nHost: sluice\r\n\r\n", 10*time.Second)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s GET: %v %v", c.kind, resp, err)
		}
		// The client reads nothing more: the kernel buffers take the few
		// seconds of stream this test lasts.
		want[conn.LocalAddr().String()] = expect{c.prefix, c.protocol, c.kind}
	}
	for _, c := range []struct {
		kind, url, prefix, protocol string
	}{
		{"WS-TS", wsURL(tsURL(srv, stream)), "TSSUB", server.ProtocolHTTPTS},
		{"WS-FLV", wsURL(flvURL(srv, stream)), "FLVSUB", server.ProtocolHTTPFLV},
	} {
		ws, resp, err := websocket.DefaultDialer.Dial(c.url, nil)
		if err != nil {
			t.Fatalf("%s dial: %v (%v)", c.kind, err, resp)
		}
		t.Cleanup(func() { ws.Close() })
		want[ws.LocalAddr().String()] = expect{c.prefix, c.protocol, c.kind}
	}

	idRE := regexp.MustCompile(`^([A-Z]+)([1-9][0-9]*)$`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := mustGroup(t, srv, stream)
		subs := g.Stat().Subs
		var problems []string
		seen := map[string]bool{}
		ids := map[string]bool{}
		for _, s := range subs {
			e, ok := want[s.RemoteAddr]
			if !ok {
				problems = append(problems, fmt.Sprintf("unknown subscriber %s from %s", s.ID, s.RemoteAddr))
				continue
			}
			seen[s.RemoteAddr] = true
			if m := idRE.FindStringSubmatch(s.ID); m == nil || m[1] != e.prefix {
				problems = append(problems, fmt.Sprintf("%s: id %q, want %s<n>", e.kind, s.ID, e.prefix))
			}
			if ids[s.ID] {
				problems = append(problems, fmt.Sprintf("%s: id %q used twice", e.kind, s.ID))
			}
			ids[s.ID] = true
			if s.Protocol != e.protocol || s.BaseType != group.BaseSub {
				problems = append(problems, fmt.Sprintf("%s: protocol %q base type %q, want %q %q", e.kind, s.Protocol, s.BaseType, e.protocol, group.BaseSub))
			}
			if s.StreamName != stream || s.AppName != "live" {
				problems = append(problems, fmt.Sprintf("%s: stream %q app %q", e.kind, s.StreamName, s.AppName))
			}
			if s.Counters == nil {
				problems = append(problems, e.kind+": no counters")
			} else if s.Counters.WrittenBytes() == 0 {
				problems = append(problems, e.kind+": WrittenBytes 0")
			}
		}
		if len(seen) != len(want) {
			problems = append(problems, fmt.Sprintf("%d of the %d subscribers in the stat", len(seen), len(want)))
		}
		if len(problems) == 0 {
			for _, s := range subs {
				t.Logf("%-8s %-8s %s %s %d bytes", want[s.RemoteAddr].kind, s.ID, s.Protocol, s.BaseType, s.Counters.WrittenBytes())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers after 10 s: %s", strings.Join(problems, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTPSharedListener: FLV and TS configured on the same address share
// one listener, which serves both suffixes, answers 404 to any other, and
// 400 to a WebSocket upgrade without a valid key. No publisher is needed.
func TestHTTPSharedListener(t *testing.T) {
	t.Parallel()
	srv := startServer(t) // httpflv and httpts both on "127.0.0.1:0"
	addr := srv.HTTPFLVAddr()
	if addr == "" || addr != srv.HTTPTSAddr() {
		t.Fatalf("HTTPFLVAddr %q, HTTPTSAddr %q: want one shared listener", addr, srv.HTTPTSAddr())
	}
	for _, tc := range []struct {
		path, contentType string
	}{
		{"/live/shared.flv", "video/x-flv"},
		{"/live/shared.ts", "video/mp2t"},
	} {
		resp, _, _, err := rawHTTP(t, addr, "GET "+tc.path+" HTTP/1.1\r\nHost: sluice\r\n\r\n", 5*time.Second)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.contentType {
			t.Errorf("GET %s: %s, Content-Type %q; want 200 %s", tc.path, resp.Status, resp.Header.Get("Content-Type"), tc.contentType)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("GET %s: Access-Control-Allow-Origin %q", tc.path, got)
		}
	}
	checkRawStatuses(t, addr, []rawStatus{
		{"GET /live/x.txt HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
		{"GET /live/x.ts.txt HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
		{"GET /live/.ts HTTP/1.1\r\nHost: sluice\r\n\r\n", http.StatusNotFound},
		{"GET /live/x.ts HTTP/1.1\r\nHost: sluice\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-a-key\r\n\r\n", http.StatusBadRequest},
		{"GET /live/x.flv HTTP/1.1\r\nHost: sluice\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAA\r\n\r\n", http.StatusBadRequest},
		{"GET /live/x.flv HTTP/1.1\r\nHost: sluice\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", http.StatusBadRequest},
	})
	// A valid upgrade to either suffix on the shared port is accepted.
	for _, suffix := range []string{".flv", ".ts"} {
		ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/live/shared"+suffix, nil)
		if err != nil {
			t.Errorf("WebSocket %s: %v (%v)", suffix, err, resp)
			continue
		}
		ws.Close()
	}
	if g := srv.Groups().Group("x"); g != nil {
		t.Errorf("refused requests left a group: %+v", g.Stat())
	}
}
