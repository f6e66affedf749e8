package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/provider/aws/ssmsession"
	"github.com/alphaswarm/controller/workload"
)

const testTaskRole = "arn:aws:iam::123456789012:role/webTaskRole"

// execTarget opens a provider on a fresh fake with ECS Exec on (the
// options in extra override), and checks after every other cleanup that
// no session goroutine outlived its test.
func execTarget(t *testing.T, extra map[string]any) (*Provider, *fakeaws.Fake) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, opt,
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
	})
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	return openTarget(t, f, extra), f
}

// openTarget opens another provider on fake f.
func openTarget(t *testing.T, f *fakeaws.Fake, extra map[string]any) *Provider {
	t.Helper()
	opts := map[string]any{"subnets": []string{"subnet-0abc"}, "baseEndpoint": f.URL(), "pollInterval": "20ms",
		"maxAttempts": 2, "enableExecuteCommand": true, "taskRoleArn": testTaskRole}
	for k, v := range extra {
		if v == nil {
			delete(opts, k)
		} else {
			opts[k] = v
		}
	}
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		raw[k], _ = json.Marshal(v)
	}
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "prod", Provider: Name, Options: raw},
		credentials.FromMap(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*Provider).Close() })
	// The permission check's requests are made before this returns, so
	// that the goroutines they leave (idle connections) are not taken
	// for leaks of a later target's test.
	if first := p.(*Provider).accessFirst; first != nil {
		<-first
	}
	return p.(*Provider)
}

func execCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startWeb starts service web with one replica and returns its task id.
func startWeb(t *testing.T, p *Provider, f *fakeaws.Fake) string {
	t.Helper()
	spec := workload.DeploymentSpec{Name: "web", Target: "prod", Image: "public.ecr.aws/docker/library/nginx:1.27",
		Replicas: 1, Env: map[string]string{"MODE": "prod"}, Resources: workload.Resources{CPU: "250m", Memory: "512Mi"}}
	st, err := p.Start(execCtx(t), spec)
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start: %v (%+v)", err, st)
	}
	tasks := f.Service("default", "web").RunningTasks
	if len(tasks) != 1 {
		t.Fatalf("running tasks %v", tasks)
	}
	return tasks[0]
}

// TestExecOneShot runs commands without a terminal through the real ECS
// client and the Session Manager client against the fake agent.
func TestExecOneShot(t *testing.T) {
	tricky := []string{"echo", "it's", "#not-a-comment", "", `a"b`, "$HOME", `back\slash`, "two\nlines", "tab\there"}
	cases := []struct {
		name     string
		command  []string
		stdin    string
		sendExit bool
		stdout   string
		stderr   string
		code     int // the result's
		ran      int // the exit code the fake's command had
	}{
		{name: "echo", command: []string{"echo", "hello", "big world"}, stdout: "hello big world\n"},
		{name: "quoting", command: tricky, stdout: strings.Join(tricky[1:], " ") + "\n"},
		{name: "task environment", command: []string{"printenv", "MODE", "ALPHASWARM_SERVICE"}, stdout: "prod\nweb\n"},
		// The terminal echoes the input, then cat writes it.
		{name: "stdin", command: []string{"cat"}, stdin: "hello\n", stdout: "hello\nhello\n"},
		{name: "stdin without a final newline", command: []string{"cat"}, stdin: "partial", stdout: "partialpartial"},
		// ECS's agent does not send the exit code: 0 is reported.
		{name: "failure unobservable", command: []string{"sh", "-c", "echo bye; exit 3"}, stdout: "bye\n", code: 0, ran: 3},
		// An agent that does send it (see fakeaws.ExecOptions.SendExitCode).
		{name: "exit code sent", command: []string{"sh", "-c", "exit 3"}, sendExit: true, code: 3, ran: 3},
		{name: "stderr sent apart", command: []string{"nosuch"}, sendExit: true,
			stderr: "exec: \"nosuch\": executable file not found in $PATH\n", code: 127, ran: 127},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := execTarget(t, nil)
			task := startWeb(t, p, f)
			f.SetExec(fakeaws.ExecOptions{SendExitCode: c.sendExit})
			var out, errOut bytes.Buffer
			req := provider.ExecRequest{Command: c.command, Stdout: &out, Stderr: &errOut}
			if c.stdin != "" {
				req.Stdin = strings.NewReader(c.stdin)
			}
			res, err := provider.Exec(execCtx(t), p, "web", req)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != c.stdout || errOut.String() != c.stderr {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), c.stdout, c.stderr)
			}
			if res.ExitCode != c.code || res.Instance != task {
				t.Errorf("result %+v, want exit %d in %s", res, c.code, task)
			}
			ss := f.ExecSessions()
			if len(ss) != 1 || ss[0].ExitCode != c.ran || !ss[0].Ended || ss[0].TaskID != task || ss[0].Container != "web" {
				t.Errorf("fake sessions %+v", ss)
			}
		})
	}
}

