package server

import "sluice/pkg/relay"

// rtspPullDialer returns the DialFunc of rtsp:// relay pulls. RTSP pull is
// not implemented yet: StartPull then refuses rtsp:// URLs with an error.
func (s *Server) rtspPullDialer() relay.DialFunc { return nil }
