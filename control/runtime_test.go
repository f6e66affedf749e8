package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if helperMain() {
		return
	}
	code := m.Run()
	pgtest.Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var alice = control.Principal{User: "alice", Role: "operator"}

type env struct {
	rt     *control.Runtime
	mem    *providertest.Memory
	led    *sqlite.Ledger // when the ledger is SQLite
	ledger ledger.Ledger
	path   string
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, mem *providertest.Memory, creds *credentials.Resolver) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	led, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	e := newEnvOn(t, led, mem, creds)
	e.led, e.path = led, path
	return e
}

// newEnvOn builds a runtime over any ledger; the caller closes the ledger.
// The target has the default policy, or pol[0].
func newEnvOn(t testing.TB, led ledger.Ledger, mem *providertest.Memory, creds *credentials.Resolver, pol ...provider.Policy) *env {
	t.Helper()
	if mem == nil {
		mem = providertest.NewMemory("local")
	}
	if creds == nil {
		creds = credentials.FromMap(nil)
	}
	logs := &syncBuffer{}
	log := slog.New(credentials.NewHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}), creds))
	rt, err := control.New(context.Background(), control.Options{
		Ledger: led, Targets: []control.Target{{Name: "local", Provider: mem, Policy: policyOf(pol)}}, Credentials: creds, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &env{rt: rt, mem: mem, ledger: led, logs: logs}
}

func spec(name string, replicas int) *workload.DeploymentSpec {
	return &workload.DeploymentSpec{Name: name, Image: "example/app:1", Replicas: replicas}
}

func (e *env) do(t testing.TB, r control.Request) (control.Result, error) {
	t.Helper()
	if r.Principal.User == "" {
		r.Principal = alice
	}
	if r.Target == "" && r.Action != workload.ActionHalt {
		r.Target = "local"
	}
	return e.rt.Do(context.Background(), r)
}

func (e *env) mustDo(t testing.TB, r control.Request) control.Result {
	t.Helper()
	res, err := e.do(t, r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Action, r.Service, err)
	}
	return res
}

func (e *env) records(t testing.TB, f ledger.Filter) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	for {
		page, err := e.ledger.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		f.Cursor = page.Next
	}
}

// every mutating action, as a request on service svc that succeeds after a
// start.
func actions(svc string) []control.Request {
	return []control.Request{
		{Action: workload.ActionStart, Service: svc, Spec: spec(svc, 2)},
		{Action: workload.ActionScale, Service: svc, Replicas: 3},
		{Action: workload.ActionRestart, Service: svc},
		{Action: workload.ActionApplyConfig, Service: svc, Config: map[string]string{"k": "v"}},
		{Action: workload.ActionExec, Service: svc, Exec: &provider.ExecRequest{Command: []string{"echo", "hi"}}},
		{Action: workload.ActionStop, Service: svc},
	}
}

