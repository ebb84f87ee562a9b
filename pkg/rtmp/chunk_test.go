package rtmp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"sluice/pkg/amf0"
)

// Hand-built chunk pieces, independent of the writer under test.

func tBasic(format byte, csid uint32) []byte {
	switch {
	case csid < 64:
		return []byte{format<<6 | byte(csid)}
	case csid < 320:
		return []byte{format << 6, byte(csid - 64)}
	default:
		return []byte{format<<6 | 1, byte((csid - 64) & 0xff), byte((csid - 64) >> 8)}
	}
}

func tU24(v uint32) []byte { return []byte{byte(v >> 16), byte(v >> 8), byte(v)} }

func tU32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// fmt0 builds a type 0 chunk header; ts >= 0xFFFFFF adds an extended timestamp.
func fmt0(csid, ts, length uint32, typeID uint8, msid uint32) []byte {
	field := min(ts, 0xFFFFFF)
	h := cat(tBasic(0, csid), tU24(field), tU24(length), []byte{typeID}, binary.LittleEndian.AppendUint32(nil, msid))
	if field == 0xFFFFFF {
		h = append(h, tU32(ts)...)
	}
	return h
}

func fmt1(csid, delta, length uint32, typeID uint8) []byte {
	field := min(delta, 0xFFFFFF)
	h := cat(tBasic(1, csid), tU24(field), tU24(length), []byte{typeID})
	if field == 0xFFFFFF {
		h = append(h, tU32(delta)...)
	}
	return h
}

func fmt2(csid, delta uint32) []byte {
	field := min(delta, 0xFFFFFF)
	h := cat(tBasic(2, csid), tU24(field))
	if field == 0xFFFFFF {
		h = append(h, tU32(delta)...)
	}
	return h
}

func fmt3(csid uint32, ext ...uint32) []byte {
	h := tBasic(3, csid)
	for _, e := range ext {
		h = append(h, tU32(e)...)
	}
	return h
}

// pattern returns n bytes that differ per seed and position.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*31 + i>>8)
	}
	return b
}

