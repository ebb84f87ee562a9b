package server

import (
	"context"

	"go.uber.org/zap"

	"sluice/pkg/relay"
	"sluice/pkg/rtsp"
)

// rtspPullDialer returns the DialFunc of rtsp:// relay pulls: an RTSP play
// session (pkg/rtsp's client) over TCP (rtsp_mode 0) or UDP (rtsp_mode 1),
// whose connect, DESCRIBE, SETUP and PLAY are bounded by the pull timeout.
func (s *Server) rtspPullDialer() relay.DialFunc {
	return func(ctx context.Context, rawURL string, opt relay.PullOptions) (relay.Source, error) {
		tr, err := rtsp.TransportFromMode(opt.RTSPMode)
		if err != nil {
			return nil, err
		}
		c, err := rtsp.Dial(ctx, rawURL, rtsp.ClientOptions{
			Transport: tr,
			Timeout:   opt.Timeout,
			UserAgent: "sluice/" + Version,
			Logger:    s.log.With(zap.String("stream_name", opt.StreamName)),
		})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
