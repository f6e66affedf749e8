package ledgertest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
)

// Attacker changes a ledger's storage behind its back, the way someone with
// write access to the database would (dropping or disabling the
// append-only triggers first, and putting them back after).
type Attacker interface {
	// DeleteFrom removes every row with seq >= from.
	DeleteFrom(t *testing.T, from int64)
	// DeleteSeq removes one row.
	DeleteSeq(t *testing.T, seq int64)
	// Rewrite stores recs over the rows with the same seqs, every column.
	Rewrite(t *testing.T, recs []ledger.Record)
	// FailAppends makes every insert fail the way a full disk does (on),
	// or stops doing so (off).
	FailAppends(t *testing.T, on bool)
}

// RunAttacks runs the attacks of a hostile database writer against a
// running controller's ledger (wrapped by ledger/checkpoint, as serve does)
// and checks that each is detected: the live ledger refuses appends, a
// checkpointed halt stays on, a reopened ledger is read-only, and
// checkpoint.VerifyLedger names the first checkpoint the ledger no longer
// honours. open returns a new, empty ledger; reopen opens a second,
// independent handle on the same storage (as a restarted process would);
// attack returns the Attacker of a ledger open returned.
func RunAttacks(t *testing.T, open func(t *testing.T) ledger.Ledger, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger,
	attack func(t *testing.T, l ledger.Ledger) Attacker) {
	t.Run("TruncateTail", func(t *testing.T) {
		a := newAttack(t, open, attack, 10)
		a.att.DeleteFrom(t, 8)
		a.appendRefused(t, "removed from the tail")
		a.restartDetects(t, reopen, "ends at row 7")
	})
	t.Run("TruncateAll", func(t *testing.T) {
		a := newAttack(t, open, attack, 10)
		a.att.DeleteFrom(t, 1)
		a.appendRefused(t, "removed from the tail")
		a.restartDetects(t, reopen, "ends at row 0")
	})
	t.Run("RewriteAndRehash", func(t *testing.T) {
		a := newAttack(t, open, attack, 10)
		page, err := a.base.Query(ctx(t), ledger.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		// Change row 5 and recompute every later hash with the public
		// canonical encoding: the chain verifies, only the head differs.
		recs := page.Records
		forged := make([]ledger.Record, 0, 6)
		prev := recs[3]
		for _, r := range recs[4:] {
			if r.Seq == 5 {
				r.UserID = "mallory"
			}
			r = ledger.Seal(r, &prev)
			forged = append(forged, r)
			prev = r
		}
		a.att.Rewrite(t, forged)
		if res := mustVerify(t, a.base); !res.OK {
			t.Fatalf("the forged chain should verify on its own (that is the attack): %+v", res)
		}
		a.appendRefused(t, "rewritten")
		a.restartDetects(t, reopen, "rewritten")
	})
	t.Run("DeleteHaltRow", func(t *testing.T) {
		a := newAttack(t, open, attack, 2)
		halt := ledger.Record{RunID: "run-halt", Kind: ledger.KindIntent, UserID: "admin", Action: "halt", Target: ledger.GlobalScope,
			Detail: `{"on":true}`}
		mustAppend(t, a.cp, halt)
		halt.Kind, halt.Outcome = ledger.KindResult, ledger.OutcomeOK
		hr := mustAppend(t, a.cp, halt)
		for i := range 4 {
			mustAppend(t, a.cp, rec(100+i, ledger.KindRejected))
		}
		a.cp.Sync()
		a.att.DeleteSeq(t, hr.Seq)
		if h, err := a.base.Halts(ctx(t)); err != nil || h[ledger.GlobalScope] {
			t.Fatalf("backend halts after the attack = %v, %v; the attack should have lifted the halt there", h, err)
		}
		h, err := a.cp.Halts(ctx(t))
		if err != nil || !h[ledger.GlobalScope] {
			t.Fatalf("halts through the checkpointed ledger = %v, %v; want the global halt kept", h, err)
		}
		a.appendRefused(t, "halt switch")
		r2 := a.restartDetects(t, reopen, "halt row was removed")
		if h, err := r2.Halts(ctx(t)); err != nil || !h[ledger.GlobalScope] {
			t.Fatalf("after a restart: halts = %v, %v; want the checkpointed halt kept", h, err)
		}
	})
	t.Run("TruncateFromHalt", func(t *testing.T) {
		// The review's attack: delete the tail from the halt on.
		a := newAttack(t, open, attack, 2)
		halt := ledger.Record{RunID: "run-halt", Kind: ledger.KindIntent, UserID: "admin", Action: "halt", Target: "prod",
			Detail: `{"on":true}`}
		in := mustAppend(t, a.cp, halt)
		halt.Kind, halt.Outcome = ledger.KindResult, ledger.OutcomeOK
		mustAppend(t, a.cp, halt)
		a.cp.Sync()
		a.att.DeleteFrom(t, in.Seq)
		a.appendRefused(t, "")
		r2 := a.restartDetects(t, reopen, "ends at row 2")
		if h, err := r2.Halts(ctx(t)); err != nil || !h["prod"] {
			t.Fatalf("after a restart: halts = %v, %v; want the checkpointed halt of prod kept", h, err)
		}
	})
	t.Run("AppendsFailThenRecover", func(t *testing.T) {
		a := newAttack(t, open, attack, 3)
		if err := a.cp.Health(); err != nil {
			t.Fatalf("healthy ledger reports %v", err)
		}
		a.att.FailAppends(t, true)
		if _, err := a.cp.Append(ctx(t), rec(50, ledger.KindIntent)); err == nil {
			t.Fatal("append succeeded on a full disk")
		}
		if err := a.cp.Health(); err == nil {
			t.Fatal("Health is nil while appends fail")
		}
		a.att.FailAppends(t, false)
		mustAppend(t, a.cp, rec(51, ledger.KindIntent))
		if err := a.cp.Health(); err != nil {
			t.Fatalf("Health after appends work again: %v", err)
		}
		a.cp.Sync()
		if rep := verifyWith(t, a.base, a); !rep.OK {
			t.Fatalf("after recovery: %+v", rep)
		}
	})
}

type attackRun struct {
	base ledger.Ledger
	cp   *checkpoint.Ledger
	att  Attacker
	key  ed25519.PrivateKey
	file string
}

// newAttack opens a checkpointed ledger, appends n rows and signs a
// checkpoint of them.
func newAttack(t *testing.T, open func(t *testing.T) ledger.Ledger, attack func(t *testing.T, l ledger.Ledger) Attacker, n int) *attackRun {
	base := open(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	a := &attackRun{base: base, att: attack(t, base), key: key, file: filepath.Join(t.TempDir(), "cp", "checkpoints.jsonl")}
	a.cp = a.openCP(t, base)
	for i := range n {
		mustAppend(t, a.cp, rec(i, ledger.KindIntent))
	}
	a.cp.Sync()
	if c := a.cp.LastCheckpoint(); c == nil || c.Seq != int64(n) {
		t.Fatalf("checkpoint after %d rows: %+v", n, c)
	}
	return a
}

func (a *attackRun) openCP(t *testing.T, l ledger.Ledger) *checkpoint.Ledger {
	cp, _, err := checkpoint.Open(ctx(t), nopClose{l}, checkpoint.Options{Key: a.key, File: a.file, Every: 1 << 30,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	return cp
}

// appendRefused checks that the live ledger refuses the next append and
// reports itself unhealthy, naming the problem.
func (a *attackRun) appendRefused(t *testing.T, want string) {
	t.Helper()
	_, err := a.cp.Append(ctx(t), rec(999, ledger.KindIntent))
	if err == nil {
		t.Fatal("the live ledger accepted an append after the attack")
	}
	if !errors.Is(err, ledger.ErrHeadMoved) && !errors.Is(err, ledger.ErrReadOnly) {
		t.Fatalf("append error = %v, want ErrHeadMoved or ErrReadOnly", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("append error = %v, want it to say %q", err, want)
	}
	if a.cp.Health() == nil {
		t.Fatal("Health is nil after the attack was detected")
	}
}

// restartDetects opens the storage again (a restart) with the same
// checkpoint file: the ledger must be read-only and VerifyLedger must name
// checkpoint #… with reason containing want.
func (a *attackRun) restartDetects(t *testing.T, reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger, want string) *checkpoint.Ledger {
	t.Helper()
	second := reopen(t, a.base)
	rep := verifyWith(t, second, a)
	if rep.OK || rep.FirstBad == nil {
		t.Fatalf("verify --checkpoints after the attack: %+v, want a bad checkpoint", rep)
	}
	if !strings.Contains(rep.Reason, want) || !strings.Contains(rep.Reason, "checkpoint #") {
		t.Fatalf("verify reason = %q, want it to name the checkpoint and say %q", rep.Reason, want)
	}
	r2 := a.openCP(t, second)
	if _, err := r2.Append(ctx(t), rec(998, ledger.KindIntent)); !errors.Is(err, ledger.ErrReadOnly) {
		t.Fatalf("append after a restart on the attacked ledger: %v, want ErrReadOnly", err)
	}
	if r2.Health() == nil {
		t.Fatal("restarted ledger reports healthy")
	}
	return r2
}

func verifyWith(t *testing.T, l ledger.Ledger, a *attackRun) checkpoint.Report {
	t.Helper()
	cps, err := checkpoint.ReadFile(a.file)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := checkpoint.VerifyLedger(ctx(t), l, cps, a.key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// nopClose keeps the checkpoint wrapper from closing the backend, which
// the test's open closes.
type nopClose struct{ ledger.Ledger }

func (nopClose) Close() error { return nil }

func (n nopClose) HeadWatch() *ledger.HeadWatch {
	if g, ok := n.Ledger.(ledger.Guarded); ok {
		return g.HeadWatch()
	}
	return nil
}
