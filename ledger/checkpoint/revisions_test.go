package checkpoint_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"sync"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// TestRevisions: the revision conformance suite through the checkpointed
// ledger (its RevisionAppender passes the backend's through), and the
// rows appended with a revision are checkpointed like any other.
func TestRevisions(t *testing.T) {
	var paths sync.Map // *checkpoint.Ledger → its SQLite file
	open := func(t *testing.T) ledger.Ledger {
		dir := t.TempDir()
		path := filepath.Join(dir, "ledger.db")
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		l, _, err := checkpoint.Open(context.Background(), openSQLite(t, path), checkpoint.Options{
			Key: key, File: filepath.Join(dir, "checkpoints.jsonl"), Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			l.Sync()
			res, err := l.Verify(context.Background())
			if cp := l.LastCheckpoint(); err == nil && res.Count > 0 && (cp == nil || cp.Seq != res.Count || cp.Head != res.Head) {
				t.Errorf("the last checkpoint %+v does not cover the %d rows (head %s)", cp, res.Count, res.Head)
			}
			l.Close()
		})
		paths.Store(l, path)
		return l
	}
	reopen := func(t *testing.T, l ledger.Ledger) ledger.Ledger {
		path, _ := paths.Load(l)
		second, err := sqlite.Open(context.Background(), path.(string))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { second.Close() })
		return second
	}
	ledgertest.RunRevisions(t, open, reopen)
}
