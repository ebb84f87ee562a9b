// Package rtmp implements the protocol primitives of RTMP: the handshake,
// chunk stream reading and writing, and protocol control messages. It holds
// no server logic and does no networking beyond io.Reader and io.Writer.
package rtmp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Handshake sizes and constants.
const (
	handshakeVersion = 3    // C0/S0 version of plain RTMP
	handshakeSize    = 1536 // size of C1, S1, C2 and S2
	digestSize       = sha256.Size

	// clientVersion is the version field a complex-handshake client puts in C1 bytes 4..7.
	clientVersion = 0x80000702
	// serverVersion is the version field a complex-handshake server puts in S1 bytes 4..7.
	serverVersion = 0x04050001
)

// genuineRandom is the 32-byte tail shared by both Adobe handshake keys.
var genuineRandom = []byte{
	0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
	0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
}

var (
	// playerKey is 'Genuine Adobe Flash Player 001' followed by the random tail (62 bytes).
	playerKey = append([]byte("Genuine Adobe Flash Player 001"), genuineRandom...)
	// serverKey is 'Genuine Adobe Flash Media Server 001' followed by the random tail (68 bytes).
	serverKey = append([]byte("Genuine Adobe Flash Media Server 001"), genuineRandom...)
)

const (
	playerKeyTextLen = 30 // len("Genuine Adobe Flash Player 001")
	serverKeyTextLen = 36 // len("Genuine Adobe Flash Media Server 001")
)

// digestScheme describes where the 32-byte digest sits in C1/S1: the sum of
// the four bytes at offsetAt, modulo 728, plus base.
type digestScheme struct {
	offsetAt int
	base     int
}

var (
	scheme0 = digestScheme{offsetAt: 8, base: 12}    // digest in the first 764-byte block
	scheme1 = digestScheme{offsetAt: 772, base: 776} // digest in the second 764-byte block
)

// digestPos returns the position of the digest in the 1536-byte block b.
func (s digestScheme) digestPos(b []byte) int {
	sum := int(b[s.offsetAt]) + int(b[s.offsetAt+1]) + int(b[s.offsetAt+2]) + int(b[s.offsetAt+3])
	return sum%728 + s.base
}

// blockDigest computes HMAC-SHA256 of the 1536-byte block b with the 32 bytes
// at pos left out.
func blockDigest(b []byte, pos int, key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b[:pos])
	h.Write(b[pos+digestSize:])
	return h.Sum(nil)
}

// findDigest looks for a valid digest in block b with each scheme in turn and
// returns the scheme that matched and the digest, or ok=false.
func findDigest(b []byte, key []byte, schemes ...digestScheme) (digestScheme, []byte, bool) {
	for _, s := range schemes {
		pos := s.digestPos(b)
		if hmac.Equal(blockDigest(b, pos, key), b[pos:pos+digestSize]) {
			return s, b[pos : pos+digestSize], true
		}
	}
	return digestScheme{}, nil, false
}

// putDigest writes the digest of block b into it according to scheme s and returns the digest.
func putDigest(b []byte, s digestScheme, key []byte) []byte {
	pos := s.digestPos(b)
	d := blockDigest(b, pos, key)
	copy(b[pos:], d)
	return b[pos : pos+digestSize]
}

// putResponse fills the 1536-byte block b (S2 or C2 of a complex handshake)
// with random bytes followed by a digest keyed by HMAC(fullKey, peerDigest).
func putResponse(b []byte, fullKey, peerDigest []byte) {
	rand.Read(b[:handshakeSize-digestSize])
	k := hmac.New(sha256.New, fullKey)
	k.Write(peerDigest)
	h := hmac.New(sha256.New, k.Sum(nil))
	h.Write(b[:handshakeSize-digestSize])
	copy(b[handshakeSize-digestSize:], h.Sum(nil))
}

// handshakeTime is the value of the 4-byte time field of C1/S1.
func handshakeTime() uint32 { return uint32(time.Now().UnixMilli()) }

