package server

import (
	"context"
	"net"

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
		ports, host := s.rtspPullUDPPorts()
		c, err := rtsp.Dial(ctx, rawURL, rtsp.ClientOptions{
			Transport: tr,
			Timeout:   opt.Timeout,
			UserAgent: "sluice/" + Version,
			Logger:    s.log.With(zap.String("stream_name", opt.StreamName)),
			UDPPorts:  ports,
			UDPHost:   host,
		})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// rtspPullUDPPorts returns where an RTSP pull over UDP binds its local pair:
// with rtsp.udp_port_min/udp_port_max set, a pair of that range on the host
// of rtsp.udp_rtp_addr; else gortsplib's default range on every interface.
func (s *Server) rtspPullUDPPorts() (rtsp.PortRange, string) {
	c := s.cfg.RTSP
	if c.UDPPortMin == 0 {
		return rtsp.PortRange{}, ""
	}
	host, _, _ := net.SplitHostPort(c.UDPRTPAddr)
	return rtsp.PortRange{Min: c.UDPPortMin, Max: c.UDPPortMax}, host
}
