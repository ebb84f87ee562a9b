package flv

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultMaxTagSize is the MaxTagSize a Reader from NewReader starts with (16 MiB).
const DefaultMaxTagSize = 16 << 20

// maxHeaderSkip bounds the bytes a file header may declare between itself
// and the first PreviousTagSize (DataOffset - 9); real files have none.
const maxHeaderSkip = 1 << 20

// readChunk is the largest body allocated up front; larger bodies grow as
// their bytes actually arrive, so a lying DataSize cannot make the Reader
// allocate much more than the input holds.
const readChunk = 1 << 20

// Reader reads an FLV file or stream: the file header, then tags.
// It does not buffer; wrap slow sources in a bufio.Reader.
type Reader struct {
	r io.Reader
	// MaxTagSize bounds the DataSize of a tag; a larger tag is an error.
	MaxTagSize uint32
	hdr        [TagHeaderSize]byte
}

// NewReader returns a Reader that reads from r with MaxTagSize set to DefaultMaxTagSize.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, MaxTagSize: DefaultMaxTagSize}
}

// ReadHeader reads the FLV file header and PreviousTagSize0 and returns the
// header's audio and video flags. It returns io.EOF if the input is empty.
func (r *Reader) ReadHeader() (hasAudio, hasVideo bool, err error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return false, false, readErr("file header", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return false, false, fmt.Errorf("flv: bad file signature % x, want \"FLV\"", h[:3])
	}
	if h[3] != 1 {
		return false, false, fmt.Errorf("flv: unsupported file version %d", h[3])
	}
	off := uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])
	if off < HeaderSize || off-HeaderSize > maxHeaderSkip {
		return false, false, fmt.Errorf("flv: bad header DataOffset %d", off)
	}
	if skip := int64(off - HeaderSize); skip > 0 {
		if n, err := io.CopyN(io.Discard, r.r, skip); err != nil {
			return false, false, fmt.Errorf("flv: skipping %d header bytes after %d: %w", skip, n, unexpected(err))
		}
	}
	var pts [prevTagSizeLen]byte
	if _, err := io.ReadFull(r.r, pts[:]); err != nil {
		return false, false, fmt.Errorf("flv: reading PreviousTagSize0: %w", unexpected(err))
	}
	return h[4]&flagAudio != 0, h[4]&flagVideo != 0, nil
}

// ReadTag reads the next tag and the PreviousTagSize that follows it and
// returns the tag header and a freshly allocated body. It returns io.EOF when
// the input ends cleanly before a tag, and also accepts an input that ends
// right after the last tag body without its PreviousTagSize. The value of
// PreviousTagSize is not checked, since writers commonly get it wrong.
// ReadTag may be called without ReadHeader to read a headerless tag stream.
func (r *Reader) ReadTag() (TagHeader, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return TagHeader{}, nil, readErr("tag header", err)
	}
	h, err := ParseTagHeader(r.hdr[:])
	if err != nil {
		return TagHeader{}, nil, err
	}
	limit := r.MaxTagSize
	if limit == 0 {
		limit = DefaultMaxTagSize
	}
	if h.DataSize > limit {
		return h, nil, fmt.Errorf("flv: tag type %d of %d bytes exceeds MaxTagSize %d", h.Type, h.DataSize, limit)
	}
	body, err := readBody(r.r, int(h.DataSize))
	if err != nil {
		return h, nil, fmt.Errorf("flv: reading body of tag type %d (%d bytes): %w", h.Type, h.DataSize, unexpected(err))
	}
	var pts [prevTagSizeLen]byte
	if n, err := io.ReadFull(r.r, pts[:]); err != nil && !(n == 0 && err == io.EOF) {
		return h, nil, fmt.Errorf("flv: reading PreviousTagSize: %w", unexpected(err))
	}
	return h, body, nil
}

// readBody reads exactly n bytes. It allocates readChunk bytes at most up
// front and then at most doubles the buffer as data arrives, so memory stays
// proportional to the bytes actually received.
func readBody(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, min(n, readChunk))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	for len(b) < n {
		k := min(n-len(b), len(b))
		b = slices.Grow(b, k)
		if _, err := io.ReadFull(r, b[len(b):len(b)+k]); err != nil {
			return nil, err
		}
		b = b[:len(b)+k]
	}
	return b, nil
}

// readErr wraps an error met at the start of a unit: io.EOF stays io.EOF
// (clean end), a partial read becomes io.ErrUnexpectedEOF.
func readErr(what string, err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("flv: reading %s: %w", what, err)
}

// unexpected turns io.EOF in the middle of a unit into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
