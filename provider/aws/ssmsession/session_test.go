package ssmsession

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// agent is a scripted agent end of a data channel, for driving the client
// message by message.
type agent struct {
	t    *testing.T
	ctx  context.Context
	conn *websocket.Conn
	seq  int64
	// acks received, by acknowledged sequence number
	acks map[int64][]AcknowledgeContent
	sent map[int64]UUID
}

// serve starts a data-channel endpoint running script for the one
// connection it expects, and returns its ws:// URL. The script's failures
// are reported through t.
func serve(t *testing.T, script func(a *agent)) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		script(&agent{t: t, ctx: ctx, conn: conn, acks: map[int64][]AcknowledgeContent{}, sent: map[int64]UUID{}})
	}))
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent script did not finish")
		}
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/data-channel/s-1?role=publish_subscribe"
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// open reads and checks the OpenDataChannelInput.
func (a *agent) open(token string) OpenDataChannelInput {
	typ, b, err := a.conn.Read(a.ctx)
	if err != nil {
		a.fatalf("agent: read open: %v", err)
	}
	var in OpenDataChannelInput
	if typ != websocket.MessageText || json.Unmarshal(b, &in) != nil {
		a.fatalf("agent: first message %v %q is not the open JSON text", typ, b)
	}
	if in.MessageSchemaVersion != "1.0" || in.TokenValue != token || !uuidRE.MatchString(in.RequestID) ||
		!uuidRE.MatchString(in.ClientID) || in.ClientVersion == "" {
		a.t.Errorf("agent: open message %+v", in)
	}
	return in
}

// out sends an output_stream_data message with the next sequence number,
// or with seq if >= 0 (to resend, skip or reorder).
func (a *agent) out(seq int64, pt PayloadType, payload []byte) {
	if seq < 0 {
		seq = a.seq
		a.seq++
	}
	id, ok := a.sent[seq]
	if !ok {
		id = NewUUID()
		a.sent[seq] = id
	}
	m := Message{Type: TypeOutputStreamData, SchemaVersion: 1, CreatedDate: nowMillis(), SequenceNumber: seq,
		MessageID: id, PayloadType: pt, Payload: payload}
	b, err := m.Marshal()
	if err != nil {
		a.fatalf("agent: %v", err)
	}
	if err := a.conn.Write(a.ctx, websocket.MessageBinary, b); err != nil {
		a.fatalf("agent: write: %v", err)
	}
}

func (a *agent) json(pt PayloadType, v any) {
	b, _ := json.Marshal(v)
	a.out(-1, pt, b)
}

// fatalf fails the test and ends the agent's goroutine (t.Fatalf may
// only be called from the test's own goroutine).
func (a *agent) fatalf(format string, args ...any) {
	a.t.Helper()
	a.t.Errorf(format, args...)
	runtime.Goexit()
}

// read returns the next message, recording acknowledgements.
func (a *agent) read() *Message {
	typ, b, err := a.conn.Read(a.ctx)
	if err != nil {
		a.fatalf("agent: read: %v", err)
	}
	if typ != websocket.MessageBinary {
		a.fatalf("agent: unexpected %v message %q", typ, b)
	}
	m, err := Parse(b)
	if err != nil {
		a.fatalf("agent: client sent a bad message: %v", err)
	}
	switch m.Type {
	case TypeAcknowledge:
		var c AcknowledgeContent
		if err := json.Unmarshal(m.Payload, &c); err != nil {
			a.fatalf("agent: ack payload %q: %v", m.Payload, err)
		}
		a.acks[c.SequenceNumber] = append(a.acks[c.SequenceNumber], c)
	case TypeInputStreamData:
	default:
		a.fatalf("agent: client sent a %s message", m.Type)
	}
	return m
}

// next returns the next input_stream_data message, recording acks.
func (a *agent) next() *Message {
	for {
		if m := a.read(); m.Type == TypeInputStreamData {
			return m
		}
	}
}

// drain reads until the client goes.
func (a *agent) drain() {
	for {
		if _, _, err := a.conn.Read(a.ctx); err != nil {
			return
		}
	}
}