func readAll(t *testing.T, in []byte, lim ReaderLimits) ([]*Message, error) {
	t.Helper()
	r := NewChunkReader(bytes.NewReader(in), lim)
	var msgs []*Message
	for {
		m, err := r.ReadMessage()
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

func TestChunkReader(t *testing.T) {
	p300 := pattern(1, 300)
	p200 := pattern(2, 200)
	p300b := pattern(3, 300)
	type want struct {
		csid, msid, ts uint32
		typeID         uint8
		payload        []byte
	}
	cases := []struct {
		name    string
		in      []byte
		lim     ReaderLimits
		want    []want
		wantErr string
	}{
		{
			name: "single chunk",
			in:   cat(fmt0(3, 1000, 5, TypeCommandAMF0, 0), []byte("hello")),
			want: []want{{3, 0, 1000, TypeCommandAMF0, []byte("hello")}},
		},
		{
			name: "zero length message",
			in:   cat(fmt0(3, 7, 0, TypeDataAMF0, 1), fmt0(3, 8, 1, TypeDataAMF0, 1), []byte("x")),
			want: []want{{3, 1, 7, TypeDataAMF0, []byte{}}, {3, 1, 8, TypeDataAMF0, []byte("x")}},
		},
		{
			name: "multi chunk 128",
			in:   cat(fmt0(6, 40, 300, TypeVideo, 1), p300[:128], fmt3(6), p300[128:256], fmt3(6), p300[256:]),
			want: []want{{6, 1, 40, TypeVideo, p300}},
		},
		{
			name: "interleaved chunk streams",
			in: cat(
				fmt0(4, 100, 200, TypeAudio, 1), p200[:128],
				fmt0(6, 90, 300, TypeVideo, 1), p300[:128],
				fmt3(4), p200[128:],
				fmt3(6), p300[128:256],
				fmt3(6), p300[256:],
			),
			want: []want{{4, 1, 100, TypeAudio, p200}, {6, 1, 90, TypeVideo, p300}},
		},
		{
			name: "extended timestamp repeated on continuation chunks",
			in: cat(
				fmt0(6, 0x01000000, 300, TypeVideo, 1), p300[:128],
				fmt3(6, 0x01000000), p300[128:256],
				fmt3(6, 0x01000000), p300[256:],
				// fmt 3 starting a new message reuses the (extended) value as delta... here 0x01000000 again.
				fmt3(6, 0x01000000), p300b[:128],
				fmt3(6, 0x01000000), p300b[128:256],
				fmt3(6, 0x01000000), p300b[256:],
			),
			want: []want{{6, 1, 0x01000000, TypeVideo, p300}, {6, 1, 0x02000000, TypeVideo, p300b}},
		},
		{
			name: "fmt 3 starting a message takes its delta from the repeated extended field",
			in: cat(
				fmt0(5, 10, 1, TypeAudio, 1), []byte("a"),
				fmt2(5, 0x01000000), []byte("b"),
				fmt3(5, 0x01000000), []byte("c"),
				fmt3(5, 0x01000005), []byte("d"),
			),
			want: []want{
				{5, 1, 10, TypeAudio, []byte("a")},
				{5, 1, 0x0100000a, TypeAudio, []byte("b")},
				{5, 1, 0x0200000a, TypeAudio, []byte("c")},
				{5, 1, 0x0300000f, TypeAudio, []byte("d")},
			},
		},
		{
			name: "extended timestamp exactly 0xFFFFFF",
			in:   cat(fmt0(5, 0xFFFFFF, 3, TypeAudio, 1), []byte("abc")),
			want: []want{{5, 1, 0xFFFFFF, TypeAudio, []byte("abc")}},
		},
		{
			name: "extended delta in fmt 1",
			in: cat(
				fmt0(5, 10, 1, TypeAudio, 1), []byte("a"),
				fmt1(5, 0x01000000, 200, TypeVideo), p200[:128], fmt3(5, 0x01000000), p200[128:],
			),
			want: []want{{5, 1, 10, TypeAudio, []byte("a")}, {5, 1, 0x0100000a, TypeVideo, p200}},
		},
		{
			name: "fmt 1/2/3 delta accumulation",
			in: cat(
				fmt0(4, 1000, 3, TypeAudio, 7), []byte("aaa"),
				fmt2(4, 20), []byte("bbb"),
				fmt3(4), []byte("ccc"),
				fmt1(4, 30, 4, TypeVideo), []byte("dddd"),
				fmt3(4), []byte("eeee"),
				fmt2(4, 0), []byte("ffff"),
			),
			want: []want{
				{4, 7, 1000, TypeAudio, []byte("aaa")},
				{4, 7, 1020, TypeAudio, []byte("bbb")},
				{4, 7, 1040, TypeAudio, []byte("ccc")},
				{4, 7, 1070, TypeVideo, []byte("dddd")},
				{4, 7, 1100, TypeVideo, []byte("eeee")},
				{4, 7, 1100, TypeVideo, []byte("ffff")},
			},
		},
		{
			name: "timestamp wraps around",
			in:   cat(fmt0(4, 0xFFFFFFF0, 1, TypeAudio, 1), []byte("a"), fmt2(4, 0x20), []byte("b")),
			want: []want{{4, 1, 0xFFFFFFF0, TypeAudio, []byte("a")}, {4, 1, 0x10, TypeAudio, []byte("b")}},
		},
		{
			name: "set chunk size mid-stream",
			in: cat(
				fmt0(6, 0, 300, TypeVideo, 1), p300[:128], fmt3(6), p300[128:256], fmt3(6), p300[256:],
				fmt0(2, 0, 4, TypeSetChunkSize, 0), tU32(256),
				fmt0(6, 0, 300, TypeVideo, 1), p300b[:256], fmt3(6), p300b[256:],
			),
			want: []want{
				{6, 1, 0, TypeVideo, p300},
				{2, 0, 0, TypeSetChunkSize, tU32(256)},
				{6, 1, 0, TypeVideo, p300b},
			},
		},
		{
			name: "abort discards a partial message",
			in: cat(
				fmt0(6, 0, 300, TypeVideo, 1), p300[:128],
				fmt0(2, 0, 4, TypeAbort, 0), tU32(6),
				fmt0(6, 5, 3, TypeVideo, 1), []byte("new"),
			),
			want: []want{
				{2, 0, 0, TypeAbort, tU32(6)},
				{6, 1, 5, TypeVideo, []byte("new")},
			},
		},
		{
			name: "abort of an unknown chunk stream is harmless",
			in:   cat(fmt0(2, 0, 4, TypeAbort, 0), tU32(33), fmt0(3, 0, 1, TypeAudio, 0), []byte("z")),
			want: []want{{2, 0, 0, TypeAbort, tU32(33)}, {3, 0, 0, TypeAudio, []byte("z")}},
		},
		{
			name: "2-byte and 3-byte basic headers",
			in: cat(
				fmt0(64, 1, 200, TypeAudio, 1), p200[:128], fmt3(64), p200[128:],
				fmt0(319, 2, 3, TypeAudio, 1), []byte("319"),
				fmt0(320, 3, 300, TypeVideo, 1), p300[:128], fmt3(320), p300[128:256], fmt3(320), p300[256:],
				fmt0(65599, 4, 1, TypeVideo, 1), []byte("m"),
			),
			want: []want{
				{64, 1, 1, TypeAudio, p200},
				{319, 1, 2, TypeAudio, []byte("319")},
				{320, 1, 3, TypeVideo, p300},
				{65599, 1, 4, TypeVideo, []byte("m")},
			},
		},
		{
			name:    "message too large",
			in:      cat(fmt0(6, 0, 2000, TypeVideo, 1), p300),
			lim:     ReaderLimits{MaxMessageSize: 1000},
			wantErr: "rtmp: message length 2000 exceeds limit 1000 on csid 6",
		},
		{
			name:    "message too large in fmt 1",
			in:      cat(fmt0(6, 0, 1, TypeVideo, 1), []byte("x"), fmt1(6, 0, 1001, TypeVideo)),
			lim:     ReaderLimits{MaxMessageSize: 1000},
			want:    []want{{6, 1, 0, TypeVideo, []byte("x")}},
			wantErr: "message length 1001 exceeds limit 1000 on csid 6",
		},
		{
			name:    "chunk size too large",
			in:      cat(fmt0(2, 0, 4, TypeSetChunkSize, 0), tU32(70000)),
			lim:     ReaderLimits{MaxChunkSize: 65536},
			wantErr: "Set Chunk Size 70000 on csid 2 outside the accepted range 1..65536",
		},
		{
			name:    "chunk size above default limit",
			in:      cat(fmt0(2, 0, 4, TypeSetChunkSize, 0), tU32(16<<20+1)),
			wantErr: "Set Chunk Size 16777217",
		},
		{
			name:    "chunk size zero",
			in:      cat(fmt0(2, 0, 4, TypeSetChunkSize, 0), tU32(0)),
			wantErr: "Set Chunk Size 0",
		},
		{
			name:    "set chunk size payload too short",
			in:      cat(fmt0(2, 0, 2, TypeSetChunkSize, 0), []byte{1, 0}),
			wantErr: "Set Chunk Size on csid 2",
		},
		{
			name: "too many chunk streams",
			in: cat(
				fmt0(3, 0, 1, TypeAudio, 1), []byte("a"),
				fmt0(4, 0, 1, TypeAudio, 1), []byte("b"),
				fmt0(5, 0, 1, TypeAudio, 1), []byte("c"),
			),
			lim:     ReaderLimits{MaxChunkStreams: 2},
			want:    []want{{3, 1, 0, TypeAudio, []byte("a")}, {4, 1, 0, TypeAudio, []byte("b")}},
			wantErr: "chunk stream id 5 would exceed the limit of 2 chunk streams",
		},
		{
			name:    "fmt 1 without previous header",
			in:      cat(fmt1(5, 0, 1, TypeAudio), []byte("a")),
			wantErr: "fmt 1 chunk on csid 5 with no previous header",
		},
		{
			name:    "fmt 2 without previous header",
			in:      cat(fmt2(5, 0), []byte("a")),
			wantErr: "fmt 2 chunk on csid 5 with no previous header",
		},
		{
			name:    "fmt 3 without previous header",
			in:      cat(fmt3(70), []byte("a")),
			wantErr: "fmt 3 chunk on csid 70 with no previous header",
		},
		{
			name:    "new header while a message is incomplete",
			in:      cat(fmt0(6, 0, 300, TypeVideo, 1), p300[:128], fmt0(6, 0, 3, TypeVideo, 1), []byte("abc")),
			wantErr: "fmt 0 chunk on csid 6 while a message is incomplete (128 of 300 bytes received)",
		},
		{
			name:    "truncated payload",
			in:      cat(fmt0(6, 0, 300, TypeVideo, 1), p300[:100]),
			wantErr: "unexpected EOF",
		},
		{
			name:    "truncated header",
			in:      fmt0(6, 0, 300, TypeVideo, 1)[:5],
			wantErr: "reading message header on csid 6: unexpected EOF",
		},
		{
			name:    "truncated extended timestamp",
			in:      cat(fmt0(6, 0x1000000, 300, TypeVideo, 1)[:13]),
			wantErr: "reading extended timestamp on csid 6",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := readAll(t, tc.in, tc.lim)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "rtmp: ") {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(msgs) != len(tc.want) {
				t.Fatalf("got %d messages, want %d", len(msgs), len(tc.want))
			}
			for i, w := range tc.want {
				m := msgs[i]
				got := want{m.CSID, m.StreamID, m.Timestamp, m.TypeID, m.Payload}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("message %d:\n got csid=%d msid=%d ts=%#x type=%d len=%d\nwant csid=%d msid=%d ts=%#x type=%d len=%d",
						i, got.csid, got.msid, got.ts, got.typeID, len(got.payload), w.csid, w.msid, w.ts, w.typeID, len(w.payload))
				}
			}
		})
	}
}

