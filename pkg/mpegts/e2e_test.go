package mpegts

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

const mediaDir = "../../../shared/media/"

// readFLVPackets reads every tag of an FLV file as av.Packets; it skips the
// test if the file is missing.
func readFLVPackets(tb testing.TB, path string) []av.Packet {
	tb.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("%s not found", path)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		tb.Fatal(err)
	}
	var pkts []av.Packet
	for {
		h, body, err := r.ReadTag()
		if err == io.EOF {
			return pkts
		}
		if err != nil {
			tb.Fatal(err)
		}
		p, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			tb.Fatal(err)
		}
		pkts = append(pkts, p)
	}
}

// muxResult is the output of muxing a packet sequence.
type muxResult struct {
	ts        []byte
	logs      []string
	muxed     map[av.Kind]int // input packets that produced output
	firstPTS  map[av.Kind]int64
	keyFrames int
	// times holds PTS and DTS (90 kHz) of each muxed packet per kind.
	times map[av.Kind][][2]int64
}

func muxPackets(pkts []av.Packet) muxResult {
	res := muxResult{muxed: map[av.Kind]int{}, firstPTS: map[av.Kind]int64{}, times: map[av.Kind][][2]int64{}}
	m := NewMuxer(func(s string) { res.logs = append(res.logs, s) })
	for i := range pkts {
		out := m.Mux(&pkts[i])
		if out == nil {
			continue
		}
		if _, ok := res.firstPTS[pkts[i].Kind]; !ok {
			res.firstPTS[pkts[i].Kind] = pkts[i].PTS()
		}
		res.muxed[pkts[i].Kind]++
		res.times[pkts[i].Kind] = append(res.times[pkts[i].Kind], [2]int64{pkts[i].PTS() * 90, pkts[i].Timestamp * 90})
		if pkts[i].Kind == av.KindVideo && pkts[i].KeyFrame {
			res.keyFrames++
		}
		res.ts = append(res.ts, out...)
	}
	return res
}

