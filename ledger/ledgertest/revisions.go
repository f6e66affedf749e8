package ledgertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// RunRevisions is the conformance suite of a ledger.RevisionStore: rows
// come back exactly as stored (sealed bytes included, nil staying nil),
// one service's rows only, oldest first; a second revision for a run is
// ErrRevisionExists; a second connection (reopen) sees them. The ledger
// must also be a ledger.RevisionAppender (RunRevisionAppender), and the
// function ledger.AppendWithRevision's fallback is checked on it too; and
// a ledger.GuardedAppender (RunGuards).
func RunRevisions(t *testing.T, open func(t *testing.T) ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger) {
	t.Run("PutRevision", func(t *testing.T) { testPutRevision(t, open, reopen) })
	t.Run("AppendWithRevision", func(t *testing.T) {
		l := open(t)
		if _, ok := l.(ledger.RevisionAppender); !ok {
			t.Fatalf("%T is not a ledger.RevisionAppender", l)
		}
		testAppendWithRevision(t, l, reopen)
	})
	t.Run("RevisionHead", func(t *testing.T) {
		l := open(t)
		if _, ok := l.(ledger.RevisionHeadReader); !ok {
			t.Fatalf("%T is not a ledger.RevisionHeadReader", l)
		}
		testRevisionHead(t, l)
	})
	t.Run("RevisionHeadFallback", func(t *testing.T) {
		l := open(t)
		testRevisionHead(t, storeOnly{l, l.(ledger.RevisionStore)})
	})
	t.Run("Guards", func(t *testing.T) { RunGuards(t, open, reopen) })
	t.Run("AppendWithRevisionFallback", func(t *testing.T) {
		l := open(t)
		testAppendWithRevision(t, storeOnly{l, l.(ledger.RevisionStore)}, func(t *testing.T, _ ledger.Ledger) ledger.Ledger { return reopen(t, l) })
	})
}

// storeOnly hides a ledger's RevisionAppender: ledger.AppendWithRevision
// takes its fallback (PutRevision, then Append).
type storeOnly struct {
	ledger.Ledger
	ledger.RevisionStore
}

// testRevisionHead: RevisionHead names the newest successful result row
// of a revision-recording action of one service, and nothing else.
func testRevisionHead(t *testing.T, l ledger.Ledger) {
	ctx := context.Background()
	head := func(target, service string) int64 {
		t.Helper()
		seq, err := ledger.RevisionHead(ctx, l, target, service)
		if err != nil {
			t.Fatalf("RevisionHead(%s/%s): %v", target, service, err)
		}
		return seq
	}
	if n := head("local", "web"); n != 0 {
		t.Fatalf("RevisionHead of an empty ledger: %d, want 0", n)
	}
	row := func(kind ledger.Kind, action, target, service string, outcome ledger.Outcome) int64 {
		t.Helper()
		out, err := l.Append(ctx, ledger.Record{RunID: fmt.Sprintf("run_h%d", time.Now().UnixNano()), Kind: kind, UserID: "alice",
			Action: action, Target: target, Service: service, Outcome: outcome})
		if err != nil {
			t.Fatal(err)
		}
		return out.Seq
	}
	steps := []struct {
		kind                    ledger.Kind
		action, target, service string
		outcome                 ledger.Outcome
		moves                   bool // local/web's head moves to this row
	}{
		{ledger.KindResult, "start", "local", "web", ledger.OutcomeOK, true},
		{ledger.KindIntent, "scale", "local", "web", "", false},
		{ledger.KindResult, "scale", "local", "web", ledger.OutcomeError, false},
		{ledger.KindResult, "restart", "local", "web", ledger.OutcomeOK, false},
		{ledger.KindResult, "scale", "edge", "web", ledger.OutcomeOK, false},
		{ledger.KindResult, "apply_config", "local", "api", ledger.OutcomeOK, false},
		{ledger.KindResult, "scale", "local", "web", ledger.OutcomeInterrupted, false},
		{ledger.KindResult, "stop", "local", "web", ledger.OutcomeOK, false},
		{ledger.KindResult, "exec", "local", "web", ledger.OutcomeOK, false},
		{ledger.KindResult, "scale", "local", "web", ledger.OutcomeOK, true},
		{ledger.KindResult, "apply_config", "local", "web", ledger.OutcomeOK, true},
		{ledger.KindRejected, "rollback", "local", "web", ledger.OutcomeInvalid, false},
		{ledger.KindResult, "rollback", "local", "web", ledger.OutcomeOK, true},
	}
	var want int64
	for i, s := range steps {
		seq := row(s.kind, s.action, s.target, s.service, s.outcome)
		if s.moves {
			want = seq
		}
		if got := head("local", "web"); got != want {
			t.Fatalf("after row %d (%s %s %s/%s %s): RevisionHead = %d, want %d", i, s.kind, s.action, s.target, s.service, s.outcome, got, want)
		}
	}
	if got := head("edge", "web"); got != 5 {
		t.Errorf("RevisionHead(edge/web) = %d, want 5", got)
	}
	if got := head("local", "nothing"); got != 0 {
		t.Errorf("RevisionHead of a service without rows = %d, want 0", got)
	}
}

