package fakeaws

// ECS Exec: ExecuteCommand, and a Session Manager agent behind the
// session's WebSocket, speaking the agent side of the data-channel
// protocol (package ssmsession has the client side and the framing).
//
// The agent does what the SSM agent does in an ECS task for an
// InteractiveCommands session: it checks the open message's token, sends a
// HandshakeRequest (session type InteractiveCommands, plus KMSEncryption
// when ExecOptions.KMSKeyID is set), waits for the HandshakeResponse,
// sends HandshakeComplete, then runs the command on an emulated terminal:
// input is echoed, "\r" reads as "\n", Ctrl-D at the start of a line is end
// of file, Ctrl-C interrupts, and output "\n" is sent as "\r\n". It
// acknowledges every input message (again for a duplicate, which it does
// not process twice), buffers input that arrives early, resends output
// that stays unacknowledged, and when the command ends waits (up to 2s)
// for its output to be acknowledged and closes the channel with
// channel_closed. Like the real agent in this session type it sends no
// exit code, unless ExecOptions.SendExitCode asks it to.
//
// The command is split into words as the agent does in a container
// (google/shlex: quotes, backslash escapes, # comments; no shell), and run
// by a tiny interpreter instead of a process: echo, cat, printenv (the
// task's environment), stty size, sleep, true, false, and sh (-c 'script'
// or an interactive prompt "$ ") whose scripts are statements separated by
// ";" or newlines, including exit N. Anything else fails as a missing
// executable (exit 127).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/alphaswarm/controller/provider/aws/ssmsession"
)

// DataChannelPath is where the fake serves session WebSockets.
const DataChannelPath = "/v1/data-channel/"

// Error messages of ExecuteCommand, as ECS words them.
const (
	msgExecNotEnabled = "The execute command failed because execute command was not enabled when the task was run or the execute command agent isn’t running. Wait and try again or run a new task with execute command enabled and try again."
	msgNotConnected   = "The execute command failed due to an internal error. Try again later."
	msgTaskRole       = "The service couldn't be %s because a valid taskRoleArn is not being used. Specify a valid task role in your task definition and try again."
)

// ExecOptions configures the fake's ECS Exec (see SetExec).
type ExecOptions struct {
	// AgentVersion is sent in the handshake; default "3.3.1000.0".
	AgentVersion string
	// KMSKeyID, when set, makes the agent ask for KMS encryption (as when
	// the cluster's executeCommandConfiguration names a key).
	KMSKeyID string
	// NotConnected makes ExecuteCommand fail with
	// TargetNotConnectedException, as when the task role lacks the
	// ssmmessages permissions (which DescribeTasks does not show).
	NotConnected bool
	// AgentStatus, when set, is the lastStatus DescribeTasks reports for
	// the ECS Exec agent of running tasks (instead of RUNNING).
	AgentStatus string
	// AgentNotRunning makes ExecuteCommand answer as when the task's ECS
	// Exec agent is not running although DescribeTasks still says it is
	// (ECS's "not enabled ... or the agent isn't running" message).
	AgentNotRunning bool
	// SendExitCode makes the agent send the command's exit code (an
	// ExitCode payload) before closing, and its error output as StdErr:
	// what the agent does in a NonInteractiveCommands session with
	// separateOutputStream. ECS never starts one; off by default.
	SendExitCode bool
	// Faults on the agent's output, by sequence number (0 is the
	// handshake request, 1 the handshake complete, the command's output
	// starts at 2). Each applies to the message's first transmission.
	DropOutput      []int64 // not sent: the agent resends it after ResendAfter
	DuplicateOutput []int64 // sent twice
	DelayOutput     []int64 // sent after the next message (reordered)
	// Faults on the client's input, by the client's sequence number (0
	// is its handshake response).
	IgnoreInput []int64 // first copy neither processed nor acknowledged
	DropAcks    []int64 // first acknowledgement not sent: the client resends
	// ResendAfter is the agent's retransmission timeout; default 100ms.
	ResendAfter time.Duration
	// HangUpAfter, when > 0, drops the WebSocket (no channel_closed)
	// once output message HangUpAfter is acknowledged (or after 2s), as
	// a network failure would: the client has that message, and none
	// after it.
	HangUpAfter int64
}