// prompted collects terminal output and signals each "$ " prompt.
type prompted struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prompt chan struct{}
}

func (w *prompted) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.HasSuffix(w.buf.Bytes(), []byte("$ ")) {
		w.prompt <- struct{}{}
	}
	return len(p), nil
}

func (w *prompted) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestExecInteractive drives sh on a terminal: the initial size and a
// resize reach the agent (stty size sees them), input is typed, output
// comes back raw (CRLF), exit ends the session.
func TestExecInteractive(t *testing.T) {
	p, f := execTarget(t, nil)
	startWeb(t, p, f)
	stdin, typist := io.Pipe()
	t.Cleanup(func() { typist.Close() })
	term := &prompted{prompt: make(chan struct{}, 8)}
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 132, Rows: 43}
	type result struct {
		res provider.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := provider.Exec(execCtx(t), p, "web", provider.ExecRequest{Command: []string{"sh"}, TTY: true,
			Stdin: stdin, Stdout: term, Resize: resize})
		done <- result{res, err}
	}()
	sizes := func(n int) func() bool {
		return func() bool { ss := f.ExecSessions(); return len(ss) == 1 && len(ss[0].Sizes) == n }
	}
	<-term.prompt
	waitFor(t, "the first size", sizes(1))
	_, _ = io.WriteString(typist, "stty size\r")
	<-term.prompt
	resize <- provider.TermSize{Cols: 80, Rows: 25}
	waitFor(t, "the resize", sizes(2))
	_, _ = io.WriteString(typist, "stty size\r")
	<-term.prompt
	_, _ = io.WriteString(typist, "exit\r")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "$ stty size\r\n43 132\r\n$ stty size\r\n25 80\r\n$ exit\r\n"; term.String() != want {
		t.Errorf("terminal %q, want %q", term.String(), want)
	}
	ss := f.ExecSessions()[0]
	if len(ss.Sizes) != 2 || ss.Sizes[0] != (fakeaws.TermSize{Cols: 132, Rows: 43}) || ss.Sizes[1] != (fakeaws.TermSize{Cols: 80, Rows: 25}) {
		t.Errorf("sizes %+v", ss.Sizes)
	}
	if ss.Command != "sh" || r.res.ExitCode != 0 {
		t.Errorf("session %+v, result %+v", ss, r.res)
	}
}

