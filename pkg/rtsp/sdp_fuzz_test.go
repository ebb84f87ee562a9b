package rtsp

import (
	"bytes"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/sdp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"sluice/pkg/av"
	"sluice/pkg/flv"
)

// sdpSeeds are ANNOUNCE bodies as ffmpeg and cameras send them.
var sdpSeeds = []string{
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==; profile-level-id=42C01E\r\na=control:streamid=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\nb=AS:128\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n" +
		"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\na=control:streamid=1\r\n",
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n" +
		"a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwBdlZgJ; sprop-sps=QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WWVmkkyvAQAAAAwBAAAAGQg==; sprop-pps=RAHBc9GJ\r\na=control:streamid=0\r\n" +
		"m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:streamid=1\r\n",
	"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=1\r\n" +
		"m=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\na=control:trackID=2\r\n",
}

// FuzzAnnounceSDP is what a publisher controls in ANNOUNCE and then in RTP:
// the SDP goes through gortsplib's parser and Sluice's track selection
// (newInputTrack, as OnAnnounce does), the rest of the input is fed as RTP
// payloads to every accepted track, and the publisher's description is
// passed to buildOutput as the play side does. Nothing may panic, every
// emitted packet must parse back as an FLV tag body, and the play
// description Sluice builds must marshal to SDP that parses again.
func FuzzAnnounceSDP(f *testing.F) {
	for _, s := range sdpSeeds {
		f.Add([]byte(s), []byte{0x80, 0x00, 0x10, 0x10, 0x65, 0x88, 0x84, 0x00})
	}
	f.Fuzz(func(t *testing.T, sdpBytes, payloads []byte) {
		var sd sdp.SessionDescription
		if err := sd.Unmarshal(sdpBytes); err != nil {
			return
		}
		var desc description.Session
		if err := desc.Unmarshal(&sd); err != nil {
			return
		}
		source := &description.Session{Title: desc.Title}
		var tracks []*inputTrack
		for _, m := range desc.Medias {
			for _, fo := range m.Formats {
				tr, err := newInputTrack(m, fo)
				if err != nil {
					continue
				}
				tracks = append(tracks, tr)
				source.Medias = append(source.Medias, &description.Media{Type: m.Type, Formats: []format.Format{fo}})
				break
			}
		}
		check := func(p *av.Packet) {
			tagType := uint8(flv.TagVideo)
			if p.Kind == av.KindAudio {
				tagType = flv.TagAudio
			}
			if _, err := flv.PacketFromTag(tagType, uint32(p.Timestamp), p.Payload); err != nil {
				t.Fatalf("%s track emitted %+v, which does not parse: %v", p.Codec, p, err)
			}
		}
		// Payloads: 1-byte length prefixes, each one RTP packet's payload.
		seq := uint16(0)
		for len(payloads) > 0 {
			n := min(int(payloads[0]), len(payloads)-1)
			body := payloads[1 : 1+n]
			payloads = payloads[1+n:]
			for _, tr := range tracks {
				seq++
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: len(payloads)%2 == 0, SequenceNumber: seq,
					Timestamp: uint32(seq) * 3000, PayloadType: tr.format.PayloadType()}, Payload: bytes.Clone(body)}
				_ = tr.handle(pkt, int64(seq)*3000, check)
			}
		}
		// The play side: Sluice's own track config, with the publisher's
		// formats passed through where the codec matches.
		conf := &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelCount: 2}
		asc, _ := conf.Marshal()
		vc := &flv.VideoConfig{SPS: [][]byte{{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x03, 0xc5, 0x68, 0x40}}, PPS: [][]byte{{0x68, 0xcb, 0x8c, 0xb2}}}
		for _, cfg := range []*trackConfig{
			{videoCodec: av.CodecH264, video: vc, audioCodec: av.CodecAAC, asc: asc, ascParsed: conf},
			{audioCodec: av.CodecPCMA},
			{audioCodec: av.CodecOpus},
		} {
			out, _, _, err := buildOutput(cfg, source)
			if err != nil {
				continue
			}
			b, err := out.Marshal()
			if err != nil {
				continue // gortsplib refuses to marshal some passed-through formats; DESCRIBE then fails cleanly
			}
			var again sdp.SessionDescription
			if err := again.Unmarshal(b); err != nil {
				t.Fatalf("play SDP does not parse again: %v\n%s", err, b)
			}
		}
	})
}
