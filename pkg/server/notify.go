package server

import (
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"sluice/pkg/api"
	"sluice/pkg/config"
	"sluice/pkg/group"
	"sluice/pkg/notify"
	"sluice/pkg/relay"
	"sluice/pkg/rtmp"
)

// Webhook event names.
const (
	eventServerStart = "on_server_start"
	eventUpdate      = "on_update"
	eventPubStart    = "on_pub_start"
	eventPubStop     = "on_pub_stop"
	eventSubStart    = "on_sub_start"
	eventSubStop     = "on_sub_stop"
	eventRTMPConnect = "on_rtmp_connect"
	eventPullStart   = "on_relay_pull_start"
	eventPullStop    = "on_relay_pull_stop"
)

// newDispatcher makes the webhook dispatcher. It exists even when webhooks
// are off, so that /api/events can stream the same events.
func newDispatcher(cfg *config.HTTPNotifyConfig, log *zap.Logger) *notify.Dispatcher {
	return notify.NewDispatcher(dispatcherConfig(cfg, log))
}

// dispatcherConfig is the dispatcher's part of http_notify.
func dispatcherConfig(cfg *config.HTTPNotifyConfig, log *zap.Logger) notify.Config {
	return notify.Config{
		QueueSize: cfg.QueueSize,
		Timeout:   time.Duration(cfg.TimeoutMS) * time.Millisecond,
		Secret:    cfg.Secret,
		Logger:    log,
	}
}

// notifyURL returns where an event goes, or "" when it is not delivered
// (webhooks off or the event's URL empty).
func (s *Server) notifyURL(name string) string {
	n := s.notifyConfig()
	if !n.Enable {
		return ""
	}
	switch name {
	case eventServerStart:
		return n.OnServerStart
	case eventUpdate:
		return n.OnUpdate
	case eventPubStart:
		return n.OnPubStart
	case eventPubStop:
		return n.OnPubStop
	case eventSubStart:
		return n.OnSubStart
	case eventSubStop:
		return n.OnSubStop
	case eventRTMPConnect:
		return n.OnRTMPConnect
	case eventPullStart:
		return n.OnRelayPullStart
	case eventPullStop:
		return n.OnRelayPullStop
	}
	return ""
}

// emit queues one event: delivered as a webhook when configured, and always
// seen by /api/events subscribers. It never blocks. Its body is not built
// when nobody wants the event.
func (s *Server) emit(name, stream string, body any) {
	url := s.notifyURL(name)
	if !s.notify.Wants(url) {
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.log.Error("webhook body", zap.String("event", name), zap.Error(err))
		return
	}
	s.notify.Enqueue(notify.Event{Name: name, URL: url, Stream: stream, Body: b})
}

// OnEvent is the group observer: it logs each session event and turns it
// into its webhook.
func (s *Server) OnEvent(ev group.Event) {
	s.log.Info("session "+ev.Type.String(),
		zap.String("session_id", ev.Session.ID),
		zap.String("stream_name", ev.Session.StreamName),
		zap.String("remote_addr", ev.Session.RemoteAddr),
		zap.String("protocol", ev.Session.Protocol),
		zap.Bool("has_in_session", ev.HasInSession),
		zap.Bool("has_out_session", ev.HasOutSession),
		zap.Uint64("read_bytes_sum", ev.ReadBytes),
		zap.Uint64("wrote_bytes_sum", ev.WrittenBytes))
	info := &ev.Session
	pull := info.BaseType == group.BasePull
	var name string
	switch ev.Type {
	case group.EventPubStart:
		name = eventPubStart
		if pull {
			name = eventPullStart
		} else if s.pushes != nil && (info.Protocol == ProtocolRTMP || info.Protocol == "RTSP") {
			query := info.URLParam
			if info.Protocol != ProtocolRTMP {
				query = "" // lal forwards only an RTMP publisher's query
			}
			s.pushes.Start(info.StreamName, info.AppName, query)
		}
	case group.EventPubStop:
		name = eventPubStop
		if pull {
			name = eventPullStop
		} else if s.pushes != nil {
			s.pushes.Stop(info.StreamName)
		}
	case group.EventSubStart:
		name = eventSubStart
		if !ev.HasInSession && s.cfg.StaticRelayPull.Enable {
			s.startStaticPull(info)
		}
	case group.EventSubStop:
		name = eventSubStop
	default:
		return
	}
	s.emit(name, info.StreamName, api.SessionEvent(s.cfg.ServerID, ev))
}