// TestExecLossyChannel: the agent drops, repeats and reorders its output,
// ignores and leaves unacknowledged some input; the output still arrives
// once and in order, the input is run once.
func TestExecLossyChannel(t *testing.T) {
	p, f := execTarget(t, nil)
	startWeb(t, p, f)
	f.SetExec(fakeaws.ExecOptions{DropOutput: []int64{2}, DuplicateOutput: []int64{1, 3}, DelayOutput: []int64{4},
		IgnoreInput: []int64{1}, DropAcks: []int64{0, 2}, ResendAfter: 50 * time.Millisecond})
	var out bytes.Buffer
	input := "first line\nsecond line\n"
	res, err := provider.Exec(execCtx(t), p, "web", provider.ExecRequest{
		Command: []string{"sh", "-c", "sleep 0.6; cat; echo done"}, Stdin: strings.NewReader(input), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	want := input + input + "done\n" // the terminal's echo, then cat's copy
	if out.String() != want || res.ExitCode != 0 {
		t.Errorf("output %q exit %d, want %q", out.String(), res.ExitCode, want)
	}
	ss := f.ExecSessions()[0]
	if string(ss.Input) != input+"\x04" || ss.ResentOutputs == 0 || ss.DuplicateInputs == 0 {
		t.Errorf("agent: input %q, %d outputs resent, %d duplicate inputs", ss.Input, ss.ResentOutputs, ss.DuplicateInputs)
	}
}

// TestExecRefused covers what keeps a command from running, and the code
// each gets.
func TestExecRefused(t *testing.T) {
	cases := []struct {
		name     string
		extra    map[string]any
		fake     fakeaws.ExecOptions
		setup    func(t *testing.T, p *Provider, f *fakeaws.Fake)
		instance bool // ask for the running task by id
		service  string
		req      provider.ExecRequest
		want     workload.Code
		mention  string
	}{
		{name: "target without exec", extra: map[string]any{"enableExecuteCommand": nil},
			want: workload.Unsupported, mention: "enableExecuteCommand: true"},
		{name: "exec without a task role", extra: map[string]any{"taskRoleArn": nil}, want: workload.Unsupported, mention: "needs taskRoleArn"},
		{name: "unknown service", service: "nope", want: workload.NotFound, mention: "nope"},
		{name: "no command", req: provider.ExecRequest{Command: []string{}}, want: workload.InvalidArgument, mention: "command"},
		{name: "unknown task", req: provider.ExecRequest{Instance: "0123456789abcdef0123456789abcdef"}, want: workload.NotFound,
			mention: "no running task 0123456789abcdef0123456789abcdef"},
		{name: "agent not connected", fake: fakeaws.ExecOptions{NotConnected: true}, want: workload.Unavailable,
			mention: "ssmmessages:CreateControlChannel"},
		{name: "KMS encryption", fake: fakeaws.ExecOptions{KMSKeyID: "arn:aws:kms:us-east-1:123456789012:key/k"},
			want: workload.Unsupported, mention: "KMS"},
		{name: "agent starting", fake: fakeaws.ExecOptions{AgentStatus: "PENDING"}, want: workload.Unavailable,
			mention: "agents of service web's tasks are not running yet"},
		{name: "agent of the task asked for starting", fake: fakeaws.ExecOptions{AgentStatus: "PENDING"},
			instance: true,
			want:     workload.Unavailable, mention: "is PENDING, not RUNNING"},
		{name: "agent stopped, DescribeTasks behind", fake: fakeaws.ExecOptions{AgentNotRunning: true}, want: workload.Unavailable,
			mention: "its ECS Exec agent is not running"},
		{name: "service started before exec was turned on", setup: func(t *testing.T, p *Provider, f *fakeaws.Fake) {
			f.DeleteService("default", "web")
			startWeb(t, openTarget(t, f, map[string]any{"enableExecuteCommand": nil}), f)
		}, want: workload.Unsupported, mention: "service web was started without enableExecuteCommand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := execTarget(t, c.extra)
			if p.opts.EnableExecuteCommand && p.opts.TaskRoleArn != "" {
				task := startWeb(t, p, f)
				if c.instance {
					c.req.Instance = task
				}
			}
			if c.setup != nil {
				c.setup(t, p, f)
			}
			f.SetExec(c.fake)
			if c.service == "" {
				c.service = "web"
			}
			if c.req.Command == nil {
				c.req.Command = []string{"echo", "x"}
			}
			_, err := provider.Exec(execCtx(t), p, c.service, c.req)
			if workload.CodeOf(err) != c.want || err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("Exec = %v (code %s), want %s mentioning %q", err, workload.CodeOf(err), c.want, c.mention)
			}
			if c.want == workload.Unsupported && !errors.Is(err, errors.ErrUnsupported) {
				t.Errorf("%v does not wrap errors.ErrUnsupported", err)
			}
			for _, s := range f.ExecSessions() {
				if s.Ended {
					t.Errorf("a refused exec ran %q", s.Command)
				}
			}
		})
	}
}

