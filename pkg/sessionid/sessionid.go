// Package sessionid hands out lal-style session ids: a prefix and a
// process-wide counter per prefix, starting at 1 and never reused.
package sessionid

import (
	"strconv"
	"sync"
)

// Prefixes used by Sluice's sessions. FLV and TS subscribers use the names
// of the webhook document (FLVSUB, TSSUB), not lal's FLVPUBSUB/TSPUBSUB.
const (
	RTMPServer = "RTMPPUBSUB"
	RTMPPush   = "RTMPPUSH"
	RTMPPull   = "RTMPPULL"
	RTSPPub    = "RTSPPUB"
	RTSPSub    = "RTSPSUB"
	RTSPPull   = "RTSPPULL"
	FLVSub     = "FLVSUB"
	TSSub      = "TSSUB"
)

var (
	mu       sync.Mutex
	counters = map[string]uint64{}
)

// Next returns the next id for prefix, e.g. "FLVSUB3".
func Next(prefix string) string {
	mu.Lock()
	counters[prefix]++
	n := counters[prefix]
	mu.Unlock()
	return prefix + strconv.FormatUint(n, 10)
}
