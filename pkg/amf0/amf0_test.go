package amf0

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustAppend(t testing.TB, values ...any) []byte {
	t.Helper()
	b, err := Append(nil, values...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	date := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	long := strings.Repeat("x", 70000)
	cases := []struct {
		name string
		v    any
	}{
		{"number", 3.25},
		{"negative number", -1e300},
		{"zero", 0.0},
		{"infinity", math.Inf(1)},
		{"true", true},
		{"false", false},
		{"empty string", ""},
		{"string", "hello, wörld"},
		{"long string", long},
		{"null", nil},
		{"undefined", Undefined{}},
		{"empty object", Object{}},
		{"object order", Object{{"z", 1.0}, {"a", "b"}, {"m", true}, {"", "empty key"}}},
		{"empty ecma", ECMAArray{}},
		{"ecma", ECMAArray{{"duration", 0.0}, {"width", 1920.0}, {"encoder", "x"}}},
		{"empty strict", []any{}},
		{"strict", []any{1.0, "two", nil, Undefined{}, false}},
		{"date", date},
		{"date before epoch", time.Date(1950, 1, 1, 0, 0, 0, 500_000_000, time.UTC)},
		{"nested", Object{
			{"a", Object{{"b", ECMAArray{{"c", []any{Object{{"d", 1.0}}, []any{}, date}}}}}},
			{"after", "x"},
			{"arr", []any{Object{}, ECMAArray{{"k", nil}}}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := mustAppend(t, tc.v)
			got, n, err := DecodeOne(b)
			if err != nil {
				t.Fatalf("DecodeOne: %v", err)
			}
			if n != len(b) {
				t.Fatalf("DecodeOne used %d of %d bytes", n, len(b))
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", got, tc.v)
			}
			// Re-encoding gives the same bytes.
			if b2 := mustAppend(t, got); !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs")
			}
		})
	}
}

func TestDecodeMultiple(t *testing.T) {
	in := []any{"a", 1.0, nil, Object{{"k", "v"}}, true}
	b := mustAppend(t, in...)
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %#v want %#v", got, in)
	}
	got, err = Decode(nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Decode(nil) = %v, %v", got, err)
	}
}

func TestEncodeGoTypes(t *testing.T) {
	for _, v := range []any{int(7), int32(7), int64(7), uint32(7), float32(7), uint8(7), int16(7), uint(7), uint64(7)} {
		b := mustAppend(t, v)
		got, _, err := DecodeOne(b)
		if err != nil || got != 7.0 {
			t.Errorf("%T: got %v, %v", v, got, err)
		}
	}
	for _, v := range []any{map[string]any{}, struct{}{}, []string{"a"}, &Object{}, complex(1, 2), Object{{"bad", make(chan int)}}} {
		dst := []byte{1, 2, 3}
		out, err := Append(dst, "ok", v)
		if err == nil {
			t.Errorf("%T: expected error", v)
		}
		if len(out) != 3 {
			t.Errorf("%T: dst not restored on error (len %d)", v, len(out))
		}
	}
}

// TestConnectBytes checks the encoding of a connect command byte by byte.
func TestConnectBytes(t *testing.T) {
	b := mustAppend(t, "connect", 1.0, Object{{"app", "live"}, {"tcUrl", "rtmp://h/live"}})
	want := "" +
		"02" + "0007" + hex.EncodeToString([]byte("connect")) +
		"00" + "3ff0000000000000" +
		"03" +
		"0003" + hex.EncodeToString([]byte("app")) + "02" + "0004" + hex.EncodeToString([]byte("live")) +
		"0005" + hex.EncodeToString([]byte("tcUrl")) + "02" + "000d" + hex.EncodeToString([]byte("rtmp://h/live")) +
		"000009"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("connect encoding\n got %s\nwant %s", got, want)
	}
	vals, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	obj := vals[2].(Object)
	if app, ok := obj.GetString("app"); !ok || app != "live" {
		t.Fatalf("app = %q, %v", app, ok)
	}
	if _, ok := obj.GetNumber("app"); ok {
		t.Fatal("GetNumber on a string property succeeded")
	}
	if _, ok := obj.Get("missing"); ok {
		t.Fatal("Get on a missing property succeeded")
	}
	if vals[0] != "connect" || vals[1] != 1.0 {
		t.Fatalf("vals = %#v", vals)
	}
}

