// Package amf0 encodes and decodes Action Message Format version 0, the
// serialisation RTMP uses for commands and script data.
//
// AMF0 values map to Go values as follows:
//
//	Number       float64
//	Boolean      bool
//	String       string
//	LongString   string (strings longer than 65535 bytes are written as LongString)
//	Null         nil
//	Undefined    Undefined{}
//	Object       Object (ordered properties)
//	ECMA array   ECMAArray (ordered properties)
//	Strict array []any
//	Date         time.Time (UTC, millisecond precision; the time zone field is ignored)
//
// The Unsupported marker (0x0D) decodes as Undefined{}. MovieClip, Reference,
// Recordset, XML document, typed object and the AVM+ switch are rejected.
//
// Decoding never allocates more than a small constant factor of its input and
// never recurses deeper than MaxDepth.
package amf0

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Type markers defined by the AMF0 specification.
const (
	markerNumber      = 0x00
	markerBoolean     = 0x01
	markerString      = 0x02
	markerObject      = 0x03
	markerMovieClip   = 0x04
	markerNull        = 0x05
	markerUndefined   = 0x06
	markerReference   = 0x07
	markerECMAArray   = 0x08
	markerObjectEnd   = 0x09
	markerStrictArray = 0x0A
	markerDate        = 0x0B
	markerLongString  = 0x0C
	markerUnsupported = 0x0D
	markerRecordset   = 0x0E
	markerXMLDocument = 0x0F
	markerTypedObject = 0x10
	markerAVMPlus     = 0x11
)

// MaxDepth is the deepest nesting of objects and arrays accepted by Decode and Append.
const MaxDepth = 64

// maxDateMillis is the ECMAScript time value range (±100,000,000 days).
const maxDateMillis = 8.64e15

// Property is one key/value pair of an Object or ECMAArray.
type Property struct {
	Key   string
	Value any
}

// Object is an AMF0 anonymous object; it keeps its properties in wire order.
type Object []Property

// ECMAArray is an AMF0 ECMA (associative) array; it keeps its properties in wire order.
type ECMAArray []Property

// Undefined is the AMF0 undefined value.
type Undefined struct{}

// Get returns the value of the first property named key.
func (o Object) Get(key string) (any, bool) { return getProp(o, key) }

// GetString returns the value of the first property named key if it is a string.
func (o Object) GetString(key string) (string, bool) { return getString(o, key) }

// GetNumber returns the value of the first property named key if it is a number.
func (o Object) GetNumber(key string) (float64, bool) { return getNumber(o, key) }

// Get returns the value of the first property named key.
func (a ECMAArray) Get(key string) (any, bool) { return getProp(a, key) }

// GetString returns the value of the first property named key if it is a string.
func (a ECMAArray) GetString(key string) (string, bool) { return getString(a, key) }

// GetNumber returns the value of the first property named key if it is a number.
func (a ECMAArray) GetNumber(key string) (float64, bool) { return getNumber(a, key) }

func getProp(props []Property, key string) (any, bool) {
	for i := range props {
		if props[i].Key == key {
			return props[i].Value, true
		}
	}
	return nil, false
}

