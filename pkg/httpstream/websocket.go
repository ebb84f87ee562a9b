package httpstream

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
)

// websocketGUID is the fixed GUID of RFC 6455 §1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxFrameHeader is the largest header of an unmasked server frame.
const maxFrameHeader = 10

// maxClientFrame bounds the payload of a frame a client may send us.
const maxClientFrame = 64 << 10

// websocketKey reports whether r asks for a WebSocket upgrade and returns its
// Sec-WebSocket-Key. An upgrade request without a valid key is an error.
func websocketKey(r *http.Request) (key string, upgrade bool, err error) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", false, nil
	}
	key = r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", false, errors.New("websocket upgrade without a valid Sec-WebSocket-Key")
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "" && v != "13" {
		return "", false, errors.New("unsupported Sec-WebSocket-Version " + v)
	}
	return key, true, nil
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// websocketAccept computes the Sec-WebSocket-Accept value for key.
func websocketAccept(key string) string {
	sum := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// appendFrameHeader appends the header of an unmasked final binary frame of
// n payload bytes.
func appendFrameHeader(dst []byte, n int) []byte {
	dst = append(dst, 0x82)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}

// frameAll makes binary frames of bufs: one per buffer, or, with size, one
// per run of buffers holding size(first buffer) bytes (an FLV tag made of
// several slices). The headers live in one reused array sized up front, so
// the slices into it stay valid.
func frameAll(out [][]byte, headers []byte, bufs [][]byte, size func(first []byte) int) ([][]byte, []byte) {
	if need := len(bufs) * maxFrameHeader; cap(headers) < need {
		headers = make([]byte, 0, need)
	}
	headers = headers[:0]
	for i := 0; i < len(bufs); {
		n, j := len(bufs[i]), i+1
		if size != nil {
			for want := size(bufs[i]); j < len(bufs) && n < want; j++ {
				n += len(bufs[j])
			}
		}
		start := len(headers)
		headers = appendFrameHeader(headers, n)
		out = append(out, headers[start:len(headers):len(headers)])
		out = append(out, bufs[i:j]...)
		i = j
	}
	return out, headers
}

// readWebSocket reads and drops the client's frames until it closes the
// connection, sends a close frame, or sends something malformed.
func readWebSocket(r io.Reader) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return
		}
		opcode := hdr[0] & 0x0F
		masked := hdr[1]&0x80 != 0
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			if _, err := io.ReadFull(r, hdr[:2]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(r, hdr[:8]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if opcode == 0x8 || !masked || n > maxClientFrame {
			return
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)+4); err != nil {
			return
		}
	}
}
