package fakeaws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/ssmsession"
)

// noLeaks checks, when the test is over (after every other cleanup), that
// the fake's agent goroutines have ended.
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, opt,
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
	})
}

func ecsCall(t *testing.T, f *Fake, op, body string) map[string]any {
	t.Helper()
	st, _, b := post(t, f.URL(), "AmazonEC2ContainerServiceV20141113."+op, []byte(body), testAuth)
	if st != 200 {
		t.Fatalf("%s: %d %s", op, st, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// execFake starts a fake with service web (exec enabled, environment
// GREETING=hi) running one task, and returns the task id.
func execFake(t *testing.T, o ExecOptions) (*Fake, string) {
	t.Helper()
	noLeaks(t)
	f := New(Options{})
	t.Cleanup(f.Close)
	f.SetExec(o)
	ecsCall(t, f, "RegisterTaskDefinition", `{"family":"web","taskRoleArn":"arn:aws:iam::123456789012:role/r",
		"containerDefinitions":[{"name":"web","image":"nginx","environment":[{"name":"GREETING","value":"hi there"}]}]}`)
	ecsCall(t, f, "CreateService", `{"serviceName":"web","taskDefinition":"web","desiredCount":1,"enableExecuteCommand":true}`)
	for range 2 {
		ecsCall(t, f, "DescribeServices", `{"services":["web"]}`)
	}
	running := f.Service("default", "web").RunningTasks
	if len(running) != 1 {
		t.Fatalf("running tasks %v", running)
	}
	return f, running[0]
}

type session struct{ id, url, token string }

func startExec(t *testing.T, f *Fake, task, command string) session {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"cluster": "default", "task": task, "container": "web", "interactive": true, "command": command})
	out := ecsCall(t, f, "ExecuteCommand", string(in))
	s := obj(out, "session")
	return session{str(s, "sessionId"), str(s, "streamUrl"), str(s, "tokenValue")}
}

func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestExecuteCommandWireExample replays testdata/ecs_execute_command.json
// and then runs a session on the stream URL the example returned.
func TestExecuteCommandWireExample(t *testing.T) {
	noLeaks(t)
	b, err := os.ReadFile("testdata/ecs_execute_command.json")
	if err != nil {
		t.Fatal(err)
	}
	var c wireCase
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	f := New(Options{})
	t.Cleanup(f.Close)
	var sess map[string]any
	for i, s := range c.Steps {
		status, _, body := post(t, f.URL(), s.Target, s.Request, testAuth)
		if status != s.Status {
			t.Fatalf("step %d %s: status %d, want %d: %s", i, s.Target, status, s.Status, body)
		}
		var got map[string]any
		_ = json.Unmarshal(body, &got)
		if err := match("response", s.Response, got); err != nil {
			t.Fatalf("step %d %s: %v\nbody: %s", i, s.Target, err, body)
		}
		if strings.HasSuffix(s.Target, ".ExecuteCommand") && status == 200 && sess == nil {
			sess = obj(got, "session") // the first session: /bin/sh
		}
	}
	if !strings.HasPrefix(str(sess, "sessionId"), "ecs-execute-command-") ||
		!strings.Contains(str(sess, "streamUrl"), DataChannelPath+str(sess, "sessionId")+"?role=publish_subscribe") {
		t.Fatalf("session %v", sess)
	}
	// The example's command, /bin/sh, is not one the fake runs.
	var out bytes.Buffer
	if _, err := ssmsession.Run(runCtx(t), str(sess, "streamUrl"), str(sess, "tokenValue"), ssmsession.Options{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if want := "exec: \"/bin/sh\": executable file not found in $PATH\r\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// TestExecInterpreter runs one-shot commands through the agent with the
// real client and checks their output (as a terminal sends it) and the
// exit code the fake records.
func TestExecInterpreter(t *testing.T) {
	cases := []struct {
		command, stdin string
		sendExit       bool
		stdout, stderr string
		code           int
	}{
		{command: `echo hello 'big world' "a\"b" c\ d`, stdout: "hello big world a\"b c d\r\n"},
		{command: `printenv GREETING`, stdout: "hi there\r\n"},
		{command: `printenv NOPE`, code: 1},
		{command: `sh -c 'echo one; exit 3'`, stdout: "one\r\n", code: 3},
		{command: `sh -c 'exit 3'`, sendExit: true, code: 3},
		{command: `nosuch arg`, stdout: "exec: \"nosuch\": executable file not found in $PATH\r\n", code: 127},
		{command: `nosuch`, sendExit: true, stderr: "exec: \"nosuch\": executable file not found in $PATH\r\n", code: 127},
		{command: `cat`, stdin: "hello\n", stdout: "hello\r\nhello\r\n"}, // the terminal echoes, then cat
		{command: `true # a comment`},
	}
	for _, c := range cases {
		t.Run(c.command, func(t *testing.T) {
			f, task := execFake(t, ExecOptions{SendExitCode: c.sendExit})
			s := startExec(t, f, task, c.command)
			var out, errOut bytes.Buffer
			opts := ssmsession.Options{Stdout: &out, Stderr: &errOut, EOFSendsEOT: true}
			if c.stdin != "" {
				opts.Stdin = strings.NewReader(c.stdin)
			}
			res, err := ssmsession.Run(runCtx(t), s.url, s.token, opts)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != c.stdout || errOut.String() != c.stderr {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), c.stdout, c.stderr)
			}
			if c.sendExit {
				if res.ExitCode == nil || *res.ExitCode != c.code {
					t.Errorf("sent exit code %v, want %d", res.ExitCode, c.code)
				}
			} else if res.ExitCode != nil {
				t.Errorf("an ECS-like agent sent exit code %d", *res.ExitCode)
			}
			got := f.ExecSessions()
			if len(got) != 1 || !got[0].Ended || got[0].ExitCode != c.code || got[0].Command != c.command ||
				got[0].ClientVersion != ssmsession.DefaultClientVersion || got[0].TaskID != task {
				t.Errorf("sessions %+v", got)
			}
			if res.SessionType != "InteractiveCommands" || res.CloseOutput != "" {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// promptWriter signals each time the output ends with the sh prompt.
type promptWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prompt chan struct{}
}

func (w *promptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.HasSuffix(w.buf.Bytes(), []byte("$ ")) {
		w.prompt <- struct{}{}
	}
	return len(p), nil
}

func (w *promptWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestExecInteractiveShell types into sh: the size reaches the agent,
// stty size reports it, exit ends the session.
func TestExecInteractiveShell(t *testing.T) {
	f, task := execFake(t, ExecOptions{})
	s := startExec(t, f, task, "sh")
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	w := &promptWriter{prompt: make(chan struct{}, 4)}
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 132, Rows: 43}
	done := make(chan error, 1)
	go func() {
		_, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{Stdin: pr, Stdout: w, Resize: resize})
		done <- err
	}()
	<-w.prompt
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ss := f.ExecSessions(); len(ss[0].Sizes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the size did not reach the agent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, _ = io.WriteString(pw, "stty size\r")
	<-w.prompt
	_, _ = io.WriteString(pw, "exit 4\r")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := "$ stty size\r\n43 132\r\n$ exit 4\r\n"; w.String() != want {
		t.Errorf("terminal %q, want %q", w.String(), want)
	}
	ss := f.ExecSessions()
	if !reflect.DeepEqual(ss[0].Sizes, []TermSize{{132, 43}}) || ss[0].ExitCode != 4 || string(ss[0].Input) != "stty size\rexit 4\r" {
		t.Errorf("session %+v", ss[0])
	}
}

// TestExecFaults makes the agent lose, repeat and reorder messages in
// both directions; the output must still arrive once, in order, and the
// input be processed once.
func TestExecFaults(t *testing.T) {
	// Output faults use cat; input faults a cat that starts late, so that
	// the session lasts past the client's retransmission timeout.
	const slowCat = "sh -c 'sleep 0.5; cat'"
	cases := []struct {
		name, command string
		o             ExecOptions
		check         func(res ssmsession.Result, ss ExecSession) string
	}{
		{"output dropped", "cat", ExecOptions{DropOutput: []int64{2, 3}}, func(res ssmsession.Result, ss ExecSession) string {
			if ss.ResentOutputs < 2 {
				return "the agent did not resend the dropped messages"
			}
			return ""
		}},
		{"output duplicated", "cat", ExecOptions{DuplicateOutput: []int64{1, 2, 3}}, func(res ssmsession.Result, ss ExecSession) string {
			if res.Duplicates < 3 {
				return "the client did not see the duplicates"
			}
			return ""
		}},
		{"output reordered", "cat", ExecOptions{DelayOutput: []int64{2, 3}}, func(ssmsession.Result, ExecSession) string { return "" }},
		{"input ignored", slowCat, ExecOptions{IgnoreInput: []int64{0, 1}}, func(res ssmsession.Result, ss ExecSession) string {
			if res.Resent < 2 {
				return "the client did not resend the ignored input"
			}
			return ""
		}},
		{"acks dropped", slowCat, ExecOptions{DropAcks: []int64{0, 1}}, func(res ssmsession.Result, ss ExecSession) string {
			if res.Resent < 2 || ss.DuplicateInputs < 2 {
				return "the client did not resend, or the agent did not see the copies"
			}
			return ""
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, task := execFake(t, c.o)
			s := startExec(t, f, task, c.command)
			var out bytes.Buffer
			// Three input messages: the handshake response (0), the line
			// (1), ^D (2); the command's output starts at the agent's 2.
			res, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{
				Stdin: strings.NewReader("one two three\n"), Stdout: &out, EOFSendsEOT: true, ResendTick: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if want := "one two three\r\none two three\r\n"; out.String() != want {
				t.Errorf("output %q, want %q", out.String(), want)
			}
			ss := f.ExecSessions()[0]
			if string(ss.Input) != "one two three\n\x04" || !ss.Ended {
				t.Errorf("agent processed %q (ended %v)", ss.Input, ss.Ended)
			}
			if msg := c.check(res, ss); msg != "" {
				t.Errorf("%s: client %+v, agent %+v", msg, res, ss)
			}
		})
	}
}

// TestExecRefusals: the channel's token, its single use, KMS, a task
// without exec, a stopped agent, TerminateSession.
func TestExecRefusals(t *testing.T) {
	t.Run("bad token", func(t *testing.T) {
		f, task := execFake(t, ExecOptions{})
		s := startExec(t, f, task, "echo x")
		if _, err := ssmsession.Run(runCtx(t), s.url, "wrong", ssmsession.Options{}); err == nil || !strings.Contains(err.Error(), "invalid token") {
			t.Fatalf("Run with a wrong token = %v", err)
		}
	})
	t.Run("second connection", func(t *testing.T) {
		f, task := execFake(t, ExecOptions{})
		s := startExec(t, f, task, "echo x")
		if _, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{}); err == nil {
			t.Fatal("a finished session accepted a second connection")
		}
	})
	t.Run("unknown channel", func(t *testing.T) {
		f, _ := execFake(t, ExecOptions{})
		resp, err := http.Get(f.URL() + DataChannelPath + "nope?role=publish_subscribe")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("KMS", func(t *testing.T) {
		f, task := execFake(t, ExecOptions{KMSKeyID: "arn:aws:kms:us-east-1:123456789012:key/abc"})
		s := startExec(t, f, task, "echo x")
		_, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{})
		if !errors.Is(err, ssmsession.ErrKMSEncryption) {
			t.Fatalf("Run = %v, want ErrKMSEncryption", err)
		}
		if ss := f.ExecSessions()[0]; ss.Ended {
			t.Error("the command ran although the handshake failed")
		}
	})
	t.Run("not connected", func(t *testing.T) {
		f, task := execFake(t, ExecOptions{NotConnected: true})
		in, _ := json.Marshal(map[string]any{"task": task, "interactive": true, "command": "ls"})
		st, _, b := post(t, f.URL(), "AmazonEC2ContainerServiceV20141113.ExecuteCommand", in, testAuth)
		if st != 400 || !strings.Contains(string(b), "TargetNotConnectedException") {
			t.Errorf("%d %s", st, b)
		}
	})
	t.Run("terminated", func(t *testing.T) {
		f, task := execFake(t, ExecOptions{})
		s := startExec(t, f, task, "sleep 30")
		done := make(chan ssmsession.Result, 1)
		go func() {
			res, err := ssmsession.Run(runCtx(t), s.url, s.token, ssmsession.Options{})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		for deadline := time.Now().Add(5 * time.Second); f.ExecSessions()[0].ClientVersion == ""; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no connection")
			}
		}
		st, _, b := post(t, f.URL(), "AmazonSSM.TerminateSession", []byte(`{"SessionId":"`+s.id+`"}`), testAuth)
		if st != 200 || !strings.Contains(string(b), s.id) {
			t.Fatalf("TerminateSession: %d %s", st, b)
		}
		res := <-done
		if !strings.Contains(res.CloseOutput, "was terminated") {
			t.Errorf("close output %q", res.CloseOutput)
		}
		if ss := f.ExecSessions()[0]; !ss.Terminated || ss.ExitCode != 130 {
			t.Errorf("session %+v", ss)
		}
	})
}

// TestSplitWords pins the agent's command splitting (google/shlex).
func TestSplitWords(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: `echo a  b`, want: []string{"echo", "a", "b"}},
		{in: `'a b' "c d" e\ f`, want: []string{"a b", "c d", "e f"}},
		{in: `'' x`, want: []string{"", "x"}},
		{in: `'it'\''s'`, want: []string{"it's"}},
		{in: `"a\"b\\c"`, want: []string{`a"b\c`}},
		{in: `a#b #c d`, want: []string{"a#b"}},
		{in: "a 'multi\nline'", want: []string{"a", "multi\nline"}},
		{in: `'open`, err: true},
		{in: `"open`, err: true},
		{in: `tail\`, err: true},
	}
	for _, c := range cases {
		got, err := splitWords(c.in)
		if (err != nil) != c.err || (!c.err && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("splitWords(%q) = %q, %v; want %q (error %v)", c.in, got, err, c.want, c.err)
		}
	}
}
