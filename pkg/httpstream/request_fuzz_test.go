package httpstream

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/pkg/streamurl"
)

// FuzzRequest is the HTTP-FLV/TS request path a client controls: the raw
// request goes through net/http's parser, then Sluice's path and query
// splitting (streamurl.FromHTTP), WebSocket header validation and the
// handler up to the point where it would take the connection over. Nothing
// may panic, the stream name never contains '/', the app never starts or
// ends with '/', url_param is the raw query, and the handler always answers
// with a status.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET /live/test110.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
		"GET /live/test110.ts?token=abc&x=%2F HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET //a//b/c.flv HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /live/x.flv HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"GET /live/x.flv HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\r\n",
		"HEAD /.flv HTTP/1.0\r\n\r\n",
		"POST /live/x.flv HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx",
		"GET http://h/live/%00.flv?a HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		for _, suffix := range []string{".flv", ".ts"} {
			info := streamurl.FromHTTP(r, suffix)
			if strings.Contains(info.StreamName, "/") {
				t.Fatalf("stream name %q from path %q contains '/'", info.StreamName, r.URL.Path)
			}
			if strings.HasPrefix(info.AppName, "/") || strings.HasSuffix(info.AppName, "/") {
				t.Fatalf("app %q from path %q has a leading or trailing '/'", info.AppName, r.URL.Path)
			}
			if info.URLParam != r.URL.RawQuery {
				t.Fatalf("url_param %q, raw query %q", info.URLParam, r.URL.RawQuery)
			}
		}
		_, _, _ = websocketKey(r)
		subscribed := false
		h := &Handler{
			Suffix:      ".flv",
			ContentType: "video/x-flv",
			Subscribe: func(*Session) (Subscription, error) {
				subscribed = true
				return nil, errRefusedForTest
			},
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 200 || w.Code > 599 {
			t.Fatalf("status %d", w.Code)
		}
		if subscribed {
			t.Fatal("subscribed without taking the connection over")
		}
	})
}

var errRefusedForTest = &testRefusal{}

type testRefusal struct{}

func (*testRefusal) Error() string { return "refused" }
