package rtsp

import (
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"sluice/pkg/av"
)

// checkIncreasing fails unless the media packets (sequence headers left
// out) of one track have strictly increasing DTS and PTS ≥ DTS.
func checkIncreasing(t *testing.T, pkts []*av.Packet) {
	t.Helper()
	prev := int64(-1)
	for i, p := range pkts {
		if p.SeqHeader {
			continue
		}
		if p.Timestamp <= prev {
			t.Errorf("packet %d: DTS %d ms after %d ms: not strictly increasing", i, p.Timestamp, prev)
		}
		if p.PTS() < p.Timestamp {
			t.Errorf("packet %d: PTS %d ms before DTS %d ms", i, p.PTS(), p.Timestamp)
		}
		prev = p.Timestamp
	}
}

// TestAACLoopPointTimestamps feeds the RTP timing ffmpeg sends at each loop
// of `ffmpeg -stream_loop -1 -i h265_aac_360p.mp4 -c copy -f rtsp`: RTP
// packets of 3 AAC frames (1024 samples each at 44.1 kHz), where the file's
// last frame is cut to 680 samples and the next loop starts 1 sample after
// it. Both frames used to get the same millisecond, and ffmpeg playing
// HTTP-TS reported "non monotonically increasing dts to muxer".
func TestAACLoopPointTimestamps(t *testing.T) {
	f := &format.MPEG4Audio{
		PayloadTyp:       96,
		Config:           &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelCount: 2},
		SizeLength:       13,
		IndexLength:      3,
		IndexDeltaLength: 3,
	}
	tr, err := newInputTrack(&description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}, f)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := f.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	// Presentation times of the packets' first frames, as
	// ServerSession.PacketPTS gave them in the failing run: the packet at
	// 440329 holds frames at 440329, 441353 and 442377; the next loop's
	// first packet starts at 442378.
	starts := []int64{434185, 437257, 440329, 442378, 445450, 448522}
	var out []*av.Packet
	for _, pts := range starts {
		pkts, err := enc.Encode([][]byte{{0x21, 1}, {0x21, 2}, {0x21, 3}})
		if err != nil {
			t.Fatal(err)
		}
		for _, pkt := range pkts {
			pkt.Timestamp = uint32(pts)
			if err := tr.handle(pkt, pts, func(p *av.Packet) { out = append(out, p) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(out) != 1+3*len(starts) {
		t.Fatalf("%d packets, want a sequence header and %d frames", len(out), 3*len(starts))
	}
	checkIncreasing(t, out)
	// The repaired frame is moved by 1 ms; the frames after it keep their
	// own time, so audio does not drift from video at each loop.
	at := func(ticks int64) int64 { return ticksToMS(ticks, 44100) + presentationDelayMS }
	frames := out[1:]
	if got, want := frames[8].Timestamp, at(442377); got != want {
		t.Errorf("last frame of the loop at %d ms, want %d", got, want)
	}
	if got, want := frames[9].Timestamp, at(442377)+1; got != want {
		t.Errorf("first frame of the next loop at %d ms, want %d (1 ms after the previous)", got, want)
	}
	if got, want := frames[10].Timestamp, at(442378+1024); got != want {
		t.Errorf("second frame of the next loop at %d ms, want its own time %d", got, want)
	}
}

// TestAudioSubMillisecondSteps gives G.711 and Opus frames less than 1 ms
// apart in their clocks (a sender's overlap): each gets its own millisecond.
func TestAudioSubMillisecondSteps(t *testing.T) {
	for _, tc := range []struct {
		f   format.Format
		pts []int64
	}{
		{&format.G711{PayloadTyp: 8, SampleRate: 8000, ChannelCount: 1}, []int64{8000, 8160, 8161, 8162, 8320}},
		{&format.Opus{PayloadTyp: 111, ChannelCount: 2}, []int64{48000, 48960, 48961, 49920}},
	} {
		tr, err := newInputTrack(&description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{tc.f}}, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var out []*av.Packet
		for _, pts := range tc.pts {
			if err := tr.handle(rtpPacket(tc.f, pts), pts, func(p *av.Packet) { out = append(out, p) }); err != nil {
				t.Fatal(err)
			}
		}
		if len(out) != len(tc.pts) {
			t.Fatalf("%s: %d packets for %d frames", formatName(tc.f), len(out), len(tc.pts))
		}
		checkIncreasing(t, out)
	}
}

// TestVideoSubMillisecondSteps gives an H.265 stream (no B-frames, so the
// DTS extractor returns each unit's PTS) units 0.5 ms apart in the 90 kHz
// clock: pairs of them used to share a millisecond; each DTS must now be
// its own millisecond and never after its PTS.
func TestVideoSubMillisecondSteps(t *testing.T) {
	aus, out := convertHEVCFile(t, 45)
	if len(out) != len(aus)+1 {
		t.Fatalf("%d packets for %d units", len(out), len(aus))
	}
	checkIncreasing(t, out)
	for _, p := range out {
		roundTrip(t, p)
	}
}

// TestStrictlyIncreasing covers the repair rule: a step back of up to
// maxRepairMS becomes +1 ms, a longer one is the source's discontinuity
// and passes unchanged.
func TestStrictlyIncreasing(t *testing.T) {
	var s strictlyIncreasing
	in := []int64{100, 100, 100, 123, 122, 146, 146 - maxRepairMS - 1, 10}
	want := []int64{100, 101, 102, 123, 124, 146, 146 - maxRepairMS - 1, 10}
	for i, ts := range in {
		if p := s.peek(ts); p != want[i] {
			t.Errorf("peek(%d) = %d, want %d", ts, p, want[i])
		}
		if got := s.next(ts); got != want[i] {
			t.Errorf("next(%d) = %d, want %d", ts, got, want[i])
		}
	}
}

// rtpPacket is a one-packet frame of f with presentation time pts.
func rtpPacket(f format.Format, pts int64) *rtp.Packet {
	return &rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: f.PayloadType(), Marker: true, Timestamp: uint32(pts)},
		Payload: []byte{9, 8, 7, 6},
	}
}
