// Package auth decides whether a publisher or a player may start: lal's
// simple_auth (an MD5 lal_secret in the URL), a back end asked by webhook
// (http_auth), and a temporary IP blacklist.
package auth

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Action is what is being asked for.
type Action int

// Actions.
const (
	Publish Action = iota
	Play
)

func (a Action) String() string {
	if a == Publish {
		return "publish"
	}
	return "play"
}

// Denied is a refusal: Status is the HTTP status that best describes it (401
// missing credentials, 403 refused), Reason is told to the client where its
// protocol can carry it.
type Denied struct {
	Status int
	Reason string
}

func (d *Denied) Error() string { return d.Reason }

// HTTPStatus is the status an HTTP client is answered with.
func (d *Denied) HTTPStatus() int { return d.Status }

// AsDenied returns the refusal inside err, if any.
func AsDenied(err error) (*Denied, bool) {
	var d *Denied
	ok := errors.As(err, &d)
	return d, ok
}

// SecretParam is the query parameter simple_auth reads.
const SecretParam = "lal_secret"

// SimpleAuth is lal's simple_auth: the lal_secret parameter must equal
// md5_hex(key + stream_name), or the master secret when that is set.
type SimpleAuth struct {
	Key          string
	MasterSecret string // dangerous_lal_secret; "" turns it off
}

// Check verifies the lal_secret of a URL query for stream.
func (a *SimpleAuth) Check(stream, rawQuery string) error {
	q, _ := url.ParseQuery(rawQuery)
	secret := strings.ToLower(q.Get(SecretParam))
	if secret == "" {
		return &Denied{Status: http.StatusUnauthorized, Reason: "simple_auth: lal_secret missing"}
	}
	if a.MasterSecret != "" && secret == strings.ToLower(a.MasterSecret) {
		return nil
	}
	sum := md5.Sum([]byte(a.Key + stream))
	if secret == hex.EncodeToString(sum[:]) {
		return nil
	}
	return &Denied{Status: http.StatusForbidden, Reason: "simple_auth: lal_secret does not match"}
}

// Blacklist is a set of IPs refused until their entry expires.
type Blacklist struct {
	mu      sync.Mutex
	entries map[string]time.Time
}

// Add refuses ip for d.
func (b *Blacklist) Add(ip string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.entries == nil {
		b.entries = map[string]time.Time{}
	}
	b.entries[ip] = time.Now().Add(d)
}

// Check refuses an address (ip or ip:port) that is listed.
func (b *Blacklist) Check(addr string) error {
	ip := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		ip = h
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.entries[ip]
	if !ok {
		return nil
	}
	if time.Now().After(until) {
		delete(b.entries, ip)
		return nil
	}
	return &Denied{Status: http.StatusForbidden, Reason: "ip blacklisted"}
}

// HTTPAuth asks a back end whether a session may start: it POSTs the
// session's JSON (the on_pub_start/on_sub_start body) to the action's URL; a
// 2xx allows, anything else denies with the reply's body as the reason.
// Decisions are cached per action, stream and URL parameters for CacheTTL.
type HTTPAuth struct {
	OnPub, OnSub string
	Timeout      time.Duration
	// FailOpen allows when the back end cannot be reached; otherwise it denies.
	FailOpen bool
	CacheTTL time.Duration
	Client   *http.Client
	Logger   *zap.Logger

	mu    sync.Mutex
	cache map[string]decision
}

type decision struct {
	err     error
	expires time.Time
}

// maxReason bounds the reply body kept as a denial reason.
const maxReason = 512

// Check asks (or answers from the cache) whether a session may start. body
// is the JSON sent; stream and urlParam key the cache. Only the caller waits:
// a slow back end delays the session being decided and nothing else.
func (h *HTTPAuth) Check(ctx context.Context, action Action, stream, urlParam string, body []byte) error {
	target := h.OnSub
	if action == Publish {
		target = h.OnPub
	}
	if target == "" {
		return nil
	}
	key := action.String() + "\x00" + stream + "\x00" + urlParam
	now := time.Now()
	h.mu.Lock()
	if d, ok := h.cache[key]; ok && now.Before(d.expires) {
		h.mu.Unlock()
		return d.err
	}
	h.mu.Unlock()

	err, cacheable := h.ask(ctx, target, body)
	if cacheable && h.CacheTTL > 0 {
		h.mu.Lock()
		if h.cache == nil {
			h.cache = map[string]decision{}
		}
		for k, d := range h.cache { // keep the map from growing without bound
			if now.After(d.expires) {
				delete(h.cache, k)
			}
		}
		h.cache[key] = decision{err: err, expires: now.Add(h.CacheTTL)}
		h.mu.Unlock()
	}
	return err
}

// ask makes one request. cacheable is false when the back end could not be
// reached (that outcome is not a decision).
func (h *HTTPAuth) ask(ctx context.Context, target string, body []byte) (err error, cacheable bool) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return h.unreachable(target, err), false
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return h.unreachable(target, err), false
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil, true
	}
	text := strings.TrimSpace(string(reason))
	if text == "" {
		text = resp.Status
	}
	h.logger().Info("http_auth denied", zap.String("url", target), zap.Int("status", resp.StatusCode), zap.String("reason", text))
	status := http.StatusForbidden
	if resp.StatusCode == http.StatusUnauthorized {
		status = http.StatusUnauthorized
	}
	return &Denied{Status: status, Reason: "http_auth: " + text}, true
}

func (h *HTTPAuth) unreachable(target string, err error) error {
	h.logger().Warn("http_auth server unreachable", zap.String("url", target), zap.Bool("fail_open", h.FailOpen), zap.Error(err))
	if h.FailOpen {
		return nil
	}
	return &Denied{Status: http.StatusServiceUnavailable, Reason: "http_auth: auth server unreachable"}
}

func (h *HTTPAuth) logger() *zap.Logger {
	if h.Logger == nil {
		return zap.NewNop()
	}
	return h.Logger
}
