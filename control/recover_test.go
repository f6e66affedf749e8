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