func getString(props []Property, key string) (string, bool) {
	v, ok := getProp(props, key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

func getNumber(props []Property, key string) (float64, bool) {
	v, ok := getProp(props, key)
	if !ok {
		return 0, false
	}
	f, ok := v.(float64)
	return f, ok
}

// Decode decodes every value in b until b is exhausted.
func Decode(b []byte) ([]any, error) {
	d := decoder{b: b}
	var out []any
	for d.pos < len(b) {
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// DecodeOne decodes the first value in b and returns it with the number of bytes it used.
func DecodeOne(b []byte) (v any, n int, err error) {
	d := decoder{b: b}
	v, err = d.value(0)
	if err != nil {
		return nil, d.pos, err
	}
	return v, d.pos, nil
}

type decoder struct {
	b   []byte
	pos int
}

func (d *decoder) remaining() int { return len(d.b) - d.pos }

// need checks that n more bytes of what are available.
func (d *decoder) need(n int, what string) error {
	if n > d.remaining() {
		return fmt.Errorf("amf0: %s needs %d bytes but %d remain at offset %d", what, n, d.remaining(), d.pos)
	}
	return nil
}

func (d *decoder) value(depth int) (any, error) {
	if err := d.need(1, "type marker"); err != nil {
		return nil, err
	}
	start := d.pos
	m := d.b[d.pos]
	d.pos++
	switch m {
	case markerNumber:
		if err := d.need(8, "number"); err != nil {
			return nil, err
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos:]))
		d.pos += 8
		return f, nil
	case markerBoolean:
		if err := d.need(1, "boolean"); err != nil {
			return nil, err
		}
		v := d.b[d.pos] != 0
		d.pos++
		return v, nil
	case markerString:
		return d.shortString("string")
	case markerLongString:
		return d.longString()
	case markerNull:
		return nil, nil
	case markerUndefined, markerUnsupported:
		return Undefined{}, nil
	case markerObject:
		if depth >= MaxDepth {
			return nil, fmt.Errorf("amf0: object at offset %d exceeds nesting depth limit %d", start, MaxDepth)
		}
		props, err := d.properties(depth + 1)
		if err != nil {
			return nil, err
		}
		return Object(props), nil
	case markerECMAArray:
		if depth >= MaxDepth {
			return nil, fmt.Errorf("amf0: ECMA array at offset %d exceeds nesting depth limit %d", start, MaxDepth)
		}
		// The count is only a hint: the array ends at the object-end marker.
		if err := d.need(4, "ECMA array count"); err != nil {
			return nil, err
		}
		d.pos += 4
		props, err := d.properties(depth + 1)
		if err != nil {
			return nil, err
		}
		return ECMAArray(props), nil
	case markerStrictArray:
		if depth >= MaxDepth {
			return nil, fmt.Errorf("amf0: strict array at offset %d exceeds nesting depth limit %d", start, MaxDepth)
		}
		return d.strictArray(depth + 1)
	case markerDate:
		if err := d.need(10, "date"); err != nil {
			return nil, err
		}
		ms := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos:]))
		d.pos += 10 // 8-byte time + 2-byte time zone (ignored)
		if math.IsNaN(ms) || ms > maxDateMillis || ms < -maxDateMillis {
			return nil, fmt.Errorf("amf0: date value %v out of range at offset %d", ms, start)
		}
		sec := math.Floor(ms / 1000)
		nsec := (ms - sec*1000) * 1e6
		return time.Unix(int64(sec), int64(nsec)).UTC(), nil
	case markerObjectEnd:
		return nil, fmt.Errorf("amf0: unexpected object-end marker at offset %d", start)
	case markerMovieClip:
		return nil, fmt.Errorf("amf0: unsupported MovieClip marker 0x04 at offset %d", start)
	case markerReference:
		return nil, fmt.Errorf("amf0: unsupported Reference marker 0x07 at offset %d", start)
	case markerRecordset:
		return nil, fmt.Errorf("amf0: unsupported Recordset marker 0x0e at offset %d", start)
	case markerXMLDocument:
		return nil, fmt.Errorf("amf0: unsupported XML document marker 0x0f at offset %d", start)
	case markerTypedObject:
		return nil, fmt.Errorf("amf0: unsupported typed object marker 0x10 at offset %d", start)
	case markerAVMPlus:
		return nil, fmt.Errorf("amf0: unsupported AVM+ (AMF3) switch marker 0x11 at offset %d", start)
	default:
		return nil, fmt.Errorf("amf0: unknown type marker 0x%02x at offset %d", m, start)
	}
}

