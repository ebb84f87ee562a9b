package server

import (
	"context"

	"sluice/pkg/auth"
	"sluice/pkg/group"
	"sluice/pkg/httpstream"
	"sluice/pkg/rtmp"
)

// rtmpHandler connects RTMP server sessions to the groups.
type rtmpHandler struct{ s *Server }

func rtmpSessionInfo(sess *rtmp.ServerSession, baseType string) group.SessionInfo {
	return group.SessionInfo{
		ID:         sess.ID(),
		Protocol:   ProtocolRTMP,
		BaseType:   baseType,
		RemoteAddr: sess.RemoteAddr(),
		URL:        sess.URL(),
		AppName:    sess.App(),
		StreamName: sess.StreamName(),
		URLParam:   sess.URLParam(),
		StartTime:  sess.StartTime(),
		Counters:   sess,
		Close:      sess.Close,
	}
}

func (h *rtmpHandler) OnConnect(sess *rtmp.ServerSession) { h.s.rtmpConnect(sess) }

func (h *rtmpHandler) OnClose(sess *rtmp.ServerSession) { h.s.flushRTMPConnect(sess, "") }

func (h *rtmpHandler) OnPublish(sess *rtmp.ServerSession) (rtmp.Publisher, error) {
	h.s.flushRTMPConnect(sess, sess.StreamName())
	info := rtmpSessionInfo(sess, group.BasePub)
	if err := h.s.authorize(context.Background(), auth.Publish, info); err != nil {
		return nil, &rtmp.StatusError{Code: "NetStream.Publish.Unauthorized", Err: err}
	}
	pub, err := h.s.groups.Publish(info)
	if r := h.s.streamRefusal(err, info); r != nil {
		return nil, &rtmp.StatusError{Code: "NetStream.Publish.Rejected", Err: r}
	}
	if err != nil {
		return nil, err
	}
	return pub, nil
}

func (h *rtmpHandler) OnPlay(sess *rtmp.ServerSession) (rtmp.Subscription, error) {
	h.s.flushRTMPConnect(sess, sess.StreamName())
	info := rtmpSessionInfo(sess, group.BaseSub)
	if err := h.s.authorize(context.Background(), auth.Play, info); err != nil {
		return nil, &rtmp.StatusError{Code: "NetStream.Play.Failed", Err: err}
	}
	sub, err := h.s.groups.TrySubscribe(info, h.s.formatRTMP)
	if r := h.s.streamRefusal(err, info); r != nil {
		return nil, &rtmp.StatusError{Code: "NetStream.Play.Failed", Err: r}
	}
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// subscriber returns the Subscribe function of an HTTP stream handler.
func (s *Server) subscriber(protocol string, f group.Format) func(*httpstream.Session) (httpstream.Subscription, error) {
	return func(sess *httpstream.Session) (httpstream.Subscription, error) {
		info := group.SessionInfo{
			ID:         sess.ID(),
			Protocol:   protocol,
			BaseType:   group.BaseSub,
			RemoteAddr: sess.RemoteAddr(),
			URL:        sess.URL,
			AppName:    sess.AppName,
			StreamName: sess.StreamName,
			URLParam:   sess.URLParam,
			StartTime:  sess.StartTime(),
			Counters:   sess,
			Close:      sess.Close,
		}
		if err := s.authorize(context.Background(), auth.Play, info); err != nil {
			return nil, err
		}
		sub, err := s.groups.TrySubscribe(info, f)
		if r := s.streamRefusal(err, info); r != nil {
			return nil, r // 503 with Retry-After
		}
		if err != nil {
			return nil, err
		}
		return sub, nil
	}
}