// ServerHandshake runs the server side of the handshake: it reads C0+C1,
// writes S0+S1+S2 in one Write call and reads C2 (which is not verified).
//
// When C1 has a non-zero version field and a valid Flash Player digest (at
// either digest offset scheme), the complex handshake is answered: S1 carries
// a Flash Media Server digest at the same scheme and S2 is keyed by the
// client's digest. Otherwise S1 is time, zero and random bytes and S2 echoes C1.
func ServerHandshake(rw io.ReadWriter) error {
	var c0c1 [1 + handshakeSize]byte
	if _, err := io.ReadFull(rw, c0c1[:1]); err != nil {
		return fmt.Errorf("rtmp: handshake: reading C0: %w", err)
	}
	if c0c1[0] != handshakeVersion {
		return fmt.Errorf("rtmp: handshake: unsupported version byte 0x%02x in C0 (want 0x03)", c0c1[0])
	}
	if _, err := io.ReadFull(rw, c0c1[1:]); err != nil {
		return fmt.Errorf("rtmp: handshake: reading C1: %w", err)
	}
	c1 := c0c1[1:]

	out := make([]byte, 1+2*handshakeSize)
	out[0] = handshakeVersion
	s1 := out[1 : 1+handshakeSize]
	s2 := out[1+handshakeSize:]
	binary.BigEndian.PutUint32(s1[0:4], handshakeTime())
	rand.Read(s1[8:])

	complexDone := false
	if binary.BigEndian.Uint32(c1[4:8]) != 0 {
		if scheme, clientDigest, ok := findDigest(c1, playerKey[:playerKeyTextLen], scheme0, scheme1); ok {
			binary.BigEndian.PutUint32(s1[4:8], serverVersion)
			putDigest(s1, scheme, serverKey[:serverKeyTextLen])
			putResponse(s2, serverKey, clientDigest)
			complexDone = true
		}
	}
	if !complexDone {
		// Simple handshake: S1 version is zero, S2 echoes C1.
		copy(s2, c1)
	}
	if _, err := rw.Write(out); err != nil {
		return fmt.Errorf("rtmp: handshake: writing S0+S1+S2: %w", err)
	}
	var c2 [handshakeSize]byte
	if _, err := io.ReadFull(rw, c2[:]); err != nil {
		return fmt.Errorf("rtmp: handshake: reading C2: %w", err)
	}
	return nil
}

// ClientHandshake runs the client side of the handshake.
//
// With complex=true C1 carries a Flash Player digest (offset scheme 0); if
// the server's S1 has a non-zero version field its digest must be valid (at
// either scheme) and C2 is keyed by it, otherwise C2 echoes S1. With
// complex=false C1 has a zero version and C2 echoes S1. S2 is not verified.
func ClientHandshake(rw io.ReadWriter, complex bool) error {
	out := make([]byte, 1+handshakeSize)
	out[0] = handshakeVersion
	c1 := out[1:]
	binary.BigEndian.PutUint32(c1[0:4], handshakeTime())
	rand.Read(c1[8:])
	if complex {
		binary.BigEndian.PutUint32(c1[4:8], clientVersion)
		putDigest(c1, scheme0, playerKey[:playerKeyTextLen])
	}
	if _, err := rw.Write(out); err != nil {
		return fmt.Errorf("rtmp: handshake: writing C0+C1: %w", err)
	}

	in := make([]byte, 1+2*handshakeSize)
	if _, err := io.ReadFull(rw, in[:1]); err != nil {
		return fmt.Errorf("rtmp: handshake: reading S0: %w", err)
	}
	if in[0] != handshakeVersion {
		return fmt.Errorf("rtmp: handshake: unsupported version byte 0x%02x in S0 (want 0x03)", in[0])
	}
	if _, err := io.ReadFull(rw, in[1:]); err != nil {
		return fmt.Errorf("rtmp: handshake: reading S1+S2: %w", err)
	}
	s1 := in[1 : 1+handshakeSize]

	c2 := make([]byte, handshakeSize)
	if complex && binary.BigEndian.Uint32(s1[4:8]) != 0 {
		_, serverDigest, ok := findDigest(s1, serverKey[:serverKeyTextLen], scheme0, scheme1)
		if !ok {
			return fmt.Errorf("rtmp: handshake: S1 has version 0x%08x but no valid server digest", binary.BigEndian.Uint32(s1[4:8]))
		}
		putResponse(c2, playerKey, serverDigest)
	} else {
		copy(c2, s1)
	}
	if _, err := rw.Write(c2); err != nil {
		return fmt.Errorf("rtmp: handshake: writing C2: %w", err)
	}
	return nil
}