// TermSize is a terminal size the agent received.
type TermSize struct{ Cols, Rows int }

// ExecSession is the fake's account of one ExecuteCommand session.
type ExecSession struct {
	ID, TaskID, Container, Command string
	// ClientVersion is from the client's open message; "" until it
	// connected.
	ClientVersion string
	// Sizes are the terminal sizes received, in order.
	Sizes []TermSize
	// Input is the terminal input processed, in order, each message once.
	Input []byte
	// DuplicateInputs counts input messages received again after being
	// processed; ResentOutputs counts output messages the agent resent.
	DuplicateInputs, ResentOutputs int
	// Ended is set when the command ended and the channel was closed;
	// ExitCode is then the command's exit code (as the fake knows it,
	// whether or not it was sent). Terminated is set by TerminateSession.
	Ended, Terminated bool
	ExitCode          int
}

type execState struct {
	opts     ExecOptions
	sessions map[string]*execSession
	order    []string
}

type execSession struct {
	ExecSession
	token     string
	env       map[string]string
	opts      ExecOptions
	connected bool
	terminate chan struct{}
}

// SetExec configures ECS Exec for sessions started from now on.
func (f *Fake) SetExec(o ExecOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exec.opts = o
}

// ExecSessions returns the sessions ExecuteCommand started, oldest first.
func (f *Fake) ExecSessions() []ExecSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ExecSession
	for _, id := range f.exec.order {
		s := f.exec.sessions[id].ExecSession
		s.Sizes = slices.Clone(s.Sizes)
		s.Input = slices.Clone(s.Input)
		out = append(out, s)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// containerARN is the ARN of a task's (only) container.
func (f *Fake) containerARN(t *task) string {
	h := sha256.Sum256([]byte(t.arn))
	u := hex.EncodeToString(h[:16])
	return f.arn("ecs", "container/"+t.cluster+"/"+t.id+"/"+u[0:8]+"-"+u[8:12]+"-"+u[12:16]+"-"+u[16:20]+"-"+u[20:32])
}

// execAgentStatus is the lastStatus DescribeTasks reports for a task's
// ECS Exec agent. f.mu is held.
func (f *Fake) execAgentStatus(t *task) string {
	if t.lastStatus == "RUNNING" && f.exec.opts.AgentStatus != "" {
		return f.exec.opts.AgentStatus
	}
	return t.lastStatus
}

// executeCommand is ECS ExecuteCommand. f.mu is held.
func (f *Fake) executeCommand(cl string, in map[string]any) (any, *apiError) {
	command := str(in, "command")
	if strings.TrimSpace(command) == "" {
		return nil, errf(400, "InvalidParameterException", "Command cannot be empty.")
	}
	if !boolean(in, "interactive") {
		return nil, errf(400, "InvalidParameterException", "Interactive is the only mode supported currently.")
	}
	// ExecuteCommandInput.Task: "The Amazon Resource Name (ARN) or ID of
	// the task" (ECS API reference; the aws-cli example
	// examples/ecs/execute-command.rst passes a cluster-qualified ARN).
	ref := str(in, "task")
	if _, rest, ok := strings.Cut(ref, ":task/"); ok && strings.HasPrefix(ref, "arn:") {
		c, id, ok := strings.Cut(rest, "/")
		if !ok || c != cl {
			return nil, errf(400, "InvalidParameterException", "Task %s does not belong to cluster %s.", ref, cl)
		}
		ref = id
	}
	if len(ref) != 32 && len(ref) != 36 {
		return nil, errf(400, "InvalidParameterException", "task length should be one of [32,36]")
	}
	var t *task
	for _, x := range f.tasks {
		if x.id == ref && x.cluster == cl {
			t = x
		}
	}
	if t == nil || t.lastStatus == "STOPPED" {
		return nil, errf(400, "InvalidParameterException", "The referenced task was not found.")
	}
	if c := str(in, "container"); c != "" && c != t.service {
		// The fake's wording: tasks here have one container, named after the service.
		return nil, errf(400, "InvalidParameterException", "The container %s does not exist in the task.", c)
	}
	if !t.execEnabled || f.exec.opts.AgentNotRunning {
		return nil, errf(400, "InvalidParameterException", msgExecNotEnabled)
	}
	if t.lastStatus != "RUNNING" || f.exec.opts.NotConnected {
		return nil, errf(400, "TargetNotConnectedException", msgNotConnected)
	}
	if f.exec.sessions == nil {
		f.exec.sessions = map[string]*execSession{}
	}
	id := "ecs-execute-command-" + randomHex(13)
	s := &execSession{ExecSession: ExecSession{ID: id, TaskID: t.id, Container: t.service, Command: command},
		token: randomHex(32), env: map[string]string{}, opts: f.exec.opts, terminate: make(chan struct{})}
	for k, v := range t.env {
		s.env[k] = v
	}
	f.exec.sessions[id] = s
	f.exec.order = append(f.exec.order, id)
	stream := "ws" + strings.TrimPrefix(f.srv.URL, "http") + DataChannelPath + id + "?role=publish_subscribe&cell-number=" + randomHex(8)
	return map[string]any{
		"clusterArn":    f.arn("ecs", "cluster/"+cl),
		"containerArn":  f.containerARN(t),
		"containerName": t.service,
		"interactive":   true,
		"session":       map[string]any{"sessionId": id, "streamUrl": stream, "tokenValue": s.token},
		"taskArn":       t.arn,
	}, nil
}

// ssmWithExec adds SSM TerminateSession (of ECS Exec sessions) to the SSM
// fake.
func (f *Fake) ssmWithExec(op string, in map[string]any) (any, *apiError) {
	if op != "TerminateSession" {
		return f.ssm(op, in)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := str(in, "SessionId")
	s := f.exec.sessions[id]
	if s == nil {
		return nil, errf(400, "DoesNotExistException", "Session %s does not exist.", id)
	}
	// The agent cancels a terminated session's command: it kills the
	// process and closes its terminal (amazon-ssm-agent,
	// agent/session/shell/shell.go, executeCommandsWithPty); the fake
	// interrupts its program the same way (see run).
	if !s.Terminated {
		s.Terminated = true
		close(s.terminate)
	}
	return map[string]any{"SessionId": id}, nil
}

// serveDataChannel accepts a session's WebSocket and runs the agent.
func (f *Fake) serveDataChannel(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, DataChannelPath)
	f.mu.Lock()
	s := f.exec.sessions[id]
	f.mu.Unlock()
	if s == nil || r.URL.Query().Get("role") != "publish_subscribe" {
		http.Error(w, "unknown data channel", http.StatusNotFound)
		return
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
	typ, b, err := conn.Read(octx)
	ocancel()
	if err != nil {
		return
	}
	var open ssmsession.OpenDataChannelInput
	if typ != websocket.MessageText || json.Unmarshal(b, &open) != nil {
		_ = conn.Close(websocket.StatusPolicyViolation, "the first message must be the OpenDataChannelInput JSON text")
		return
	}
	switch {
	case open.MessageSchemaVersion != "1.0" || open.RequestID == "" || open.ClientID == "" || open.ClientVersion == "":
		_ = conn.Close(websocket.StatusPolicyViolation, "incomplete OpenDataChannelInput")
		return
	case open.TokenValue != s.token:
		_ = conn.Close(websocket.StatusPolicyViolation, "invalid token")
		return
	}
	f.mu.Lock()
	busy := s.connected || s.Ended || s.Terminated
	s.connected = true
	s.ClientVersion = open.ClientVersion
	opts := s.opts
	f.mu.Unlock()
	if busy {
		_ = conn.Close(websocket.StatusPolicyViolation, "session already connected or over")
		return
	}
	if opts.AgentVersion == "" {
		opts.AgentVersion = "3.3.1000.0"
	}
	if opts.ResendAfter <= 0 {
		opts.ResendAfter = 100 * time.Millisecond
	}
	a := &agent{f: f, s: s, conn: conn, opts: opts, unacked: map[int64]*agentOut{}, faulted: map[string]bool{},
		early: map[int64]*ssmsession.Message{}, in: make(chan *ssmsession.Message, 256)}
	a.run(ctx)
}

// agent is the agent end of one session.
type agent struct {
	f    *Fake
	s    *execSession
	conn *websocket.Conn
	opts ExecOptions

	writeMu sync.Mutex // orders output sequence numbers and first sends
	seq     int64
	held    [][]byte // delayed messages, sent after the next one

	mu      sync.Mutex // guards unacked and faulted
	unacked map[int64]*agentOut
	faulted map[string]bool // "drop:3": the fault was applied

	// reader goroutine only
	expected int64
	early    map[int64]*ssmsession.Message

	in chan *ssmsession.Message // input, in order
}

type agentOut struct {
	raw  []byte
	sent time.Time
}

// once reports whether fault kind applies to seq for the first time.
func (a *agent) once(kind string, list []int64, seq int64) bool {
	if !slices.Contains(list, seq) {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := kind + ":" + strconv.FormatInt(seq, 10)
	if a.faulted[k] {
		return false
	}
	a.faulted[k] = true
	return true
}

func (a *agent) write(ctx context.Context, raw []byte) {
	_ = a.conn.Write(ctx, websocket.MessageBinary, raw)
}

// emit sends data as output_stream_data messages of at most 1024 bytes.
func (a *agent) emit(ctx context.Context, pt ssmsession.PayloadType, data []byte) {
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	for len(data) > 0 {
		n := min(len(data), 1024)
		chunk := data[:n]
		data = data[n:]
		seq := a.seq
		a.seq++
		m := ssmsession.Message{Type: ssmsession.TypeOutputStreamData, SchemaVersion: 1,
			CreatedDate: uint64(time.Now().UnixMilli()), SequenceNumber: seq, MessageID: ssmsession.NewUUID(),
			PayloadType: pt, Payload: chunk}
		if seq == 0 {
			m.Flags = ssmsession.FlagSYN
		}
		raw, err := m.Marshal()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.unacked[seq] = &agentOut{raw: raw, sent: time.Now()}
		a.mu.Unlock()
		switch {
		case a.once("drop", a.opts.DropOutput, seq):
			continue // the resend loop sends it later
		case a.once("delay", a.opts.DelayOutput, seq):
			a.held = append(a.held, raw)
			continue
		}
		a.write(ctx, raw)
		if a.once("dup", a.opts.DuplicateOutput, seq) {
			a.write(ctx, raw)
		}
		for _, h := range a.held {
			a.write(ctx, h)
		}
		a.held = nil
		if a.opts.HangUpAfter > 0 && seq == a.opts.HangUpAfter {
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
				a.mu.Lock()
				_, unacked := a.unacked[seq]
				a.mu.Unlock()
				if !unacked {
					break
				}
			}
			_ = a.conn.CloseNow()
			return
		}
	}
}

func (a *agent) emitJSON(ctx context.Context, pt ssmsession.PayloadType, v any) {
	b, _ := json.Marshal(v)
	a.emit(ctx, pt, b)
}

func (a *agent) ack(ctx context.Context, m *ssmsession.Message) {
	c, _ := json.Marshal(ssmsession.AcknowledgeContent{MessageType: m.Type, MessageID: m.MessageID.String(),
		SequenceNumber: m.SequenceNumber, IsSequentialMessage: true})
	am := ssmsession.Message{Type: ssmsession.TypeAcknowledge, SchemaVersion: 1, CreatedDate: uint64(time.Now().UnixMilli()),
		Flags: ssmsession.FlagSYN | ssmsession.FlagFIN, MessageID: ssmsession.NewUUID(), Payload: c}
	raw, _ := am.Marshal()
	a.write(ctx, raw)
}

// read handles the client's messages until the connection ends.
func (a *agent) read(ctx context.Context, cancel context.CancelFunc) {
	defer cancel()
	for {
		typ, b, err := a.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		m, err := ssmsession.Parse(b)
		if err != nil {
			continue // unacknowledged: the client resends
		}
		switch m.Type {
		case ssmsession.TypeAcknowledge:
			var c ssmsession.AcknowledgeContent
			if json.Unmarshal(m.Payload, &c) == nil {
				a.mu.Lock()
				delete(a.unacked, c.SequenceNumber)
				a.mu.Unlock()
			}
		case ssmsession.TypeInputStreamData:
			if a.once("ignore", a.opts.IgnoreInput, m.SequenceNumber) {
				continue
			}
			switch {
			case m.SequenceNumber < a.expected:
				a.f.mu.Lock()
				a.s.DuplicateInputs++
				a.f.mu.Unlock()
				a.ack(ctx, m)
				continue
			case m.SequenceNumber > a.expected:
				if _, held := a.early[m.SequenceNumber]; !held {
					a.early[m.SequenceNumber] = m
				}
				a.ack(ctx, m)
				continue
			}
			if !a.once("dropack", a.opts.DropAcks, m.SequenceNumber) {
				a.ack(ctx, m)
			}
			for {
				a.expected++
				select {
				case a.in <- m:
				case <-ctx.Done():
					return
				}
				next, ok := a.early[a.expected]
				if !ok {
					break
				}
				delete(a.early, a.expected)
				m = next
			}
		}
	}
}

// resend sends again the output that stays unacknowledged.
func (a *agent) resend(ctx context.Context) {
	t := time.NewTicker(a.opts.ResendAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		var due []int64
		a.mu.Lock()
		for seq, o := range a.unacked {
			if now.Sub(o.sent) >= a.opts.ResendAfter {
				o.sent = now
				due = append(due, seq)
			}
		}
		raws := make([][]byte, 0, len(due))
		slices.Sort(due)
		for _, seq := range due {
			raws = append(raws, a.unacked[seq].raw)
		}
		a.mu.Unlock()
		if len(raws) > 0 {
			a.f.mu.Lock()
			a.s.ResentOutputs += len(raws)
			a.f.mu.Unlock()
		}
		for _, raw := range raws {
			a.write(ctx, raw)
		}
	}
}

// closeChannel waits (up to 2s) for the output to be acknowledged, then
// sends channel_closed.
func (a *agent) closeChannel(ctx context.Context, output string) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		n := len(a.unacked)
		a.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	c, _ := json.Marshal(ssmsession.ChannelClosed{MessageID: ssmsession.NewUUID().String(),
		CreatedDate: time.Now().UTC().Format(time.RFC3339Nano), DestinationID: a.s.TaskID, SessionID: a.s.ID,
		MessageType: ssmsession.TypeChannelClosed, SchemaVersion: 1, Output: output})
	m := ssmsession.Message{Type: ssmsession.TypeChannelClosed, SchemaVersion: 1, CreatedDate: uint64(time.Now().UnixMilli()),
		Flags: ssmsession.FlagFIN, MessageID: ssmsession.NewUUID(), Payload: c}
	raw, _ := m.Marshal()
	a.writeMu.Lock()
	a.write(ctx, raw)
	a.writeMu.Unlock()
	_ = a.conn.Close(websocket.StatusNormalClosure, "")
}

func (a *agent) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() { defer wg.Done(); a.read(ctx, cancel) }()
	go func() { defer wg.Done(); a.resend(ctx) }()

	// Handshake.
	started := time.Now()
	st, _ := json.Marshal(ssmsession.SessionTypeRequest{SessionType: "InteractiveCommands",
		Properties: map[string]any{"commands": a.s.Command, "runAsElevated": true}})
	req := ssmsession.HandshakeRequest{AgentVersion: a.opts.AgentVersion,
		RequestedClientActions: []ssmsession.RequestedClientAction{{ActionType: ssmsession.ActionSessionType, ActionParameters: st}}}
	if a.opts.KMSKeyID != "" {
		kp, _ := json.Marshal(map[string]string{"KMSKeyId": a.opts.KMSKeyID})
		req.RequestedClientActions = append(req.RequestedClientActions,
			ssmsession.RequestedClientAction{ActionType: ssmsession.ActionKMSEncryption, ActionParameters: kp})
	}
	a.emitJSON(ctx, ssmsession.PayloadHandshakeRequest, req)
	timeout := time.After(10 * time.Second)
	for {
		var m *ssmsession.Message
		select {
		case <-ctx.Done():
			return
		case <-timeout:
			a.closeChannel(ctx, "Handshake timed out. Please ensure that you have the latest version of the session manager plugin.")
			return
		case m = <-a.in:
		}
		if m.PayloadType != ssmsession.PayloadHandshakeResponse {
			continue // stream data before the handshake is ignored, as the agent does
		}
		var resp ssmsession.HandshakeResponse
		if err := json.Unmarshal(m.Payload, &resp); err != nil || resp.ClientVersion == "" {
			a.closeChannel(ctx, "invalid handshake response")
			return
		}
		for _, pa := range resp.ProcessedClientActions {
			if pa.ActionStatus != ssmsession.ActionSuccess {
				a.closeChannel(ctx, fmt.Sprintf("%s failed on client with status %d error: %s", pa.ActionType, pa.ActionStatus, pa.Error))
				return
			}
		}
		break
	}
	a.emitJSON(ctx, ssmsession.PayloadHandshakeComplete, ssmsession.HandshakeComplete{HandshakeTimeToComplete: time.Since(started)})

	// The command.
	term := newTerminal()
	p := &program{a: a, ctx: ctx, term: term, env: a.s.env}
	done := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		words, err := splitWords(a.s.Command)
		switch {
		case err != nil:
			p.stderr("fakeaws: cannot parse command: " + err.Error() + "\n")
			done <- 1
		case len(words) == 0:
			done <- 0
		default:
			done <- p.run(words)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return // the client went away: the program sees a hang-up
		case <-a.s.terminate:
			term.interrupt()
			code := <-done
			a.finish(ctx, code, fmt.Sprintf("Session %s was terminated.", a.s.ID))
			return
		case code := <-done:
			a.finish(ctx, code, "")
			return
		case m := <-a.in:
			a.input(ctx, term, m)
		}
	}
}

