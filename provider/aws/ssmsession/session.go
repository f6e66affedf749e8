// Package ssmsession is the client side of the AWS Systems Manager Session
// Manager data channel, the protocol behind ECS Exec (and `aws ssm
// start-session`): a WebSocket to the session's streamUrl carrying framed
// binary messages with sequence numbers and acknowledgements.
//
// Run opens the channel and sends the OpenDataChannelInput text message
// (schema version "1.0", a random RequestId and ClientId, the session's
// token and a ClientVersion). Every message after that is a binary Message
// (see Marshal for the layout). The agent opens with a HandshakeRequest;
// Run answers SessionType and refuses KMSEncryption (it has no KMS client:
// the session then fails with ErrKMSEncryption), and starts sending input
// and terminal sizes once the agent's HandshakeComplete arrives (or, from
// an agent too old to shake hands, its first output). Input is sent as
// input_stream_data with sequence numbers from 0, kept until acknowledged.
// At most maxInFlight messages (and maxInFlightBytes) are unacknowledged
// at a time: input waits for acknowledgements beyond that, so Stdin is
// read no faster than the agent takes it. As the plugin does, only the
// oldest unacknowledged message is resent, when it has been
// unacknowledged for the retransmission timeout, which adapts to the
// measured round trip (200ms at first, at most 1s) and doubles with each
// resend of the same message (up to maxResendInterval). Every
// output_stream_data message is acknowledged (a duplicate too, so the
// agent stops resending it); output is delivered in sequence order,
// messages that arrive early are held (at most maxBuffered messages and
// maxBufferedBytes: beyond that one is left unacknowledged, and the agent
// sends it again later) until the gap is filled, and duplicates are
// dropped. channel_closed ends the session. The WebSocket is pinged every
// PingInterval; a ping unanswered for PingTimeout fails the session with
// ErrChannelClosed (a half-open connection is not otherwise noticed).
//
// # Exit codes
//
// The agent reports a command's exit code (an ExitCode payload, "EXIT_CODE:
// <n>") only in NonInteractiveCommands sessions whose document sets
// separateOutputStream, which is also the only case where StdErr payloads
// are sent. ECS ExecuteCommand supports interactive sessions only: its
// agent runs the command on a pseudo-terminal (InteractiveCommands), sends
// everything as Output, and ends the session without an exit code; the AWS
// CLI exits 0 whatever the command did. Result.ExitCode is therefore nil
// for ECS Exec; it is set when an agent does send one.
//
// # Reference
//
// The layout and constants were checked against the open-source plugin,
// github.com/aws/session-manager-plugin at tag 1.2.677.0 (commit 61cf128,
// 2024-09-24: src/message/clientmessage.go, messageparser.go,
// handshakemessage.go, src/datachannel/streaming.go, src/config/config.go,
// src/sessionmanagerplugin/session/shellsession), and the agent side in
// github.com/aws/amazon-ssm-agent (commit 1c217c8, 2024-10-15:
// agent/session/datachannel/datachannel.go, agent/session/contracts,
// agent/session/shell/shell.go). Two details worth knowing: HeaderLength
// holds 116, the offset of the PayloadLength field, so the payload starts
// at HeaderLength+4; and the 16-byte MessageId is written low half first.
//
// Not implemented: KMS encryption, reconnection (ResumeSession), the
// port-forwarding session types, pause_publication (ignored, as the plugin
// ignores it).
package ssmsession

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/alphaswarm/controller/provider"
)

// DefaultClientVersion is sent as ClientVersion when Options has none. The
// agent compares client versions to decide which features a client has;
// this client speaks the protocol of plugin 1.2.677.0.
const DefaultClientVersion = "1.2.677.0"