func TestChunkReaderChunkSize(t *testing.T) {
	in := cat(fmt0(2, 0, 4, TypeSetChunkSize, 0), tU32(0x80001000)) // reserved top bit ignored
	r := NewChunkReader(bytes.NewReader(in), ReaderLimits{})
	if r.ChunkSize() != 128 {
		t.Fatalf("initial chunk size %d", r.ChunkSize())
	}
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	if r.ChunkSize() != 4096 {
		t.Fatalf("chunk size %d after Set Chunk Size 4096", r.ChunkSize())
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("at end: err = %v, want io.EOF", err)
	}
}

// TestChunkReaderPayloadOwnership checks that returned payloads are not reused.
func TestChunkReaderPayloadOwnership(t *testing.T) {
	in := cat(fmt0(3, 0, 3, TypeAudio, 1), []byte("abc"), fmt3(3), []byte("def"))
	r := NewChunkReader(bytes.NewReader(in), ReaderLimits{})
	m1, err := r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if string(m1.Payload) != "abc" || string(m2.Payload) != "def" {
		t.Fatalf("payloads %q %q", m1.Payload, m2.Payload)
	}
}

// TestChunkReaderHostileAllocation declares the largest messages on many chunk
// streams while sending only a few bytes of each, and checks the reader does
// not reserve memory for the declared sizes.
func TestChunkReaderHostileAllocation(t *testing.T) {
	// Chunk size 1, then 63 chunk streams each declaring a 16 MiB message and
	// sending one byte of it.
	in := AppendSetChunkSize(nil, 1)
	for csid := uint32(3); csid < 66; csid++ {
		in = append(in, fmt0(csid, 0, 0xFFFFFF, TypeVideo, 1)...)
		in = append(in, 1)
	}
	var err error
	allocated := testingBytes(func() {
		r := NewChunkReader(bytes.NewReader(in), ReaderLimits{})
		if _, err = r.ReadMessage(); err != nil { // Set Chunk Size
			return
		}
		_, err = r.ReadMessage()
	})
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if allocated > 2<<20 {
		t.Fatalf("reader allocated %d bytes for %d bytes of input", allocated, len(in))
	}

	// The largest chunk size and message, but only 1000 bytes of it sent.
	in = AppendSetChunkSize(nil, 16<<20)
	in = append(in, fmt0(3, 0, 0xFFFFFF, TypeVideo, 1)...)
	in = append(in, pattern(1, 1000)...)
	allocated = testingBytes(func() {
		r := NewChunkReader(bytes.NewReader(in), ReaderLimits{})
		if _, err = r.ReadMessage(); err != nil {
			return
		}
		_, err = r.ReadMessage()
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if allocated > 256<<10 {
		t.Fatalf("reader allocated %d bytes for %d bytes of input with a 16 MiB chunk", allocated, len(in))
	}
}

// testingBytes returns how many bytes of heap f allocates.
func testingBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestChunkRoundTrip writes messages with AppendChunks and reads them back.
func TestChunkRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 129, 4096, 100000}
	timestamps := []uint32{0, 0xFFFFFE, 0xFFFFFF, 0x12345678}
	for _, chunkSize := range []int{128, 4096, 60000} {
		for _, csid := range []uint32{3, 63, 64, 319, 320, 65599} {
			var stream []byte
			if chunkSize != 128 {
				stream = AppendSetChunkSize(stream, uint32(chunkSize))
			}
			type sent struct {
				ts      uint32
				payload []byte
			}
			var all []sent
			for _, size := range sizes {
				for _, ts := range timestamps {
					p := pattern(size+int(ts), size)
					before := len(stream)
					stream = AppendChunks(stream, csid, TypeVideo, 1, ts, p, chunkSize)
					if got, want := len(stream)-before, ChunkedSize(csid, ts, size, chunkSize); got != want {
						t.Fatalf("csid %d ts %#x size %d chunk %d: appended %d bytes, ChunkedSize says %d", csid, ts, size, chunkSize, got, want)
					}
					if got := len(AppendChunks(nil, csid, TypeVideo, 1, ts, p, chunkSize)); got != ChunkedSize(csid, ts, size, chunkSize) {
						t.Fatalf("ChunkedSize mismatch from nil dst")
					}
					all = append(all, sent{ts, p})
				}
			}
			r := NewChunkReader(bytes.NewReader(stream), ReaderLimits{})
			if chunkSize != 128 {
				m, err := r.ReadMessage()
				if err != nil || m.TypeID != TypeSetChunkSize {
					t.Fatalf("Set Chunk Size: %v %v", m, err)
				}
			}
			for i, s := range all {
				m, err := r.ReadMessage()
				if err != nil {
					t.Fatalf("csid %d chunk %d message %d: %v", csid, chunkSize, i, err)
				}
				if m.CSID != csid || m.TypeID != TypeVideo || m.StreamID != 1 || m.Timestamp != s.ts || !bytes.Equal(m.Payload, s.payload) {
					t.Fatalf("csid %d chunk %d message %d: got csid=%d type=%d msid=%d ts=%#x len=%d; want ts=%#x len=%d",
						csid, chunkSize, i, m.CSID, m.TypeID, m.StreamID, m.Timestamp, len(m.Payload), s.ts, len(s.payload))
				}
			}
			if _, err := r.ReadMessage(); err != io.EOF {
				t.Fatalf("trailing: %v", err)
			}
		}
	}
}