func TestIntentDurableBeforeProviderCall(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	second, err := ledger.Open(context.Background(), "sqlite:"+e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var checked []provider.Operation
	mem.Enter = func(ctx context.Context, op provider.Operation, service string) error {
		open, err := second.Unfinished(ctx)
		if err != nil {
			return err
		}
		if len(open) != 1 || open[0].Action != string(op) || open[0].Service != service || open[0].UserID != "alice" {
			t.Errorf("entering %s %s: open intents on a second connection = %+v, want exactly this one", op, service, open)
		}
		checked = append(checked, op)
		return nil
	}
	for _, r := range actions("web") {
		e.mustDo(t, r)
	}
	want := []provider.Operation{provider.OpStart, provider.OpScale, provider.OpRestart, provider.OpApplyConfig, provider.OpExec, provider.OpStop}
	if !slices.Equal(checked, want) {
		t.Fatalf("checked %v, want %v", checked, want)
	}
	recs := e.records(t, ledger.Filter{})
	if len(recs) != 12 {
		t.Fatalf("%d records, want 12 (intent+result per action)", len(recs))
	}
	for i := 0; i < len(recs); i += 2 {
		in, res := recs[i], recs[i+1]
		if in.Kind != ledger.KindIntent || res.Kind != ledger.KindResult || in.RunID != res.RunID || res.Outcome != ledger.OutcomeOK {
			t.Errorf("records %d,%d = %s/%s %s/%s outcome %s", in.Seq, res.Seq, in.Kind, in.RunID, res.Kind, res.RunID, res.Outcome)
		}
		if in.Provider != "memory" || in.Target != "local" || in.RequestDigest == "" || in.RequestDigest != res.RequestDigest {
			t.Errorf("record %d lacks audit context: %+v", in.Seq, in)
		}
	}
	if v, _ := e.rt.Verify(context.Background()); !v.OK {
		t.Fatalf("verify: %+v", v)
	}
}

func TestLedgerDownFailsClosed(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	e.led.Close()
	for _, r := range actions("web") {
		_, err := e.do(t, r)
		if workload.CodeOf(err) != workload.Unavailable {
			t.Errorf("%s with the ledger down: err = %v, want unavailable", r.Action, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("provider was called %d times with the ledger down", n)
	}
}

type failingLedger struct {
	ledger.Ledger
	failAppend atomic.Bool
}

func (f *failingLedger) Append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	if f.failAppend.Load() {
		return ledger.Record{}, errors.New("disk full")
	}
	return f.Ledger.Append(ctx, r)
}

func TestAppendFailureFailsClosed(t *testing.T) {
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	fl := &failingLedger{Ledger: led}
	mem := providertest.NewMemory("local")
	rt, err := control.New(context.Background(), control.Options{Ledger: fl, Targets: []control.Target{{Name: "local", Provider: mem}}, Credentials: credentials.FromMap(nil), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	fl.failAppend.Store(true)
	_, err = rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web", Spec: spec("web", 1)})
	if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "not attempted") {
		t.Fatalf("err = %v, want unavailable saying the operation was not attempted", err)
	}
	if calls.Load() != 0 {
		t.Fatal("provider called although the intent was not written")
	}
}

func TestUnrelatedServicesRunConcurrently(t *testing.T) {
	const n = 50
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	for i := range n {
		e.mustDo(t, control.Request{Action: workload.ActionStart, Service: fmt.Sprintf("svc-%d", i), Spec: spec(fmt.Sprintf("svc-%d", i), 1)})
	}
	// One operation alone, then 50 at once, each sleeping 200ms in the provider.
	mem.Delay = 200 * time.Millisecond
	var inside, peak atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error {
		v := inside.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		return nil
	}
	mem.Exit = func(provider.Operation, string) { inside.Add(-1) }
	start := time.Now()
	e.mustDo(t, control.Request{Action: workload.ActionRestart, Service: "svc-0"})
	one := time.Since(start)
	start = time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.mustDo(t, control.Request{Action: workload.ActionRestart, Service: fmt.Sprintf("svc-%d", i)})
		}()
	}
	wg.Wait()
	all := time.Since(start)
	t.Logf("one operation %v; %d operations on %d services %v (%.2fx); peak in provider %d", one, n, n, all, float64(all)/float64(one), peak.Load())
	// Structural proof: with 200ms in the provider, all 50 were inside at
	// once, so none waited for another. (The wall-clock ratio is reported
	// above and measured in BenchmarkConcurrentServices.)
	if peak.Load() < n {
		t.Fatalf("at most %d operations were in the provider at once, want %d: unrelated services waited for each other", peak.Load(), n)
	}
}

func TestOneServiceIsSerialisedInLedgerOrder(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	mem.Delay = 20 * time.Millisecond
	type span struct {
		runs  int
		enter time.Time
		exit  time.Time
	}
	var mu sync.Mutex
	var spans []span
	var order []int // replicas asked for, in provider entry order
	var inside atomic.Int32
	mem.Enter = func(_ context.Context, op provider.Operation, _ string) error {
		if inside.Add(1) != 1 {
			t.Error("two operations on one service were in the provider at once")
		}
		mu.Lock()
		spans = append(spans, span{enter: time.Now()})
		mu.Unlock()
		return nil
	}
	mem.Exit = func(provider.Operation, string) {
		inside.Add(-1)
		mu.Lock()
		spans[len(spans)-1].exit = time.Now()
		mu.Unlock()
	}
	var wg sync.WaitGroup
	results := make([]control.Result, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.mustDo(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: i + 1})
		}()
	}
	wg.Wait()
	for i := 1; i < len(spans); i++ {
		if spans[i].enter.Before(spans[i-1].exit) {
			t.Fatalf("operation %d entered before %d left", i, i-1)
		}
	}
	// Ledger order: each intent is followed by its own result before the
	// next intent, and the provider saw the requests in that order.
	recs := e.records(t, ledger.Filter{Action: "scale"})
	if len(recs) != 20 {
		t.Fatalf("%d scale records, want 20", len(recs))
	}
	for i := 0; i < 20; i += 2 {
		if recs[i].Kind != ledger.KindIntent || recs[i+1].Kind != ledger.KindResult || recs[i].RunID != recs[i+1].RunID {
			t.Fatalf("records %d and %d are not one run's intent and result: runs interleaved", recs[i].Seq, recs[i+1].Seq)
		}
		var d struct{ Replicas int }
		fmt.Sscanf(strings.TrimPrefix(recs[i].Detail, `{"replicas":`), "%d", &d.Replicas)
		order = append(order, d.Replicas)
	}
	last := order[len(order)-1]
	st, err := e.rt.Status(context.Background(), "local", "web")
	if err != nil || st.Replicas.Desired != last {
		t.Fatalf("final desired = %d (err %v); the last run in the ledger asked for %d", st.Replicas.Desired, err, last)
	}
}