// Protocol timings, from the plugin's config package.
const (
	initialRTO        = 200 * time.Millisecond
	initialRTT        = 100 * time.Millisecond
	maxRTO            = time.Second
	clockGranularity  = 10 * time.Millisecond
	defaultResendTick = 100 * time.Millisecond
	defaultGiveUp     = 5 * time.Minute
	maxResendInterval = 2 * maxRTO // the cap of a resent message's backoff
	// The plugin pings every 5 minutes.
	defaultPingInterval = 5 * time.Minute
	defaultPingTimeout  = 30 * time.Second
	streamChunk         = 1024 // bytes of input per message
	// Input in flight (sent, not yet acknowledged): beyond either bound,
	// sending waits for acknowledgements.
	maxInFlight      = 256
	maxInFlightBytes = maxInFlight * (offPayload + streamChunk)
	// Early output held until the gap before it is filled: beyond either
	// bound a message is not acknowledged (the agent resends it).
	maxBuffered      = 10000
	maxBufferedBytes = 8 << 20
)

// ErrKMSEncryption is returned when the agent requires KMS encryption of
// the session (the ECS cluster's executeCommandConfiguration names a KMS
// key, or the account's Session Manager preferences do), which this client
// does not implement.
var ErrKMSEncryption = errors.New("ssmsession: the session requires KMS encryption, which this client does not support")

// ErrChannelClosed is returned when the WebSocket fails (a read or a
// write) before the agent closed the session with channel_closed: a
// network failure, or the service dropping the connection. The command
// may still be running.
var ErrChannelClosed = errors.New("ssmsession: data channel closed before the session ended")

func channelErr(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrChannelClosed, op, err)
}

// Options configures Run. The zero value runs a session with no input
// and discards its output.
type Options struct {
	// Stdin is sent to the agent as terminal input. Run does not wait for
	// a Read that blocks after the session ended: the goroutine reading
	// Stdin ends when that Read returns.
	Stdin io.Reader
	// Stdout receives Output payloads in order; nil discards them.
	Stdout io.Writer
	// Stderr receives StdErr and Error payloads; nil sends them to Stdout.
	Stderr io.Writer
	// Size is the terminal size sent when the handshake completes; nil
	// sends none until Resize delivers one.
	Size *provider.TermSize
	// Resize delivers terminal size changes; may be nil. Sizes received
	// before the handshake completes are coalesced into one.
	Resize <-chan provider.TermSize
	// EOFSendsEOT sends Ctrl-D (the terminal's end of file) when Stdin
	// ends, twice when the input did not end with a newline (the first
	// only flushes a partial line on a terminal).
	EOFSendsEOT bool
	// ClientVersion is sent in the open message and the handshake
	// response; default DefaultClientVersion.
	ClientVersion string
	// HTTPClient dials the WebSocket; default http.DefaultClient.
	HTTPClient *http.Client
	// ResendTick is how often unacknowledged input is checked for
	// retransmission (default 100ms).
	ResendTick time.Duration
	// GiveUp is how long an input message may stay unacknowledged before
	// the session fails (default 5 minutes: the plugin's 3000 resends).
	GiveUp time.Duration
	// PingInterval is how often the WebSocket is pinged (default 5
	// minutes, as the plugin does); PingTimeout is how long a pong may
	// take before the channel is deemed dead (default 30s).
	PingInterval, PingTimeout time.Duration
}

// Result describes a finished session.
type Result struct {
	// AgentVersion and SessionType are from the agent's handshake
	// (SessionType "InteractiveCommands" for ECS Exec).
	AgentVersion string
	SessionType  string
	// CustomerMessage is the handshake's message for the user, if any.
	CustomerMessage string
	// ExitCode is the command's exit code when the agent sent one (see
	// the package doc: never for ECS Exec).
	ExitCode *int
	// CloseOutput is channel_closed's Output: empty when the session ended
	// normally, else why it was closed.
	CloseOutput string
	// Resent counts input messages sent again for want of an
	// acknowledgement; Duplicates counts output messages received again.
	Resent, Duplicates int
}