// handshake runs the agent's side of the handshake and returns the
// response.
func (a *agent) handshake(actions ...RequestedClientAction) HandshakeResponse {
	st, _ := json.Marshal(SessionTypeRequest{SessionType: "InteractiveCommands", Properties: map[string]any{"commands": "sh"}})
	a.json(PayloadHandshakeRequest, HandshakeRequest{AgentVersion: "3.3.1000.0",
		RequestedClientActions: append([]RequestedClientAction{{ActionType: ActionSessionType, ActionParameters: st}}, actions...)})
	m := a.next()
	if m.PayloadType != PayloadHandshakeResponse || m.SequenceNumber != 0 {
		a.fatalf("agent: first input is %d seq %d, want the handshake response, seq 0", m.PayloadType, m.SequenceNumber)
	}
	a.ack(m)
	var resp HandshakeResponse
	if err := json.Unmarshal(m.Payload, &resp); err != nil {
		a.fatalf("agent: handshake response %q: %v", m.Payload, err)
	}
	return resp
}

func (a *agent) complete() {
	a.json(PayloadHandshakeComplete, HandshakeComplete{HandshakeTimeToComplete: time.Millisecond})
}

func (a *agent) ack(m *Message) {
	c, _ := json.Marshal(AcknowledgeContent{MessageType: m.Type, MessageID: m.MessageID.String(), SequenceNumber: m.SequenceNumber, IsSequentialMessage: true})
	am := Message{Type: TypeAcknowledge, SchemaVersion: 1, CreatedDate: nowMillis(), MessageID: NewUUID(), Payload: c}
	b, _ := am.Marshal()
	if err := a.conn.Write(a.ctx, websocket.MessageBinary, b); err != nil {
		a.fatalf("agent: ack: %v", err)
	}
}

// waitAcks reads until every sequence number below n has been
// acknowledged at least times[seq] times (default once).
func (a *agent) waitAcks(n int64, times map[int64]int) {
	for {
		missing := false
		for s := range n {
			if len(a.acks[s]) < max(times[s], 1) {
				missing = true
			}
		}
		if !missing {
			return
		}
		if m := a.read(); m.Type == TypeInputStreamData {
			a.fatalf("agent: input %d (type %d) while waiting for acknowledgements", m.SequenceNumber, m.PayloadType)
		}
	}
}

func (a *agent) close(output string) {
	c, _ := json.Marshal(ChannelClosed{MessageID: NewUUID().String(), SessionID: "s-1", MessageType: TypeChannelClosed, SchemaVersion: 1, Output: output})
	m := Message{Type: TypeChannelClosed, SchemaVersion: 1, CreatedDate: nowMillis(), MessageID: NewUUID(), Payload: c}
	b, _ := m.Marshal()
	_ = a.conn.Write(a.ctx, websocket.MessageBinary, b)
	_ = a.conn.Close(websocket.StatusNormalClosure, "")
}

func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSessionOrdersAndAcknowledges: handshake, the size at start, output
// delivered in sequence order whatever the arrival order, duplicates
// dropped, every message acknowledged with its own id.
func TestSessionOrdersAndAcknowledges(t *testing.T) {
	url := serve(t, func(a *agent) {
		a.open("tok")
		resp := a.handshake()
		if resp.ClientVersion != "test/1" || len(resp.ProcessedClientActions) != 1 ||
			resp.ProcessedClientActions[0].ActionType != ActionSessionType || resp.ProcessedClientActions[0].ActionStatus != ActionSuccess {
			t.Errorf("handshake response %+v", resp)
		}
		a.complete()
		if m := a.next(); m.PayloadType != PayloadSize || string(m.Payload) != `{"cols":120,"rows":40}` || m.SequenceNumber != 1 {
			t.Errorf("after the handshake: type %d seq %d %s, want the size, seq 1", m.PayloadType, m.SequenceNumber, m.Payload)
		} else {
			a.ack(m)
		}
		a.out(2, PayloadOutput, []byte("one "))
		a.out(4, PayloadOutput, []byte("three")) // early: held
		a.out(4, PayloadOutput, []byte("three")) // duplicate of a held one
		a.out(3, PayloadOutput, []byte("two "))  // fills the gap
		a.out(2, PayloadOutput, []byte("one "))  // duplicate of a delivered one
		a.waitAcks(5, map[int64]int{2: 2, 4: 2})
		for seq, acks := range a.acks {
			for _, c := range acks {
				if c.MessageType != TypeOutputStreamData || c.MessageID != a.sent[seq].String() || !c.IsSequentialMessage {
					t.Errorf("ack of %d: %+v, want id %s", seq, c, a.sent[seq])
				}
			}
		}
		a.close("done")
	})
	var out bytes.Buffer
	res, err := Run(runCtx(t), url, "tok", Options{Stdout: &out, Size: &provider.TermSize{Cols: 120, Rows: 40}, ClientVersion: "test/1"})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "one two three" {
		t.Errorf("output %q, want %q", out.String(), "one two three")
	}
	if res.SessionType != "InteractiveCommands" || res.AgentVersion != "3.3.1000.0" || res.CloseOutput != "done" ||
		res.Duplicates != 2 || res.ExitCode != nil {
		t.Errorf("result %+v", res)
	}
}

