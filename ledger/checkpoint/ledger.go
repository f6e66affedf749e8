package checkpoint

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// Defaults of Options. A checkpoint costs one signature (tens of µs) and one
// fsync of the checkpoint file. Under load a group commit carries tens of
// rows per fsync, so one checkpoint per 10000 rows (or per 10 s) adds well
// under 1 % to the fsyncs the appends themselves cost. Rows appended since
// the last checkpoint are guarded by the running controller's head guard,
// not yet by a signature.
const (
	DefaultEvery    = 10000
	DefaultInterval = 10 * time.Second
	// DefaultFlushDelay is how long the follower and the exporters gather
	// commits before handling them, so a busy ledger is exported in
	// batches, not row by row: rows reach the sinks within about a second.
	DefaultFlushDelay = time.Second
)

// AcceptAction is the Action of the rows written when an admin starts the
// controller on a ledger that does not verify (Options.AcceptBroken).
const AcceptAction = "ledger_accept"

// Options configures Open.
type Options struct {
	// Key signs the checkpoints. Required.
	Key ed25519.PrivateKey
	// File is the checkpoint file, best kept in a directory other than
	// the ledger's (another disk, another owner). Required.
	File string
	// Every and Interval: a checkpoint is signed when Every rows were
	// appended since the last one, or Interval passed and rows were
	// appended. Defaults DefaultEvery and DefaultInterval.
	Every    int
	Interval time.Duration
	// FlushDelay: see DefaultFlushDelay.
	FlushDelay time.Duration
	// Sinks receive rows and checkpoints (see SinkConfig).
	Sinks []Sink
	// StateDir keeps the sinks' cursors; default the directory of File.
	StateDir string
	// AcceptBroken, when not empty, lets the controller append to a
	// ledger that does not verify at Open. The acceptance is recorded in
	// the ledger (action ledger_accept) with this text as the user and
	// the verification report as the message.
	AcceptBroken string
	Logger       *slog.Logger
}

// Ledger is a ledger.Ledger that publishes signed checkpoints of the
// ledger it wraps and exports its rows. It implements ledger.Guarded (the
// backend's head guard, or one of its own) and ledger.ServiceLocker
// (passed through; a no-op when the backend has no cross-process locks).
// It is safe for concurrent use; Close stops it and closes the backend.
type Ledger struct {
	inner ledger.Ledger
	guard *ledger.HeadWatch
	key   ed25519.PrivateKey
	file  *File
	o     Options
	log   *slog.Logger

	bufMu    sync.Mutex
	buf      []ledger.Record // appended, not yet folded
	overflow bool            // records were dropped from buf
	wake     chan struct{}
	stop     chan struct{} // stops the follower
	stopExp  chan struct{} // then the exporters
	expDone  sync.WaitGroup
	done     sync.WaitGroup
	once     sync.Once

	told   atomic.Bool // tampering was logged
	stepMu sync.Mutex  // one step at a time
	mu     sync.Mutex
	st     *state // the signer's fold; written by the signer only, under mu
	// pins are the halt scopes a checkpoint or a row seen by this process
	// put on, with the seq after which only a halt result may lift them.
	pins     map[string]int64
	haltSeen map[string]int64 // per scope, the seq of the latest halt row applied
	// missing are the pinned scopes whose rows were already gone at Open
	// (reported then; not reported again by Halts).
	missing map[string]bool
	last    *Checkpoint
	report  Report
	stats   Stats

	exporters []*exporter
}

// Stats are counters for metrics.
type Stats struct {
	Checkpoints      int64 `json:"checkpoints"`
	CheckpointErrors int64 `json:"checkpointErrors"`
	LastSeq          int64 `json:"lastSeq"`
	Sinks            []SinkStats
}

var (
	_ ledger.Ledger            = (*Ledger)(nil)
	_ ledger.Guarded           = (*Ledger)(nil)
	_ ledger.ServiceLocker     = (*Ledger)(nil)
	_ ledger.UnfinishedScanner = (*Ledger)(nil)
)