// Run opens the data channel at streamURL with token and runs the session
// until the agent closes it (nil error, whatever the command's outcome),
// ctx ends, or the channel fails. It is safe to run several sessions
// concurrently; one session's Options must not be shared.
func Run(ctx context.Context, streamURL, token string, opts Options) (Result, error) {
	if streamURL == "" || token == "" {
		return Result{}, errors.New("ssmsession: stream URL and token are required")
	}
	if opts.ClientVersion == "" {
		opts.ClientVersion = DefaultClientVersion
	}
	if opts.ResendTick <= 0 {
		opts.ResendTick = defaultResendTick
	}
	if opts.GiveUp <= 0 {
		opts.GiveUp = defaultGiveUp
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = defaultPingInterval
	}
	if opts.PingTimeout <= 0 {
		opts.PingTimeout = defaultPingTimeout
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	if opts.Stderr == nil {
		opts.Stderr = opts.Stdout
	}
	conn, resp, err := websocket.Dial(ctx, streamURL, &websocket.DialOptions{HTTPClient: opts.HTTPClient})
	if err != nil {
		if resp != nil {
			return Result{}, fmt.Errorf("ssmsession: open data channel: %w (HTTP %s)", err, resp.Status)
		}
		return Result{}, fmt.Errorf("ssmsession: open data channel: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(offPayload + MaxPayload)

	s := &session{conn: conn, opts: opts, rto: initialRTO, srtt: float64(initialRTT),
		pending: map[int64]*Message{}, ready: make(chan struct{}), room: make(chan struct{})}
	open, _ := json.Marshal(OpenDataChannelInput{MessageSchemaVersion: "1.0", RequestID: NewUUID().String(),
		TokenValue: token, ClientID: NewUUID().String(), ClientVersion: opts.ClientVersion})
	if err := conn.Write(ctx, websocket.MessageText, open); err != nil {
		return Result{}, fmt.Errorf("ssmsession: open data channel: %w", err)
	}

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(sctx); err != nil {
				cancel(err)
			}
		}()
	}
	if opts.Stdin != nil {
		start(s.pumpStdin)
	}
	start(s.pumpResize)
	start(s.resendLoop)
	start(func(ctx context.Context) error { return keepAlive(ctx, conn, opts.PingInterval, opts.PingTimeout) })

	readErr := s.readLoop(sctx)
	cancel(errSessionOver)
	wg.Wait()

	res := s.result()
	if cause := context.Cause(sctx); cause != nil && cause != errSessionOver {
		// A pump failed, or ctx ended, before the agent closed the channel.
		if ctx.Err() != nil {
			return res, fmt.Errorf("ssmsession: %w", ctx.Err())
		}
		return res, cause
	}
	if readErr != nil {
		return res, readErr
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
	if len(s.pending) > 0 {
		return res, fmt.Errorf("ssmsession: the channel closed with output missing: message %d never arrived (%d later ones held)", s.expected, len(s.pending))
	}
	return res, nil
}

var errSessionOver = errors.New("ssmsession: session over")

type session struct {
	conn *websocket.Conn
	opts Options

	sendMu sync.Mutex // orders sequence assignment and first write

	mu            sync.Mutex // guards the fields below
	nextSeq       int64
	unacked       []*outgoing   // in sequence order, so oldest first
	inFlightBytes int           // of unacked
	room          chan struct{} // closed (and replaced) when an acknowledgement frees room
	srtt          float64       // ns
	rttvar        float64       // ns
	rto           time.Duration
	res           Result
	lastInput     byte
	readyOnce     sync.Once
	handshaken    bool // a HandshakeRequest arrived

	// read loop only
	expected     int64
	pending      map[int64]*Message
	pendingBytes int // payload bytes in pending

	ready chan struct{} // closed when input may flow
}

func (s *session) result() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res
}

func (s *session) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// pumpStdin sends Stdin once the handshake is over.
func (s *session) pumpStdin(ctx context.Context) error {
	chunks := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, streamChunk)
		for {
			n, err := s.opts.Stdin.Read(buf)
			if n > 0 {
				select {
				case chunks <- slices.Clone(buf[:n]):
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case <-s.ready:
	}
	sent := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-chunks:
			if err := s.send(ctx, PayloadOutput, b); err != nil {
				return err
			}
			sent = true
			s.mu.Lock()
			s.lastInput = b[len(b)-1]
			s.mu.Unlock()
		case err := <-readErr:
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("ssmsession: read stdin: %w", err)
			}
			if !s.opts.EOFSendsEOT {
				return nil
			}
			eot := []byte{4}
			s.mu.Lock()
			if sent && s.lastInput != '\n' {
				eot = []byte{4, 4}
			}
			s.mu.Unlock()
			return s.send(ctx, PayloadOutput, eot)
		}
	}
}