// TestSessionResendsInput: input the agent does not acknowledge is sent
// again, identically, until it is.
func TestSessionResendsInput(t *testing.T) {
	url := serve(t, func(a *agent) {
		a.open("tok")
		a.handshake()
		a.complete()
		first := a.next() // not acknowledged
		again := a.next()
		if first.SequenceNumber != 1 || string(first.Payload) != "hello\n" || again.SequenceNumber != first.SequenceNumber ||
			again.MessageID != first.MessageID || !bytes.Equal(again.Payload, first.Payload) {
			t.Errorf("resend: first seq %d %q id %s, again seq %d %q id %s", first.SequenceNumber, first.Payload, first.MessageID,
				again.SequenceNumber, again.Payload, again.MessageID)
		}
		a.ack(again)
		a.close("")
	})
	res, err := Run(runCtx(t), url, "tok", Options{Stdin: strings.NewReader("hello\n"), ResendTick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resent < 1 {
		t.Errorf("Resent = %d", res.Resent)
	}
}

// TestSessionRefusesKMS: a KMS encryption request is answered Failed and
// the session fails with ErrKMSEncryption.
func TestSessionRefusesKMS(t *testing.T) {
	got := make(chan HandshakeResponse, 1)
	url := serve(t, func(a *agent) {
		a.open("tok")
		got <- a.handshake(RequestedClientAction{ActionType: ActionKMSEncryption,
			ActionParameters: json.RawMessage(`{"KMSKeyId":"arn:aws:kms:us-east-1:123456789012:key/k"}`)})
		a.drain()
	})
	_, err := Run(runCtx(t), url, "tok", Options{})
	if !errors.Is(err, ErrKMSEncryption) || !strings.Contains(err.Error(), "key/k") {
		t.Fatalf("Run = %v, want ErrKMSEncryption naming the key", err)
	}
	resp := <-got
	if len(resp.ProcessedClientActions) != 2 || resp.ProcessedClientActions[1].ActionType != ActionKMSEncryption ||
		resp.ProcessedClientActions[1].ActionStatus != ActionFailed || len(resp.Errors) != 1 {
		t.Errorf("handshake response %+v", resp)
	}
}

// TestSessionResizeAndEOT: sizes given before the handshake are coalesced
// into the last one, later ones follow; the end of stdin is Ctrl-D twice
// after a partial line; input waits for the handshake.
func TestSessionResizeAndEOT(t *testing.T) {
	resize := make(chan provider.TermSize, 2)
	resize <- provider.TermSize{Cols: 10, Rows: 10} // both before the handshake
	resize <- provider.TermSize{Cols: 90, Rows: 20}
	var mu sync.Mutex
	var sizes []string
	var input bytes.Buffer
	url := serve(t, func(a *agent) {
		a.open("tok")
		a.handshake()
		a.complete()
		for {
			m := a.next()
			a.ack(m)
			mu.Lock()
			switch m.PayloadType {
			case PayloadSize:
				sizes = append(sizes, string(m.Payload))
			case PayloadOutput:
				input.Write(m.Payload)
			}
			done := len(sizes) == 2 && bytes.HasSuffix(input.Bytes(), []byte{4, 4})
			n := len(sizes)
			mu.Unlock()
			if n == 1 {
				go func() { resize <- provider.TermSize{Cols: 100, Rows: 30} }()
			}
			if done {
				break
			}
		}
		a.close("")
	})
	_, err := Run(runCtx(t), url, "tok", Options{Stdin: strings.NewReader("abc"), Resize: resize, EOFSendsEOT: true})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{`{"cols":90,"rows":20}`, `{"cols":100,"rows":30}`}; strings.Join(sizes, " ") != strings.Join(want, " ") {
		t.Errorf("sizes %v, want %v", sizes, want)
	}
	if input.String() != "abc\x04\x04" {
		t.Errorf("input %q", input.String())
	}
}

// TestSessionEnds covers the ways a session ends without channel_closed,
// or with output missing.
func TestSessionEnds(t *testing.T) {
	t.Run("channel dropped", func(t *testing.T) {
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			_ = a.conn.Close(websocket.StatusGoingAway, "agent gone")
		})
		_, err := Run(runCtx(t), url, "tok", Options{})
		if !errors.Is(err, ErrChannelClosed) || !strings.Contains(err.Error(), "agent gone") {
			t.Fatalf("Run = %v, want ErrChannelClosed with the close reason", err)
		}
	})
	t.Run("output missing at close", func(t *testing.T) {
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			a.complete()
			a.out(3, PayloadOutput, []byte("late")) // 2 never comes
			a.waitAcks(2, nil)
			for len(a.acks[3]) == 0 {
				a.read()
			}
			a.close("")
		})
		_, err := Run(runCtx(t), url, "tok", Options{})
		if err == nil || !strings.Contains(err.Error(), "message 2 never arrived") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			a.complete()
			a.drain()
		})
		ctx, cancel := context.WithCancel(runCtx(t))
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := Run(ctx, url, "tok", Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Run took %s to notice the cancellation", d)
		}
	})
	t.Run("exit code payload", func(t *testing.T) {
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			a.complete()
			a.out(-1, PayloadStdErr, []byte("oops\n"))
			a.out(-1, PayloadExitCode, []byte("EXIT_CODE: 3"))
			a.waitAcks(4, nil)
			a.close("")
		})
		var out, errOut bytes.Buffer
		res, err := Run(runCtx(t), url, "tok", Options{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == nil || *res.ExitCode != 3 || errOut.String() != "oops\n" || out.Len() != 0 {
			t.Errorf("exit %v stdout %q stderr %q", res.ExitCode, out.String(), errOut.String())
		}
	})
	t.Run("no URL", func(t *testing.T) {
		if _, err := Run(runCtx(t), "", "tok", Options{}); err == nil {
			t.Error("Run without a URL succeeded")
		}
	})
}