func (a *agent) finish(ctx context.Context, code int, output string) {
	if a.opts.SendExitCode {
		a.emit(ctx, ssmsession.PayloadExitCode, []byte("EXIT_CODE: "+strconv.Itoa(code)))
	}
	a.f.mu.Lock()
	a.s.Ended, a.s.ExitCode = true, code
	a.f.mu.Unlock()
	a.closeChannel(ctx, output)
}

// input handles one in-order input message after the handshake.
func (a *agent) input(ctx context.Context, term *terminal, m *ssmsession.Message) {
	switch m.PayloadType {
	case ssmsession.PayloadSize:
		var sz ssmsession.SizeData
		if json.Unmarshal(m.Payload, &sz) != nil {
			return
		}
		term.resize(int(sz.Cols), int(sz.Rows))
		a.f.mu.Lock()
		a.s.Sizes = append(a.s.Sizes, TermSize{Cols: int(sz.Cols), Rows: int(sz.Rows)})
		a.f.mu.Unlock()
	case ssmsession.PayloadOutput:
		a.f.mu.Lock()
		a.s.Input = append(a.s.Input, m.Payload...)
		a.f.mu.Unlock()
		term.input(m.Payload, func(echo []byte) { a.emit(ctx, ssmsession.PayloadOutput, echo) })
	case ssmsession.PayloadFlag:
		if len(m.Payload) == 4 && m.Payload[3] == 2 { // TerminateSession
			term.interrupt()
		}
	}
}
