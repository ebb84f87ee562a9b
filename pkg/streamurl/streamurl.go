// Package streamurl splits the URLs of each protocol into the app name,
// stream name and URL parameters that decide a stream's group (spec §5).
package streamurl

import (
	"net/http"
	"strings"
)

// Info is what a request URL says about the stream it names.
type Info struct {
	URL        string
	AppName    string
	StreamName string
	URLParam   string
}

// SplitRTMPName splits an RTMP publish or play name into the stream name (up
// to the first '?') and the query after it.
func SplitRTMPName(name string) (stream, param string) {
	if i := strings.IndexByte(name, '?'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// FromPath splits a URL path into the app (the path without its last
// segment, without leading or trailing '/') and the last segment with suffix
// removed.
func FromPath(path, suffix string) (app, stream string) {
	path = strings.Trim(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		app, stream = path[:i], path[i+1:]
	} else {
		stream = path
	}
	return strings.Trim(app, "/"), strings.TrimSuffix(stream, suffix)
}

// FromHTTP describes an HTTP-FLV/HTTP-TS request: url is scheme://Host +
// RequestURI, app and stream come from the path, url_param is the raw query.
func FromHTTP(r *http.Request, suffix string) Info {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	app, stream := FromPath(r.URL.Path, suffix)
	return Info{
		URL:        scheme + "://" + r.Host + r.RequestURI,
		AppName:    app,
		StreamName: stream,
		URLParam:   r.URL.RawQuery,
	}
}
