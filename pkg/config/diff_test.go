package config

import (
	"slices"
	"testing"
)

func TestChangedKeys(t *testing.T) {
	a, b := Default(), Default()
	if got := ChangedKeys(a, b); len(got) != 0 {
		t.Fatalf("defaults differ from themselves: %v", got)
	}
	b.RelayPush.AddrList = nil // empty and absent are the same
	b.RTMP.GOPNum = 3
	b.HTTPNotify.OnSubStart = "http://x/"
	b.HTTPTS.HTTPListenAddr = ":9"
	b.SimpleAuth.SubRTMPEnable = true
	want := []string{"rtmp.gop_num", "httpts.http_listen_addr", "http_notify.on_sub_start", "simple_auth.sub_rtmp_enable"}
	if got := ChangedKeys(a, b); !slices.Equal(got, want) {
		t.Fatalf("ChangedKeys = %v, want %v", got, want)
	}
	b.RelayPush.AddrList = []string{"a:1935"}
	if got := ChangedKeys(a, b); !slices.Contains(got, "relay_push.addr_list") {
		t.Fatalf("ChangedKeys = %v, want relay_push.addr_list in it", got)
	}
}
