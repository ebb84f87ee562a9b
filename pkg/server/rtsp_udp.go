package server

// RTSPUDPAddrs returns the UDP pair RTSP's RTP and RTCP use (both "" when
// RTSP or its UDP transport is off): rtsp.udp_rtp_addr and udp_rtcp_addr,
// or the pair taken from rtsp.udp_port_min..udp_port_max.
func (s *Server) RTSPUDPAddrs() (rtp, rtcp string) {
	if s.rtsp.srv == nil {
		return "", ""
	}
	return s.rtsp.srv.UDPAddrs()
}