// Open verifies inner against the checkpoints in o.File and wraps it. When
// the ledger does not verify (a checkpointed head is gone or different, a
// checkpointed halt is missing, or the chain is broken), the returned
// Ledger is read-only — every append fails with ledger.ErrReadOnly — unless
// o.AcceptBroken says otherwise; the Report says why. Halts in the last
// checkpoint that the ledger no longer shows stay in force either way.
func Open(ctx context.Context, inner ledger.Ledger, o Options) (*Ledger, Report, error) {
	if o.Key == nil || o.File == "" {
		return nil, Report{}, errors.New("checkpoint: a key and a file are required")
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.FlushDelay <= 0 {
		o.FlushDelay = DefaultFlushDelay
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cps, err := ReadFile(o.File)
	if err != nil {
		return nil, Report{}, fmt.Errorf("checkpoint file %s: %w", o.File, err)
	}
	pub := o.Key.Public().(ed25519.PublicKey)
	rep, err := VerifyLedger(ctx, inner, cps, pub)
	if err != nil {
		return nil, Report{}, fmt.Errorf("checkpoint: verifying the ledger: %w", err)
	}
	f, err := OpenFile(o.File)
	if err != nil {
		return nil, rep, err
	}
	l := &Ledger{inner: inner, key: o.Key, file: f, o: o, log: o.Logger, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), stopExp: make(chan struct{}), st: rep.final, pins: map[string]int64{}, haltSeen: map[string]int64{}, missing: map[string]bool{}, report: rep}
	if g, ok := inner.(ledger.Guarded); ok && g.HeadWatch() != nil {
		l.guard = g.HeadWatch()
	} else {
		l.guard = new(ledger.HeadWatch)
	}
	for scope := range l.st.halts {
		l.pins[scope] = l.st.haltSeq[scope]
	}
	maps.Copy(l.haltSeen, l.st.haltSeq)
	if rep.Last != nil {
		l.last = rep.Last
		for _, scope := range rep.Last.Halts {
			if l.st.halts[scope] || l.st.haltSeq[scope] > rep.Last.Seq {
				continue // on in the ledger, or lifted by a later row
			}
			// Signed as on, and nothing after the checkpoint lifted it:
			// its rows are gone. It stays on until a halt row lifts it.
			l.pins[scope], l.haltSeen[scope] = l.st.seq, l.st.seq
			l.missing[scope] = true
			l.log.Error("ledger: a halt switch signed in the last checkpoint is missing from the ledger; it stays on",
				"scope", scope, "checkpoint_seq", rep.Last.Seq)
		}
	}
	if !rep.OK {
		if o.AcceptBroken == "" {
			l.guard.Refuse("the ledger does not verify against its chain and checkpoints (" + rep.Reason +
				"); it is read-only until an admin restarts the controller with --ledger-accept-broken")
			l.log.Error("LEDGER DOES NOT VERIFY: refusing every mutating operation", "reason", rep.Reason)
		} else if err := l.accept(ctx, rep); err != nil {
			f.Close()
			return nil, rep, err
		}
	}
	for _, s := range o.Sinks {
		e, err := newExporter(l, s)
		if err != nil {
			f.Close()
			return nil, rep, err
		}
		l.exporters = append(l.exporters, e)
	}
	l.done.Add(1)
	l.expDone.Add(len(l.exporters))
	go l.follower()
	for _, e := range l.exporters {
		go e.run()
	}
	return l, rep, nil
}

// accept records an admin's decision to append to a ledger that does not
// verify: an intent and a result, action ledger_accept, whose message is the
// verification report.
func (l *Ledger) accept(ctx context.Context, rep Report) error {
	detail, _ := json.Marshal(map[string]any{"rows": rep.Rows, "firstBroken": rep.Chain.FirstBroken, "firstBadCheckpoint": rep.FirstBad})
	r := ledger.Record{RunID: "accept_" + time.Now().UTC().Format("20060102T150405.000000000"), Kind: ledger.KindIntent,
		UserID: l.o.AcceptBroken, Action: AcceptAction, Target: ledger.GlobalScope, Message: truncate(rep.Reason, 1024), Detail: string(detail)}
	in, err := l.inner.Append(ctx, r)
	if err != nil {
		return fmt.Errorf("checkpoint: recording the acceptance of a broken ledger: %w", err)
	}
	r.Kind, r.Outcome = ledger.KindResult, ledger.OutcomeOK
	if _, err := l.inner.Append(ctx, r); err != nil {
		return fmt.Errorf("checkpoint: recording the acceptance of a broken ledger: %w", err)
	}
	l.log.Warn("ledger: started on a ledger that does not verify, as an admin asked; recorded in the ledger",
		"by", l.o.AcceptBroken, "seq", in.Seq, "reason", rep.Reason)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Report is what Open found when it verified the ledger.
func (l *Ledger) Report() Report { return l.report }

// PublicKey is the verification key of the checkpoints.
func (l *Ledger) PublicKey() ed25519.PublicKey { return l.key.Public().(ed25519.PublicKey) }

// LastCheckpoint is the newest checkpoint written or read at Open (nil:
// none).
func (l *Ledger) LastCheckpoint() *Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Stats returns counters.
func (l *Ledger) Stats() Stats {
	l.mu.Lock()
	s := l.stats
	l.mu.Unlock()
	for _, e := range l.exporters {
		s.Sinks = append(s.Sinks, e.stats())
	}
	return s
}

// HeadWatch implements ledger.Guarded.
func (l *Ledger) HeadWatch() *ledger.HeadWatch { return l.guard }

// Health is nil while the ledger takes appends (see ledger.HeadWatch).
func (l *Ledger) Health() error { return l.guard.Health() }

// Append implements ledger.Ledger: the backend's append, then a signal to
// the signer and the exporters, which never waits.
func (l *Ledger) Append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	return l.appendVia(func() (ledger.Record, error) { return l.inner.Append(ctx, r) })
}

// appendVia runs one append of the backend (Append, or AppendWithRevision
// in revisions.go) between the tamper check and the signal.
func (l *Ledger) appendVia(appendFn func() (ledger.Record, error)) (ledger.Record, error) {
	if err := l.guard.Tampered(); err != nil {
		return ledger.Record{}, err
	}
	out, err := appendFn()
	if err != nil {
		if errors.Is(err, ledger.ErrHeadMoved) {
			l.tampered(err.Error())
		}
		return out, err
	}
	if _, _, ok := haltOf(out); ok {
		l.mu.Lock()
		l.applyHalt(out)
		l.mu.Unlock()
	}
	l.bufMu.Lock()
	if len(l.buf) < maxBuffered {
		l.buf = append(l.buf, out)
	} else {
		l.overflow = true
	}
	l.bufMu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return out, nil
}

// applyHalt updates the pins from a halt row, newest row wins. l.mu held.
func (l *Ledger) applyHalt(r ledger.Record) {
	scope, on, ok := haltOf(r)
	if !ok || r.Seq <= l.haltSeen[scope] {
		return
	}
	l.haltSeen[scope] = r.Seq
	delete(l.missing, scope)
	if on {
		l.pins[scope] = r.Seq
	} else {
		delete(l.pins, scope)
	}
}

// Halts implements ledger.Ledger. A scope this process saw halted (in a
// checkpoint or a row) that the backend no longer reports as halted stays
// halted unless a halt result lifting it follows: the row that halted it
// was removed. That is tampering, and the ledger becomes read-only.
func (l *Ledger) Halts(ctx context.Context) (map[string]bool, error) {
	h, err := l.inner.Halts(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	pins, missing := maps.Clone(l.pins), maps.Clone(l.missing)
	l.mu.Unlock()
	for _, scope := range slices.Sorted(maps.Keys(pins)) {
		if h[scope] {
			continue
		}
		after := pins[scope]
		page, err := l.inner.Query(ctx, ledger.Filter{Action: "halt", Kind: ledger.KindResult, Outcome: ledger.OutcomeOK,
			Target: scope, Descending: true, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Records) == 1 && page.Records[0].Seq > after {
			if _, on, ok := haltOf(page.Records[0]); ok && !on {
				l.mu.Lock()
				l.applyHalt(page.Records[0])
				l.mu.Unlock()
				continue
			}
		}
		h[scope] = true
		if missing[scope] {
			continue // known since Open
		}
		l.tampered(fmt.Sprintf("the halt switch %q was on at row %d but the ledger no longer says so: its rows were removed; the switch stays on", scope, after))
	}
	return h, nil
}

func (l *Ledger) tampered(reason string) {
	if l.told.CompareAndSwap(false, true) {
		l.log.Error("LEDGER TAMPERING DETECTED: refusing every mutating operation", "reason", reason)
	}
	l.guard.Refuse("tampering detected: " + reason)
}

// Query implements ledger.Ledger.
func (l *Ledger) Query(ctx context.Context, f ledger.Filter) (ledger.Page, error) {
	return l.inner.Query(ctx, f)
}

// Verify implements ledger.Ledger: the chain walk of the backend.
func (l *Ledger) Verify(ctx context.Context) (ledger.VerifyResult, error) { return l.inner.Verify(ctx) }

// Unfinished implements ledger.Ledger.
func (l *Ledger) Unfinished(ctx context.Context) ([]ledger.Record, error) {
	return l.inner.Unfinished(ctx)
}

// UnfinishedAfter implements ledger.UnfinishedScanner: the backend's when
// it has one, else its Unfinished filtered (ledger.UnfinishedAfter).
func (l *Ledger) UnfinishedAfter(ctx context.Context, after int64) ([]ledger.Record, int64, error) {
	return ledger.UnfinishedAfter(ctx, l.inner, after)
}

// LockService implements ledger.ServiceLocker when the backend does; else
// it holds nothing (the runtime's in-process lock still serialises).
func (l *Ledger) LockService(ctx context.Context, key string) (func(), error) {
	if sl, ok := l.inner.(ledger.ServiceLocker); ok {
		return sl.LockService(ctx, key)
	}
	return func() {}, nil
}

// Inner is the wrapped backend.
func (l *Ledger) Inner() ledger.Ledger { return l.inner }

// Close signs a last checkpoint of what was appended, stops the exporters
// (after one last delivery attempt, bounded) and closes the backend.
func (l *Ledger) Close() error {
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait() // the follower's last step offers the last rows
		close(l.stopExp)
	})
	l.expDone.Wait()
	l.file.Close()
	for _, e := range l.exporters {
		e.sink.Close()
	}
	return l.inner.Close()
}

// maxBuffered bounds the appended records kept in memory for the
// follower; past it the follower reads the rows from the ledger instead.
const maxBuffered = 1 << 16

// follower folds new rows, signs checkpoints when due, and hands the rows
// to the exporters. While appends come in it steps every FlushDelay; when
// idle, every Interval (to notice rows from other processes and rows
// removed behind its back).
func (l *Ledger) follower() {
	defer l.done.Done()
	tick := time.NewTicker(l.o.Interval)
	defer tick.Stop()
	for {
		force := false
		select {
		case <-l.stop:
			l.step(true)
			return
		case <-l.wake:
			select { // gather a little more
			case <-time.After(l.o.FlushDelay):
			case <-l.stop:
			}
		case <-tick.C:
			force = true
		}
		l.step(force)
	}
}

// Sync folds what was appended and signs a checkpoint now if the head
// moved since the last one (tests and shutdown).
func (l *Ledger) Sync() { l.step(true) }

// step folds the rows after the last folded one — the records this
// process appended when they follow on, else rows read from the ledger —
// checking that each extends the chain it holds, passes them to the
// exporters, and signs a checkpoint when Every rows or Interval passed
// since the last (always when force and the head moved).
func (l *Ledger) step(force bool) {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	if l.guard.Tampered() != nil {
		return // never sign a ledger found tampered with
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l.bufMu.Lock()
	recs, overflow := l.buf, l.overflow
	l.buf, l.overflow = nil, false
	l.bufMu.Unlock()
	slices.SortFunc(recs, func(a, b ledger.Record) int { return cmpInt(a.Seq, b.Seq) })

	l.mu.Lock()
	st := l.st
	seq, head := st.seq, st.head
	l.mu.Unlock()
	for len(recs) > 0 && recs[0].Seq <= seq {
		recs = recs[1:]
	}
	contiguous := len(recs) > 0 && recs[0].Seq == seq+1
	for i := 1; contiguous && i < len(recs); i++ {
		contiguous = recs[i].Seq == recs[i-1].Seq+1
	}
	batch := recs
	if overflow || force || (len(recs) > 0 && !contiguous) {
		// Rows this process did not append (another controller's), rows
		// it dropped, or a periodic look: read the ledger. First, the
		// row last folded must still be there, unchanged.
		if seq > 0 {
			page, err := l.inner.Query(ctx, ledger.Filter{Cursor: fmt.Sprintf("s%d", seq-1), Limit: 1})
			if err != nil {
				l.log.Warn("ledger checkpoint: reading the head failed", "err", err)
				return
			}
			switch {
			case len(page.Records) == 0 || page.Records[0].Seq != seq:
				l.tampered(fmt.Sprintf("row %d, which this controller read, is gone: rows were removed from the tail", seq))
				return
			case page.Records[0].Hash != head:
				l.tampered(fmt.Sprintf("row %d no longer holds the hash this controller read: the ledger was rewritten", seq))
				return
			}
		}
		batch = nil
		for r, err := range rowsAfter(ctx, l.inner, seq) {
			if err != nil {
				l.log.Warn("ledger checkpoint: reading rows failed", "err", err)
				return
			}
			batch = append(batch, r)
		}
	}
	l.mu.Lock()
	for _, r := range batch {
		if r.Seq != st.seq+1 || r.PrevHash != st.head {
			l.mu.Unlock()
			l.tampered(fmt.Sprintf("row %d does not extend the chain this controller holds up to row %d", r.Seq, st.seq))
			return
		}
		st.fold(r)
		l.applyHalt(r)
	}
	last := l.last
	due := last == nil || st.seq-last.Seq >= int64(l.o.Every) || force || time.Since(last.Time) >= l.o.Interval
	moved := st.seq > 0 && (last == nil || last.Seq != st.seq || last.Head != st.head)
	var cp Checkpoint
	if due && moved {
		cp = Sign(Checkpoint{Seq: st.seq, Head: st.head, Halts: st.haltList(), Time: time.Now()}, l.key)
	}
	l.mu.Unlock()
	for _, e := range l.exporters {
		e.offer(batch)
	}
	if cp.Sig != "" {
		err := l.file.Append(cp)
		l.mu.Lock()
		if err != nil {
			l.stats.CheckpointErrors++
			l.log.Error("ledger checkpoint: writing the checkpoint file failed", "file", l.o.File, "err", err)
		} else {
			l.last = &cp
			l.stats.Checkpoints++
			l.stats.LastSeq = cp.Seq
		}
		l.mu.Unlock()
	}
	for _, e := range l.exporters {
		e.poke()
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