// startStaticPull pulls a stream a subscriber waits for from the origin of
// static_relay_pull: rtmp://<addr>/<app>/<stream>, retried while subscribers
// wait, stopped a grace period after the last one leaves.
func (s *Server) startStaticPull(sub *group.SessionInfo) {
	if s.pulls.HasPull(sub.StreamName) {
		return
	}
	u := "rtmp://" + s.cfg.StaticRelayPull.Addr + "/" + sub.AppName + "/" + sub.StreamName
	_, err := s.pulls.StartPull(relay.PullOptions{
		URL:           u,
		StreamName:    sub.StreamName,
		RetryNum:      -1,
		AutoStopNoOut: time.Duration(s.cfg.StaticRelayPull.AutoStopPullAfterNoOutMS) * time.Millisecond,
	})
	if err != nil && !errors.Is(err, relay.ErrInputExists) {
		s.log.Warn("static relay pull not started", zap.String("stream_name", sub.StreamName), zap.String("url", u), zap.Error(err))
	}
}

// relayAttemptFailed reports a pull attempt that never joined its group.
func (s *Server) relayAttemptFailed(info group.SessionInfo, err error) {
	ev := group.Event{Type: group.EventPubStop, Session: info}
	if g := s.groups.Group(info.StreamName); g != nil {
		ev.HasInSession, ev.HasOutSession = g.HasInSession(), g.HasOutSession()
	}
	if info.Counters != nil {
		ev.ReadBytes, ev.WrittenBytes = info.Counters.ReadBytes(), info.Counters.WrittenBytes()
	}
	s.emit(eventPullStop, info.StreamName, api.SessionEvent(s.cfg.ServerID, ev))
}

// rtmpConnect records an RTMP connect command. Its on_rtmp_connect is sent
// when the stream is known (publish or play), in that stream's order, so
// that it always precedes the session's on_pub_start/on_sub_start; a
// connection that ends without publish or play sends it then.
func (s *Server) rtmpConnect(sess *rtmp.ServerSession) {
	s.log.Info("rtmp connect",
		zap.String("session_id", sess.ID()),
		zap.String("stream_name", ""),
		zap.String("remote_addr", sess.RemoteAddr()),
		zap.String("app", sess.App()),
		zap.String("flashVer", sess.FlashVer()),
		zap.String("tcUrl", sess.TcURL()))
	s.pendingConnects.Store(sess, api.RTMPConnectBody{
		ServerID:   s.cfg.ServerID,
		SessionID:  sess.ID(),
		RemoteAddr: sess.RemoteAddr(),
		App:        sess.App(),
		FlashVer:   sess.FlashVer(),
		TcURL:      sess.TcURL(),
	})
}

// flushRTMPConnect sends a session's pending on_rtmp_connect, ordered with
// stream's events ("" for the server-level ones).
func (s *Server) flushRTMPConnect(sess *rtmp.ServerSession, stream string) {
	if body, ok := s.pendingConnects.LoadAndDelete(sess); ok {
		s.emit(eventRTMPConnect, stream, body)
	}
}

// sendUpdate queues on_update with the same group JSON as /api/stat/all_group.
func (s *Server) sendUpdate() {
	if !s.notify.Wants(s.notifyURL(eventUpdate)) {
		return // not even the group list
	}
	s.emit(eventUpdate, "", api.UpdateBody{ServerID: s.cfg.ServerID, Groups: s.api.AllGroups()})
}

// tick runs the server's periodic work until done: bitrate sampling every
// second, on_update every update_interval_sec (as last reloaded).
func (s *Server) tick(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s.bitrates.Sample(s.groups)
		if interval := s.notifyConfig().UpdateIntervalSec; interval > 0 && n >= interval {
			s.sendUpdate()
			n = 0
		}
	}
}