type probeStream struct {
	Index      int    `json:"index"`
	CodecName  string `json:"codec_name"`
	CodecType  string `json:"codec_type"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
	TimeBase   string `json:"time_base"`
	Extradata  string `json:"extradata"`
	NbPackets  string `json:"nb_read_packets"`
	RFrameRate string `json:"r_frame_rate"`
}

type probePacket struct {
	StreamIndex int    `json:"stream_index"`
	PTS         *int64 `json:"pts"`
	DTS         *int64 `json:"dts"`
	Flags       string `json:"flags"`
	Data        string `json:"data"`
}

type probeOutput struct {
	Streams []probeStream `json:"streams"`
	Packets []probePacket `json:"packets"`
}

// ffprobe runs ffprobe with args on file and decodes its JSON output; it
// skips the test if ffprobe is not installed.
func ffprobe(tb testing.TB, file string, args ...string) probeOutput {
	tb.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		tb.Skip("ffprobe not on PATH")
	}
	cmd := exec.Command("ffprobe", append(append([]string{"-v", "error"}, args...), "-of", "json", file)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		tb.Fatalf("ffprobe %s: %v\n%s", file, err, stderr.String())
	}
	var po probeOutput
	if err := json.Unmarshal(out, &po); err != nil {
		tb.Fatal(err)
	}
	return po
}

// checkDecodes runs ffmpeg over file and fails on any error output.
func checkDecodes(tb testing.TB, file string) {
	tb.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		tb.Log("ffmpeg not on PATH, decode check skipped")
		return
	}
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		tb.Errorf("ffmpeg decoding %s: %v\n%s", file, err, out)
	}
}

// checkProbe compares the streams ffprobe finds in file with want
// ("h264 640x360", "aac 44100", ...) and the packet count per stream with
// counts.
func checkProbe(tb testing.TB, file string, want []string, counts []int) {
	tb.Helper()
	po := ffprobe(tb, file, "-count_packets", "-show_entries", "stream=codec_name,codec_type,width,height,sample_rate,channels,nb_read_packets")
	var got []string
	for _, s := range po.Streams {
		if s.CodecType == "video" {
			got = append(got, fmt.Sprintf("%s %dx%d", s.CodecName, s.Width, s.Height))
		} else {
			got = append(got, fmt.Sprintf("%s %s", s.CodecName, s.SampleRate))
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		tb.Errorf("ffprobe streams of %s: %q, want %q", file, got, want)
	}
	for i, s := range po.Streams {
		if i < len(counts) && s.NbPackets != strconv.Itoa(counts[i]) {
			tb.Errorf("ffprobe %s stream %d: %s packets, want %d", file, i, s.NbPackets, counts[i])
		}
	}
}

// checkOwnParser runs the test parser over the output and checks counters,
// PES counts and PSI placement.
func checkOwnParser(tb testing.TB, res muxResult) {
	tb.Helper()
	st := mustDemux(tb, res.ts)
	if err := checkCC(st.Pkts); err != nil {
		tb.Error(err)
	}
	if got := len(st.PES[PIDVideo]); got != res.muxed[av.KindVideo] {
		tb.Errorf("%d video PES for %d muxed packets", got, res.muxed[av.KindVideo])
	}
	if got := len(st.PES[PIDAudio]); got != res.muxed[av.KindAudio] {
		tb.Errorf("%d audio PES for %d muxed packets", got, res.muxed[av.KindAudio])
	}
	if st.Pkts[0].PID != PIDPAT {
		tb.Errorf("stream starts with PID 0x%x", st.Pkts[0].PID)
	}
	// Every key frame is a join point: PAT and PMT right before it.
	rai := 0
	for _, pes := range st.PES[PIDVideo] {
		if !pes.RAI {
			continue
		}
		rai++
		if pes.FirstPkt < 2 || st.Pkts[pes.FirstPkt-2].PID != PIDPAT || st.Pkts[pes.FirstPkt-1].PID != PIDPMT {
			tb.Errorf("key frame at packet %d without PAT/PMT before it", pes.FirstPkt)
		}
	}
	if rai != res.keyFrames {
		tb.Errorf("%d PES with random_access_indicator for %d key frames", rai, res.keyFrames)
	}
	for kind, pid := range map[av.Kind]uint16{av.KindVideo: PIDVideo, av.KindAudio: PIDAudio} {
		for i, pes := range st.PES[pid] {
			if i >= len(res.times[kind]) {
				break
			}
			want := res.times[kind][i]
			dts := pes.DTS
			if dts < 0 {
				dts = pes.PTS
			}
			if pes.PTS != want[0] || dts != want[1] {
				tb.Fatalf("%s PES %d: PTS/DTS %d/%d, want %d/%d", kind, i, pes.PTS, dts, want[0], want[1])
			}
		}
	}
	if v := st.PES[PIDVideo]; len(v) > 0 && v[0].PTS != res.firstPTS[av.KindVideo]*90 {
		tb.Errorf("first video PTS %d, want %d", v[0].PTS, res.firstPTS[av.KindVideo]*90)
	}
	if a := st.PES[PIDAudio]; len(a) > 0 && a[0].PTS != res.firstPTS[av.KindAudio]*90 {
		tb.Errorf("first audio PTS %d, want %d", a[0].PTS, res.firstPTS[av.KindAudio]*90)
	}
}

func writeTS(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestEndToEndFLV(t *testing.T) {
	cases := []struct {
		file    string
		streams []string
		logs    int
	}{
		{"h264_aac_360p.flv", []string{"h264 640x360", "aac 44100"}, 0},
		{"aac_only.flv", []string{"aac 44100"}, 0},
		{"h264_only_360p.flv", []string{"h264 640x360"}, 0},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			pkts := readFLVPackets(t, mediaDir+c.file)
			res := muxPackets(pkts)
			if len(res.logs) != c.logs {
				t.Errorf("logs %q", res.logs)
			}
			checkOwnParser(t, res)
			path := writeTS(t, strings.TrimSuffix(c.file, ".flv")+".ts", res.ts)
			var counts []int
			if res.muxed[av.KindVideo] > 0 {
				counts = append(counts, res.muxed[av.KindVideo])
			}
			if res.muxed[av.KindAudio] > 0 {
				counts = append(counts, res.muxed[av.KindAudio])
			}
			checkProbe(t, path, c.streams, counts)
			checkDecodes(t, path)
		})
	}
}

// hexdumpBytes decodes ffprobe's -show_data hexdump format.
func hexdumpBytes(tb testing.TB, s string) []byte {
	tb.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		if len(line) < 10 {
			continue
		}
		h := line[10:min(len(line), 50)]
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(h), " ", ""))
		if err != nil {
			tb.Fatalf("hexdump line %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

// probePackets turns the packets of a media file into av.Packets as an RTMP
// publisher would send them (sequence headers from the codec extradata,
// timestamps in ms starting at 0), using ffprobe -show_data.
func probePackets(tb testing.TB, file string) []av.Packet {
	tb.Helper()
	if _, err := os.Stat(file); err != nil {
		tb.Skipf("%s: %v", file, err)
	}
	po := ffprobe(tb, file, "-show_data", "-show_streams", "-show_packets")
	type conv struct {
		kind        av.Kind
		codec       av.Codec
		num, den    int64
		hdr         []byte
		seq         []byte
		seqFromData bool
	}
	convs := map[int]*conv{}
	var pkts []av.Packet
	for _, s := range po.Streams {
		c := &conv{}
		num, den, _ := strings.Cut(s.TimeBase, "/")
		c.num, _ = strconv.ParseInt(num, 10, 64)
		c.den, _ = strconv.ParseInt(den, 10, 64)
		extra := hexdumpBytes(tb, s.Extradata)
		switch s.CodecName {
		case "h264":
			c.kind, c.codec, c.hdr, c.seq = av.KindVideo, av.CodecH264, []byte{7, 1, 0, 0, 0}, extra
		case "hevc":
			c.kind, c.codec, c.hdr, c.seq = av.KindVideo, av.CodecH265, []byte{12, 1, 0, 0, 0}, extra
		case "aac":
			c.kind, c.codec, c.hdr, c.seq = av.KindAudio, av.CodecAAC, []byte{0xAF, 1}, extra
		case "opus":
			c.kind, c.codec, c.hdr, c.seq = av.KindAudio, av.CodecOpus, []byte{0xD0}, extra
		case "pcm_alaw":
			c.kind, c.codec, c.hdr = av.KindAudio, av.CodecPCMA, []byte{0x70}
		default:
			tb.Fatalf("codec %s", s.CodecName)
		}
		if c.seq != nil {
			payload := append(append([]byte{}, c.hdr...), c.seq...)
			if c.kind == av.KindVideo {
				payload[0] |= 0x10
				payload[1] = 0
			} else if c.codec == av.CodecAAC {
				payload[1] = 0
			}
			pkts = append(pkts, av.Packet{Kind: c.kind, Codec: c.codec, SeqHeader: true, Payload: payload, DataOffset: len(c.hdr)})
		}
		convs[s.Index] = c
	}
	ms := func(c *conv, v int64) int64 { return v * 1000 * c.num / c.den }
	minDTS := int64(0)
	for i, p := range po.Packets {
		if p.DTS == nil {
			po.Packets[i].DTS = p.PTS // Matroska has no DTS for B-frame-free streams
		}
		if p.PTS == nil {
			po.Packets[i].PTS = po.Packets[i].DTS
		}
		if po.Packets[i].DTS == nil {
			tb.Fatalf("packet %d without timestamps", i)
		}
		minDTS = min(minDTS, ms(convs[p.StreamIndex], *po.Packets[i].DTS))
	}
	for _, p := range po.Packets {
		c := convs[p.StreamIndex]
		dts := ms(c, *p.DTS) - minDTS
		pts := ms(c, *p.PTS) - minDTS
		payload := append(append([]byte{}, c.hdr...), hexdumpBytes(tb, p.Data)...)
		key := strings.HasPrefix(p.Flags, "K")
		if c.kind == av.KindVideo && key {
			payload[0] |= 0x10
		}
		pkts = append(pkts, av.Packet{
			Kind: c.kind, Codec: c.codec, Timestamp: dts, CTS: int32(pts - dts),
			KeyFrame: key && c.kind == av.KindVideo, Payload: payload, DataOffset: len(c.hdr),
		})
	}
	return pkts
}

// TestEndToEndProbed muxes media that FLV (in ffmpeg 5.1) cannot carry:
// H.265 from MP4, H.264 + G.711 from Matroska and generated Opus and MP3.
func TestEndToEndProbed(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs ffmpeg and ffprobe -show_data")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not on PATH")
	}
	gen := func(t *testing.T, name string, args ...string) string {
		path := filepath.Join(t.TempDir(), name)
		full := append([]string{"-nostdin", "-v", "error", "-y"}, args...)
		if out, err := exec.Command("ffmpeg", append(full, path)...).CombinedOutput(); err != nil {
			t.Skipf("generating %s: %v\n%s", name, err, out)
		}
		return path
	}
	t.Run("h265_aac", func(t *testing.T) {
		t.Parallel()
		pkts := probePackets(t, mediaDir+"h265_aac_360p.mp4")
		res := muxPackets(pkts)
		checkOwnParser(t, res)
		path := writeTS(t, "h265.ts", res.ts)
		checkProbe(t, path, []string{"hevc 640x360", "aac 44100"}, []int{250, res.muxed[av.KindAudio]})
		checkDecodes(t, path)
	})
	t.Run("h264_pcma", func(t *testing.T) {
		t.Parallel()
		pkts := probePackets(t, mediaDir+"h264_pcma_360p.mkv")
		res := muxPackets(pkts)
		if len(res.logs) != 1 || res.logs[0] != "mpegts: audio codec PCMA has no MPEG-TS mapping, track left out" {
			t.Errorf("logs %q", res.logs)
		}
		checkOwnParser(t, res)
		path := writeTS(t, "pcma.ts", res.ts)
		checkProbe(t, path, []string{"h264 640x360"}, []int{250})
		checkDecodes(t, path)
	})
	t.Run("opus", func(t *testing.T) {
		t.Parallel()
		src := gen(t, "opus.mka", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-ac", "2", "-c:a", "libopus", "-b:a", "64k")
		pkts := probePackets(t, src)
		res := muxPackets(pkts)
		checkOwnParser(t, res)
		path := writeTS(t, "opus.ts", res.ts)
		checkProbe(t, path, []string{"opus 48000"}, []int{res.muxed[av.KindAudio]})
		checkDecodes(t, path)
	})
	t.Run("h264_mp3", func(t *testing.T) {
		t.Parallel()
		src := gen(t, "mp3.flv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
			"-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-c:a", "libmp3lame", "-ar", "44100", "-b:a", "128k")
		pkts := readFLVPackets(t, src)
		res := muxPackets(pkts)
		checkOwnParser(t, res)
		path := writeTS(t, "mp3.ts", res.ts)
		checkProbe(t, path, []string{"h264 320x240", "mp3 44100"}, []int{res.muxed[av.KindVideo], res.muxed[av.KindAudio]})
		checkDecodes(t, path)
	})
}

// TestEndToEndJoin plays the stream from the output of a later key frame
// on, as a TS subscriber served from the GOP cache receives it.
func TestEndToEndJoin(t *testing.T) {
	pkts := readFLVPackets(t, mediaDir+"h264_aac_360p.flv")
	m := NewMuxer(nil)
	var join []byte
	keys := 0
	for i := range pkts {
		out := m.Mux(&pkts[i])
		if pkts[i].Kind == av.KindVideo && pkts[i].KeyFrame && out != nil {
			keys++
		}
		if keys >= 3 {
			join = append(join, out...)
		}
	}
	if keys < 3 {
		t.Fatalf("%d key frames", keys)
	}
	st := mustDemux(t, join)
	if err := checkCC(st.Pkts); err != nil {
		t.Fatal(err)
	}
	if st.Pkts[0].PID != PIDPAT || st.Pkts[1].PID != PIDPMT || !st.Pkts[2].RAI {
		t.Fatal("join point does not start with PAT, PMT, key frame")
	}
	path := writeTS(t, "join.ts", join)
	checkProbe(t, path, []string{"h264 640x360", "aac 44100"}, []int{len(st.PES[PIDVideo]), len(st.PES[PIDAudio])})
	checkDecodes(t, path)
}

// TestEndToEndJoinBeforeLoopPoint is the HTTP-TS a player gets when it
// joins a publisher looping h264_aac_360p.flv (`ffmpeg -stream_loop -1 -re
// -c copy`) between 8 and 10 s into a loop: the GOP cache's key frame at 8 s,
// then the loop point. ffmpeg moves each loop by 10009 ms, so the video DTS
// steps once by 49 ms (9960 → 10009 ms) instead of 40, and the audio by 1 ms
// (10065 → 10066 ms), as captured from the publisher and from Sluice's
// HTTP-TS output.
//
// The output is correct: DTS strictly increasing on each PID, PTS ≥ DTS.
// ffmpeg, reading MPEG-TS (no header, so it probes 5 s of stream), guesses
// the frame rate from the DTS steps it saw: with the 49 ms step among them
// it guesses 299/12 (24.92) fps instead of 25. `-f null` then rounds the
// decoded frames' times (40 ms apart) onto its 40.13 ms encoder ticks, two
// frames after the jump get the same tick, and its null muxer reports "non
// monotonically increasing dts to muxer in stream 0" about its own output.
// That was the "known defect" of the end-to-end HTTP-TS players; load only
// decided whether a player joined late enough in a loop. Keeping the input's
// time base (-enc_time_base:v -1, as pkg/server's runDecode does) decodes
// cleanly.
func TestEndToEndJoinBeforeLoopPoint(t *testing.T) {
	file := readFLVPackets(t, mediaDir+"h264_aac_360p.flv")
	const loopMS = 10009
	var pkts []av.Packet
	for loop := range 2 {
		for _, p := range file {
			if loop > 0 && (p.SeqHeader || p.Kind == av.KindData) {
				continue
			}
			p.Timestamp += int64(loop * loopMS)
			pkts = append(pkts, p)
		}
	}
	// The publisher interleaves the loops' streams by DTS.
	slices.SortStableFunc(pkts, func(a, b av.Packet) int { return cmp.Compare(a.Timestamp, b.Timestamp) })

	m := NewMuxer(nil)
	var join []byte
	for i := range pkts {
		p := &pkts[i]
		out := m.Mux(p)
		if join == nil && !(p.Kind == av.KindVideo && p.KeyFrame && p.Timestamp == 8000 && out != nil) {
			continue
		}
		join = append(join, out...)
	}
	if join == nil {
		t.Fatal("no key frame at 8000 ms")
	}

	st := mustDemux(t, join)
	if err := checkCC(st.Pkts); err != nil {
		t.Fatal(err)
	}
	if st.Pkts[0].PID != PIDPAT || st.Pkts[1].PID != PIDPMT || !st.Pkts[2].RAI {
		t.Fatal("join point does not start with PAT, PMT, key frame")
	}
	steps := map[uint16]map[int64]int{}
	for _, pid := range []uint16{PIDVideo, PIDAudio} {
		steps[pid] = map[int64]int{}
		prev := int64(-1)
		for i, pes := range st.PES[pid] {
			dts := pes.DTS
			if dts < 0 {
				dts = pes.PTS
			}
			if pes.PTS < dts {
				t.Errorf("PID 0x%x PES %d: PTS %d before DTS %d", pid, i, pes.PTS, dts)
			}
			if prev >= 0 {
				if dts <= prev {
					t.Errorf("PID 0x%x PES %d: DTS %d after %d", pid, i, dts, prev)
				}
				steps[pid][dts-prev]++
			}
			prev = dts
		}
	}
	// The timing of the capture: 40 ms video steps but one of 49 ms; audio
	// steps of 23 or 24 ms but one of 1 ms.
	if v := steps[PIDVideo]; len(v) != 2 || v[49*90] != 1 || v[40*90] == 0 {
		t.Errorf("video DTS steps (90 kHz: count) %v, want 3600s and one 4410", v)
	}
	if a := steps[PIDAudio]; a[90] != 1 {
		t.Errorf("audio DTS steps (90 kHz: count) %v, want one 90", a)
	}

	path := writeTS(t, "join_before_loop.ts", join)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not on PATH")
	}
	decode := func(output ...string) string {
		args := append([]string{"-nostdin", "-v", "error", "-i", path, "-t", "4"}, output...)
		args = append(args, "-f", "null", "-")
		out, err := exec.Command("ffmpeg", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := decode("-enc_time_base:v", "-1"); out != "" {
		t.Errorf("ffmpeg -enc_time_base:v -1 -f null reported:\n%s", out)
	}
	// With ffmpeg's defaults: not a failure of ours, logged to show the
	// cause while ffmpeg behaves so.
	po := ffprobe(t, path, "-select_streams", "v", "-show_entries", "stream=r_frame_rate")
	if len(po.Streams) != 1 {
		t.Fatalf("ffprobe: %d video streams", len(po.Streams))
	}
	t.Logf("ffmpeg defaults: frame rate %s, -f null: %q", po.Streams[0].RFrameRate, decode())
}

func BenchmarkMux(b *testing.B) {
	pkts := readFLVPackets(b, mediaDir+"h264_aac_360p.flv")
	var bytesIn int64
	for i := range pkts {
		bytesIn += int64(len(pkts[i].Payload))
	}
	b.SetBytes(bytesIn / int64(len(pkts)))
	b.ReportAllocs()
	m := NewMuxer(nil)
	i := 0
	for b.Loop() {
		m.Mux(&pkts[i])
		if i++; i == len(pkts) {
			i = 0
		}
	}
}

// BenchmarkMuxFile muxes the whole file per iteration with a fresh Muxer.
func BenchmarkMuxFile(b *testing.B) {
	pkts := readFLVPackets(b, mediaDir+"h264_aac_360p.flv")
	b.ReportAllocs()
	for b.Loop() {
		m := NewMuxer(nil)
		for i := range pkts {
			m.Mux(&pkts[i])
		}
	}
	b.ReportMetric(float64(len(pkts)), "packets/op")
}
