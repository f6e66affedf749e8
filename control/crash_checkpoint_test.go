package control_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const soakEnv = "ALPHASWARM_TEST_SOAK_CHILD"

// openCheckpointed opens the SQLite ledger at dir/ledger.db wrapped with
// checkpoints every 3 rows into dir-cp/checkpoints.jsonl, as serve does.
func openCheckpointed(ctx context.Context, dir string) (*checkpoint.Ledger, checkpoint.Report, error) {
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		return nil, checkpoint.Report{}, err
	}
	led, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		return nil, checkpoint.Report{}, err
	}
	cp, rep, err := checkpoint.Open(ctx, led, checkpoint.Options{Key: key, File: filepath.Join(dir+"-cp", "checkpoints.jsonl"),
		Every: 3, Interval: 20 * time.Millisecond, FlushDelay: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		led.Close()
	}
	return cp, rep, err
}

// soakChild appends operations as fast as it can, with checkpoints on,
// until it is killed.
func soakChild(dir string) error {
	ctx := context.Background()
	led, rep, err := openCheckpointed(ctx, dir)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("child: ledger does not verify at start: %s", rep.Reason)
	}
	mem := providertest.NewMemory("local")
	rt, err := control.New(ctx, control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
		Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if _, err := rt.Do(ctx, control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web", Spec: spec("web", 1)}); err != nil {
		return err
	}
	fmt.Println("running")
	os.Stdout.Sync()
	for i := 0; ; i++ {
		if _, err := rt.Do(ctx, control.Request{Principal: alice, Action: workload.ActionScale, Target: "local", Service: "web", Replicas: 1 + i%3}); err != nil {
			return err
		}
	}
}

// TestCrashSoakWithCheckpoints kills a controller that appends and signs
// checkpoints as fast as it can with SIGKILL, 20 times, at random moments
// (mid-append, mid-fsync of the checkpoint file). After each kill the
// ledger must verify against every checkpoint signed so far and the
// restarted runtime must close the interrupted run; at the end verify
// --checkpoints (checkpoint.VerifyLedger) is clean.
func TestCrashSoakWithCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), soakEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "running") {
			cmd.Process.Kill()
			cmd.Wait()
			cancel()
			t.Fatalf("round %d: child said %q (%v)", round, line, err)
		}
		time.Sleep(time.Duration(5+rand.IntN(100)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()

		led, rep, err := openCheckpointed(context.Background(), dir)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !rep.OK || rep.Last == nil {
			led.Close()
			t.Fatalf("round %d: after SIGKILL the ledger does not verify against its checkpoints: %s (%+v)", round, rep.Reason, rep)
		}
		rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
			Targets: []control.Target{{Name: "local", Provider: providertest.NewMemory("local")}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("round %d: restart: %v", round, err)
		}
		if open, err := led.Unfinished(context.Background()); err != nil || len(open) != 0 {
			t.Fatalf("round %d: unfinished runs after recovery: %v %v", round, open, err)
		}
		rt.Close()
		led.Close()
	}
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	cps, err := checkpoint.ReadFile(filepath.Join(dir+"-cp", "checkpoints.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	led, err := sqlite.Open(context.Background(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	rep, err := checkpoint.VerifyLedger(context.Background(), led, cps, key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK {
		t.Fatalf("verify --checkpoints after 20 SIGKILLs: %+v %v", rep, err)
	}
	if rep.Matched < 20 {
		t.Fatalf("only %d checkpoints after 20 rounds", rep.Matched)
	}
	t.Logf("after 20 SIGKILLs: %s", rep.Summary())
}
