package main

import (
	"encoding/binary"
	"fmt"

	"sluice/pkg/flv"
)

// videoKind classifies the first bytes of an FLV video tag body (an RTMP
// video message body), legacy or enhanced RTMP: media says it carries
// coded frames (not a sequence header, end of sequence, metadata or
// command frame), key that it is a keyframe. Five bytes are enough.
func videoKind(b []byte) (media, key bool) {
	if len(b) == 0 {
		return false, false
	}
	if b[0]&flv.ExVideoHeader != 0 {
		frameType := (b[0] >> 4) & 7
		switch b[0] & 0x0f {
		case flv.PacketTypeCodedFrames, flv.PacketTypeCodedFramesX, flv.PacketTypeMultitrack:
			media = frameType != flv.FrameTypeCommand
		}
		return media, media && frameType == flv.FrameTypeKey
	}
	frameType, codec := b[0]>>4, b[0]&0x0f
	if frameType == flv.FrameTypeCommand {
		return false, false
	}
	if codec == flv.CodecIDAVC || codec == flv.CodecIDHEVC {
		if len(b) < 2 || b[1] != flv.AVCNALU {
			return false, false
		}
	}
	return true, frameType == flv.FrameTypeKey
}

// audioMedia says whether the first bytes of an audio tag body are a coded
// frame (not an AAC or enhanced-RTMP sequence header).
func audioMedia(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch b[0] >> 4 {
	case flv.SoundFormatAAC:
		return len(b) >= 2 && b[1] == flv.AACRaw
	case flv.SoundFormatExHeader:
		return b[0]&0x0f == flv.AudioPacketTypeCodedFrames
	}
	return true
}

// frameHook is told the FLV/RTMP timestamp of each video frame once it has
// been received completely (latency mode); nil in load mode.
type frameHook func(ts uint32)

// headPeek is how many body bytes videoKind and audioMedia look at.
const headPeek = 5

// readFLV walks an FLV stream (file header, then tags) without copying a
// byte of media: tag headers and the first body bytes are peeked in br's
// buffer, the rest is skipped (in the kernel when it is not buffered yet). It records each audio and video frame in st
// and returns only on error.
func readFLV(in *input, st *subStat, hook frameHook) error {
	br := in.br
	h, err := br.Peek(flv.HeaderSize)
	if err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return fmt.Errorf("flv: bad signature % x", h[:3])
	}
	off := binary.BigEndian.Uint32(h[5:9])
	if off < flv.HeaderSize || off > 1<<16 {
		return fmt.Errorf("flv: bad header DataOffset %d", off)
	}
	if _, err := br.Discard(int(off) + 4); err != nil {
		return fmt.Errorf("flv header: %w", err)
	}
	for {
		if err := readFLVTag(in, st, hook); err != nil {
			return err
		}
	}
}

// readFLVTag reads one tag and the PreviousTagSize after it.
func readFLVTag(in *input, st *subStat, hook frameHook) error {
	br := in.br
	h, err := br.Peek(flv.TagHeaderSize)
	if err != nil {
		return err
	}
	if h[0]&0xe0 != 0 {
		return fmt.Errorf("flv: out of sync (tag header byte 0x%02x)", h[0])
	}
	typ := h[0] & 0x1f
	size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	ts := uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6]) | uint32(h[7])<<24
	isVideo := false
	if typ == flv.TagVideo || typ == flv.TagAudio {
		body, err := br.Peek(flv.TagHeaderSize + min(size, headPeek))
		if err != nil {
			return err
		}
		body = body[flv.TagHeaderSize:]
		if typ == flv.TagVideo {
			media, key := videoKind(body)
			if media {
				isVideo = true
				st.onVideo(int64(ts)*90, key)
			}
		} else if audioMedia(body) {
			st.onAudio(int64(ts) * 90)
		}
	}
	if err := in.skip(flv.TagHeaderSize + size + 4); err != nil {
		return err
	}
	if isVideo && hook != nil {
		hook(ts)
	}
	return nil
}
