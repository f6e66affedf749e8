package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/alphaswarm/controller/ledger"
)

// RunGuards is the conformance suite of a ledger.GuardedAppender (run by
// RunRevisions for every ledger that keeps revisions), and of the
// function ledger.AppendGuarded's fallback on the same ledger: a guard
// that holds appends like Append (with the revision, when given); one that
// does not writes nothing of the record or its revision and fails with an
// error matching ledger.ErrGuard (a *ledger.HaltedError naming the scope,
// or ledger.ErrStaleRevision); and among concurrent appends, the refused
// ones do not disturb the others; a guard sees what another connection
// to the same ledger (reopen) appended since this one last wrote.
func RunGuards(t *testing.T, open func(t *testing.T) ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger) {
	t.Run("GuardedAppender", func(t *testing.T) {
		l := open(t)
		if _, ok := l.(ledger.GuardedAppender); !ok {
			t.Fatalf("%T is not a ledger.GuardedAppender", l)
		}
		testGuards(t, l)
	})
	t.Run("AnotherWriter", func(t *testing.T) {
		l := open(t)
		testGuardsAnotherWriter(t, l, reopen(t, l))
	})
	t.Run("Fallback", func(t *testing.T) {
		l := open(t)
		testGuards(t, storeOnly{l, l.(ledger.RevisionStore)})
	})
}

func testGuards(t *testing.T, l ledger.Ledger) {
	c := ctx(t)
	n := 0
	record := func(kind ledger.Kind, action, target, service string, detail string) ledger.Record {
		n++
		r := ledger.Record{RunID: fmt.Sprintf("run_g%04d", n), Kind: kind, UserID: "alice", Action: action,
			Target: target, Service: service, Provider: "memory", Detail: detail}
		if kind == ledger.KindResult {
			r.Outcome = ledger.OutcomeOK
		}
		return r
	}
	headSeq := func() int64 {
		t.Helper()
		p, err := l.Query(c, ledger.Filter{Descending: true, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) == 0 {
			return 0
		}
		return p.Records[0].Seq
	}
	intentGuard := func(target string) ledger.Guard { return ledger.Guard{Unhalted: []string{ledger.GlobalScope, target}} }
	refused := func(what string, r ledger.Record, rev *ledger.Revision, g ledger.Guard, want error) {
		t.Helper()
		before := headSeq()
		out, err := ledger.AppendGuarded(c, l, r, rev, g)
		if !errors.Is(err, ledger.ErrGuard) {
			t.Fatalf("%s: AppendGuarded = %+v, %v; want an error matching ErrGuard", what, out, err)
		}
		var he *ledger.HaltedError
		switch want := want.(type) {
		case *ledger.HaltedError:
			if !errors.As(err, &he) || he.Scope != want.Scope {
				t.Fatalf("%s: error %v, want a HaltedError for scope %q", what, err, want.Scope)
			}
		default:
			if !errors.Is(err, want) || errors.As(err, &he) {
				t.Fatalf("%s: error %v, want %v", what, err, want)
			}
		}
		if after := headSeq(); after != before {
			t.Fatalf("%s: the refused append wrote rows %d..%d", what, before+1, after)
		}
		if rev != nil {
			if _, err := l.(ledger.RevisionStore).Revision(c, rev.RunID); !errors.Is(err, ledger.ErrNoRevision) {
				t.Fatalf("%s: the refused append stored its revision (Revision: %v)", what, err)
			}
		}
	}
	accepted := func(what string, r ledger.Record, rev *ledger.Revision, g ledger.Guard) ledger.Record {
		t.Helper()
		out, err := ledger.AppendGuarded(c, l, r, rev, g)
		if err != nil {
			t.Fatalf("%s: AppendGuarded: %v", what, err)
		}
		if out.Seq != headSeq() || out.RunID != r.RunID {
			t.Fatalf("%s: appended %+v, not the ledger's last row", what, out)
		}
		return out
	}
	halt := func(scope string, on bool) {
		t.Helper()
		mustAppend(t, l, record(ledger.KindResult, "halt", scope, "", fmt.Sprintf(`{"on":%v}`, on)))
	}

	// Halts: a target's, then the global switch; lifted, the intents pass.
	accepted("intent, nothing halted", record(ledger.KindIntent, "scale", "prod", "web", ""), nil, intentGuard("prod"))
	halt("prod", true)
	refused("intent on a halted target", record(ledger.KindIntent, "scale", "prod", "web", ""), nil, intentGuard("prod"), &ledger.HaltedError{Scope: "prod"})
	accepted("intent on another target", record(ledger.KindIntent, "scale", "staging", "web", ""), nil, intentGuard("staging"))
	accepted("a record whose guard names no scope", record(ledger.KindIntent, "scale", "prod", "web", ""), nil, ledger.Guard{})
	halt(ledger.GlobalScope, true)
	refused("intent while halted globally", record(ledger.KindIntent, "scale", "staging", "web", ""), nil, intentGuard("staging"), &ledger.HaltedError{Scope: ledger.GlobalScope})
	halt(ledger.GlobalScope, false)
	halt("prod", false)
	accepted("intent after the halts were lifted", record(ledger.KindIntent, "scale", "prod", "web", ""), nil, intentGuard("prod"))

	// Revision heads: the guard passes only at the service's head, with or
	// without a revision row; a refused one stores neither.
	first := accepted("first revision-recording result", record(ledger.KindResult, "start", "prod", "web", `{}`), nil, ledger.Guard{CheckHead: true, Head: 0})
	refused("result planned from no revision", record(ledger.KindResult, "scale", "prod", "web", `{}`), nil, ledger.Guard{CheckHead: true, Head: 0}, ledger.ErrStaleRevision)
	accepted("an unrelated result (restart) does not move the head", record(ledger.KindResult, "restart", "prod", "web", `{}`), nil, ledger.Guard{})
	r := record(ledger.KindResult, "scale", "prod", "web", `{"revision":2}`)
	rev := revisionOf(r, 2)
	refused("result with its revision, planned from an older head", r, &rev, ledger.Guard{CheckHead: true, Head: first.Seq - 1}, ledger.ErrStaleRevision)
	second := accepted("result with its revision, at the head", r, &rev, ledger.Guard{CheckHead: true, Head: first.Seq})
	if got, err := l.(ledger.RevisionStore).Revision(c, r.RunID); err != nil || got.Digest != rev.Digest {
		t.Fatalf("the accepted append's revision: %+v, %v", got, err)
	}
	accepted("another service's head is its own", record(ledger.KindResult, "scale", "prod", "api", `{}`), nil, ledger.Guard{CheckHead: true, Head: 0})
	accepted("the next, planned from the second", record(ledger.KindResult, "apply_config", "prod", "web", `{}`), nil, ledger.Guard{CheckHead: true, Head: second.Seq})

	// Concurrent guarded appends (one batch, or several): the refused ones
	// write nothing, the others commit and the chain holds.
	halt("frozen", true)
	var wg sync.WaitGroup
	errs := make([]error, 24)
	recs := make([]ledger.Record, 24)
	for i := range recs {
		target := "open"
		if i%3 == 0 {
			target = "frozen"
		}
		recs[i] = record(ledger.KindIntent, "scale", target, fmt.Sprintf("svc-%d", i), "")
	}
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = ledger.AppendGuarded(context.WithoutCancel(c), l, recs[i], nil, intentGuard(recs[i].Target))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var he *ledger.HaltedError
		switch {
		case recs[i].Target == "frozen" && (!errors.As(err, &he) || he.Scope != "frozen"):
			t.Errorf("concurrent intent %d on a halted target: %v, want a HaltedError", i, err)
		case recs[i].Target == "open" && err != nil:
			t.Errorf("concurrent intent %d: %v", i, err)
		}
		p, qerr := l.Query(c, ledger.Filter{RunID: recs[i].RunID})
		if qerr != nil {
			t.Fatal(qerr)
		}
		if want := map[bool]int{true: 1, false: 0}[err == nil]; len(p.Records) != want {
			t.Errorf("concurrent intent %d (error %v): %d rows, want %d", i, err, len(p.Records), want)
		}
	}
	mustVerify(t, l)
}

