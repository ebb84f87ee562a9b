package rtsp

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"
)

// freeRange returns the first port of n consecutive loopback UDP ports that
// were free a moment ago, starting on an even port.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		p += p % 2
		if p+n-1 > 65535 {
			continue
		}
		ok := true
		for i := range n {
			c, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+i))
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free UDP port range")
	return 0
}

func port(pc net.PacketConn) int { return pc.LocalAddr().(*net.UDPAddr).Port }

// TestListenUDPPair takes the first free even/odd pair of the range,
// skipping pairs of which either port is taken.
func TestListenUDPPair(t *testing.T) {
	p := freeRange(t, 8)
	// Take the RTP port of the first pair and the RTCP port of the second.
	a, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p+3))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// An odd minimum starts at the next even port.
	rtp, rtcp, err := listenUDPPair("127.0.0.1", PortRange{Min: p - 1, Max: p + 7}, net.ListenPacket)
	if err != nil {
		t.Fatal(err)
	}
	if port(rtp) != p+4 || port(rtcp) != p+5 {
		t.Errorf("pair %d-%d, want %d-%d", port(rtp), port(rtcp), p+4, p+5)
	}
	if h := rtp.LocalAddr().(*net.UDPAddr).IP.String(); h != "127.0.0.1" {
		t.Errorf("bound on %s, want 127.0.0.1", h)
	}
	// The next call gets the next pair; then the range is exhausted.
	rtp2, rtcp2, err := listenUDPPair("127.0.0.1", PortRange{Min: p, Max: p + 7}, net.ListenPacket)
	if err != nil {
		t.Fatal(err)
	}
	if port(rtp2) != p+6 || port(rtcp2) != p+7 {
		t.Errorf("second pair %d-%d, want %d-%d", port(rtp2), port(rtcp2), p+6, p+7)
	}
	if _, _, err := listenUDPPair("127.0.0.1", PortRange{Min: p, Max: p + 7}, net.ListenPacket); !errors.Is(err, errNoFreePair) {
		t.Errorf("full range: %v, want errNoFreePair", err)
	}
	for _, pc := range []net.PacketConn{rtp, rtcp, rtp2, rtcp2} {
		pc.Close()
	}

	for _, r := range []PortRange{{Min: p, Max: p}, {Min: p + 1, Max: p + 2}, {Min: p + 4, Max: p}, {Min: 0, Max: 70000}} {
		if _, _, err := listenUDPPair("127.0.0.1", r, net.ListenPacket); err == nil || errors.Is(err, errNoFreePair) {
			t.Errorf("range %v: %v, want a range error", r, err)
		}
	}
}

// TestOpenUDPPair resolves the server pair: as given, or bound from the
// range with port 0, handed once to gortsplib's hook.
func TestOpenUDPPair(t *testing.T) {
	p := freeRange(t, 4)
	given, err := openUDPPair("127.0.0.1:8000", "127.0.0.1:8001", PortRange{Min: p, Max: p + 3})
	if err != nil || given.rtpAddr != "127.0.0.1:8000" || given.rtcpAddr != "127.0.0.1:8001" || len(given.bound) != 0 {
		t.Errorf("numbered pair: %+v, %v", given, err)
	}
	off, err := openUDPPair("", "", PortRange{})
	if err != nil || off.rtpAddr != "" {
		t.Errorf("UDP off: %+v, %v", off, err)
	}
	var be *BindError
	if _, err := openUDPPair("127.0.0.1:0", "127.0.0.1:0", PortRange{}); !errors.As(err, &be) || be.Key != "udp_rtp_addr" {
		t.Errorf("port 0 without a range: %v, want a BindError for udp_rtp_addr", err)
	}

	u, err := openUDPPair("127.0.0.1:0", "127.0.0.1:0", PortRange{Min: p, Max: p + 3})
	if err != nil {
		t.Fatal(err)
	}
	wantRTP, wantRTCP := "127.0.0.1:"+strconv.Itoa(p), "127.0.0.1:"+strconv.Itoa(p+1)
	if u.rtpAddr != wantRTP || u.rtcpAddr != wantRTCP {
		t.Fatalf("pair %s %s, want %s %s", u.rtpAddr, u.rtcpAddr, wantRTP, wantRTCP)
	}
	rtp, err := u.listenPacket("udp", u.rtpAddr)
	if err != nil || port(rtp) != p {
		t.Fatalf("hook for RTP: %v, %v", rtp, err)
	}
	defer rtp.Close()
	// gortsplib failed before it asked for RTCP: closeUnused frees it.
	u.closeUnused()
	c, err := net.ListenPacket("udp", wantRTCP)
	if err != nil {
		t.Fatalf("RTCP port still bound after closeUnused: %v", err)
	}
	c.Close()
	// A second server finds the first pair busy (RTP still open) and the
	// range exhausted.
	if _, err := openUDPPair("127.0.0.1:0", "127.0.0.1:0", PortRange{Min: p, Max: p + 1}); !errors.As(err, &be) || be.Key != "udp_port_min" {
		t.Errorf("busy range: %v, want a BindError for udp_port_min", err)
	}
}

// TestUDPPortRangeServerAndClient: a server whose pair comes from a range
// takes its first pair, and a client playing video and audio over UDP with
// a range of two pairs binds exactly those (one per media) on loopback, and
// plays.
func TestUDPPortRangeServerAndClient(t *testing.T) {
	t.Parallel()
	m := loadTestMedia(t)
	var srv *Server
	for attempt := 0; ; attempt++ {
		p := freeRange(t, 4)
		srv = New(Config{Addr: "127.0.0.1:0", UDPRTPAddr: "127.0.0.1:0", UDPRTCPAddr: "127.0.0.1:0",
			UDPPorts: PortRange{Min: p, Max: p + 3}, DescribeWait: 5 * time.Second, Handler: testHandler{}, Logger: clientTestLogger()})
		err := srv.Start()
		if err != nil && attempt < 5 {
			srv.Close()
			continue // the range was taken meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		rtp, rtcp := srv.UDPAddrs()
		if want := "127.0.0.1:" + strconv.Itoa(p); rtp != want || rtcp != "127.0.0.1:"+strconv.Itoa(p+1) {
			t.Fatalf("server pair %s %s, want %s and the next port", rtp, rtcp, want)
		}
		break
	}
	startFeed(t, srv, m, "ranged")

	c := freeRange(t, 4)
	s, err := Dial(context.Background(), testURL(srv, "", "ranged"), ClientOptions{Transport: TransportUDP, Timeout: 10 * time.Second,
		UDPPorts: PortRange{Min: c, Max: c + 3}, UDPHost: "127.0.0.1", Logger: clientTestLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []int{c, c + 1, c + 2, c + 3} {
		if pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			pc.Close()
			t.Errorf("client port %d is free: the client did not bind the range's pair", p)
		}
	}
	checkPlayback(t, s, m, time.Second)

	if _, err := Dial(context.Background(), testURL(srv, "", "ranged"), ClientOptions{Transport: TransportUDP,
		UDPPorts: PortRange{Min: c, Max: c}}); err == nil {
		t.Error("Dial with a range of one port succeeded")
	}
}
