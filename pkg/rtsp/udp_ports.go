package rtsp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// UDP ports of RTSP.
//
// gortsplib's Server serves RTP and RTCP over UDP on one port pair shared by
// every session, which it tells apart by the peer's address; it has no
// per-session pairs. What a port range can govern is therefore which pair
// the server takes (the first free one in the range) and which local pairs
// the pull client takes (gortsplib picks a free pair of the range at
// random), so that every UDP port RTSP uses lies in the range.

// PortRange is an inclusive range of UDP ports for RTP/RTCP pairs; the zero
// value means not set.
type PortRange struct {
	Min, Max int
}

// IsSet reports whether the range was given.
func (r PortRange) IsSet() bool { return r.Min != 0 || r.Max != 0 }

// validate checks that the range holds at least one pair, RTP even.
func (r PortRange) validate() error {
	if r.Min < 1 || r.Max > 65535 || r.Min > r.Max {
		return fmt.Errorf("UDP port range %d-%d is not within 1-65535 in increasing order", r.Min, r.Max)
	}
	if first := r.Min + r.Min%2; first+1 > r.Max {
		return fmt.Errorf("UDP port range %d-%d holds no RTP/RTCP pair (RTP even, RTCP next)", r.Min, r.Max)
	}
	return nil
}

// errNoFreePair is returned when every pair of a range is taken.
var errNoFreePair = errors.New("no free RTP/RTCP port pair")

// listenUDPPair binds the first free pair of r on host: RTP on an even port,
// RTCP on the next one.
func listenUDPPair(host string, r PortRange, listen func(network, addr string) (net.PacketConn, error)) (rtp, rtcp net.PacketConn, err error) {
	if err := r.validate(); err != nil {
		return nil, nil, err
	}
	for p := r.Min + r.Min%2; p+1 <= r.Max; p += 2 {
		a, err := listen("udp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		b, err := listen("udp", net.JoinHostPort(host, strconv.Itoa(p+1)))
		if err != nil {
			a.Close()
			continue
		}
		return a, b, nil
	}
	return nil, nil, fmt.Errorf("%w in %d-%d on %q", errNoFreePair, r.Min, r.Max, host)
}

// udpPair is the server's UDP port pair, as gortsplib is given it. A pair
// taken from the range is bound before gortsplib starts, and handed to it by
// its ListenPacket hook, so that no other process can take it in between.
type udpPair struct {
	rtpAddr, rtcpAddr string
	bound             map[string]net.PacketConn // not yet handed to gortsplib
}

// openUDPPair resolves the configured pair: as given, or, with port 0 in
// both addresses, the first free pair of the port range on their host.
func openUDPPair(rtpAddr, rtcpAddr string, r PortRange) (*udpPair, error) {
	p := &udpPair{rtpAddr: rtpAddr, rtcpAddr: rtcpAddr}
	if rtpAddr == "" || rtcpAddr == "" {
		return p, nil
	}
	host, rtpPort, err := net.SplitHostPort(rtpAddr)
	if err != nil {
		return nil, &BindError{Key: "udp_rtp_addr", Addr: rtpAddr, Err: err}
	}
	_, rtcpPort, err := net.SplitHostPort(rtcpAddr)
	if err != nil {
		return nil, &BindError{Key: "udp_rtcp_addr", Addr: rtcpAddr, Err: err}
	}
	if rtpPort != "0" || rtcpPort != "0" {
		return p, nil
	}
	if !r.IsSet() {
		return nil, &BindError{Key: "udp_rtp_addr", Addr: rtpAddr, Err: errors.New("port 0 needs a UDP port range")}
	}
	rtp, rtcp, err := listenUDPPair(host, r, net.ListenPacket)
	if err != nil {
		return nil, &BindError{Key: "udp_port_min", Addr: fmt.Sprintf("%s:%d-%d", host, r.Min, r.Max), Err: err}
	}
	p.rtpAddr = net.JoinHostPort(host, strconv.Itoa(rtp.LocalAddr().(*net.UDPAddr).Port))
	p.rtcpAddr = net.JoinHostPort(host, strconv.Itoa(rtcp.LocalAddr().(*net.UDPAddr).Port))
	p.bound = map[string]net.PacketConn{p.rtpAddr: rtp, p.rtcpAddr: rtcp}
	return p, nil
}

// listenPacket is gortsplib's ListenPacket hook: a pre-bound socket of the
// pair, or a new one; a failure names the address's key.
func (p *udpPair) listenPacket(network, addr string) (net.PacketConn, error) {
	if pc, ok := p.bound[addr]; ok {
		delete(p.bound, addr)
		return pc, nil
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		key := "udp_rtp_addr"
		if addr == p.rtcpAddr {
			key = "udp_rtcp_addr"
		}
		return nil, &BindError{Key: key, Addr: addr, Err: err}
	}
	return pc, nil
}

// closeUnused closes the pre-bound sockets gortsplib did not take (it
// failed to start before it bound UDP).
func (p *udpPair) closeUnused() {
	for addr, pc := range p.bound {
		pc.Close()
		delete(p.bound, addr)
	}
}

// clientUDPListen returns the pull client's ListenPacket hook binding its
// local pairs on host (gortsplib asks for ":port").
func clientUDPListen(host string) func(network, addr string) (net.PacketConn, error) {
	return func(network, addr string) (net.PacketConn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return net.ListenPacket(network, net.JoinHostPort(host, port))
	}
}

// udpReadBuffer is the receive buffer asked for the server's RTP/RTCP
// sockets: a second of several publishers' media, so that a burst (or a
// moment the reading goroutine is not scheduled) is not dropped. gortsplib
// refuses to start when the system grants less than asked, so the request
// is capped at net.core.rmem_max; 0 (the system default) when that cannot
// be read.
func udpReadBuffer() int {
	const want = 1 << 20
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || max <= 0 {
		return 0
	}
	return min(want, max)
}