func TestIdempotencyKey(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	req := control.Request{Action: workload.ActionScale, Service: "web", Replicas: 3, IdempotencyKey: "k-1"}
	first := e.mustDo(t, req)
	again := e.mustDo(t, req)
	if calls.Load() != 1 {
		t.Fatalf("provider called %d times for one idempotency key", calls.Load())
	}
	if !again.Replayed || again.RunID != first.RunID || again.Status == nil || again.Status.Replicas.Desired != 3 {
		t.Fatalf("replay = %+v, want the first result (run %s)", again, first.RunID)
	}
	req.Replicas = 4
	_, err := e.do(t, req)
	if workload.CodeOf(err) != workload.Conflict {
		t.Fatalf("same key, different request: %v, want conflict", err)
	}
	// Another user reusing the key is a different request.
	req.Replicas, req.Principal = 3, control.Principal{User: "bob"}
	if _, err := e.do(t, req); workload.CodeOf(err) != workload.Conflict {
		t.Fatalf("same key from another user: %v, want conflict", err)
	}
	// A failed first attempt replays its failure without a second call.
	mem.Enter = func(context.Context, provider.Operation, string) error {
		calls.Add(1)
		return workload.Errorf(workload.RateLimited, "slow down")
	}
	failing := control.Request{Action: workload.ActionRestart, Service: "web", IdempotencyKey: "k-2"}
	_, err1 := e.do(t, failing)
	_, err2 := e.do(t, failing)
	if workload.CodeOf(err1) != workload.RateLimited || workload.CodeOf(err2) != workload.RateLimited || calls.Load() != 2 {
		t.Fatalf("failed replay: %v / %v after %d calls", err1, err2, calls.Load())
	}
}

func TestHaltSwitch(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	admin := control.Principal{User: "root-admin", Role: "admin"}
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	for _, scope := range []string{"", "local"} {
		e.mustDo(t, control.Request{Principal: admin, Action: workload.ActionHalt, Target: scope, HaltOn: true})
		_, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 2})
		if workload.CodeOf(err) != workload.Halted {
			t.Fatalf("scope %q: scale while halted: %v", scope, err)
		}
		// Reads still work while halted.
		if _, err := e.rt.Status(context.Background(), "local", "web"); err != nil {
			t.Fatalf("status while halted: %v", err)
		}
		e.mustDo(t, control.Request{Principal: admin, Action: workload.ActionHalt, Target: scope, HaltOn: false})
		e.mustDo(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 2})
	}
	halts := e.records(t, ledger.Filter{Action: "halt"})
	if len(halts) != 8 {
		t.Fatalf("%d halt records, want 8 (4 switches, intent+result each)", len(halts))
	}
	for _, r := range halts {
		if r.UserID != "root-admin" {
			t.Errorf("halt record by %q", r.UserID)
		}
	}
	rejected := e.records(t, ledger.Filter{Kind: ledger.KindRejected})
	if len(rejected) != 2 || rejected[0].Outcome != ledger.OutcomeHalted || rejected[0].UserID != "alice" || rejected[0].ErrorCode != "halted" {
		t.Fatalf("halted requests recorded as %+v", rejected)
	}
}

func TestHaltSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	open := func() (*control.Runtime, func()) {
		led, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
			Targets: []control.Target{{Name: "local", Provider: providertest.NewMemory("local")}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return rt, func() { rt.Close(); led.Close() }
	}
	rt, closeFn := open()
	if _, err := rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionHalt, HaltOn: true}); err != nil {
		t.Fatal(err)
	}
	closeFn()
	rt, closeFn = open()
	defer closeFn()
	_, err := rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web", Spec: spec("web", 1)})
	if workload.CodeOf(err) != workload.Halted {
		t.Fatalf("after restart: %v, want halted", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	bad := spec("web", -1)
	bad.Ports = []workload.Port{{Container: 80}, {Container: 0}}
	cases := []struct {
		name   string
		req    control.Request
		code   workload.Code
		fields []string
	}{
		{"bad spec", control.Request{Action: workload.ActionStart, Service: "web", Spec: bad}, workload.InvalidArgument, []string{"replicas", "ports[1].container"}},
		{"no spec", control.Request{Action: workload.ActionStart, Service: "web"}, workload.InvalidArgument, []string{"spec"}},
		{"name mismatch", control.Request{Action: workload.ActionStart, Service: "api", Spec: spec("web", 1)}, workload.InvalidArgument, []string{"name"}},
		{"negative scale", control.Request{Action: workload.ActionScale, Service: "web", Replicas: -2}, workload.InvalidArgument, []string{"replicas"}},
		{"bad service", control.Request{Action: workload.ActionStop, Service: "Web_1"}, workload.InvalidArgument, []string{"service"}},
		{"bad config key", control.Request{Action: workload.ActionApplyConfig, Service: "web", Config: map[string]string{"a b": "c"}}, workload.InvalidArgument, []string{"config.a b"}},
		{"empty exec", control.Request{Action: workload.ActionExec, Service: "web", Exec: &provider.ExecRequest{}}, workload.InvalidArgument, []string{"command"}},
		{"unknown target", control.Request{Action: workload.ActionStop, Target: "mars", Service: "web"}, workload.NotFound, nil},
		{"read action", control.Request{Action: workload.ActionStatus, Service: "web"}, workload.InvalidArgument, []string{"action"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.do(t, tc.req)
			e := workload.AsError(err)
			if e == nil || e.Code != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			var paths []string
			for _, f := range e.Fields {
				paths = append(paths, f.Path)
			}
			for _, f := range tc.fields {
				if !slices.Contains(paths, f) {
					t.Errorf("fields %v lack %q", paths, f)
				}
			}
		})
	}
	if calls.Load() != 0 {
		t.Fatalf("provider called %d times for invalid requests", calls.Load())
	}
	rej := e.records(t, ledger.Filter{Kind: ledger.KindRejected})
	if len(rej) != len(cases) {
		t.Fatalf("%d rejected records, want %d", len(rej), len(cases))
	}
	if open, _ := e.led.Unfinished(context.Background()); len(open) != 0 {
		t.Fatalf("invalid requests left intents: %+v", open)
	}
}

func TestRejectRecordsDeniedWithoutBody(t *testing.T) {
	e := newEnv(t, nil, nil)
	err := e.rt.Reject(context.Background(), control.Principal{User: "eve", Role: "viewer"}, workload.ActionScale, "local", "web",
		workload.Errorf(workload.PermissionDenied, "role viewer may not scale"))
	if err != nil {
		t.Fatal(err)
	}
	rej := e.records(t, ledger.Filter{Kind: ledger.KindRejected})
	if len(rej) != 1 || rej[0].Outcome != ledger.OutcomeDenied || rej[0].UserID != "eve" || rej[0].Detail != "" {
		t.Fatalf("denied record = %+v", rej)
	}
}

func TestProviderErrorIsRecorded(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	_, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "ghost", Replicas: 1})
	werr := workload.AsError(err)
	if werr.Code != workload.NotFound || werr.Provider != "memory" {
		t.Fatalf("err = %+v, want not_found from memory", werr)
	}
	recs := e.records(t, ledger.Filter{Kind: ledger.KindResult})
	if len(recs) != 1 || recs[0].Outcome != ledger.OutcomeError || recs[0].ErrorCode != "not_found" {
		t.Fatalf("result = %+v", recs)
	}
}