func TestAppendChunksBytes(t *testing.T) {
	// 5-byte payload, chunk size 2, extended timestamp, csid 3, type 9, msid 1.
	got := AppendChunks([]byte{0xAA}, 3, 9, 1, 0x12345678, []byte("abcde"), 2)
	want := "aa" +
		"03" + "ffffff" + "000005" + "09" + "01000000" + "12345678" + hex.EncodeToString([]byte("ab")) +
		"c3" + "12345678" + hex.EncodeToString([]byte("cd")) +
		"c3" + "12345678" + hex.EncodeToString([]byte("e"))
	if h := hex.EncodeToString(got); h != want {
		t.Fatalf("\n got %s\nwant %s", h, want)
	}
	// 2-byte basic header, no extension.
	got = AppendChunks(nil, 100, 8, 0, 5, []byte("xyz"), 2)
	want = "0024" + "000005" + "000003" + "08" + "00000000" + hex.EncodeToString([]byte("xy")) + "c024" + hex.EncodeToString([]byte("z"))
	if h := hex.EncodeToString(got); h != want {
		t.Fatalf("\n got %s\nwant %s", h, want)
	}
	// 3-byte basic header: csid 400 → 336 = 0x0150 little endian.
	got = AppendChunks(nil, 400, 8, 0, 0, nil, 128)
	want = "015001" + "000000" + "000000" + "08" + "00000000"
	if h := hex.EncodeToString(got); h != want {
		t.Fatalf("\n got %s\nwant %s", h, want)
	}
}