// shortString reads a UTF-8 string with a 16-bit length prefix.
func (d *decoder) shortString(what string) (string, error) {
	if err := d.need(2, what+" length"); err != nil {
		return "", err
	}
	n := int(binary.BigEndian.Uint16(d.b[d.pos:]))
	d.pos += 2
	if n > d.remaining() {
		return "", fmt.Errorf("amf0: %s length %d exceeds remaining %d bytes at offset %d", what, n, d.remaining(), d.pos-2)
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n
	return s, nil
}

// longString reads a UTF-8 string with a 32-bit length prefix.
func (d *decoder) longString() (string, error) {
	if err := d.need(4, "long string length"); err != nil {
		return "", err
	}
	n := uint64(binary.BigEndian.Uint32(d.b[d.pos:]))
	d.pos += 4
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("amf0: long string length %d exceeds remaining %d bytes at offset %d", n, d.remaining(), d.pos-4)
	}
	s := string(d.b[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s, nil
}

// properties reads key/value pairs up to and including the object-end marker.
func (d *decoder) properties(depth int) ([]Property, error) {
	props := []Property{}
	for {
		key, err := d.shortString("property name")
		if err != nil {
			return nil, err
		}
		if key == "" && d.pos < len(d.b) && d.b[d.pos] == markerObjectEnd {
			d.pos++
			return props, nil
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		props = append(props, Property{Key: key, Value: v})
	}
}

func (d *decoder) strictArray(depth int) ([]any, error) {
	if err := d.need(4, "strict array count"); err != nil {
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(d.b[d.pos:]))
	d.pos += 4
	// Every element takes at least one byte.
	if n > uint64(d.remaining()) {
		return nil, fmt.Errorf("amf0: strict array count %d exceeds remaining %d bytes at offset %d", n, d.remaining(), d.pos-4)
	}
	// Do not trust the count for the allocation: an element may be 1 byte
	// while an interface value is 16.
	arr := make([]any, 0, min(int(n), 16))
	for i := uint64(0); i < n; i++ {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, nil
}

// Append appends the AMF0 encoding of each value to dst. On error it returns
// dst unchanged (at its original length) and an error naming the bad value.
func Append(dst []byte, values ...any) ([]byte, error) {
	orig := len(dst)
	var err error
	for i, v := range values {
		dst, err = appendValue(dst, v, 0)
		if err != nil {
			return dst[:orig], fmt.Errorf("%w (value %d)", err, i)
		}
	}
	return dst, nil
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, markerNumber)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, markerNull), nil
	case float64:
		return appendNumber(dst, x), nil
	case float32:
		return appendNumber(dst, float64(x)), nil
	case int:
		return appendNumber(dst, float64(x)), nil
	case int8:
		return appendNumber(dst, float64(x)), nil
	case int16:
		return appendNumber(dst, float64(x)), nil
	case int32:
		return appendNumber(dst, float64(x)), nil
	case int64:
		return appendNumber(dst, float64(x)), nil
	case uint:
		return appendNumber(dst, float64(x)), nil
	case uint8:
		return appendNumber(dst, float64(x)), nil
	case uint16:
		return appendNumber(dst, float64(x)), nil
	case uint32:
		return appendNumber(dst, float64(x)), nil
	case uint64:
		return appendNumber(dst, float64(x)), nil
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		return append(dst, markerBoolean, b), nil
	case string:
		if len(x) > math.MaxUint16 {
			if uint64(len(x)) > math.MaxUint32 {
				return dst, fmt.Errorf("amf0: string of %d bytes is too long to encode", len(x))
			}
			dst = append(dst, markerLongString)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
			return append(dst, x...), nil
		}
		dst = append(dst, markerString)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(x)))
		return append(dst, x...), nil
	case Undefined:
		return append(dst, markerUndefined), nil
	case Object:
		if depth >= MaxDepth {
			return dst, fmt.Errorf("amf0: object exceeds nesting depth limit %d", MaxDepth)
		}
		dst = append(dst, markerObject)
		return appendProperties(dst, x, depth+1)
	case ECMAArray:
		if depth >= MaxDepth {
			return dst, fmt.Errorf("amf0: ECMA array exceeds nesting depth limit %d", MaxDepth)
		}
		if uint64(len(x)) > math.MaxUint32 {
			return dst, fmt.Errorf("amf0: ECMA array of %d entries is too long to encode", len(x))
		}
		dst = append(dst, markerECMAArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		return appendProperties(dst, x, depth+1)
	case []any:
		if depth >= MaxDepth {
			return dst, fmt.Errorf("amf0: strict array exceeds nesting depth limit %d", MaxDepth)
		}
		if uint64(len(x)) > math.MaxUint32 {
			return dst, fmt.Errorf("amf0: strict array of %d entries is too long to encode", len(x))
		}
		dst = append(dst, markerStrictArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		var err error
		for _, e := range x {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case time.Time:
		dst = append(dst, markerDate)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(float64(x.UnixMilli())))
		return append(dst, 0, 0), nil
	default:
		return dst, fmt.Errorf("amf0: unsupported Go type %T", v)
	}
}

func appendProperties(dst []byte, props []Property, depth int) ([]byte, error) {
	var err error
	for _, p := range props {
		if len(p.Key) > math.MaxUint16 {
			return dst, fmt.Errorf("amf0: property name of %d bytes exceeds 65535", len(p.Key))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.Key)))
		dst = append(dst, p.Key...)
		if dst, err = appendValue(dst, p.Value, depth); err != nil {
			return dst, err
		}
	}
	return append(dst, 0, 0, markerObjectEnd), nil
}
