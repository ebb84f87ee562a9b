package config

import (
	"errors"
	"strings"
	"testing"
)

// TestUDPPortRangeValidation checks rtsp.udp_port_min / udp_port_max and
// their interplay with the server pair, through Load, naming the key.
func TestUDPPortRangeValidation(t *testing.T) {
	tests := []struct {
		name, body string
		key, want  string // want "" : loads
	}{
		{name: "not set", body: `{}`},
		{name: "range with a free pair", body: `{"rtsp": {"udp_rtp_addr": "127.0.0.1:0", "udp_rtcp_addr": "127.0.0.1:0", "udp_port_min": 30000, "udp_port_max": 30099}}`},
		{name: "range with a fixed pair inside", body: `{"rtsp": {"udp_rtp_addr": ":30010", "udp_rtcp_addr": ":30011", "udp_port_min": 30000, "udp_port_max": 30011}}`},
		{name: "range without server UDP", body: `{"rtsp": {"udp_rtp_addr": "", "udp_rtcp_addr": "", "udp_port_min": 30000, "udp_port_max": 30001}}`},
		{name: "range ignored with rtsp off", body: `{"rtsp": {"enable": false, "udp_port_min": 7}}`},
		{name: "min only", body: `{"rtsp": {"udp_port_min": 30000}}`,
			key: "rtsp.udp_port_max", want: "is 0 but rtsp.udp_port_min is 30000: set both or neither"},
		{name: "max only", body: `{"rtsp": {"udp_port_max": 30000}}`,
			key: "rtsp.udp_port_min", want: "is 0 but rtsp.udp_port_max is 30000: set both or neither"},
		{name: "min privileged", body: `{"rtsp": {"udp_port_min": 1000, "udp_port_max": 2000}}`,
			key: "rtsp.udp_port_min", want: "1000 is out of range 1024..65535"},
		{name: "max too high", body: `{"rtsp": {"udp_port_min": 30000, "udp_port_max": 70000}}`,
			key: "rtsp.udp_port_max", want: "70000 is out of range 1024..65535"},
		{name: "min odd", body: `{"rtsp": {"udp_port_min": 30001, "udp_port_max": 30100}}`,
			key: "rtsp.udp_port_min", want: "30001 must be even"},
		{name: "max below min", body: `{"rtsp": {"udp_port_min": 30000, "udp_port_max": 29000}}`,
			key: "rtsp.udp_port_max", want: "29000 leaves no RTP/RTCP pair above rtsp.udp_port_min 30000"},
		{name: "max equal to min", body: `{"rtsp": {"udp_port_min": 30000, "udp_port_max": 30000}}`,
			key: "rtsp.udp_port_max", want: "it must be at least 30001"},
		{name: "fixed pair outside the range", body: `{"rtsp": {"udp_port_min": 30000, "udp_port_max": 30099}}`,
			key: "rtsp.udp_rtp_addr", want: `":8000": the pair 8000-8001 is outside rtsp.udp_port_min..udp_port_max (30000..30099)`},
		{name: "fixed pair across the top", body: `{"rtsp": {"udp_rtp_addr": ":30100", "udp_rtcp_addr": ":30101", "udp_port_min": 30000, "udp_port_max": 30100}}`,
			key: "rtsp.udp_rtp_addr", want: "is outside"},
		{name: "port 0 without a range", body: `{"rtsp": {"udp_rtp_addr": ":0", "udp_rtcp_addr": ":0"}}`,
			key: "rtsp.udp_rtp_addr", want: "port 0 takes the pair from rtsp.udp_port_min..udp_port_max, which are not set"},
		{name: "port 0 for RTP only", body: `{"rtsp": {"udp_rtp_addr": ":0", "udp_rtcp_addr": ":30001", "udp_port_min": 30000, "udp_port_max": 30099}}`,
			key: "rtsp.udp_rtp_addr", want: "needs port 0 in rtsp.udp_rtcp_addr too"},
		{name: "port 0 for RTCP only", body: `{"rtsp": {"udp_rtp_addr": ":30000", "udp_rtcp_addr": ":0", "udp_port_min": 30000, "udp_port_max": 30099}}`,
			key: "rtsp.udp_rtcp_addr", want: "needs port 0 in rtsp.udp_rtp_addr too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			c, _, err := Load(writeConfig(t, "c.json", tt.body))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load = %+v, %v; want a *config.Error for %s", c, err, tt.key)
			}
			if cerr.Key != tt.key || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q (key %q), want key %q and %q", err, cerr.Key, tt.key, tt.want)
			}
		})
	}
}

// TestUDPPortRangeFromEnv sets the range from the environment.
func TestUDPPortRangeFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("SLUICE_RTSP_UDP_PORT_MIN", "40000")
	t.Setenv("SLUICE_RTSP_UDP_PORT_MAX", "40999")
	t.Setenv("SLUICE_RTSP_UDP_RTP_ADDR", ":0")
	t.Setenv("SLUICE_RTSP_UDP_RTCP_ADDR", ":0")
	c, _, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.RTSP.UDPPortMin != 40000 || c.RTSP.UDPPortMax != 40999 {
		t.Errorf("range %d..%d, want 40000..40999", c.RTSP.UDPPortMin, c.RTSP.UDPPortMax)
	}
}
