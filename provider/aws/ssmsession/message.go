package ssmsession

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types (the 32-byte MessageType field, space-padded).
const (
	TypeInputStreamData  = "input_stream_data"  // client -> agent, sequenced
	TypeOutputStreamData = "output_stream_data" // agent -> client, sequenced
	TypeAcknowledge      = "acknowledge"
	TypeChannelClosed    = "channel_closed"
	TypeStartPublication = "start_publication"
	TypePausePublication = "pause_publication"
)

// PayloadType says what a stream message's payload is.
type PayloadType uint32

// Payload types, as numbered by the plugin's message package and the
// agent's session contracts.
const (
	PayloadOutput               PayloadType = 1 // terminal bytes (both directions)
	PayloadError                PayloadType = 2
	PayloadSize                 PayloadType = 3 // {"cols":..,"rows":..}, client -> agent
	PayloadParameter            PayloadType = 4
	PayloadHandshakeRequest     PayloadType = 5 // agent -> client
	PayloadHandshakeResponse    PayloadType = 6 // client -> agent
	PayloadHandshakeComplete    PayloadType = 7 // agent -> client
	PayloadEncChallengeRequest  PayloadType = 8
	PayloadEncChallengeResponse PayloadType = 9
	PayloadFlag                 PayloadType = 10
	PayloadStdErr               PayloadType = 11 // agent -> client, NonInteractiveCommands only
	PayloadExitCode             PayloadType = 12 // agent -> client, "EXIT_CODE: <n>"
)

// Flags of a stream message.
const (
	FlagSYN uint64 = 1 // first message of the stream
	FlagFIN uint64 = 2 // last message of the stream
)

// Field sizes and offsets of the binary header. HeaderLength holds
// headerLength (the offset of the PayloadLength field, 116): the payload
// starts at HeaderLength + 4.
const (
	typeLen      = 32
	offType      = 4
	offSchema    = offType + typeLen // 36
	offCreated   = offSchema + 4     // 40
	offSeq       = offCreated + 8    // 48
	offFlags     = offSeq + 8        // 56
	offMessageID = offFlags + 8      // 64
	offDigest    = offMessageID + 16 // 80
	offPayType   = offDigest + 32    // 112
	offPayLen    = offPayType + 4    // 116
	headerLength = offPayLen
	offPayload   = offPayLen + 4 // 120

	// MaxPayload bounds a payload we accept. The agent and the plugin
	// send at most 1024 bytes of stream data per message; JSON control
	// payloads are small.
	MaxPayload = 1 << 20
)

// UUID is a message id, in its canonical byte order (the string form is
// the usual 8-4-4-4-12 hex).
type UUID [16]byte

// NewUUID returns a random (version 4) UUID.
func NewUUID() UUID {
	var u UUID
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:])
}

// Message is one data-channel message (the plugin's ClientMessage, the
// agent's AgentMessage: the same layout).
type Message struct {
	Type          string
	SchemaVersion uint32
	// CreatedDate is the creation time in epoch milliseconds.
	CreatedDate    uint64
	SequenceNumber int64
	Flags          uint64
	MessageID      UUID
	PayloadType    PayloadType
	Payload        []byte
}

// Marshal encodes m: the header, big-endian, with HeaderLength 116, the
// message type padded with spaces, the message id written as its low
// eight bytes then its high eight bytes (as the plugin's putUuid does),
// the SHA-256 of the payload, then the payload length and the payload.
func (m *Message) Marshal() ([]byte, error) {
	if len(m.Type) == 0 || len(m.Type) > typeLen {
		return nil, fmt.Errorf("ssmsession: message type %q: must be 1 to %d bytes", m.Type, typeLen)
	}
	if len(m.Payload) > MaxPayload {
		return nil, fmt.Errorf("ssmsession: payload of %d bytes exceeds %d", len(m.Payload), MaxPayload)
	}
	b := make([]byte, offPayload+len(m.Payload))
	be := binary.BigEndian
	be.PutUint32(b[0:], headerLength)
	copy(b[offType:offSchema], bytes.Repeat([]byte{' '}, typeLen))
	copy(b[offType:], m.Type)
	be.PutUint32(b[offSchema:], m.SchemaVersion)
	be.PutUint64(b[offCreated:], m.CreatedDate)
	be.PutUint64(b[offSeq:], uint64(m.SequenceNumber))
	be.PutUint64(b[offFlags:], m.Flags)
	copy(b[offMessageID:], m.MessageID[8:16])
	copy(b[offMessageID+8:], m.MessageID[0:8])
	d := sha256.Sum256(m.Payload)
	copy(b[offDigest:], d[:])
	be.PutUint32(b[offPayType:], uint32(m.PayloadType))
	be.PutUint32(b[offPayLen:], uint32(len(m.Payload)))
	copy(b[offPayload:], m.Payload)
	return b, nil
}

// Errors of Parse.
var (
	ErrShortMessage  = errors.New("ssmsession: message shorter than its header")
	ErrHeaderLength  = errors.New("ssmsession: bad header length")
	ErrPayloadLength = errors.New("ssmsession: payload length does not match the message")
	ErrDigest        = errors.New("ssmsession: payload digest mismatch")
)

