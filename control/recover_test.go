package control_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// lagging is a backend still finishing a stop the controller asked for
// before it died (the review's F8: dockerd completes the stop after its
// stop timeout): Status says Running until finishAt, then the stop lands.
type lagging struct {
	*providertest.Memory
	finishAt time.Time
	once     sync.Once
}

func (l *lagging) Status(ctx context.Context, id string) (workload.DeploymentStatus, error) {
	if time.Now().After(l.finishAt) {
		l.once.Do(func() { l.Memory.Stop(ctx, id) })
	}
	return l.Memory.Status(ctx, id)
}

func TestRecoveryWaitsForTheBackendToSettle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lag     time.Duration
		settle  time.Duration
		want    workload.Phase
		message string
	}{
		{"settles", 1500 * time.Millisecond, 10 * time.Second, workload.Stopped, "waiting for the backend to settle"},
		{"bounded", time.Hour, 1200 * time.Millisecond, workload.Running, "still changing after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { led.Close() })
			mem := providertest.NewMemory("local")
			if _, err := mem.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "example/app:1", Replicas: 1}); err != nil {
				t.Fatal(err)
			}
			// The intent of a stop whose controller was killed.
			in, err := led.Append(ctx, ledger.Record{RunID: "run_stop", Kind: ledger.KindIntent, UserID: "alice", Action: "stop",
				Target: "local", Service: "web", Provider: "memory", Detail: "{}"})
			if err != nil {
				t.Fatal(err)
			}
			p := &lagging{Memory: mem, finishAt: time.Now().Add(tc.lag)}
			rt, err := control.New(ctx, control.Options{Ledger: led, Targets: []control.Target{{Name: "local", Provider: p}},
				Credentials: credentials.FromMap(nil), Logger: slog.New(slog.DiscardHandler), RecoverSettle: tc.settle})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(rt.Close)
			page, err := led.Query(ctx, ledger.Filter{RunID: in.RunID, Kind: ledger.KindResult})
			if err != nil || len(page.Records) != 1 {
				t.Fatalf("result of the interrupted run: %+v %v", page.Records, err)
			}
			r := page.Records[0]
			if r.Outcome != ledger.OutcomeInterrupted || !strings.Contains(r.Message, "status probe: "+string(tc.want)) ||
				!strings.Contains(r.Message, tc.message) {
				t.Fatalf("interrupted result = %q (%s), want phase %s and %q", r.Message, r.Outcome, tc.want, tc.message)
			}
		})
	}
}

// An interrupted run that a later run on the same service (another
// replica's) replaced is closed after one probe: recovery does not hold
// the service lock waiting for a state nobody wants any more.
func TestRecoveryDoesNotWaitForASupersededRun(t *testing.T) {
	ctx := context.Background()
	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	mem := providertest.NewMemory("local")
	if _, err := mem.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "example/app:1", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	in, err := led.Append(ctx, ledger.Record{RunID: "run_stop", Kind: ledger.KindIntent, UserID: "alice", Action: "stop",
		Target: "local", Service: "web", Provider: "memory", Detail: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []ledger.Record{
		{RunID: "run_exec", Kind: ledger.KindIntent, UserID: "bob", Action: "exec", Target: "local", Service: "web", Provider: "memory", Detail: "{}"},
		{RunID: "run_exec", Kind: ledger.KindResult, UserID: "bob", Action: "exec", Target: "local", Service: "web", Provider: "memory", Outcome: ledger.OutcomeOK},
		{RunID: "run_start", Kind: ledger.KindIntent, UserID: "bob", Action: "start", Target: "local", Service: "web", Provider: "memory", Detail: "{}"},
		{RunID: "run_start", Kind: ledger.KindResult, UserID: "bob", Action: "start", Target: "local", Service: "web", Provider: "memory", Outcome: ledger.OutcomeOK},
	} {
		if _, err := led.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// The stop would never land: without the later run, recovery would
	// wait the whole RecoverSettle.
	p := &lagging{Memory: mem, finishAt: time.Now().Add(time.Hour)}
	start := time.Now()
	rt, err := control.New(ctx, control.Options{Ledger: led, Targets: []control.Target{{Name: "local", Provider: p}},
		Credentials: credentials.FromMap(nil), Logger: slog.New(slog.DiscardHandler), RecoverSettle: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("recovery took %s for a superseded run", took)
	}
	page, err := led.Query(ctx, ledger.Filter{RunID: in.RunID, Kind: ledger.KindResult})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("result of the interrupted run: %+v %v", page.Records, err)
	}
	if m := page.Records[0].Message; page.Records[0].Outcome != ledger.OutcomeInterrupted ||
		!strings.Contains(m, "status probe: Running") || !strings.Contains(m, "run run_start on this service came later") {
		t.Fatalf("interrupted result = %q (%s)", m, page.Records[0].Outcome)
	}
}

// An intent whose service was busy with another run when a pass looked at
// it (the soak's failure: a replica restarted while another one's start of
// the same service took longer than RecoverLockWait) is left open by that
// pass and closed by a later one of RecoverEvery.
func TestPeriodicRecoveryClosesARunItsServiceHid(t *testing.T) {
	ctx := context.Background()
	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	mem := providertest.NewMemory("local")
	entered, release := make(chan struct{}), make(chan struct{})
	mem.Enter = func(_ context.Context, op provider.Operation, _ string) error {
		if op == provider.OpStart {
			close(entered)
			<-release
		}
		return nil
	}
	rt, err := control.New(ctx, control.Options{Ledger: led, Targets: []control.Target{{Name: "local", Provider: mem}},
		Credentials: credentials.FromMap(nil), Logger: slog.New(slog.DiscardHandler), RecoverLockWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	done := make(chan error, 1)
	go func() {
		_, err := rt.Do(ctx, control.Request{Principal: control.Principal{User: "bob"}, Action: workload.ActionStart,
			Target: "local", Service: "web", Spec: &workload.DeploymentSpec{Name: "web", Image: "example/app:1", Replicas: 1}})
		done <- err
	}()
	<-entered
	// The intent of a run whose controller died, on the busy service.
	in, err := led.Append(ctx, ledger.Record{RunID: "run_dead", Kind: ledger.KindIntent, UserID: "alice", Action: "restart",
		Target: "local", Service: "web", Provider: "memory", Detail: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rt.Recover(ctx); err != nil || n != 0 {
		t.Fatalf("recovery while the service is busy closed %d runs (err %v), want 0", n, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the run holding the service: %v", err)
	}
	pctx, stop := context.WithCancel(ctx)
	passes := make(chan struct{})
	go func() { defer close(passes); rt.RecoverEvery(pctx, 20*time.Millisecond) }()
	t.Cleanup(func() { stop(); <-passes })
	deadline := time.Now().Add(10 * time.Second)
	for {
		page, err := led.Query(ctx, ledger.Filter{RunID: in.RunID, Kind: ledger.KindResult})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) == 1 {
			if r := page.Records[0]; r.Outcome != ledger.OutcomeInterrupted || !strings.Contains(r.Message, "the controller stopped before the result was recorded") {
				t.Fatalf("closed as %s: %q", r.Outcome, r.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic pass closed the interrupted run within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if open, err := led.Unfinished(ctx); err != nil || len(open) != 0 {
		t.Fatalf("intents left open: %+v %v", open, err)
	}
	stop()
	<-passes // RecoverEvery returns once its context ends
}
