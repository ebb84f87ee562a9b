package config

// UDP port range of RTSP (rtsp.udp_port_min / rtsp.udp_port_max), a Sluice
// extension: lal allocates RTSP UDP pairs from 30000–60000 without a key.

// Bounds of rtsp.udp_port_min and rtsp.udp_port_max: no privileged ports.
const (
	udpPortLow  = 1024
	udpPortHigh = 65535
)

// checkUDPPortRange checks rtsp.udp_port_min and udp_port_max: both 0 (not
// set), or both in 1024..65535 with min even and room for one RTP/RTCP pair.
func (r *RTSPConfig) checkUDPPortRange() error {
	lo, hi := r.UDPPortMin, r.UDPPortMax
	switch {
	case lo == 0 && hi == 0:
		return nil
	case lo == 0:
		return keyErrorf("rtsp.udp_port_min", "is 0 but rtsp.udp_port_max is %d: set both or neither", hi)
	case hi == 0:
		return keyErrorf("rtsp.udp_port_max", "is 0 but rtsp.udp_port_min is %d: set both or neither", lo)
	case lo < udpPortLow || lo > udpPortHigh:
		return keyErrorf("rtsp.udp_port_min", "%d is out of range %d..%d", lo, udpPortLow, udpPortHigh)
	case hi < udpPortLow || hi > udpPortHigh:
		return keyErrorf("rtsp.udp_port_max", "%d is out of range %d..%d", hi, udpPortLow, udpPortHigh)
	case lo%2 != 0:
		return keyErrorf("rtsp.udp_port_min", "%d must be even (RTP takes the even port of each pair)", lo)
	case hi < lo+1:
		return keyErrorf("rtsp.udp_port_max", "%d leaves no RTP/RTCP pair above rtsp.udp_port_min %d: it must be at least %d", hi, lo, lo+1)
	}
	return nil
}

// checkUDPPortZero checks a server pair given with port 0: both ports 0, and
// a range to take the pair from.
func (r *RTSPConfig) checkUDPPortZero(rtp, rtcp int) error {
	if rtp != 0 {
		return keyErrorf("rtsp.udp_rtcp_addr", "%q: port 0 (a pair from rtsp.udp_port_min..udp_port_max) needs port 0 in rtsp.udp_rtp_addr too", r.UDPRTCPAddr)
	}
	if rtcp != 0 {
		return keyErrorf("rtsp.udp_rtp_addr", "%q: port 0 (a pair from rtsp.udp_port_min..udp_port_max) needs port 0 in rtsp.udp_rtcp_addr too", r.UDPRTPAddr)
	}
	if r.UDPPortMin == 0 {
		return keyErrorf("rtsp.udp_rtp_addr", "%q: port 0 takes the pair from rtsp.udp_port_min..udp_port_max, which are not set", r.UDPRTPAddr)
	}
	return nil
}