func TestAppendChunksPanicsOnBadCSID(t *testing.T) {
	for _, csid := range []uint32{0, 1, 65600} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("csid %d did not panic", csid)
				}
			}()
			AppendChunks(nil, csid, 8, 0, 0, nil, 128)
		}()
	}
}

func TestControlMessages(t *testing.T) {
	got := hex.EncodeToString(AppendSetChunkSize(nil, 4096))
	if want := "02" + "000000" + "000004" + "01" + "00000000" + "00001000"; got != want {
		t.Fatalf("Set Chunk Size\n got %s\nwant %s", got, want)
	}
	got = hex.EncodeToString(AppendUserControl(nil, EventSetBufferLength, 1, 3000))
	if want := "02" + "000000" + "00000a" + "04" + "00000000" + "0003" + "00000001" + "00000bb8"; got != want {
		t.Fatalf("User Control\n got %s\nwant %s", got, want)
	}
	got = hex.EncodeToString(AppendSetPeerBandwidth(nil, 2500000, 2))
	if want := "02" + "000000" + "000005" + "06" + "00000000" + "002625a0" + "02"; got != want {
		t.Fatalf("Set Peer Bandwidth\n got %s\nwant %s", got, want)
	}

	var stream []byte
	stream = AppendWindowAckSize(stream, 2500000)
	stream = AppendSetPeerBandwidth(stream, 2500000, 2)
	stream = AppendAck(stream, 123456)
	stream = AppendAbort(stream, 9)
	stream = AppendUserControl(stream, EventStreamBegin, 1)
	stream = AppendUserControl(stream, EventPingResponse, 0xDEADBEEF)
	stream = AppendSetChunkSize(stream, 60000)
	msgs, err := readAll(t, stream, ReaderLimits{})
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []uint8{TypeWindowAckSize, TypeSetPeerBandwidth, TypeAck, TypeAbort, TypeUserControl, TypeUserControl, TypeSetChunkSize}
	if len(msgs) != len(wantTypes) {
		t.Fatalf("%d messages", len(msgs))
	}
	wantVals := []uint32{2500000, 2500000, 123456, 9, 0, 0, 60000}
	for i, m := range msgs {
		if m.TypeID != wantTypes[i] || m.CSID != 2 || m.StreamID != 0 || m.Timestamp != 0 {
			t.Fatalf("message %d: %+v", i, m)
		}
		if m.TypeID != TypeUserControl {
			v, err := ParseUint32(m.Payload)
			if err != nil || v != wantVals[i] {
				t.Fatalf("message %d: value %d, %v", i, v, err)
			}
		}
	}
	if msgs[1].Payload[4] != 2 {
		t.Fatal("peer bandwidth limit type")
	}
	ev, a1, _, err := ParseUserControl(msgs[4].Payload)
	if err != nil || ev != EventStreamBegin || a1 != 1 {
		t.Fatalf("StreamBegin: %d %d %v", ev, a1, err)
	}
	ev, a1, _, err = ParseUserControl(msgs[5].Payload)
	if err != nil || ev != EventPingResponse || a1 != 0xDEADBEEF {
		t.Fatalf("PingResponse: %d %#x %v", ev, a1, err)
	}
}

