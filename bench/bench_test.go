package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// The harness is a benchmark, not a test: these only check that its parts
// run and that it prints its table. No time is asserted.

func TestOverheadRuns(t *testing.T) {
	ctx := context.Background()
	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	r, err := measureOverhead(ctx, led, 2, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.opsPerSec <= 0 || r.boundOps <= 0 || r.p99 < r.p50 || r.boundP99 < r.boundP50 {
		t.Errorf("measureOverhead = %+v", r)
	}
	res, err := led.Verify(ctx)
	if err != nil || !res.OK {
		t.Errorf("ledger after the rounds: %+v, %v", res, err)
	}
}

// TestOverheadHistory: the runtime records revisions on the ledger as it
// is, and none on the same ledger withoutHistory, whose other capabilities
// (the head guard) are kept.
func TestOverheadHistory(t *testing.T) {
	ctx := context.Background()
	for _, hist := range []bool{true, false} {
		led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer led.Close()
		var l ledger.Ledger = led
		if !hist {
			l = withoutHistory(led)
			if _, ok := l.(ledger.Guarded); !ok {
				t.Error("withoutHistory dropped the head guard")
			}
		}
		if _, err := measureOverhead(ctx, l, 2, 1, 2); err != nil {
			t.Fatal(err)
		}
		revs, err := led.Revisions(ctx, "local", "svc-0")
		if err != nil {
			t.Fatal(err)
		}
		if hist && len(revs) == 0 || !hist && len(revs) != 0 {
			t.Errorf("history %v: %d revisions of svc-0", hist, len(revs))
		}
	}
}

func TestPrintTable(t *testing.T) {
	var b strings.Builder
	printTable(&b, []row{{op: "status", alpha: "4.1 ms", peer: "docker inspect 40 ms", ratio: "0.10× docker"}})
	for _, want := range []string{"operation", "status", "docker inspect 40 ms", "0.10× docker", "—"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