// Parse decodes a binary message and checks it: the header length must
// cover the fixed fields and leave the payload-length field inside the
// message, the payload length must match the bytes that follow, and a
// non-empty payload must match its SHA-256 digest (the plugin's Validate;
// an empty payload's digest is not checked, as there).
func Parse(b []byte) (*Message, error) {
	if len(b) < offPayload {
		return nil, fmt.Errorf("%w: %d bytes, need %d", ErrShortMessage, len(b), offPayload)
	}
	be := binary.BigEndian
	hl := be.Uint32(b[0:])
	if hl < headerLength || uint64(hl)+4 > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d (message of %d bytes)", ErrHeaderLength, hl, len(b))
	}
	payload := b[hl+4:]
	if n := be.Uint32(b[hl:]); uint64(n) != uint64(len(payload)) {
		return nil, fmt.Errorf("%w: field says %d, %d bytes follow", ErrPayloadLength, n, len(payload))
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrPayloadLength, len(payload), MaxPayload)
	}
	m := &Message{
		Type:           string(bytes.TrimSpace(bytes.Trim(b[offType:offSchema], "\x00"))),
		SchemaVersion:  be.Uint32(b[offSchema:]),
		CreatedDate:    be.Uint64(b[offCreated:]),
		SequenceNumber: int64(be.Uint64(b[offSeq:])),
		Flags:          be.Uint64(b[offFlags:]),
		PayloadType:    PayloadType(be.Uint32(b[offPayType:])),
		Payload:        bytes.Clone(payload),
	}
	copy(m.MessageID[8:16], b[offMessageID:])
	copy(m.MessageID[0:8], b[offMessageID+8:])
	if m.Type == "" {
		return nil, errors.New("ssmsession: message type missing")
	}
	if len(payload) > 0 {
		if d := sha256.Sum256(payload); !bytes.Equal(d[:], b[offDigest:offDigest+32]) {
			return nil, fmt.Errorf("%w (%s message %d)", ErrDigest, m.Type, m.SequenceNumber)
		}
	}
	return m, nil
}

// nowMillis is the CreatedDate of a message built now.
func nowMillis() uint64 { return uint64(time.Now().UnixMilli()) }

// AcknowledgeContent is an acknowledge message's JSON payload.
type AcknowledgeContent struct {
	MessageType         string `json:"AcknowledgedMessageType"`
	MessageID           string `json:"AcknowledgedMessageId"`
	SequenceNumber      int64  `json:"AcknowledgedMessageSequenceNumber"`
	IsSequentialMessage bool   `json:"IsSequentialMessage"`
}

// ChannelClosed is a channel_closed message's JSON payload. Output is
// empty when the session ended normally, else the reason.
type ChannelClosed struct {
	MessageID     string `json:"MessageId"`
	CreatedDate   string `json:"CreatedDate"`
	DestinationID string `json:"DestinationId"`
	SessionID     string `json:"SessionId"`
	MessageType   string `json:"MessageType"`
	SchemaVersion int    `json:"SchemaVersion"`
	Output        string `json:"Output"`
}

// Handshake action types and statuses.
const (
	ActionKMSEncryption = "KMSEncryption"
	ActionSessionType   = "SessionType"

	ActionSuccess     = 1
	ActionFailed      = 2
	ActionUnsupported = 3
)

// HandshakeRequest is the agent's first stream message.
type HandshakeRequest struct {
	AgentVersion           string                  `json:"AgentVersion"`
	RequestedClientActions []RequestedClientAction `json:"RequestedClientActions"`
}

// RequestedClientAction is one action the agent asks of the client.
type RequestedClientAction struct {
	ActionType       string          `json:"ActionType"`
	ActionParameters json.RawMessage `json:"ActionParameters"`
}

// SessionTypeRequest is the parameter of a SessionType action.
type SessionTypeRequest struct {
	SessionType string `json:"SessionType"`
	Properties  any    `json:"Properties"`
}

// HandshakeResponse is the client's answer.
type HandshakeResponse struct {
	ClientVersion          string                  `json:"ClientVersion"`
	ProcessedClientActions []ProcessedClientAction `json:"ProcessedClientActions"`
	Errors                 []string                `json:"Errors"`
}

// ProcessedClientAction is the client's result for one action.
type ProcessedClientAction struct {
	ActionType   string `json:"ActionType"`
	ActionStatus int    `json:"ActionStatus"`
	ActionResult any    `json:"ActionResult"`
	Error        string `json:"Error"`
}

// HandshakeComplete ends the handshake; HandshakeTimeToComplete is a Go
// time.Duration (nanoseconds) on the wire.
type HandshakeComplete struct {
	HandshakeTimeToComplete time.Duration `json:"HandshakeTimeToComplete"`
	CustomerMessage         string        `json:"CustomerMessage"`
}

// SizeData is a Size payload.
type SizeData struct {
	Cols uint32 `json:"cols"`
	Rows uint32 `json:"rows"`
}

// OpenDataChannelInput is the text message that opens the channel.
type OpenDataChannelInput struct {
	MessageSchemaVersion string `json:"MessageSchemaVersion"`
	RequestID            string `json:"RequestId"`
	TokenValue           string `json:"TokenValue"`
	ClientID             string `json:"ClientId"`
	ClientVersion        string `json:"ClientVersion"`
}
