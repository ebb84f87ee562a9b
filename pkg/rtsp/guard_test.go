package rtsp

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/conn"
)

// scan feeds data in chunks of size (0: at once) and returns the bytes
// passed and the verdict.
func scan(data []byte, size int) (int, *Malformed) {
	var s Scanner
	if size <= 0 {
		size = len(data) + 1
	}
	passed := 0
	for len(data) > 0 {
		k := min(size, len(data))
		n, bad := s.Feed(data[:k])
		passed += n
		if bad != nil {
			return passed, bad
		}
		data = data[k:]
	}
	return passed, nil
}

const announceSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"

var wellFormed = []string{
	"OPTIONS rtsp://127.0.0.1:5544/live/a RTSP/1.0\r\nCSeq: 1\r\n\r\n",
	"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: x\r\n\r\n",
	"ANNOUNCE rtsp://h/live/a RTSP/1.0\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: " +
		strconv.Itoa(len(announceSDP)) + "\r\n\r\n" + announceSDP,
	"SETUP rtsp://h/live/a/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n" +
		"PLAY rtsp://h/live/a/ RTSP/1.0\r\nCSeq: 4\r\nSession: 12345678\r\n\r\n",
	"$\x00\x00\x04abcd$\x01\x00\x00\r\nGET_PARAMETER rtsp://h/live/a/ RTSP/1.0\r\nCSeq:   5\r\n\r\n",
	"RECORD rtsp://h/live/a RTSP/1.0\r\ncseq: 6\r\ncontent-length: 0\r\n\r\n$\x00\x01\x00" + strings.Repeat("x", 256),
	"GET /tunnel HTTP/1.0\r\nAccept: application/x-rtsp-tunnelled\r\n\r\nanything",
	"TEARDOWN rtsp://h/live/a RTSP/1.0\r\nCSeq: 7\r\nX: " + strings.Repeat("v", maxValueLen-1) + "\r\n\r\n",
}

func TestScannerPassesWellFormed(t *testing.T) {
	for _, in := range wellFormed {
		for _, size := range []int{0, 1, 2, 3, 7, 64} {
			n, bad := scan([]byte(in), size)
			if bad != nil || n != len(in) {
				t.Errorf("%q in chunks of %d: passed %d of %d, malformed %+v", in, size, n, len(in), bad)
			}
		}
	}
}

func TestScannerAnswersMalformed(t *testing.T) {
	for _, tc := range []struct {
		in     string
		status int
		cseq   string
	}{
		{"GARBAGE\r\n\r\n", 400, ""},
		{"\x16\x03\x01\x02\x00", 400, ""},
		{"DESCRIBE\r\n\r\n", 400, ""},
		{"DESCRIBE rtsp://h/a\r\n\r\n", 400, ""},
		{"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505, ""},
		{"OPTIONS * HTTP/1.1\r\nCSeq: 1\r\n\r\n", 400, ""},
		{"OPTIONS * RTSP/1.0\nCSeq: 1\r\n\r\n", 400, ""},
		{"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 400, "9"},
		{"OPTIONS * RTSP/1.0\r\nCSeq: 3\r\nNoColon\r\n\r\n", 400, "3"},
		{"ANNOUNCE rtsp://h/a RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 999999\r\n\r\n", 413, "4"},
		{"ANNOUNCE rtsp://h/a RTSP/1.0\r\nCSeq: 5\r\nContent-Length: x\r\n\r\n", 400, "5"},
		{"DESCRIBE " + strings.Repeat("u", 3000) + " RTSP/1.0\r\n\r\n", 414, ""},
		{"DESCRIBEDESCRIBEDESCRIBEDESCRIBEDESCRIBEDESCRIBEDESCRIBEDESCRIBEX * RTSP/1.0\r\n\r\n", 400, ""},
		{"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nxyz", 400, "1"},
		{"OPTIONS * RTSP/1.0\r\n" + strings.Repeat("A: b\r\n", 256) + "\r\n", 400, ""},
	} {
		for _, size := range []int{0, 1, 5} {
			_, bad := scan([]byte(tc.in), size)
			if bad == nil || bad.Status != tc.status || bad.CSeq != tc.cseq {
				t.Errorf("%.60q in chunks of %d: got %+v, want status %d CSeq %q", tc.in, size, bad, tc.status, tc.cseq)
			}
		}
	}
}

// needMore is the panic of endReader at the end of its data.
type needMore struct{}

// endReader panics when its data is exhausted, so that a parse that would
// wait for more bytes is told from one that fails on the bytes it has.
type endReader struct{ r *bytes.Reader }

func (e endReader) Read(b []byte) (int, error) {
	if e.r.Len() == 0 {
		panic(needMore{})
	}
	return e.r.Read(b)
}

// gortsplibVerdict reads data with gortsplib's connection reader, as the
// server does, and reports whether a request failed to parse on the bytes
// it had (a message cut by the end of the data does not count) and whether
// a response was read.
func gortsplibVerdict(data []byte) (requestError, response bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(needMore); !ok {
				panic(r)
			}
		}
	}()
	c := conn.NewConn(bufio.NewReader(endReader{bytes.NewReader(data)}), io.Discard)
	for {
		v, err := c.Read()
		if err != nil {
			_, isReq := v.(*base.Request)
			return isReq, response
		}
		if _, ok := v.(*base.Response); ok {
			return false, true
		}
	}
}

// FuzzScanner checks the guard's scanner against gortsplib's reader: every
// request gortsplib fails to parse (and answers with nothing) is answered
// by the guard; the verdict does not depend on how the bytes are chunked;
// nothing panics.
func FuzzScanner(f *testing.F) {
	for _, s := range wellFormed {
		f.Add([]byte(s), uint8(3))
	}
	f.Add([]byte("DESCRIBE\r\n\r\n"), uint8(1))
	f.Add([]byte("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: "+strings.Repeat("a", 3000)+"\r\n\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		n, bad := scan(data, 0)
		if n < 0 || n > len(data) {
			t.Fatalf("passed %d of %d bytes", n, len(data))
		}
		n2, bad2 := scan(data, int(chunk%16)+1)
		if (bad == nil) != (bad2 == nil) || (bad != nil && *bad != *bad2) || (bad == nil && n2 != n) {
			t.Fatalf("chunked verdict differs: %+v (%d) vs %+v (%d)", bad, n, bad2, n2)
		}
		if len(data) >= 4 && (string(data[:4]) == "GET " || string(data[:4]) == "POST") {
			return // HTTP tunnel: not the RTSP reader's business
		}
		reqErr, response := gortsplibVerdict(data)
		if reqErr && !response && bad == nil {
			t.Fatalf("gortsplib fails a request the guard passes: %q", data)
		}
	})
}
