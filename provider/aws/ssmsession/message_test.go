package ssmsession

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// TestMarshalLayout pins the byte layout against the plugin's
// ClientMessage offsets, built by hand rather than from our constants.
func TestMarshalLayout(t *testing.T) {
	id := UUID{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}
	payload := []byte(`{"cols":80,"rows":24}`)
	m := Message{Type: "input_stream_data", SchemaVersion: 1, CreatedDate: 1700000000123,
		SequenceNumber: 7, Flags: 2, MessageID: id, PayloadType: PayloadSize, Payload: payload}
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	digest := sha256.Sum256(payload)
	var want []byte
	want = append(want, 0, 0, 0, 116)                                           // HeaderLength: offset of PayloadLength
	want = append(want, []byte("input_stream_data"+strings.Repeat(" ", 15))...) // 32 bytes, space-padded
	want = append(want, u32(1)...)                                              // SchemaVersion
	want = append(want, u64(1700000000123)...)                                  // CreatedDate
	want = append(want, u64(7)...)                                              // SequenceNumber
	want = append(want, u64(2)...)                                              // Flags
	want = append(want, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f)         // MessageId, low half first
	want = append(want, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07)         // then the high half
	want = append(want, digest[:]...)                                           // PayloadDigest
	want = append(want, u32(3)...)                                              // PayloadType Size
	want = append(want, u32(uint32(len(payload)))...)                           // PayloadLength
	want = append(want, payload...)
	if !bytes.Equal(got, want) {
		t.Fatalf("layout differs:\n got %x\nwant %x", got, want)
	}
	if id.String() != "00010203-0405-0607-0809-0a0b0c0d0e0f" {
		t.Errorf("UUID string = %s", id)
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []Message{
		{Type: TypeOutputStreamData, SchemaVersion: 1, CreatedDate: 1, SequenceNumber: 0, Flags: FlagSYN, PayloadType: PayloadOutput, Payload: []byte("hello\r\n")},
		{Type: TypeAcknowledge, SchemaVersion: 1, CreatedDate: 2, Flags: FlagSYN | FlagFIN, Payload: []byte(`{"AcknowledgedMessageSequenceNumber":3}`)},
		{Type: TypeChannelClosed, SchemaVersion: 1, CreatedDate: 3, SequenceNumber: 1<<62 + 5, Payload: []byte(`{"Output":""}`)},
		{Type: TypeStartPublication, SchemaVersion: 1, CreatedDate: 4},                                                          // empty payload
		{Type: "abcdefghijklmnopqrstuvwxyz012345", SchemaVersion: 9, CreatedDate: 5, Payload: bytes.Repeat([]byte{0xff}, 5000)}, // 32-byte type
	}
	for _, c := range cases {
		t.Run(c.Type, func(t *testing.T) {
			c.MessageID = NewUUID()
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != c.Type || got.SchemaVersion != c.SchemaVersion || got.CreatedDate != c.CreatedDate ||
				got.SequenceNumber != c.SequenceNumber || got.Flags != c.Flags || got.MessageID != c.MessageID ||
				got.PayloadType != c.PayloadType || !bytes.Equal(got.Payload, c.Payload) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	good, err := (&Message{Type: TypeOutputStreamData, SchemaVersion: 1, CreatedDate: 1, MessageID: NewUUID(),
		PayloadType: PayloadOutput, Payload: []byte("abc")}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShortMessage},
		{"shorter than the header", good[:119], ErrShortMessage},
		{"header length zero", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 0); return b }), ErrHeaderLength},
		{"header length below the fixed fields", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 115); return b }), ErrHeaderLength},
		{"header length past the end", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 1<<31); return b }), ErrHeaderLength},
		{"payload length larger", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[116:], 4); return b }), ErrPayloadLength},
		{"payload length smaller", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[116:], 2); return b }), ErrPayloadLength},
		{"truncated payload", good[:len(good)-1], ErrPayloadLength},
		{"payload corrupted", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrDigest},
		{"digest corrupted", mutate(func(b []byte) []byte { b[80] ^= 1; return b }), ErrDigest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
		})
	}
	blank := mutate(func(b []byte) []byte { copy(b[4:36], strings.Repeat(" ", 32)); return b })
	if _, err := Parse(blank); err == nil {
		t.Error("a blank message type was accepted")
	}
	// A header longer than ours (a future field) is skipped over.
	longer := append(append(bytes.Clone(good[:116]), 0xde, 0xad, 0xbe, 0xef), good[116:]...)
	binary.BigEndian.PutUint32(longer, 120)
	if m, err := Parse(longer); err != nil || string(m.Payload) != "abc" {
		t.Errorf("header length 120: %v, %+v", err, m)
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, m := range []Message{
		{Type: ""},
		{Type: strings.Repeat("x", 33)},
		{Type: TypeInputStreamData, Payload: make([]byte, MaxPayload+1)},
	} {
		if _, err := m.Marshal(); err == nil {
			t.Errorf("Marshal(type %q, %d bytes) succeeded", m.Type, len(m.Payload))
		}
	}
}

func TestNewUUID(t *testing.T) {
	a, b := NewUUID(), NewUUID()
	if a == b {
		t.Fatal("two equal random UUIDs")
	}
	if a[6]>>4 != 4 || a[8]>>6 != 2 {
		t.Errorf("%s is not a version 4 variant 1 UUID", a)
	}
	if s := a.String(); len(s) != 36 || s[8] != '-' || s[14] != '4' {
		t.Errorf("String() = %q", s)
	}
}

func TestParseExitCode(t *testing.T) {
	cases := []struct {
		in   string
		code int
		ok   bool
	}{
		{"EXIT_CODE: 0", 0, true},
		{"EXIT_CODE: 3", 3, true},
		{"EXIT_CODE:127\n", 127, true},
		{"EXIT_CODE: -1", -1, true},
		{"exit 3", 0, false},
		{"EXIT_CODE: x", 0, false},
	}
	for _, c := range cases {
		code, ok := ParseExitCode([]byte(c.in))
		if code != c.code || ok != c.ok {
			t.Errorf("ParseExitCode(%q) = %d, %v; want %d, %v", c.in, code, ok, c.code, c.ok)
		}
	}
}
