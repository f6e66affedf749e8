package control_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

const crashEnv = "ALPHASWARM_TEST_CRASH_CHILD"

// helperMain runs the child side of the crash test when the environment
// asks for it, and reports whether it did.
func helperMain() bool {
	if dir := os.Getenv(soakEnv); dir != "" {
		if err := soakChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "soak child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	mode := os.Getenv(crashEnv)
	if mode == "" {
		return false
	}
	run := crashChild
	if strings.HasPrefix(mode, "pg|") {
		run = pgChild
	}
	if err := run(mode); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	os.Exit(0)
	return true
}

// crashChild runs one operation against the ledger and blocks inside the
// provider until it is killed.
func crashChild(arg string) error {
	path, action, _ := strings.Cut(arg, "|")
	led, err := sqlite.Open(context.Background(), path)
	if err != nil {
		return err
	}
	mem := providertest.NewMemory("local")
	mem.Enter = func(ctx context.Context, op provider.Operation, service string) error {
		fmt.Println("entered", op, service)
		os.Stdout.Sync()
		select {} // blocked in the backend until SIGKILL
	}
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
		Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	req := control.Request{Principal: alice, Action: workload.Action(action), Target: "local", Service: "web"}
	switch req.Action {
	case workload.ActionStart:
		req.Spec = spec("web", 2)
	case workload.ActionScale:
		req.Replicas = 3
	case workload.ActionApplyConfig:
		req.Config = map[string]string{"k": "v"}
	case workload.ActionExec:
		req.Exec = &provider.ExecRequest{Command: []string{"echo"}}
	}
	_, err = rt.Do(context.Background(), req)
	return fmt.Errorf("Do returned although the provider blocks: %v", err)
}

func TestCrashRecovery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	acts := []workload.Action{workload.ActionStart, workload.ActionScale, workload.ActionRestart,
		workload.ActionApplyConfig, workload.ActionExec, workload.ActionStop}
	for round := range 20 {
		action := acts[round%len(acts)]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"="+path+"|"+string(action))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "entered "+string(action)) {
			cmd.Process.Kill()
			cmd.Wait()
			cancel()
			t.Fatalf("round %d: child said %q (%v)", round, line, err)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()

		// Restart: a new runtime on the same ledger recovers.
		led, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		mem := providertest.NewMemory("local")
		rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
			Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("round %d: restart: %v", round, err)
		}
		res, err := led.Verify(context.Background())
		if err != nil || !res.OK {
			t.Fatalf("round %d: verify = %+v, %v", round, res, err)
		}
		page, err := led.Query(context.Background(), ledger.Filter{Limit: ledger.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		results := map[string]int{}
		intents := map[string]bool{}
		for _, r := range page.Records {
			switch r.Kind {
			case ledger.KindIntent:
				intents[r.RunID] = true
			case ledger.KindResult:
				results[r.RunID]++
			}
		}
		if len(intents) != round+1 {
			t.Fatalf("round %d: %d intents, want %d", round, len(intents), round+1)
		}
		for id := range intents {
			if results[id] != 1 {
				t.Fatalf("round %d: run %s has %d results, want 1", round, id, results[id])
			}
		}
		last := page.Records[len(page.Records)-1]
		if last.Outcome != ledger.OutcomeInterrupted || !strings.Contains(last.Message, "status probe") || last.Action != string(action) {
			t.Fatalf("round %d: closing record = %+v", round, last)
		}
		rt.Close()
		led.Close()
	}
}