// testAppendWithRevision: records appended with their revision chain like
// any other (concurrently, mixed with plain appends), each revision is
// stored as given, at its record's time when it had none; a revision of
// a run that has one already, or one that belongs to another record,
// fails with ErrRevisionNotStored and writes neither row, and the other
// appends of the moment are not disturbed; a second connection sees it
// all.
func testAppendWithRevision(t *testing.T, l ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger) {
	ctx := context.Background()
	rs := l.(ledger.RevisionStore)
	result := func(run, service string) ledger.Record {
		return ledger.Record{RunID: run, Kind: ledger.KindResult, UserID: "alice", Action: "scale", Target: "local",
			Service: service, Provider: "memory", Outcome: ledger.OutcomeOK, Detail: `{"revision":1}`}
	}
	revOf := func(r ledger.Record, n int, sealed []byte) ledger.Revision {
		spec := `{"v":1,"spec":{"name":"` + r.Service + `","replicas":` + string(rune('0'+n%10)) + `}}`
		return ledger.Revision{RunID: r.RunID, Target: r.Target, Service: r.Service, Revision: n, Spec: spec,
			Sealed: sealed, Digest: ledger.RevisionDigest(spec, sealed)}
	}

	first := result("run_a1", "web")
	rev := revOf(first, 1, []byte{9, 0, 8})
	got, err := ledger.AppendWithRevision(ctx, l, first, rev)
	if err != nil {
		t.Fatalf("AppendWithRevision: %v", err)
	}
	if got.Seq == 0 || got.Hash == "" || got.RunID != "run_a1" {
		t.Fatalf("AppendWithRevision returned %+v, want the sealed record", got)
	}
	stored, err := rs.Revision(ctx, "run_a1")
	if err != nil || stored.Digest != rev.Digest || !bytes.Equal(stored.Sealed, rev.Sealed) || stored.Revision != 1 {
		t.Fatalf("Revision(run_a1) = %+v, %v", stored, err)
	}
	if _, ok := l.(ledger.RevisionAppender); ok && !stored.Time.Equal(got.Time) {
		t.Errorf("a revision without a time: stored at %v, want its record's time %v", stored.Time, got.Time)
	}

	// Concurrent: revisions and plain appends share batches; one of them
	// repeats run_a1's revision, one belongs to another record.
	const workers = 32
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := result(fmt.Sprintf("run_c%02d", w), fmt.Sprintf("svc-%d", w%4))
			switch w {
			case 7: // a second revision for run_a1
				r = result("run_a1", "web")
				_, errs[w] = ledger.AppendWithRevision(ctx, l, r, revOf(r, 2, nil))
			case 11: // another record's revision
				_, errs[w] = ledger.AppendWithRevision(ctx, l, r, revOf(result("run_zz", r.Service), 1, nil))
			default:
				if w%3 == 0 {
					_, errs[w] = l.Append(ctx, r)
				} else {
					_, errs[w] = ledger.AppendWithRevision(ctx, l, r, revOf(r, 1, nil))
				}
			}
		}()
	}
	wg.Wait()
	for w, err := range errs {
		switch w {
		case 7:
			if !errors.Is(err, ledger.ErrRevisionNotStored) || !errors.Is(err, ledger.ErrRevisionExists) {
				t.Errorf("a second revision for a run: %v, want ErrRevisionNotStored and ErrRevisionExists", err)
			}
		case 11:
			if !errors.Is(err, ledger.ErrRevisionNotStored) {
				t.Errorf("another record's revision: %v, want ErrRevisionNotStored", err)
			}
		default:
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		}
	}
	check := func(t *testing.T, l ledger.Ledger) {
		t.Helper()
		rs := l.(ledger.RevisionStore)
		if res, err := l.Verify(ctx); err != nil || !res.OK || res.Count != 1+workers-2 {
			t.Fatalf("Verify: %+v, %v; want %d rows chained", res, err, 1+workers-2)
		}
		if p, err := l.Query(ctx, ledger.Filter{RunID: "run_a1"}); err != nil || len(p.Records) != 1 {
			t.Errorf("run_a1 has %d rows (%v), want 1: the refused append wrote its record", len(p.Records), err)
		}
		if p, err := l.Query(ctx, ledger.Filter{RunID: "run_c11"}); err != nil || len(p.Records) != 0 {
			t.Errorf("run_c11 has %d rows (%v), want 0: a refused revision's record was written", len(p.Records), err)
		}
		if one, err := rs.Revision(ctx, "run_a1"); err != nil || one.Revision != 1 {
			t.Errorf("Revision(run_a1) after the refused second one: %+v, %v", one, err)
		}
		for _, run := range []string{"run_zz", "run_c11", "run_c03"} { // run_c03 was a plain append
			if _, err := rs.Revision(ctx, run); !errors.Is(err, ledger.ErrNoRevision) {
				t.Errorf("Revision(%s): %v, want ErrNoRevision", run, err)
			}
		}
		n := 0
		for s := range 4 {
			revs, err := rs.Revisions(ctx, "local", fmt.Sprintf("svc-%d", s))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range revs {
				if ledger.RevisionDigest(r.Spec, r.Sealed) != r.Digest || r.Sealed != nil {
					t.Errorf("revision of %s read back as %+v", r.RunID, r)
				}
				n++
			}
		}
		want := 0
		for w := range workers {
			if w != 7 && w != 11 && w%3 != 0 {
				want++
			}
		}
		if n != want {
			t.Errorf("%d revisions of svc-*, want %d", n, want)
		}
	}
	check(t, l)
	t.Run("SecondConnection", func(t *testing.T) { check(t, reopen(t, l)) })
}

func testPutRevision(t *testing.T, open func(t *testing.T) ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger) {
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
