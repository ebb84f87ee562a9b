package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/av"
	"sluice/pkg/config"
	"sluice/pkg/group"
)

// BenchmarkMediaPathWithWebhooks measures the media path (one packet
// published into a group with 100 subscribers collecting it) while session
// events are produced, with webhooks off and on (to a receiver answering in
// 50 ms, in the same process). Nothing in the media path waits for a
// delivery: what differs is the CPU that delivery takes on the same cores.
func BenchmarkMediaPathWithWebhooks(b *testing.B) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	}))
	defer receiver.Close()
	for _, tc := range []struct {
		webhooks bool
		churn    int
	}{{false, 10}, {true, 10}, {false, 500}, {true, 500}} {
		webhooks := tc.webhooks
		b.Run(fmt.Sprintf("webhooks=%v/viewer_every=%d_packets", webhooks, tc.churn), func(b *testing.B) {
			cfg := config.Default()
			cfg.HTTPNotify.Enable = webhooks
			for _, p := range []*string{&cfg.HTTPNotify.OnPubStart, &cfg.HTTPNotify.OnPubStop,
				&cfg.HTTPNotify.OnSubStart, &cfg.HTTPNotify.OnSubStop} {
				*p = receiver.URL
			}
			s := New(cfg, zap.NewNop())
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				s.notify.Flush(ctx)
				s.notify.Close()
			}()
			pub, err := s.groups.Publish(group.SessionInfo{ID: "P", StreamName: "s", Protocol: ProtocolRTMP, BaseType: group.BasePub})
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			subs := make([]*group.Sub, 100)
			for i := range subs {
				subs[i] = s.groups.Subscribe(group.SessionInfo{ID: fmt.Sprint("S", i), StreamName: "s", Protocol: ProtocolHTTPFLV}, s.formatFLV)
				defer subs[i].Close()
			}
			payload := make([]byte, 10000)
			bufs := make([][]byte, 0, 128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				pub.WritePacket(&av.Packet{Kind: av.KindVideo, Codec: av.CodecH264, Timestamp: int64(i * 40), KeyFrame: i%50 == 0, Payload: payload, DataOffset: 5})
				for _, sub := range subs {
					// Next returns at once: the packet is there.
					bufs, _ = sub.Next(bufs[:0])
				}
				if i%tc.churn == 0 { // a viewer comes and goes: two events
					sub := s.groups.Subscribe(group.SessionInfo{ID: fmt.Sprint("C", i), StreamName: "s", Protocol: ProtocolHTTPFLV}, s.formatFLV)
					sub.Close()
				}
			}
			b.StopTimer() // the deferred flush of queued webhooks is not the media path
		})
	}
}