// TestExecCapabilities: the target's options decide whether exec is
// declared, with a reason.
func TestExecCapabilities(t *testing.T) {
	for _, c := range []struct {
		extra  map[string]any
		reason string
	}{
		{nil, ""},
		{map[string]any{"enableExecuteCommand": nil}, "does not turn on ECS Exec"},
		{map[string]any{"taskRoleArn": nil}, "needs taskRoleArn"},
	} {
		p, _ := execTarget(t, c.extra)
		for _, cp := range provider.Capabilities(p) {
			if cp.Op == provider.OpExec && (cp.Supported != (c.reason == "") || !strings.Contains(cp.Reason, c.reason)) {
				t.Errorf("options %v: exec capability %+v, want reason %q", c.extra, cp, c.reason)
			}
		}
	}
}

// TestExecInstanceAndToggle: a task picked by id; turning exec on for a
// running service through Start (unchanged spec) rolls new tasks that
// have it; the task definition carries the task role and an init process.
func TestExecInstanceAndToggle(t *testing.T) {
	on, f := execTarget(t, nil)
	before := startWeb(t, openTarget(t, f, map[string]any{"enableExecuteCommand": nil}), f)
	regs := f.Requests("ecs.RegisterTaskDefinition")
	after := startWeb(t, on, f)
	if after == before || f.Requests("ecs.RegisterTaskDefinition") != regs+1 {
		t.Fatalf("Start with exec turned on: task %s -> %s, %d registrations", before, after, f.Requests("ecs.RegisterTaskDefinition")-regs)
	}
	td := f.TaskDefinition(f.Service("default", "web").TaskDef)
	c0 := td["containerDefinitions"].([]any)[0].(map[string]any)
	if td["taskRoleArn"] != testTaskRole || c0["linuxParameters"].(map[string]any)["initProcessEnabled"] != true {
		t.Errorf("task definition: role %v, linuxParameters %v", td["taskRoleArn"], c0["linuxParameters"])
	}
	// Unchanged spec and options: nothing is registered or rolled.
	if again := startWeb(t, on, f); again != after || f.Requests("ecs.RegisterTaskDefinition") != regs+1 {
		t.Errorf("an unchanged Start rolled: %s -> %s", after, again)
	}
	var out bytes.Buffer
	res, err := on.Exec(execCtx(t), "web", provider.ExecRequest{Instance: after, Command: []string{"echo", "hi"}, Stdout: &out})
	if err != nil || res.Instance != after || out.String() != "hi\n" {
		t.Fatalf("Exec in %s: %+v %q %v", after, res, out.String(), err)
	}
}