// pumpResize sends the terminal size once the handshake is over and on
// every change.
func (s *session) pumpResize(ctx context.Context) error {
	var latest, sent *SizeData
	if sz := s.opts.Size; sz != nil {
		latest = &SizeData{Cols: uint32(sz.Cols), Rows: uint32(sz.Rows)}
	}
	ready, resize := s.ready, s.opts.Resize
	flush := func() error {
		if ready != nil || latest == nil || (sent != nil && *sent == *latest) {
			return nil
		}
		b, _ := json.Marshal(latest)
		if err := s.send(ctx, PayloadSize, b); err != nil {
			return err
		}
		sent = latest
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ready:
			ready = nil
		case sz, ok := <-resize:
			if !ok {
				resize = nil
				continue
			}
			latest = &SizeData{Cols: uint32(sz.Cols), Rows: uint32(sz.Rows)}
		}
		if err := flush(); err != nil {
			return err
		}
		if ready == nil && resize == nil {
			<-ctx.Done()
			return nil
		}
	}
}

// readLoop handles incoming messages until channel_closed (nil) or an
// error.
func (s *session) readLoop(ctx context.Context) error {
	var serviceText string
	for {
		typ, b, err := s.conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // Run reports the cause
			}
			if serviceText != "" {
				return channelErr(fmt.Sprintf("read (the service said %q)", serviceText), err)
			}
			return channelErr("read", err)
		}
		if typ == websocket.MessageText {
			serviceText = string(b) // not part of the protocol; kept for the error
			continue
		}
		m, err := Parse(b)
		if err != nil {
			// The plugin drops a message that does not parse; its sender
			// resends it when no acknowledgement comes.
			continue
		}
		switch m.Type {
		case TypeOutputStreamData:
			if err := s.stream(ctx, m); err != nil {
				return err
			}
		case TypeAcknowledge:
			var a AcknowledgeContent
			if json.Unmarshal(m.Payload, &a) == nil {
				s.acknowledged(a.SequenceNumber)
			}
		case TypeChannelClosed:
			var c ChannelClosed
			_ = json.Unmarshal(m.Payload, &c)
			s.mu.Lock()
			s.res.CloseOutput = c.Output
			s.mu.Unlock()
			return nil
		}
		// start_publication, pause_publication and unknown types are
		// ignored, as the plugin does.
	}
}

// stream handles an output_stream_data message: in order, early (held),
// or a duplicate (dropped); all are acknowledged.
func (s *session) stream(ctx context.Context, m *Message) error {
	switch {
	case m.SequenceNumber < s.expected:
		s.mu.Lock()
		s.res.Duplicates++
		s.mu.Unlock()
		return s.ack(ctx, m)
	case m.SequenceNumber > s.expected:
		if _, held := s.pending[m.SequenceNumber]; held {
			s.mu.Lock()
			s.res.Duplicates++
			s.mu.Unlock()
		} else if len(s.pending) >= maxBuffered || s.pendingBytes+len(m.Payload) > maxBufferedBytes {
			return nil // no acknowledgement: the agent sends it again later
		} else {
			s.pending[m.SequenceNumber] = m
			s.pendingBytes += len(m.Payload)
		}
		return s.ack(ctx, m)
	}
	if err := s.ack(ctx, m); err != nil {
		return err
	}
	for {
		s.expected++
		if err := s.process(ctx, m); err != nil {
			return err
		}
		next, ok := s.pending[s.expected]
		if !ok {
			return nil
		}
		delete(s.pending, s.expected)
		s.pendingBytes -= len(next.Payload)
		m = next
	}
}