func TestECMAArrayAccessors(t *testing.T) {
	a := ECMAArray{{"width", 1280.0}, {"encoder", "obs"}}
	if w, ok := a.GetNumber("width"); !ok || w != 1280 {
		t.Fatal("GetNumber")
	}
	if e, ok := a.GetString("encoder"); !ok || e != "obs" {
		t.Fatal("GetString")
	}
	if _, ok := a.GetString("width"); ok {
		t.Fatal("GetString on number")
	}
	if v, ok := a.Get("encoder"); !ok || v != "obs" {
		t.Fatal("Get")
	}
}

func TestECMAArrayCountIsHint(t *testing.T) {
	// Count says 0 but two properties follow; count says 99 but one follows.
	for _, count := range []string{"00000000", "00000063"} {
		b, _ := hex.DecodeString("08" + count + "0001" + "61" + "00" + "4000000000000000" + "0001" + "62" + "0101" + "000009")
		v, n, err := DecodeOne(b)
		if err != nil {
			t.Fatalf("count %s: %v", count, err)
		}
		want := ECMAArray{{"a", 2.0}, {"b", true}}
		if n != len(b) || !reflect.DeepEqual(v, want) {
			t.Fatalf("count %s: got %#v (%d bytes)", count, v, n)
		}
	}
}

func TestTruncatedPrefixes(t *testing.T) {
	values := []any{
		3.0, true, "str", strings.Repeat("L", 66000), Undefined{},
		Object{{"a", 1.0}, {"b", Object{{"c", "d"}}}},
		ECMAArray{{"x", []any{1.0, "y"}}},
		[]any{nil, Object{}, ECMAArray{}},
		time.UnixMilli(1700000000000).UTC(),
	}
	for _, v := range values {
		b := mustAppend(t, v)
		for i := 0; i < len(b); i++ {
			if i > 1000 && i < len(b)-1000 {
				continue // the middle of the long string adds nothing
			}
			if _, _, err := DecodeOne(b[:i]); err == nil {
				t.Fatalf("%T: prefix of %d/%d bytes decoded without error", v, i, len(b))
			}
		}
	}
	// A command: every prefix either fails or ends on a value boundary.
	cmd := mustAppend(t, "connect", 1.0, Object{{"app", "live"}, {"tcUrl", "rtmp://h/live"}, {"n", nil}}, nil)
	boundaries := map[int]int{0: 0, 10: 1, 19: 2, len(cmd) - 1: 3, len(cmd): 4}
	for i := 0; i <= len(cmd); i++ {
		vals, err := Decode(cmd[:i])
		if want, ok := boundaries[i]; ok {
			if err != nil || len(vals) != want {
				t.Fatalf("prefix %d: %d values, %v; want %d values", i, len(vals), err, want)
			}
		} else if err == nil {
			t.Fatalf("prefix %d/%d decoded without error: %#v", i, len(cmd), vals)
		}
	}
}

func nestObjects(n int) any {
	var v any = "leaf"
	for i := 0; i < n; i++ {
		switch i % 3 {
		case 0:
			v = Object{{"k", v}}
		case 1:
			v = []any{v}
		default:
			v = ECMAArray{{"e", v}}
		}
	}
	return v
}

