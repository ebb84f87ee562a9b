package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Verify.
var (
	// ErrNoSecret is returned by Verify when the secret is empty.
	ErrNoSecret = errors.New("notify: empty secret")
	// ErrNoSignature means the X-Sluice-Signature or X-Sluice-Timestamp header is missing.
	ErrNoSignature = errors.New("notify: missing " + HeaderSignature + " or " + HeaderTimestamp + " header")
	// ErrBadSignature means the signature is malformed or does not match the body, timestamp and secret.
	ErrBadSignature = errors.New("notify: bad signature")
	// ErrStaleTimestamp means the signed timestamp is malformed or further than maxAge from now.
	ErrStaleTimestamp = errors.New("notify: timestamp too old or too far in the future")
)

// Sign computes the X-Sluice-Signature value:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify is the receiver side, for integrators: it checks r's
// X-Sluice-Signature against the secret, r's X-Sluice-Timestamp and body (the
// raw request body, read by the caller) in constant time. If maxAge > 0 it
// also rejects a timestamp older than maxAge, or more than maxAge in the
// future, which limits replays (timestamps have one-second resolution). It
// returns nil, or an error wrapping one of ErrNoSecret, ErrNoSignature,
// ErrBadSignature and ErrStaleTimestamp.
//
// Delivery is at-least-once: deduplicate by X-Sluice-Event-Id.
//
//	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err != nil { ... }
//	if err := notify.Verify(secret, r, body, 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized) // 4xx: not retried
//		return
//	}
func Verify(secret string, r *http.Request, body []byte, maxAge time.Duration) error {
	if secret == "" {
		return ErrNoSecret
	}
	ts := r.Header.Get(HeaderTimestamp)
	sig := r.Header.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return ErrNoSignature
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrBadSignature
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrBadSignature
	}
	if maxAge > 0 {
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return fmt.Errorf("%w: %q is not Unix seconds", ErrStaleTimestamp, ts)
		}
		age := time.Since(time.Unix(sec, 0))
		if age > maxAge || age < -maxAge {
			return fmt.Errorf("%w: age %v, max %v", ErrStaleTimestamp, age.Truncate(time.Second), maxAge)
		}
	}
	return nil
}