// TestExecCancelTerminates: when the caller gives up, the session is
// terminated through SSM so that the command does not linger.
func TestExecCancelTerminates(t *testing.T) {
	p, f := execTarget(t, nil)
	startWeb(t, p, f)
	ctx, cancel := context.WithCancel(execCtx(t))
	go func() {
		waitFor(t, "the session", func() bool { ss := f.ExecSessions(); return len(ss) == 1 && ss[0].ClientVersion != "" })
		cancel()
	}()
	start := time.Now()
	res, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"sleep", "30"}})
	if err == nil || !errors.Is(err, context.Canceled) || workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Exec = %v (code %s), want a cancellation", err, workload.CodeOf(err))
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("Exec took %s after the cancellation", time.Since(start))
	}
	if ss := f.ExecSessions()[0]; !ss.Terminated || f.Requests("ssm.TerminateSession") != 1 {
		t.Errorf("session %+v, %d TerminateSession calls", ss, f.Requests("ssm.TerminateSession"))
	}
	// Issue 16: the result says what became of the command.
	if res.Orphan == nil || !res.Orphan.Ended || !strings.Contains(res.Orphan.Detail, "TerminateSession "+f.ExecSessions()[0].ID+" accepted") {
		t.Errorf("orphan %+v, want ended by TerminateSession", res.Orphan)
	}
}

// TestExecOrphanLeftRunning: when TerminateSession is refused the command
// is reported left running, with the refusal.
func TestExecOrphanLeftRunning(t *testing.T) {
	p, f := execTarget(t, map[string]any{"checkPermissions": false})
	startWeb(t, p, f)
	f.SetPolicies(map[string][]fakeaws.Statement{f.DefaultCaller(): {
		{Effect: "Allow", Action: []string{"ecs:*"}},
		{Effect: "Deny", Action: []string{"ssm:TerminateSession"}},
	}})
	ctx, cancel := context.WithCancel(execCtx(t))
	go func() {
		waitFor(t, "the session", func() bool { ss := f.ExecSessions(); return len(ss) == 1 && ss[0].ClientVersion != "" })
		cancel()
	}()
	res, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"sleep", "30"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want a cancellation", err)
	}
	if res.Orphan == nil || res.Orphan.Ended || !strings.Contains(res.Orphan.Detail, "left running") ||
		!strings.Contains(res.Orphan.Detail, "AccessDeniedException") {
		t.Errorf("orphan %+v, want left running with the refusal", res.Orphan)
	}
	if ss := f.ExecSessions()[0]; ss.Terminated {
		t.Errorf("session %+v terminated although TerminateSession was refused", ss)
	}
}

// TestExecChannelDrop: a WebSocket that drops before the session ended is
// unavailable, and the session is terminated.
func TestExecChannelDrop(t *testing.T) {
	p, f := execTarget(t, nil)
	startWeb(t, p, f)
	f.SetExec(fakeaws.ExecOptions{HangUpAfter: 2})
	var out bytes.Buffer
	_, err := p.Exec(execCtx(t), "web", provider.ExecRequest{Command: []string{"sh", "-c", "echo one; sleep 5"}, Stdout: &out})
	if workload.CodeOf(err) != workload.Unavailable || !errors.Is(err, ssmsession.ErrChannelClosed) {
		t.Fatalf("Exec = %v (code %s), want unavailable: channel closed", err, workload.CodeOf(err))
	}
	// The fake drops the channel once "one" is acknowledged: it was
	// received, so it is written, and nothing after it.
	if out.String() != "one\n" {
		t.Errorf("output before the drop %q, want %q", out.String(), "one\n")
	}
	if ss := f.ExecSessions()[0]; !ss.Terminated || f.Requests("ssm.TerminateSession") != 1 {
		t.Errorf("session %+v, %d TerminateSession calls", ss, f.Requests("ssm.TerminateSession"))
	}
}

// TestExecNilStdin: without a terminal, no Stdin is an empty input: its
// end reaches the command, which does not wait for more.
func TestExecNilStdin(t *testing.T) {
	p, f := execTarget(t, nil)
	startWeb(t, p, f)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	res, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"sh", "-c", "cat; echo done"}, Stdout: &out})
	if err != nil {
		t.Fatalf("Exec = %v after %s", err, time.Since(start))
	}
	if out.String() != "done\n" || res.ExitCode != 0 {
		t.Errorf("output %q exit %d", out.String(), res.ExitCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Exec took %s", d)
	}
	if ss := f.ExecSessions(); len(ss) != 1 || string(ss[0].Input) != "\x04" || !ss[0].Ended {
		t.Errorf("fake sessions %+v, want input Ctrl-D only", ss)
	}
}