func TestDepthLimit(t *testing.T) {
	ok := nestObjects(MaxDepth)
	b := mustAppend(t, ok)
	got, _, err := DecodeOne(b)
	if err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	if !reflect.DeepEqual(got, ok) {
		t.Fatal("deep round trip mismatch")
	}
	if _, err := Append(nil, nestObjects(MaxDepth+1)); err == nil || !strings.Contains(err.Error(), "depth") {
		t.Fatalf("encode depth %d: err = %v", MaxDepth+1, err)
	}
	// Hand-build input nested one level too deep with each container type.
	opens := map[string][]byte{
		"object":       {markerObject, 0, 1, 'k'},
		"ECMA array":   {markerECMAArray, 0, 0, 0, 1, 0, 1, 'k'},
		"strict array": {markerStrictArray, 0, 0, 0, 1},
	}
	for name, open := range opens {
		for _, depth := range []int{MaxDepth, MaxDepth + 1} {
			var in []byte
			for i := 0; i < depth; i++ {
				in = append(in, open...)
			}
			in = append(in, markerNull)
			if open[0] != markerStrictArray {
				for i := 0; i < depth; i++ {
					in = append(in, 0, 0, markerObjectEnd)
				}
			}
			_, n, err := DecodeOne(in)
			if depth == MaxDepth && (err != nil || n != len(in)) {
				t.Fatalf("%s nested %d deep: %v", name, depth, err)
			}
			if depth > MaxDepth && (err == nil || !strings.Contains(err.Error(), "depth")) {
				t.Fatalf("%s nested %d deep: err = %v", name, depth, err)
			}
		}
	}
	// A cyclic slice must not recurse forever.
	cyc := []any{nil}
	cyc[0] = cyc
	if _, err := Append(nil, cyc); err == nil {
		t.Fatal("cyclic value encoded without error")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, hex, want string
	}{
		{"movieclip", "04", "MovieClip"},
		{"reference", "070001", "Reference"},
		{"recordset", "0e", "Recordset"},
		{"xml", "0f00000000", "XML"},
		{"typed object", "100001610000 09", "typed object"},
		{"avmplus", "1101", "AVM+"},
		{"unknown", "42", "unknown type marker 0x42"},
		{"object end at top", "09", "object-end"},
		{"string too long", "020010414243", "string length 16 exceeds remaining 3 bytes at offset 1"},
		{"long string too long", "0cffffffff41", "long string length 4294967295 exceeds remaining 1 bytes at offset 1"},
		{"strict count", "0a7fffffff05", "strict array count 2147483647 exceeds remaining 1 bytes at offset 1"},
		{"key too long", "0300ff41", "property name length 255"},
		{"date nan", "0b7ff80000000000000000", "date value NaN"},
		{"date huge", "0b7fe00000000000000000", "out of range"},
		{"object end in array", "0a0000000109", "object-end"},
		{"missing end", "03000161050000", "type marker needs 1 bytes but 0 remain"},
	}
	for _, tc := range cases {
		b, err := hex.DecodeString(strings.ReplaceAll(tc.hex, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = DecodeOne(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "amf0: ") {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestUnsupportedMarkerIsUndefined(t *testing.T) {
	v, n, err := DecodeOne([]byte{markerUnsupported})
	if err != nil || n != 1 || v != (Undefined{}) {
		t.Fatalf("got %#v, %d, %v", v, n, err)
	}
}

func TestDateTimezoneIgnored(t *testing.T) {
	b := mustAppend(t, time.UnixMilli(1234567).UTC())
	b[len(b)-2], b[len(b)-1] = 0xff, 0x88 // -120 minutes
	v, _, err := DecodeOne(b)
	if err != nil {
		t.Fatal(err)
	}
	if !v.(time.Time).Equal(time.UnixMilli(1234567)) {
		t.Fatalf("got %v", v)
	}
}

func BenchmarkDecodeConnect(b *testing.B) {
	in, _ := Append(nil, "connect", 1.0, Object{{"app", "live"}, {"type", "nonprivate"}, {"flashVer", "FMLE/3.0"}, {"tcUrl", "rtmp://localhost/live"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode checks that decoding never panics and that decoding is stable:
// re-encoding a decoded value and decoding again gives the same encoding.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	for _, vals := range [][]any{
		{"connect", 1.0, Object{{"app", "live"}, {"tcUrl", "rtmp://h/live"}}},
		{"onMetaData", ECMAArray{{"width", 1920.0}, {"height", 1080.0}}},
		{[]any{1.0, nil, Undefined{}, time.UnixMilli(5).UTC()}},
	} {
		b, err := Append(nil, vals...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := Decode(data)
		if err != nil {
			return
		}
		enc1, err := Append(nil, vals...)
		if err != nil {
			t.Fatalf("re-encoding decoded values: %v", err)
		}
		vals2, err := Decode(enc1)
		if err != nil {
			t.Fatalf("decoding re-encoded values: %v", err)
		}
		if len(vals2) != len(vals) {
			t.Fatalf("value count changed: %d -> %d", len(vals), len(vals2))
		}
		enc2, err := Append(nil, vals2...)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc1, enc2)
		}
	})
}