func TestParseUserControl(t *testing.T) {
	cases := []struct {
		hex        string
		ev         uint16
		a1, a2     uint32
		errContain string
	}{
		{"000000000001", EventStreamBegin, 1, 0, ""},
		{"00030000000100000bb8", EventSetBufferLength, 1, 3000, ""},
		{"000600000064", EventPingRequest, 100, 0, ""},
		{"001f00000001", 31, 1, 0, ""}, // unknown event with one argument
		{"001a", 26, 0, 0, ""},         // unknown event without arguments
		{"00", 0, 0, 0, "shorter than the 2-byte event type"},
		{"0000000001", 0, 0, 0, "event 0 has 3 argument bytes"},
		{"000300000001", 3, 0, 0, "event 3 has 4 argument bytes, want at least 8"},
	}
	for _, tc := range cases {
		b, _ := hex.DecodeString(tc.hex)
		ev, a1, a2, err := ParseUserControl(b)
		if tc.errContain != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errContain) {
				t.Errorf("%s: err = %v, want %q", tc.hex, err, tc.errContain)
			}
			continue
		}
		if err != nil || ev != tc.ev || a1 != tc.a1 || a2 != tc.a2 {
			t.Errorf("%s: got %d %d %d %v", tc.hex, ev, a1, a2, err)
		}
	}
	if _, err := ParseUint32([]byte{1, 2, 3}); err == nil {
		t.Error("ParseUint32 of 3 bytes succeeded")
	}
}