// TestExecManyTasks: the task asked for is found beyond ListTasks's
// first page (100 tasks).
func TestExecManyTasks(t *testing.T) {
	p, f := execTarget(t, nil)
	spec := workload.DeploymentSpec{Name: "web", Target: "prod", Image: "public.ecr.aws/docker/library/nginx:1.27",
		Replicas: 105, Resources: workload.Resources{CPU: "250m", Memory: "512Mi"}}
	// Status reads every ListTasks page: all 105 tasks are ready.
	st, err := p.Start(execCtx(t), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.Phase != workload.Running || st.Replicas.Ready != 105 {
		t.Errorf("Start = %s with %d ready, want Running with 105", st.Phase, st.Replicas.Ready)
	}
	tasks := f.Service("default", "web").RunningTasks
	if len(tasks) != 105 {
		t.Fatalf("%d running tasks", len(tasks))
	}
	// The fake lists tasks by ARN, which ends with the id: the greatest
	// id is on the second page.
	last := slices.Max(tasks)
	lists := f.Requests("ecs.ListTasks")
	var out bytes.Buffer
	res, err := p.Exec(execCtx(t), "web", provider.ExecRequest{Instance: last, Command: []string{"echo", "hi"}, Stdout: &out})
	if err != nil || res.Instance != last || out.String() != "hi\n" {
		t.Fatalf("Exec in %s: %+v %q %v", last, res, out.String(), err)
	}
	if n := f.Requests("ecs.ListTasks") - lists; n != 2 {
		t.Errorf("%d ListTasks calls, want 2 pages", n)
	}
}

func TestJoinCommand(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ls", "-la", "/var/log"}, "ls -la /var/log"},
		{[]string{"printenv", "KEY_1"}, "printenv KEY_1"},
		{[]string{"echo", "two words"}, "echo 'two words'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"echo", "#x", "a#b"}, "echo '#x' 'a#b'"},
		{[]string{"sh", "-c", "exit 3; echo \"$HOME\""}, `sh -c 'exit 3; echo "$HOME"'`},
		{[]string{"a=b", "user@host:port,x+y%"}, "a=b user@host:port,x+y%"},
	}
	for _, c := range cases {
		if got := joinCommand(c.args); got != c.want {
			t.Errorf("joinCommand(%q) = %s, want %s", c.args, got, c.want)
		}
	}
}

// TestCRLFWriter: "\r\n" becomes "\n" however the stream is cut, other
// "\r" stay, and it inverts the terminal's translation exactly.
func TestCRLFWriter(t *testing.T) {
	cases := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\nb\n"},
		{"a\rb", "a\rb"},
		{"a\r\r\n", "a\r\n"}, // a "\r\n" the command wrote, as a terminal sends it
		{"end\r", "end\r"},
		{"\r\n\r\n", "\n\n"},
		{"", ""},
	}
	for _, c := range cases {
		for cut := 0; cut <= len(c.in); cut++ {
			var out bytes.Buffer
			w := &crlfWriter{w: &out}
			if _, err := w.Write([]byte(c.in[:cut])); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write([]byte(c.in[cut:])); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("%q cut at %d: %q, want %q", c.in, cut, out.String(), c.want)
			}
		}
	}
	for _, orig := range []string{"plain\n", "dos\r\n", "cr\ronly", "mixed\r\r\n\n\r", "\n"} {
		var out bytes.Buffer
		w := &crlfWriter{w: &out}
		_, _ = w.Write([]byte(strings.ReplaceAll(orig, "\n", "\r\n")))
		_ = w.Flush()
		if out.String() != orig {
			t.Errorf("round trip of %q: %q", orig, out.String())
		}
	}
}