// process acts on one in-order stream message.
func (s *session) process(ctx context.Context, m *Message) error {
	switch m.PayloadType {
	case PayloadHandshakeRequest:
		return s.handshake(ctx, m.Payload)
	case PayloadHandshakeComplete:
		var hc HandshakeComplete
		_ = json.Unmarshal(m.Payload, &hc)
		s.mu.Lock()
		s.res.CustomerMessage = hc.CustomerMessage
		s.mu.Unlock()
		s.markReady()
	case PayloadEncChallengeRequest:
		return fmt.Errorf("%w (the agent sent an encryption challenge)", ErrKMSEncryption)
	case PayloadOutput:
		s.mu.Lock()
		legacy := !s.handshaken
		s.mu.Unlock()
		if legacy {
			s.markReady() // an agent that does not shake hands starts with output
		}
		if _, err := s.opts.Stdout.Write(m.Payload); err != nil {
			return fmt.Errorf("ssmsession: write output: %w", err)
		}
	case PayloadStdErr, PayloadError:
		if _, err := s.opts.Stderr.Write(m.Payload); err != nil {
			return fmt.Errorf("ssmsession: write output: %w", err)
		}
	case PayloadExitCode:
		if code, ok := ParseExitCode(m.Payload); ok {
			s.mu.Lock()
			s.res.ExitCode = &code
			s.mu.Unlock()
		}
	}
	return nil
}

// ParseExitCode reads an ExitCode payload ("EXIT_CODE: 3").
func ParseExitCode(p []byte) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(string(p)), "EXIT_CODE:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(rest))
	return n, err == nil
}

// handshake answers a HandshakeRequest.
func (s *session) handshake(ctx context.Context, payload []byte) error {
	var req HandshakeRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return fmt.Errorf("ssmsession: handshake request: %w", err)
	}
	s.mu.Lock()
	s.handshaken = true
	s.res.AgentVersion = req.AgentVersion
	s.mu.Unlock()
	resp := HandshakeResponse{ClientVersion: s.opts.ClientVersion, ProcessedClientActions: []ProcessedClientAction{}}
	var fail error
	for _, a := range req.RequestedClientActions {
		pa := ProcessedClientAction{ActionType: a.ActionType}
		switch a.ActionType {
		case ActionSessionType:
			var st SessionTypeRequest
			if err := json.Unmarshal(a.ActionParameters, &st); err != nil || st.SessionType == "" {
				pa.ActionStatus, pa.Error = ActionFailed, "unreadable SessionType parameters"
				break
			}
			s.mu.Lock()
			s.res.SessionType = st.SessionType
			s.mu.Unlock()
			pa.ActionStatus = ActionSuccess
		case ActionKMSEncryption:
			var kr struct {
				KMSKeyID string `json:"KMSKeyId"`
			}
			_ = json.Unmarshal(a.ActionParameters, &kr)
			pa.ActionStatus, pa.Error = ActionFailed, "this client does not support KMS encryption"
			fail = fmt.Errorf("%w (KMS key %q): use the AWS CLI with the session-manager-plugin, or remove the key from the cluster's executeCommandConfiguration", ErrKMSEncryption, kr.KMSKeyID)
		default:
			pa.ActionStatus, pa.Error = ActionUnsupported, "unsupported action "+a.ActionType
		}
		if pa.Error != "" {
			resp.Errors = append(resp.Errors, pa.Error)
		}
		resp.ProcessedClientActions = append(resp.ProcessedClientActions, pa)
	}
	b, _ := json.Marshal(resp)
	if err := s.sendNow(ctx, PayloadHandshakeResponse, b); err != nil {
		return err
	}
	return fail
}