// revisionOf is a revision numbered n belonging to r.
func revisionOf(r ledger.Record, n int) ledger.Revision {
	spec := fmt.Sprintf(`{"v":1,"spec":{"name":%q,"replicas":%d}}`, r.Service, n)
	return ledger.Revision{RunID: r.RunID, Target: r.Target, Service: r.Service, Revision: n, Spec: spec,
		Digest: ledger.RevisionDigest(spec, nil)}
}

// testGuardsAnotherWriter: revision heads and halts another connection
// (or process) appended between two of l's appends are what l's guards
// check, whatever l learnt before.
func testGuardsAnotherWriter(t *testing.T, l, other ledger.Ledger) {
	c := ctx(t)
	result := func(run, action, target, service, detail string) ledger.Record {
		return ledger.Record{RunID: run, Kind: ledger.KindResult, UserID: "alice", Action: action, Target: target,
			Service: service, Provider: "memory", Outcome: ledger.OutcomeOK, Detail: detail}
	}
	first, err := ledger.AppendGuarded(c, l, result("run_w1", "start", "prod", "web", `{}`), nil, ledger.Guard{CheckHead: true})
	if err != nil {
		t.Fatal(err)
	}
	// l now knows web's head; the other writer moves it.
	moved, err := other.Append(c, result("run_w2", "scale", "prod", "web", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.AppendGuarded(c, l, result("run_w3", "scale", "prod", "web", `{}`), nil,
		ledger.Guard{CheckHead: true, Head: first.Seq}); !errors.Is(err, ledger.ErrStaleRevision) {
		t.Fatalf("a result planned before another writer's revision: %v, want ErrStaleRevision", err)
	}
	if _, err := ledger.AppendGuarded(c, l, result("run_w3", "scale", "prod", "web", `{}`), nil,
		ledger.Guard{CheckHead: true, Head: moved.Seq}); err != nil {
		t.Fatalf("a result planned from the other writer's revision: %v", err)
	}
	// l knows the halt switches (it checked them), and the other writer
	// halts the target.
	if _, err := ledger.AppendGuarded(c, l, ledger.Record{RunID: "run_w3b", Kind: ledger.KindIntent, UserID: "alice", Action: "scale",
		Target: "prod", Service: "api"}, nil, ledger.Guard{Unhalted: []string{ledger.GlobalScope, "prod"}}); err != nil {
		t.Fatalf("an intent before any halt: %v", err)
	}
	if _, err := other.Append(c, result("run_w4", "halt", "prod", "", `{"on":true}`)); err != nil {
		t.Fatal(err)
	}
	var he *ledger.HaltedError
	if _, err := ledger.AppendGuarded(c, l, ledger.Record{RunID: "run_w5", Kind: ledger.KindIntent, UserID: "alice", Action: "scale",
		Target: "prod", Service: "web"}, nil, ledger.Guard{Unhalted: []string{ledger.GlobalScope, "prod"}}); !errors.As(err, &he) {
		t.Fatalf("an intent after another writer halted its target: %v, want a HaltedError", err)
	}
}