// TestSessionFlowControl: with an agent that acknowledges late, input is
// not all sent at once (at most maxInFlight messages are unacknowledged),
// only the oldest message is resent, so the amplification stays small,
// and all the input arrives once, in order.
func TestSessionFlowControl(t *testing.T) {
	const n = 3 * maxInFlight
	const ackDelay = 300 * time.Millisecond
	input := make([]byte, n*streamChunk)
	for i := range input {
		input[i] = byte('a' + i%26)
	}
	var got bytes.Buffer
	var received, peak int
	url := serve(t, func(a *agent) {
		a.open("tok")
		a.handshake()
		a.complete()
		type due struct {
			m  *Message
			at time.Time
		}
		acks := make(chan due, 8*n)
		var mu sync.Mutex
		inFlight := map[int64]bool{} // received, acknowledgement not yet sent
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range acks {
				time.Sleep(time.Until(d.at))
				mu.Lock()
				delete(inFlight, d.m.SequenceNumber) // before the client can see the ack
				mu.Unlock()
				a.ack(d.m)
			}
		}()
		next := int64(1) // 0 was the handshake response
		for got.Len() < len(input) {
			m := a.next()
			received++
			if m.SequenceNumber == next {
				if m.PayloadType != PayloadOutput {
					a.fatalf("agent: input %d is type %d", m.SequenceNumber, m.PayloadType)
				}
				got.Write(m.Payload)
				next++
				mu.Lock()
				inFlight[m.SequenceNumber] = true
				peak = max(peak, len(inFlight))
				mu.Unlock()
			} else if m.SequenceNumber > next {
				a.fatalf("agent: input %d before %d", m.SequenceNumber, next)
			}
			acks <- due{m, time.Now().Add(ackDelay)}
		}
		close(acks)
		wg.Wait()
		a.close("")
	})
	start := time.Now()
	res, err := Run(runCtx(t), url, "tok", Options{Stdin: bytes.NewReader(input)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), input) {
		t.Errorf("the agent got %d bytes of input, not the %d sent in order", got.Len(), len(input))
	}
	if peak > maxInFlight || peak < maxInFlight/2 {
		t.Errorf("at most %d input messages were unacknowledged at once, want up to %d", peak, maxInFlight)
	}
	// The plugin's way: one resend (of the oldest) per tick at most, so
	// about the session's length / ResendTick resends, whatever the
	// amount of input.
	limit := int(time.Since(start)/defaultResendTick) + 2
	// A resend still in flight when the session closes may never reach
	// the agent: it receives at most n+Resent messages.
	if res.Resent > limit || received-n > res.Resent {
		t.Errorf("%d input messages received for %d, %d resent; want at most %d resends", received, n, res.Resent, limit)
	}
	t.Logf("%d messages in %s: %d resent, at most %d in flight", n, time.Since(start), res.Resent, peak)
}

