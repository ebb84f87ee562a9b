package group

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/httpflv"
	"sluice/pkg/mpegts"
	"sluice/pkg/rtmp"
)

// loadPackets reads every tag of a test file as packets.
func loadPackets(tb testing.TB, path string) []av.Packet {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Skipf("test media not available: %v", err)
	}
	defer f.Close()
	r := flv.NewReader(f)
	if _, _, err := r.ReadHeader(); err != nil {
		tb.Fatal(err)
	}
	var pkts []av.Packet
	for {
		h, body, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			tb.Fatal(err)
		}
		pkt, err := flv.PacketFromTag(h.Type, h.Timestamp, body)
		if err != nil {
			tb.Fatal(err)
		}
		pkts = append(pkts, pkt)
	}
}

// BenchmarkFanOut publishes the packets of the 720p load-test file into one
// group and lets every subscriber collect each packet, as its writer would
// before its writev, for each real output format. ns/op is per published
// packet; allocs/op must not grow with the number of subscribers.
func BenchmarkFanOut(b *testing.B) {
	src := loadPackets(b, "../../../shared/media/h264_aac_720p_2m.flv")
	formats := []struct {
		name string
		mux  func(string) Muxer
	}{
		{"rtmp", func(string) Muxer { return rtmp.Muxer{} }},
		{"flv", func(string) Muxer { return httpflv.Muxer{} }},
		{"ts", func(string) Muxer { return mpegts.NewMuxer(nil) }},
	}
	for _, format := range formats {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/subs=%d", format.name, n), func(b *testing.B) {
				m := NewManager(Config{Formats: []FormatSpec{{Name: format.name, GOPNum: 1, NewMuxer: format.mux}}})
				pub, _ := m.Publish(info("P", "s"))
				defer pub.Close()
				// Sequence headers first, so every later packet has output.
				for i := 0; i < 3; i++ {
					pub.WritePacket(&src[i])
				}
				subs := make([]*Sub, n)
				bufs := make([][][]byte, n)
				for i := range subs {
					subs[i] = m.Subscribe(info(fmt.Sprint("S", i), "s"), 0)
					defer subs[i].Close()
					bufs[i] = make([][]byte, 0, maxBatch)
				}
				pkts := make([]av.Packet, b.N)
				body := src[3:]
				var bytes int64
				for i := range pkts {
					p := body[i%len(body)]
					p.Timestamp += int64(i/len(body)) * 10_000
					if p.SeqHeader {
						p = body[0]
					}
					pkts[i] = p
					bytes += int64(len(p.Payload))
				}
				b.SetBytes(bytes / int64(b.N))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range pkts {
					pub.WritePacket(&pkts[i])
					for j, s := range subs {
						var err error
						s.g.mu.Lock()
						bufs[j], err = s.collect(bufs[j][:0])
						s.g.mu.Unlock()
						if err != nil {
							b.Fatalf("subscriber %d: %v", j, err)
						}
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sub-packet")
			})
		}
	}
}
