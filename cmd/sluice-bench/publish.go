package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"sluice/pkg/av"
	"sluice/pkg/flv"
	"sluice/pkg/rtmp"
)

// fileTag is one tag of the media file, kept in memory.
type fileTag struct {
	typ    uint8
	ts     uint32 // relative to the file's first tag
	body   []byte
	header bool // script data or a sequence header: sent once, not on every loop
	media  bool // a coded video frame (latency is measured on these)
}

// mediaFile is an FLV file loaded for real-time replay.
type mediaFile struct {
	tags   []fileTag
	period uint32 // ms between the starts of two loops: continuous timestamps
	// Raw FLV bytes for rawcopy: the file header, then each tag with its
	// PreviousTagSize (the same index as tags).
	fileHeader []byte
	raw        [][]byte
}

// loadFLV reads an FLV file into memory.
func loadFLV(path string) (*mediaFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := flv.NewReader(bufio.NewReader(f))
	hasAudio, hasVideo, err := r.ReadHeader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := &mediaFile{fileHeader: flv.AppendFileHeader(nil, hasAudio, hasVideo)}
	var first, last uint32
	var firstVideo, lastVideo uint32
	videos := 0
	for {
		h, body, err := r.ReadTag()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Type != flv.TagAudio && h.Type != flv.TagVideo && h.Type != flv.TagScript {
			continue
		}
		if len(m.tags) == 0 {
			first = h.Timestamp
		}
		t := fileTag{typ: h.Type, ts: h.Timestamp - first, body: body}
		switch h.Type {
		case flv.TagScript:
			t.header = true
		case flv.TagVideo:
			media, _ := videoKind(body)
			t.header = !media
			t.media = media
			if media {
				if videos == 0 {
					firstVideo = t.ts
				}
				lastVideo = t.ts
				videos++
			}
		case flv.TagAudio:
			t.header = !audioMedia(body)
		}
		last = max(last, t.ts)
		m.tags = append(m.tags, t)
		m.raw = append(m.raw, flv.AppendTag(nil, h.Type, t.ts, body))
	}
	if len(m.tags) == 0 {
		return nil, fmt.Errorf("%s: no tags", path)
	}
	frame := uint32(40)
	if videos > 1 {
		frame = (lastVideo - firstVideo) / uint32(videos-1)
	}
	m.period = last + max(frame, 1)
	return m, nil
}

// play replays the file at real-time pace (looping when loop is set, with
// continuous timestamps) through send, until ctx ends. Header tags go out
// on the first loop only. send gets the tag and its timestamp for this loop.
func (m *mediaFile) play(ctx context.Context, loop bool, send func(t *fileTag, ts uint32) error) error {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for n := uint32(0); ; n++ {
		off := n * m.period
		for i := range m.tags {
			t := &m.tags[i]
			if n > 0 && t.header {
				continue
			}
			ts := t.ts + off
			if d := time.Until(start.Add(time.Duration(ts) * time.Millisecond)); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := send(t, ts); err != nil {
				return err
			}
		}
		if !loop {
			return nil
		}
	}
}

// publishFile publishes the file to an RTMP URL until ctx ends. stamp, when
// not nil, is called right before each coded video frame is written.
func publishFile(ctx context.Context, m *mediaFile, rawURL string, loop bool, stamp func(ts uint32, at time.Time)) error {
	// Nothing is expected from the server while publishing: no read timeout.
	c, err := rtmp.Dial(ctx, rawURL, rtmp.ClientOptions{ReadTimeout: 1000 * time.Hour})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Publish(); err != nil {
		return err
	}
	// Drain what the server sends (acknowledgements, pings), answering
	// pings, so that the socket never fills up.
	go func() {
		for {
			if _, err := c.ReadPacket(); err != nil {
				return
			}
		}
	}()
	var pkt av.Packet
	return m.play(ctx, loop, func(t *fileTag, ts uint32) error {
		pkt = av.Packet{Kind: av.Kind(t.typ), Timestamp: int64(ts), Payload: t.body}
		if stamp != nil && t.media {
			stamp(ts, time.Now())
		}
		return c.WritePacket(&pkt)
	})
}
