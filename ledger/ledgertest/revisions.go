package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// RunRevisions is the conformance suite of a ledger.RevisionStore: rows
// come back exactly as stored (sealed bytes included, nil staying nil),
// one service's rows only, oldest first; a second revision for a run is
// ErrRevisionExists; a second connection (reopen) sees them.
func RunRevisions(t *testing.T, open func(t *testing.T) ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger) {
	ctx := context.Background()
	l := open(t)
	rs, ok := l.(ledger.RevisionStore)
	if !ok {
		t.Fatalf("%T is not a ledger.RevisionStore", l)
	}
	t0 := time.Unix(1_800_000_000, 123).UTC()
	mk := func(run, target, service string, n int, sealed []byte) ledger.Revision {
		spec := `{"name":"` + service + `","image":"img:` + run + `","env":{"A":""}}`
		return ledger.Revision{RunID: run, Target: target, Service: service, Revision: n, Spec: spec, Sealed: sealed,
			Digest: ledger.RevisionDigest(spec, sealed), Time: t0.Add(time.Duration(n) * time.Second)}
	}
	want := []ledger.Revision{
		mk("run_1", "local", "web", 1, []byte{0, 1, 2, 255}),
		mk("run_2", "local", "web", 2, nil),
		mk("run_3", "local", "web", 3, bytes.Repeat([]byte{7}, 300)),
	}
	others := []ledger.Revision{mk("run_4", "local", "api", 1, nil), mk("run_5", "edge", "web", 1, nil)}
	// Stored out of order: Revisions sorts.
	for _, r := range []ledger.Revision{want[2], others[0], want[0], others[1], want[1]} {
		if err := rs.PutRevision(ctx, r); err != nil {
			t.Fatalf("PutRevision %s: %v", r.RunID, err)
		}
	}
	dup := mk("run_2", "local", "web", 9, nil)
	if err := rs.PutRevision(ctx, dup); !errors.Is(err, ledger.ErrRevisionExists) {
		t.Fatalf("a second revision for run_2: got %v, want ErrRevisionExists", err)
	}
	check := func(t *testing.T, rs ledger.RevisionStore) {
		t.Helper()
		got, err := rs.Revisions(ctx, "local", "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d revisions, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.RunID != w.RunID || g.Target != w.Target || g.Service != w.Service || g.Revision != w.Revision ||
				g.Spec != w.Spec || !bytes.Equal(g.Sealed, w.Sealed) || (g.Sealed == nil) != (w.Sealed == nil) ||
				g.Digest != w.Digest || !g.Time.Equal(w.Time) {
				t.Errorf("revision %d:\n got %+v\nwant %+v", i, g, w)
			}
			if ledger.RevisionDigest(g.Spec, g.Sealed) != g.Digest {
				t.Errorf("revision %d read back does not match its digest", i)
			}
		}
		one, err := rs.Revision(ctx, "run_3")
		if err != nil || one.Digest != want[2].Digest || !bytes.Equal(one.Sealed, want[2].Sealed) || one.Revision != 3 {
			t.Errorf("Revision(run_3) = %+v, %v", one, err)
		}
		if _, err := rs.Revision(ctx, "run_none"); !errors.Is(err, ledger.ErrNoRevision) {
			t.Errorf("Revision of a run without one: %v, want ErrNoRevision", err)
		}
		none, err := rs.Revisions(ctx, "local", "nothing")
		if err != nil || len(none) != 0 {
			t.Errorf("a service without revisions: %v, %v", none, err)
		}
	}
	t.Run("ReadBack", func(t *testing.T) { check(t, rs) })
	t.Run("SecondConnection", func(t *testing.T) {
		second, ok := reopen(t, l).(ledger.RevisionStore)
		if !ok {
			t.Fatal("the reopened ledger is not a RevisionStore")
		}
		check(t, second)
	})
}
