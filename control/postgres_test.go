package control_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const (
	pgOpsPerProcess = 200
	pgServices      = 5
)

// pgChild runs pgOpsPerProcess operations over pgServices services on a
// shared PostgreSQL ledger, recording when it enters and leaves the
// provider: "pg|<dsn>|<events file>|<process tag>".
func pgChild(arg string) error {
	parts := strings.Split(arg, "|")
	if len(parts) != 4 {
		return fmt.Errorf("bad child arg %q", arg)
	}
	dsn, eventsPath, tag := parts[1], parts[2], parts[3]
	led, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer led.Close()
	f, err := os.Create(eventsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	w := bufio.NewWriter(f)
	event := func(kind, service string) {
		mu.Lock()
		fmt.Fprintf(w, "%s %s %s %d\n", kind, tag, service, time.Now().UnixNano())
		mu.Unlock()
	}
	mem := providertest.NewMemory("local")
	mem.Delay = time.Millisecond
	mem.Enter = func(_ context.Context, _ provider.Operation, service string) error {
		event("enter", service)
		return nil
	}
	mem.Exit = func(_ provider.Operation, service string) { event("exit", service) }
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
		Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler),
		RecoverLockWait: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer rt.Close()
	var wg sync.WaitGroup
	errs := make(chan error, pgOpsPerProcess)
	const workers = 8
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := wk; i < pgOpsPerProcess; i += workers {
				svc := fmt.Sprintf("svc-%d", i%pgServices)
				_, err := rt.Do(context.Background(), control.Request{Principal: control.Principal{User: tag},
					Action: workload.ActionStart, Target: "local", Service: svc, Spec: spec(svc, 1+i%3)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return w.Flush()
}

func TestTwoProcessesShareOnePostgresLedger(t *testing.T) {
	dsn := pgtest.CreateDB(t)
	// Create the schema once so both children start from a migrated database.
	led, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	dir := t.TempDir()
	var cmds []*exec.Cmd
	for _, tag := range []string{"proc-a", "proc-b"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashEnv+"=pg|"+dsn+"|"+filepath.Join(dir, tag+".events")+"|"+tag)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
	}
	res, err := led.Verify(context.Background())
	if err != nil || !res.OK {
		t.Fatalf("verify = %+v, %v", res, err)
	}
	if want := int64(2 * pgOpsPerProcess * 2); res.Count != want {
		t.Fatalf("%d records, want %d (one line: seqs 1..%d, each chained to the one before)", res.Count, want, want)
	}
	open, err := led.Unfinished(context.Background())
	if err != nil || len(open) != 0 {
		t.Fatalf("unfinished runs: %d, %v", len(open), err)
	}
	// No two operations on one service overlapped, across both processes.
	type span struct {
		tag         string
		enter, exit int64
	}
	spans := map[string][]span{}
	for _, tag := range []string{"proc-a", "proc-b"} {
		b, err := os.ReadFile(filepath.Join(dir, tag+".events"))
		if err != nil {
			t.Fatal(err)
		}
		open := map[string]int64{}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			ts, _ := strconv.ParseInt(f[3], 10, 64)
			switch f[0] {
			case "enter":
				if _, busy := open[f[2]]; busy {
					t.Fatalf("%s: entered %s twice without leaving", tag, f[2])
				}
				open[f[2]] = ts
			case "exit":
				spans[f[2]] = append(spans[f[2]], span{tag, open[f[2]], ts})
				delete(open, f[2])
			}
		}
	}
	total := 0
	for svc, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int { return int(a.enter - b.enter) })
		tags := map[string]bool{}
		for i, s := range ss {
			tags[s.tag] = true
			if i > 0 && s.enter < ss[i-1].exit {
				t.Fatalf("%s: %s entered at %d before %s left at %d", svc, s.tag, s.enter, ss[i-1].tag, ss[i-1].exit)
			}
		}
		if len(tags) != 2 {
			t.Errorf("%s was only operated by %v: the processes did not contend", svc, tags)
		}
		total += len(ss)
	}
	if total != 2*pgOpsPerProcess {
		t.Fatalf("%d provider calls, want %d", total, 2*pgOpsPerProcess)
	}
	page, _ := led.Query(context.Background(), ledger.Filter{UserID: "proc-b", Kind: ledger.KindResult, Limit: 1})
	if len(page.Records) != 1 {
		t.Fatal("no results recorded for the second process")
	}
}