func TestResendAfter(t *testing.T) {
	rto := 200 * time.Millisecond
	for n, want := range []time.Duration{rto, 2 * rto, 4 * rto, 8 * rto, maxResendInterval, maxResendInterval} {
		if got := resendAfter(rto, n); got != want {
			t.Errorf("resendAfter(%s, %d) = %s, want %s", rto, n, got, want)
		}
	}
	if got := resendAfter(maxRTO, 100); got != maxResendInterval {
		t.Errorf("resendAfter(%s, 100) = %s", maxRTO, got)
	}
}

// TestSessionPing: a channel whose pings go unanswered (a half-open
// connection: the agent end stops reading) fails the session with
// ErrChannelClosed; answered pings do not disturb a session.
func TestSessionPing(t *testing.T) {
	t.Run("unanswered", func(t *testing.T) {
		stop := make(chan struct{})
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			a.complete()
			<-stop // no Read: pings are not answered
			a.drain()
		})
		start := time.Now()
		_, err := Run(runCtx(t), url, "tok", Options{PingInterval: 50 * time.Millisecond, PingTimeout: 200 * time.Millisecond})
		close(stop)
		if !errors.Is(err, ErrChannelClosed) || !strings.Contains(err.Error(), "ping") {
			t.Fatalf("Run = %v, want ErrChannelClosed from the ping", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Run took %s to notice the dead channel", d)
		}
	})
	t.Run("answered", func(t *testing.T) {
		stdin, typist := io.Pipe()
		go func() {
			for range 5 {
				time.Sleep(40 * time.Millisecond)
				if _, err := typist.Write([]byte("x")); err != nil {
					return
				}
			}
			typist.Close()
		}()
		url := serve(t, func(a *agent) {
			a.open("tok")
			a.handshake()
			a.complete()
			for range 5 {
				a.ack(a.next())
			}
			a.close("")
		})
		if _, err := Run(runCtx(t), url, "tok", Options{Stdin: stdin, PingInterval: 10 * time.Millisecond, PingTimeout: time.Second}); err != nil {
			t.Fatal(err)
		}
	})
}

type fakePinger struct {
	err   error
	pings int
}

func (p *fakePinger) Ping(context.Context) error { p.pings++; return p.err }

func TestKeepAlive(t *testing.T) {
	p := &fakePinger{err: context.DeadlineExceeded}
	err := keepAlive(context.Background(), p, time.Millisecond, time.Second)
	if !errors.Is(err, ErrChannelClosed) || p.pings != 1 {
		t.Errorf("keepAlive = %v after %d pings, want ErrChannelClosed after 1", err, p.pings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	p = &fakePinger{}
	if err := keepAlive(ctx, p, time.Millisecond, time.Second); err != nil || p.pings == 0 {
		t.Errorf("keepAlive = %v after %d pings, want nil when ctx ends", err, p.pings)
	}
}

// TestSessionEarlyOutputBounded: early output is held up to
// maxBufferedBytes; a message beyond is left unacknowledged, and taken
// when the agent sends it again.
func TestSessionEarlyOutputBounded(t *testing.T) {
	const early = maxBufferedBytes/MaxPayload + 2 // the last two do not fit
	payload := func(seq int64) []byte { return bytes.Repeat([]byte{byte('A' + seq)}, MaxPayload) }
	var want bytes.Buffer
	want.WriteString("first ")
	for seq := int64(3); seq < 3+early; seq++ {
		want.Write(payload(seq))
	}
	url := serve(t, func(a *agent) {
		a.open("tok")
		a.handshake()
		a.complete()
		for seq := int64(3); seq < 3+early; seq++ {
			a.out(seq, PayloadOutput, payload(seq))
		}
		a.out(2, PayloadOutput, []byte("first "))
		for len(a.acks[2]) == 0 { // the client handled 3... before 2
			a.read()
		}
		for seq := int64(3); seq < 3+early; seq++ {
			if acked, fits := len(a.acks[seq]) > 0, seq < 3+early-2; acked != fits {
				t.Errorf("early message %d acknowledged: %v, want %v", seq, acked, fits)
			}
		}
		a.out(3+early-2, PayloadOutput, payload(3+early-2))
		a.out(3+early-1, PayloadOutput, payload(3+early-1))
		a.waitAcks(3+early, nil)
		a.close("")
	})
	var out bytes.Buffer
	if _, err := Run(runCtx(t), url, "tok", Options{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Errorf("output of %d bytes, want %d in order", out.Len(), want.Len())
	}
}