func TestTimeoutIsRecorded(t *testing.T) {
	mem := providertest.NewMemory("local")
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
		Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler),
		Timeouts: map[workload.Action]time.Duration{workload.ActionStart: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	mem.Delay = 5 * time.Second
	_, err = rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web", Spec: spec("web", 1)})
	if workload.CodeOf(err) != workload.Timeout {
		t.Fatalf("err = %v, want timeout", err)
	}
	page, _ := led.Query(context.Background(), ledger.Filter{Kind: ledger.KindResult})
	if len(page.Records) != 1 || page.Records[0].ErrorCode != "timeout" {
		t.Fatalf("result = %+v", page.Records)
	}
}

func TestPlantedSecretNeverWritten(t *testing.T) {
	const secret = "s3cr3t-planted-value-9f8e7d"
	creds := credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_DB": secret, "DB_PASSWORD": secret})
	mem := providertest.NewMemory("local")
	// The provider resolves the reference, as real ones do, and mentions it
	// in an error to test that errors are redacted too.
	mem.Enter = func(_ context.Context, op provider.Operation, _ string) error {
		v, err := creds.Secret("env:ALPHASWARM_SECRET_DB")
		if err != nil {
			return err
		}
		if op == provider.OpRestart {
			return workload.Errorf(workload.ProviderError, "backend rejected password %s", v)
		}
		return nil
	}
	e := newEnvOn(t, openLedger(t), mem, creds, provider.Policy{Secrets: []provider.SecretGrant{{Secret: "ALPHASWARM_SECRET_DB"}}})
	s := spec("web", 1)
	s.Secrets = []workload.SecretRef{{Env: "DB_PASSWORD", From: "env:ALPHASWARM_SECRET_DB"}}
	s.Env = map[string]string{"LEAKY": secret} // a careless user pastes it in plain env too
	var envelopes []string
	record := func(res control.Result, err error) {
		var b []byte
		if err != nil {
			b, _ = json.Marshal(workload.Fail(err))
		} else {
			b, _ = json.Marshal(workload.OK(res))
		}
		envelopes = append(envelopes, string(b))
	}
	record(e.do(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: s}))
	record(e.do(t, control.Request{Action: workload.ActionApplyConfig, Service: "web", Config: map[string]string{"password": secret}}))
	record(e.do(t, control.Request{Action: workload.ActionRestart, Service: "web"}))
	record(e.do(t, control.Request{Action: workload.ActionExec, Service: "web", Exec: &provider.ExecRequest{Command: []string{"echo", secret}}}))
	bad := spec("web", -1)
	bad.Env = map[string]string{"X": secret}
	record(e.do(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: bad}))
	e.rt.Reject(context.Background(), alice, workload.ActionScale, "local", "web", errors.New("bad body "+secret))
	recs := e.records(t, ledger.Filter{})
	if len(recs) < 8 {
		t.Fatalf("only %d records", len(recs))
	}
	for _, r := range recs {
		if strings.Contains(fmt.Sprintf("%+v", r), secret) {
			t.Errorf("ledger row %d holds the secret: %+v", r.Seq, r)
		}
	}
	for _, env := range envelopes {
		if strings.Contains(env, secret) {
			t.Errorf("envelope holds the secret: %s", env)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, secret) || logs == "" {
		t.Errorf("logs hold the secret or are empty:\n%s", logs)
	}
	if !strings.Contains(e.logs.String(), credentials.Redacted) {
		t.Error("logs never redacted anything: the test did not exercise redaction")
	}
}

func TestProvisioningRefused(t *testing.T) {
	for _, name := range []string{"create_namespace", "delete-cluster", "attach_iam_policy", "create_vpc"} {
		_, err := workload.ParseAction(name)
		e := workload.AsError(err)
		if e == nil || e.Code != workload.InvalidArgument || !strings.Contains(e.Message, "Terraform") {
			t.Errorf("ParseAction(%q) = %v, want invalid_argument naming Terraform", name, err)
		}
	}
}

func TestStreamsThroughHub(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	got := make([]int, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, err := range e.rt.StreamMetrics(ctx, "local", "web") {
				if err != nil {
					return
				}
				got[i]++
				if got[i] == 3 {
					return
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	if n := mem.MetricStreams.Load(); n > 2 {
		t.Errorf("%d provider streams for 5 subscribers", n)
	}
	for i, n := range got {
		if n != 3 {
			t.Errorf("subscriber %d got %d samples", i, n)
		}
	}
	for _, err := range e.rt.StreamMetrics(context.Background(), "local", "ghost") {
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("metrics of unknown service: %v", err)
		}
	}
}