// aggregateSub builds one FLV-style sub-message of an aggregate payload.
func aggregateSub(typeID uint8, ts uint32, body []byte) []byte {
	b := cat([]byte{typeID}, tU24(uint32(len(body))), tU24(ts&0xFFFFFF), []byte{byte(ts >> 24)}, tU24(1), body)
	return append(b, tU32(uint32(11+len(body)))...)
}

func TestSplitAggregate(t *testing.T) {
	payload := cat(aggregateSub(TypeVideo, 0x01005000, []byte("video!")), aggregateSub(TypeAudio, 0x01005028, []byte("au")))
	msg := &Message{TypeID: TypeAggregate, Timestamp: 1000, Payload: payload}
	type sub struct {
		typeID uint8
		ts     uint32
		body   string
	}
	var got []sub
	err := SplitAggregate(msg, func(typeID uint8, ts uint32, body []byte) error {
		got = append(got, sub{typeID, ts, string(body)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []sub{{TypeVideo, 1000, "video!"}, {TypeAudio, 1040, "au"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	// Every truncation that is not on a sub-message boundary is an error.
	first := len(aggregateSub(TypeVideo, 0, []byte("video!")))
	for i := 0; i < len(payload); i++ {
		err := SplitAggregate(&Message{Payload: payload[:i]}, func(uint8, uint32, []byte) error { return nil })
		if boundary := i == 0 || i == first; boundary != (err == nil) {
			t.Fatalf("prefix %d: err = %v", i, err)
		}
	}
	// An error from fn stops the walk.
	stop := errors.New("stop")
	n := 0
	err = SplitAggregate(msg, func(uint8, uint32, []byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("err = %v after %d calls", err, n)
	}
}

func BenchmarkAppendChunks(b *testing.B) {
	payload := pattern(1, 10*1024)
	dst := make([]byte, 0, ChunkedSize(6, 0x12345678, len(payload), 4096))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		dst = AppendChunks(dst[:0], 6, TypeVideo, 1, 0x12345678, payload, 4096)
	}
	if len(dst) != ChunkedSize(6, 0x12345678, len(payload), 4096) {
		b.Fatal("size")
	}
}

func BenchmarkAppendControl(b *testing.B) {
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendUserControl(dst[:0], EventSetBufferLength, 1, 3000)
		dst = AppendSetChunkSize(dst, 4096)
	}
}

func BenchmarkChunkReader(b *testing.B) {
	payload := pattern(1, 10*1024)
	var stream []byte
	stream = AppendSetChunkSize(stream, 4096)
	for i := 0; i < 100; i++ {
		stream = AppendChunks(stream, 6, TypeVideo, 1, uint32(i*40), payload, 4096)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	rd := bytes.NewReader(stream)
	for b.Loop() {
		rd.Reset(stream)
		r := NewChunkReader(rd, ReaderLimits{})
		for {
			if _, err := r.ReadMessage(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

// connectStream returns a realistic start of a publisher's chunk stream.
func connectStream(tb testing.TB) []byte {
	cmd, err := amf0.Append(nil, "connect", 1.0, amf0.Object{
		{Key: "app", Value: "live"},
		{Key: "type", Value: "nonprivate"},
		{Key: "flashVer", Value: "FMLE/3.0 (compatible; FMSc/1.0)"},
		{Key: "swfUrl", Value: "rtmp://localhost/live"},
		{Key: "tcUrl", Value: "rtmp://localhost/live"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	var s []byte
	s = AppendChunks(s, 3, TypeCommandAMF0, 0, 0, cmd, 128)
	s = AppendSetChunkSize(s, 4096)
	s = AppendWindowAckSize(s, 2500000)
	pub, _ := amf0.Append(nil, "publish", 5.0, nil, "stream", "live")
	s = AppendChunks(s, 8, TypeCommandAMF0, 1, 0, pub, 4096)
	return s
}

// FuzzChunkReader feeds arbitrary bytes to a ChunkReader with small limits.
// Every message it returns must respect the limits and must survive being
// written again with AppendChunks and read back.
func FuzzChunkReader(f *testing.F) {
	f.Add(connectStream(f))
	f.Add(cat(fmt0(6, 0x01000000, 300, TypeVideo, 1), pattern(1, 128), fmt3(6, 0x01000000), pattern(2, 128), fmt3(6, 0x01000000), pattern(3, 44)))
	f.Add(cat(fmt0(4, 1000, 3, TypeAudio, 7), []byte("aaa"), fmt2(4, 20), []byte("bbb"), fmt3(4), []byte("ccc"), fmt1(4, 30, 4, TypeVideo), []byte("dddd")))
	f.Add(cat(fmt0(6, 0, 300, TypeVideo, 1), pattern(4, 128), fmt0(2, 0, 4, TypeAbort, 0), tU32(6), fmt0(320, 5, 3, TypeVideo, 1), []byte("new")))
	agg := cat(aggregateSub(TypeVideo, 100, []byte("v")), aggregateSub(TypeAudio, 120, []byte("a")))
	f.Add(AppendChunks(AppendUserControl(nil, EventStreamBegin, 1), 70, TypeAggregate, 1, 100, agg, 128))
	lim := ReaderLimits{MaxChunkSize: 4096, MaxMessageSize: 8192, MaxChunkStreams: 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewChunkReader(bytes.NewReader(data), lim)
		var again []byte
		var msgs []*Message
		for i := 0; i < 1000; i++ {
			m, err := r.ReadMessage()
			if err != nil {
				break
			}
			if len(m.Payload) > int(lim.MaxMessageSize) {
				t.Fatalf("payload of %d bytes exceeds the limit", len(m.Payload))
			}
			if r.ChunkSize() == 0 || r.ChunkSize() > lim.MaxChunkSize {
				t.Fatalf("chunk size %d", r.ChunkSize())
			}
			switch m.TypeID {
			case TypeAggregate:
				_ = SplitAggregate(m, func(uint8, uint32, []byte) error { return nil })
			case TypeUserControl:
				_, _, _, _ = ParseUserControl(m.Payload)
			case TypeSetChunkSize, TypeAbort:
				continue // would change how the copy is parsed
			}
			again = AppendChunks(again, m.CSID, m.TypeID, m.StreamID, m.Timestamp, m.Payload, 128)
			msgs = append(msgs, m)
		}
		r2 := NewChunkReader(bytes.NewReader(again), ReaderLimits{MaxChunkStreams: 70000})
		for i, want := range msgs {
			m, err := r2.ReadMessage()
			if err != nil {
				t.Fatalf("re-reading message %d: %v", i, err)
			}
			if fmt.Sprint(*m) != fmt.Sprint(*want) {
				t.Fatalf("message %d changed:\n got %+v\nwant %+v", i, *m, *want)
			}
		}
	})
}
