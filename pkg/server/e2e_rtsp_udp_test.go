package server_test

import (
	"net"
	"strconv"
	"testing"

	"sluice/pkg/config"
)

// TestRTSPUDPPortRange: a server configured with port 0 and the test range
// binds its RTP/RTCP pair in the range, on loopback, RTP even and RTCP next;
// a second server takes another pair of the range.
func TestRTSPUDPPortRange(t *testing.T) {
	t.Parallel()
	var pairs [2][2]int
	for i := range pairs {
		srv := startRTSPServer(t, nil)
		rtp, rtcp := srv.RTSPUDPAddrs()
		for j, a := range []string{rtp, rtcp} {
			host, port, err := net.SplitHostPort(a)
			if err != nil || host != "127.0.0.1" {
				t.Fatalf("server %d: UDP address %q, want 127.0.0.1:<port>", i, a)
			}
			pairs[i][j], _ = strconv.Atoi(port)
		}
		p := pairs[i]
		if p[0] < testUDPPortMin || p[1] > testUDPPortMax || p[0]%2 != 0 || p[1] != p[0]+1 {
			t.Errorf("server %d: pair %d-%d, want an even/odd pair in %d-%d", i, p[0], p[1], testUDPPortMin, testUDPPortMax)
		}
	}
	if pairs[0] == pairs[1] {
		t.Errorf("both servers report the pair %v", pairs[0])
	}

	// A pair given by number is used as it is.
	srv := startRTSPServer(t, func(c *config.Config) {
		c.RTSP.UDPRTPAddr, c.RTSP.UDPRTCPAddr = freeUDPPair(t)
		c.RTSP.UDPPortMin, c.RTSP.UDPPortMax = 0, 0
	})
	if rtp, _ := srv.RTSPUDPAddrs(); rtp == "" || rtp == "127.0.0.1:0" {
		t.Errorf("numbered pair reported as %q", rtp)
	}
}
