package control_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
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

// countingLedger records how recovery reads a ledger: the after of every
// UnfinishedAfter, and how many whole-ledger Unfinished reads.
type countingLedger struct {
	ledger.Ledger
	mu         sync.Mutex
	afters     []int64
	unfinished int
}

func (c *countingLedger) Unfinished(ctx context.Context) ([]ledger.Record, error) {
	c.mu.Lock()
	c.unfinished++
	c.mu.Unlock()
	return c.Ledger.Unfinished(ctx)
}

// scanningLedger is a countingLedger with the ledger.UnfinishedScanner of
// the backend.
type scanningLedger struct{ *countingLedger }

func (s scanningLedger) UnfinishedAfter(ctx context.Context, after int64) ([]ledger.Record, int64, error) {
	s.mu.Lock()
	s.afters = append(s.afters, after)
	s.mu.Unlock()
	return s.Ledger.(ledger.UnfinishedScanner).UnfinishedAfter(ctx, after)
}

// TestRecoveryPassesReadWhatChanged: after the first pass, a recovery pass
// asks the ledger only for the rows appended since the previous pass's
// head, and still closes every interrupted run: intents another replica
// wrote, runs closed out of order, and a run that stayed open through
// several passes because a live controller held it. A ledger without the
// capability gets the same closes through Unfinished.
func TestRecoveryPassesReadWhatChanged(t *testing.T) {
	for _, scanner := range []bool{true, false} {
		t.Run(fmt.Sprintf("scanner=%v", scanner), func(t *testing.T) {
			ctx := context.Background()
			back, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { back.Close() })
			counting := &countingLedger{Ledger: back}
			var led ledger.Ledger = counting
			if scanner {
				led = scanningLedger{counting}
			}
			// What "another replica" writes: straight to the ledger.
			other := func(run string, kind ledger.Kind) ledger.Record {
				r := ledger.Record{RunID: run, Kind: kind, UserID: "alice", Action: "restart", Target: "local",
					Service: "gone-" + run, Provider: "memory", Detail: "{}"}
				if kind == ledger.KindResult {
					r.Outcome = ledger.OutcomeOK
				}
				out, err := back.Append(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			outcome := func(run string) ledger.Outcome {
				t.Helper()
				page, err := back.Query(ctx, ledger.Filter{RunID: run, Kind: ledger.KindResult})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Records) > 1 {
					t.Fatalf("run %s has %d results", run, len(page.Records))
				}
				if len(page.Records) == 0 {
					return ""
				}
				return page.Records[0].Outcome
			}
			head := func() int64 {
				page, err := back.Query(ctx, ledger.Filter{Descending: true, Limit: 1})
				if err != nil || len(page.Records) != 1 {
					t.Fatalf("head: %+v %v", page, err)
				}
				return page.Records[0].Seq
			}

			other("run_done", ledger.KindIntent)
			other("run_done", ledger.KindResult)
			other("run_before", ledger.KindIntent) // an earlier process died
			// Each pass asks for the rows after the head the pass before it
			// read: the head before that pass (recovery's own results come
			// after it).
			heads := []int64{head()}
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
			if o := outcome("run_before"); o != ledger.OutcomeInterrupted {
				t.Fatalf("run_before closed as %q by the pass at start", o)
			}

			// A live run holds its service through the next passes.
			done := make(chan error, 1)
			go func() {
				_, err := rt.Do(ctx, control.Request{Principal: control.Principal{User: "bob"}, Action: workload.ActionStart,
					Target: "local", Service: "web", Spec: &workload.DeploymentSpec{Name: "web", Image: "example/app:1", Replicas: 1}})
				done <- err
			}()
			<-entered
			// Another replica: two runs, closed out of order, one of them
			// by that replica and the other left for recovery.
			other("run_a", ledger.KindIntent)
			other("run_b", ledger.KindIntent)
			other("run_b", ledger.KindResult)
			for pass, want := range []int{1, 0} { // run_a; then nothing (the live run is held)
				heads = append(heads, head())
				n, err := rt.Recover(ctx)
				if err != nil || n != want {
					t.Fatalf("pass %d closed %d runs (err %v), want %d", pass, n, err, want)
				}
			}
			if o := outcome("run_a"); o != ledger.OutcomeInterrupted {
				t.Fatalf("run_a closed as %q", o)
			}
			if o := outcome("run_b"); o != ledger.OutcomeOK {
				t.Fatalf("run_b, closed by its replica, now %q", o)
			}
			// The held run is still open and was not closed.
			open, err := back.Unfinished(ctx)
			if err != nil || len(open) != 1 || open[0].Action != "start" {
				t.Fatalf("open intents while the start runs: %+v %v", open, err)
			}
			live := open[0].RunID
			// A run that dies while the live one still runs, then the live
			// one ends: the next pass closes the dead one only.
			other("run_c", ledger.KindIntent)
			close(release)
			if err := <-done; err != nil {
				t.Fatalf("the live run: %v", err)
			}
			heads = append(heads, head())
			if n, err := rt.Recover(ctx); err != nil || n != 1 {
				t.Fatalf("last pass closed %d runs (err %v), want 1 (run_c)", n, err)
			}
			if o := outcome("run_c"); o != ledger.OutcomeInterrupted {
				t.Fatalf("run_c closed as %q", o)
			}
			if o := outcome(live); o != ledger.OutcomeOK {
				t.Fatalf("the live run %s ended as %q, want ok (recovery must never close a live run)", live, o)
			}
			if open, err := back.Unfinished(ctx); err != nil || len(open) != 0 {
				t.Fatalf("intents left open: %+v %v", open, err)
			}

			counting.mu.Lock()
			defer counting.mu.Unlock()
			if !scanner {
				if counting.unfinished != 4 {
					t.Fatalf("a ledger without the scanner was read %d times with Unfinished, want once a pass (4)", counting.unfinished)
				}
				return
			}
			if counting.unfinished != 0 {
				t.Errorf("recovery read the whole ledger with Unfinished %d times", counting.unfinished)
			}
			if wantAfters := append([]int64{0}, heads[:len(heads)-1]...); !slices.Equal(counting.afters, wantAfters) {
				t.Errorf("passes asked for the rows after %v, want %v", counting.afters, wantAfters)
			}
		})
	}
}
