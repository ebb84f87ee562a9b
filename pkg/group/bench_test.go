package group

import (
	"fmt"
	"testing"

	"sluice/pkg/av"
)

// sharedMuxer returns the payload itself: the benchmark measures the fan-out,
// not an encoder.
type sharedMuxer struct{}

func (sharedMuxer) Mux(pkt *av.Packet) []byte { return pkt.Payload }

// BenchmarkFanOut publishes one packet and lets every subscriber collect it,
// as each subscriber's writer would before its writev. The allocations per
// packet must not grow with the number of subscribers.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			m := NewManager(Config{Formats: []FormatSpec{
				{Name: "x", GOPNum: 1, NewMuxer: func(string) Muxer { return sharedMuxer{} }},
			}})
			pub, _ := m.Publish(info("P", "s"))
			defer pub.Close()
			subs := make([]*Sub, n)
			bufs := make([][][]byte, n)
			for i := range subs {
				subs[i] = m.Subscribe(info(fmt.Sprint("S", i), "s"), 0)
				defer subs[i].Close()
				bufs[i] = make([][]byte, 0, maxBatch)
			}
			payload := make([]byte, 10000)
			pkts := make([]av.Packet, b.N)
			for i := range pkts {
				pkts[i] = av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, Timestamp: int64(i * 40), KeyFrame: i%50 == 0, Payload: payload}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range pkts {
				pub.WritePacket(&pkts[i])
				for j, s := range subs {
					var err error
					bufs[j], err = s.Next(bufs[j][:0])
					if err != nil || len(bufs[j]) == 0 {
						b.Fatalf("subscriber %d: %d buffers, err %v", j, len(bufs[j]), err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sub-packet")
		})
	}
}
