package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
)

// helperEnv selects a helper mode when the test binary is re-executed as a
// separate process (see runHelper).
const helperEnv = "LEDGER_POSTGRES_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	pgtest.Main(m)
}

func newDB(t testing.TB) string {
	t.Helper()
	return pgtest.CreateDB(t)
}

func openDSN(t testing.TB, dsn string) *Ledger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func openLedger(t testing.TB) (*Ledger, string) {
	t.Helper()
	dsn := newDB(t)
	return openDSN(t, dsn), dsn
}

// sqlConn is a plain connection for looking behind the ledger's back.
func sqlConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// rec makes a record with every field set.
func rec(tag string, i int) ledger.Record {
	return ledger.Record{
		RunID:          fmt.Sprintf("%s-%d", tag, i),
		Kind:           ledger.KindResult,
		UserID:         "user-" + tag,
		Action:         "scale",
		Target:         "target-" + strconv.Itoa(i%3),
		Service:        "svc-" + strconv.Itoa(i%2),
		Provider:       "docker",
		RequestDigest:  fmt.Sprintf("digest-%s-%d", tag, i),
		IdempotencyKey: fmt.Sprintf("idem-%s-%d", tag, i),
		Outcome:        ledger.OutcomeError,
		ErrorCode:      "E_TEST",
		Message:        "message ünïcödé " + strconv.Itoa(i),
		Detail:         fmt.Sprintf(`{"replicas": %d,  "b":[1, 2]}`, i),
		Duration:       time.Duration(i)*time.Millisecond + 7,
		Time:           time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600)).Add(time.Duration(i) * time.Second),
	}
}

func mustAppend(t testing.TB, l ledger.Ledger, r ledger.Record) ledger.Record {
	t.Helper()
	got, err := l.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

func mustVerify(t testing.TB, l ledger.Ledger) ledger.VerifyResult {
	t.Helper()
	res, err := l.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

// all reads every record through Query's pagination.
func all(t testing.TB, l ledger.Ledger, f ledger.Filter) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	for {
		p, err := l.Query(context.Background(), f)
		if err != nil {
			t.Fatalf("Query(%+v): %v", f, err)
		}
		out = append(out, p.Records...)
		if p.Next == "" {
			return out
		}
		f.Cursor = p.Next
	}
}

func TestOpenByURL(t *testing.T) {
	dsn := newDB(t)
	ctx := context.Background()
	for _, u := range []string{dsn, strings.Replace(dsn, "postgres://", "postgresql://", 1)} {
		l, err := ledger.Open(ctx, u)
		if err != nil {
			t.Fatalf("ledger.Open(%s): %v", u, err)
		}
		if _, ok := l.(*Ledger); !ok {
			t.Errorf("ledger.Open(%s) = %T", u, l)
		}
		if _, ok := l.(ledger.ServiceLocker); !ok {
			t.Error("not a ServiceLocker")
		}
		l.Close()
	}
	if _, err := ledger.Open(ctx, "postgres://postgres@/nosuchdb?host=/nonexistent&sslmode=disable&connect_timeout=2"); err == nil {
		t.Error("Open of an unreachable database succeeded")
	}
}

func TestAppendRoundTrip(t *testing.T) {
	l, _ := openLedger(t)
	var want []ledger.Record
	for i := range 5 {
		r := rec("rt", i)
		got := mustAppend(t, l, r)
		if got.Seq != int64(i+1) {
			t.Fatalf("seq = %d, want %d", got.Seq, i+1)
		}
		if got.Hash != got.ComputeHash() || got.Time.Location() != time.UTC {
			t.Fatalf("bad sealed record %+v", got)
		}
		want = append(want, got)
	}
	got := all(t, l, ledger.Filter{})
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("record %d read back differs:\n got %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
	res := mustVerify(t, l)
	if !res.OK || res.Count != 5 || res.Head != want[4].Hash {
		t.Errorf("Verify = %+v", res)
	}
	// A zero Time is set to now.
	before := time.Now()
	r := mustAppend(t, l, ledger.Record{RunID: "now", Kind: ledger.KindIntent})
	if r.Time.Before(before.Add(-time.Second)) || r.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("Time = %v, want about %v", r.Time, before)
	}
}

func TestAppendOddStrings(t *testing.T) {
	l, _ := openLedger(t)
	r := rec("odd", 1)
	r.Message = "bad \xff\xfe utf8 and 'quotes' \\ and \u2028"
	r.Detail = `{"k":"\u0000 escaped is fine"}`
	got := mustAppend(t, l, r)
	back := all(t, l, ledger.Filter{})[0]
	if back != got {
		t.Errorf("read back %+v\nwant %+v", back, got)
	}
	// Invalid UTF-8 is replaced before sealing: what is returned is what
	// is stored and hashed.
	if back.Message != "bad \uFFFD utf8 and 'quotes' \\ and \u2028" {
		t.Errorf("Message = %q", back.Message)
	}
	if res := mustVerify(t, l); !res.OK {
		t.Errorf("Verify = %+v", res)
	}

	nul := rec("odd", 2)
	nul.Message = "nul\x00byte"
	if _, err := l.Append(context.Background(), nul); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("Append with NUL: err = %v", err)
	}
	if res := mustVerify(t, l); !res.OK || res.Count != 1 {
		t.Errorf("Verify = %+v", res)
	}
}

func TestAppendConcurrentGroupCommit(t *testing.T) {
	l, _ := openLedger(t)
	const workers, each = 64, 20
	var wg sync.WaitGroup
	results := make([][]ledger.Record, workers)
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := l.Append(context.Background(), rec(fmt.Sprintf("w%d", w), i))
				if err != nil {
					errs <- err
					return
				}
				results[w] = append(results[w], r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stored := all(t, l, ledger.Filter{Limit: ledger.MaxLimit})
	if len(stored) != workers*each {
		t.Fatalf("%d records, want %d", len(stored), workers*each)
	}
	for w, rs := range results {
		for i, r := range rs {
			if r.RunID != fmt.Sprintf("w%d-%d", w, i) {
				t.Fatalf("worker %d got record %s back", w, r.RunID)
			}
			if stored[r.Seq-1] != r {
				t.Fatalf("record returned to caller differs from stored row %d", r.Seq)
			}
			if i > 0 && r.Seq <= rs[i-1].Seq {
				t.Fatalf("worker %d: seq %d after %d", w, r.Seq, rs[i-1].Seq)
			}
		}
	}
	if res := mustVerify(t, l); !res.OK || res.Count != workers*each {
		t.Errorf("Verify = %+v", res)
	}
}

func TestAppendCanceled(t *testing.T) {
	l, _ := openLedger(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, rec("c", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with canceled ctx: %v", err)
	}
	if res := mustVerify(t, l); res.Count != 0 {
		t.Errorf("a canceled append was written: %+v", res)
	}
	// Appends racing with their deadline either fail with it and are not
	// written, or succeed and are.
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%20)*100*time.Microsecond)
			defer cancel()
			if _, err := l.Append(ctx, rec("race", i)); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Append: %v", err)
			}
		}()
	}
	wg.Wait()
	res := mustVerify(t, l)
	if !res.OK || res.Count != ok.Load() {
		t.Errorf("Verify = %+v, %d appends succeeded", res, ok.Load())
	}
}

func TestClose(t *testing.T) {
	dsn := newDB(t)
	l := openDSN(t, dsn)
	mustAppend(t, l, rec("x", 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := l.Append(context.Background(), rec("x", 2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.LockService(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("LockService after Close: %v", err)
	}
}

func TestQuery(t *testing.T) {
	l, _ := openLedger(t)
	ctx := context.Background()
	var recs []ledger.Record
	for i := range 30 {
		r := rec("q", i)
		switch i % 3 {
		case 0:
			r.Kind, r.Outcome = ledger.KindIntent, ""
		case 1:
			r.Outcome = ledger.OutcomeOK
		}
		if i%5 == 0 {
			r.UserID = "alice"
		}
		recs = append(recs, mustAppend(t, l, r))
	}
	match := func(f ledger.Filter) []int64 {
		var seqs []int64
		for _, r := range recs {
			if (f.Service == "" || r.Service == f.Service) && (f.Target == "" || r.Target == f.Target) &&
				(f.UserID == "" || r.UserID == f.UserID) && (f.Action == "" || r.Action == f.Action) &&
				(f.Kind == "" || r.Kind == f.Kind) && (f.Outcome == "" || r.Outcome == f.Outcome) &&
				(f.RunID == "" || r.RunID == f.RunID) && (f.IdempotencyKey == "" || r.IdempotencyKey == f.IdempotencyKey) &&
				(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || r.Time.Before(f.Until)) {
				seqs = append(seqs, r.Seq)
			}
		}
		if f.Descending {
			for i, j := 0, len(seqs)-1; i < j; i, j = i+1, j-1 {
				seqs[i], seqs[j] = seqs[j], seqs[i]
			}
		}
		return seqs
	}
	filters := []ledger.Filter{
		{},
		{Service: "svc-1"},
		{Target: "target-2"},
		{UserID: "alice"},
		{Action: "scale"},
		{Action: "nope"},
		{Kind: ledger.KindIntent},
		{Outcome: ledger.OutcomeOK},
		{RunID: "q-7"},
		{IdempotencyKey: "idem-q-8"},
		{Since: recs[10].Time},
		{Until: recs[10].Time},
		{Since: recs[5].Time, Until: recs[9].Time, Service: "svc-0"},
		{Service: "svc-1", Kind: ledger.KindResult, Outcome: ledger.OutcomeError, Target: "target-1"},
	}
	for _, f := range filters {
		for _, desc := range []bool{false, true} {
			for _, limit := range []int{0, 1, 4, 7} {
				f := f
				f.Descending, f.Limit = desc, limit
				var got []int64
				for _, r := range all(t, l, f) {
					got = append(got, r.Seq)
				}
				if want := match(f); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Query(%+v) = %v, want %v", f, got, want)
				}
			}
		}
	}
	p, err := l.Query(ctx, ledger.Filter{Limit: 10})
	if err != nil || len(p.Records) != 10 || p.Next != ledger.NextCursor(p.Records[9]) {
		t.Errorf("first page: %d records, next %q, %v", len(p.Records), p.Next, err)
	}
	p, err = l.Query(ctx, ledger.Filter{Limit: 30})
	if err != nil || len(p.Records) != 30 || p.Next != "" {
		t.Errorf("exact page: %d records, next %q, %v", len(p.Records), p.Next, err)
	}
	p, err = l.Query(ctx, ledger.Filter{Action: "nope"})
	if err != nil || p.Records == nil || len(p.Records) != 0 || p.Next != "" {
		t.Errorf("empty page: %+v, %v", p, err)
	}
	for _, c := range []string{"garbage", "s-1", "x12"} {
		if _, err := l.Query(ctx, ledger.Filter{Cursor: c}); !errors.Is(err, ledger.ErrInvalidFilter) {
			t.Errorf("cursor %q: err = %v, want ErrInvalidFilter", c, err)
		}
	}
}

func TestUnfinishedAndHalts(t *testing.T) {
	l, _ := openLedger(t)
	ctx := context.Background()
	intent := func(id string) {
		mustAppend(t, l, ledger.Record{RunID: id, Kind: ledger.KindIntent, Action: "scale", Target: "t"})
	}
	result := func(id string, o ledger.Outcome) {
		mustAppend(t, l, ledger.Record{RunID: id, Kind: ledger.KindResult, Action: "scale", Target: "t", Outcome: o})
	}
	halt := func(target string, on bool, o ledger.Outcome) {
		mustAppend(t, l, ledger.Record{RunID: "h", Kind: ledger.KindResult, Action: "halt", Target: target,
			Outcome: o, Detail: fmt.Sprintf(`{"on":%v}`, on)})
	}
	if u, err := l.Unfinished(ctx); err != nil || len(u) != 0 {
		t.Fatalf("Unfinished on empty = %v, %v", u, err)
	}
	if h, err := l.Halts(ctx); err != nil || len(h) != 0 {
		t.Fatalf("Halts on empty = %v, %v", h, err)
	}
	intent("a")
	intent("b")
	result("a", ledger.OutcomeOK)
	intent("c")
	mustAppend(t, l, ledger.Record{RunID: "d", Kind: ledger.KindRejected, Outcome: ledger.OutcomeDenied})
	intent("e")
	result("e", ledger.OutcomeInterrupted)
	u, err := l.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range u {
		ids = append(ids, r.RunID)
	}
	if fmt.Sprint(ids) != "[b c]" {
		t.Errorf("Unfinished = %v, want [b c]", ids)
	}

	halt(ledger.GlobalScope, true, ledger.OutcomeOK)
	halt("web", true, ledger.OutcomeOK)
	halt("db", true, ledger.OutcomeOK)
	halt("db", false, ledger.OutcomeOK)
	halt("web", false, ledger.OutcomeError) // a failed halt changes nothing
	halt("cache", true, ledger.OutcomeError)
	mustAppend(t, l, ledger.Record{RunID: "i", Kind: ledger.KindIntent, Action: "halt", Target: "queue", Detail: `{"on":true}`})
	h, err := l.Halts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h) != "map[*:true web:true]" {
		t.Errorf("Halts = %v, want map[*:true web:true]", h)
	}
	halt(ledger.GlobalScope, false, ledger.OutcomeOK)
	if h, _ := l.Halts(ctx); fmt.Sprint(h) != "map[web:true]" {
		t.Errorf("Halts = %v, want map[web:true]", h)
	}
}

// TestAppendOnly: the database itself refuses to change or remove rows, and
// refuses rows that do not extend the chain.
func TestAppendOnly(t *testing.T) {
	l, dsn := openLedger(t)
	for i := range 3 {
		mustAppend(t, l, rec("ao", i))
	}
	c := sqlConn(t, dsn)
	ctx := context.Background()
	for _, stmt := range []string{
		"UPDATE workload_runs SET message = 'rewritten' WHERE seq = 2",
		"UPDATE workload_runs SET message = message",
		"DELETE FROM workload_runs WHERE seq = 3",
		"DELETE FROM workload_runs",
		"TRUNCATE workload_runs",
	} {
		_, err := c.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want an append-only refusal", stmt, err)
		}
	}
	head := all(t, l, ledger.Filter{})[2]
	forged := []ledger.Record{
		ledger.Seal(rec("forged", 1), &ledger.Record{Seq: 4, Hash: head.Hash}),     // skips seq 4
		ledger.Seal(rec("forged", 2), &ledger.Record{Seq: 1, Hash: head.PrevHash}), // reuses seq 2
		ledger.Seal(rec("forged", 3), &ledger.Record{Seq: 3, Hash: head.PrevHash}), // wrong prev_hash
	}
	for _, f := range forged {
		_, err := c.Exec(ctx, insertRows, rowArrays([]ledger.Record{f})...)
		if err == nil {
			t.Errorf("forged row %d (prev %s…) was inserted", f.Seq, f.PrevHash[:8])
		}
	}
	if res := mustVerify(t, l); !res.OK || res.Count != 3 {
		t.Errorf("Verify = %+v", res)
	}
	mustAppend(t, l, rec("ao", 3))
}

// TestTamper changes each column of one row in turn, behind the ledger's
// back: Verify must point at that row every time, and pass once restored.
func TestTamper(t *testing.T) {
	l, dsn := openLedger(t)
	for i := range 5 {
		mustAppend(t, l, rec("tamper", i))
	}
	const victim = 3
	orig := all(t, l, ledger.Filter{})[victim-1]
	c := sqlConn(t, dsn)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("DROP TRIGGER workload_runs_append_only ON workload_runs")
	sets := make([]string, len(columns))
	for i, col := range columns {
		sets[i] = fmt.Sprintf("%s = $%d", col, i+1)
	}
	restore := "UPDATE workload_runs SET " + strings.Join(sets, ", ") +
		fmt.Sprintf(" WHERE seq IN ($%d, 1000)", len(columns)+1)

	for _, col := range columns {
		change := col + " = " + col + " || 'x'"
		switch col {
		case "seq":
			change = "seq = 1000"
		case "duration_ns", "time_ns", "version":
			change = col + " = " + col + " + 1"
		}
		exec(fmt.Sprintf("UPDATE workload_runs SET %s WHERE seq = %d", change, victim))
		res := mustVerify(t, l)
		if res.OK || res.FirstBroken != victim {
			t.Errorf("%s changed: Verify = %+v, want FirstBroken %d", col, res, victim)
		} else {
			t.Logf("%s changed: %s", col, res.Reason)
		}
		exec(restore, append(rowValues(&orig), orig.Seq)...)
		if res := mustVerify(t, l); !res.OK || res.Count != 5 {
			t.Fatalf("after restoring %s: Verify = %+v", col, res)
		}
	}

	// Swapping a whole row for a freshly sealed one breaks the next link.
	forged := ledger.Seal(rec("forged", 0), &ledger.Record{Seq: victim - 1, Hash: orig.PrevHash})
	exec(restore, append(rowValues(&forged), orig.Seq)...)
	if res := mustVerify(t, l); res.OK || res.FirstBroken != victim+1 {
		t.Errorf("row replaced: Verify = %+v, want FirstBroken %d", res, victim+1)
	}
	exec(restore, append(rowValues(&orig), orig.Seq)...)

	exec(fmt.Sprintf("DELETE FROM workload_runs WHERE seq = %d", victim))
	if res := mustVerify(t, l); res.OK || res.FirstBroken != victim {
		t.Errorf("row deleted: Verify = %+v, want FirstBroken %d", res, victim)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	dsn := newDB(t)
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("migrations() = %v, %v", ms, err)
	}
	// Processes starting together: several Opens at once on an empty
	// database.
	var wg sync.WaitGroup
	ls := make([]*Ledger, 6)
	errs := make([]error, len(ls))
	for i := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ls[i], errs[i] = Open(context.Background(), dsn)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
		t.Cleanup(func() { ls[i].Close() })
		mustAppend(t, ls[i], rec("m", i))
	}
	// And again, one after the other.
	for range 2 {
		l := openDSN(t, dsn)
		if res := mustVerify(t, l); !res.OK || res.Count != int64(len(ls)) {
			t.Errorf("after reopening: Verify = %+v", res)
		}
	}
	c := sqlConn(t, dsn)
	rows, _ := c.Query(context.Background(), "SELECT version, name FROM schema_migrations ORDER BY version")
	type row struct {
		Version int32
		Name    string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ms) {
		t.Fatalf("schema_migrations = %v, want %d rows", got, len(ms))
	}
	for i, m := range ms {
		if int(got[i].Version) != m.version || got[i].Name != m.name {
			t.Errorf("schema_migrations[%d] = %v, want %d %s", i, got[i], m.version, m.name)
		}
	}
}

// TestTwoProcessesAppend: two separate processes append to one database at
// the same time; the chain must stay one line.
func TestTwoProcessesAppend(t *testing.T) {
	dsn := newDB(t)
	const each = 200
	var hs []*helper
	for _, tag := range []string{"p1", "p2"} {
		// Both open the empty database at once: migrations race too.
		hs = append(hs, startHelper(t, "append", "DSN="+dsn, "TAG="+tag, "N="+strconv.Itoa(each)))
	}
	for _, h := range hs {
		h.expect(t, "READY")
	}
	for _, h := range hs {
		io.WriteString(h.stdin, "GO\n")
	}
	for _, h := range hs {
		h.expect(t, "DONE")
		if err := h.wait(); err != nil {
			t.Fatalf("helper: %v\n%s", err, h.stderr.String())
		}
	}
	l := openDSN(t, dsn)
	res := mustVerify(t, l)
	if !res.OK || res.Count != 2*each {
		t.Fatalf("Verify = %+v, want OK with %d records", res, 2*each)
	}
	recs := all(t, l, ledger.Filter{Limit: ledger.MaxLimit})
	if len(recs) != 2*each {
		t.Fatalf("%d records, want %d", len(recs), 2*each)
	}
	count := map[string]int{}
	switches := 0
	for i, r := range recs {
		if r.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d", i+1, r.Seq)
		}
		tag, _, _ := strings.Cut(r.RunID, "-")
		count[tag]++
		if i > 0 && !strings.HasPrefix(recs[i-1].RunID, tag+"-") {
			switches++
		}
	}
	if count["p1"] != each || count["p2"] != each {
		t.Errorf("records per process = %v", count)
	}
	t.Logf("seqs 1..%d contiguous; the chain switched between the processes %d times", len(recs), switches)
}

// TestLockServiceExcludes: two Ledgers (two pools, as two processes would
// have) exclude each other; a waiter gives up when its context ends.
func TestLockServiceExcludes(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	unlockA, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.LockService(short, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second holder: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled wait took %v", d)
	}
	// Within one Ledger too.
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := a.LockService(short2, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("same ledger, second holder: err = %v", err)
	}
	// Other keys are independent.
	unlockOther, err := b.LockService(ctx, "svc/db")
	if err != nil {
		t.Fatal(err)
	}
	unlockOther()

	got := make(chan error, 1)
	go func() {
		unlock, err := b.LockService(ctx, "svc/web")
		if err == nil {
			defer unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("acquired while held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlockA()
	unlockA() // idempotent
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not acquired after unlock")
	}
	// The cancelled waits left nothing behind.
	u, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	u()
}

// TestLockServiceAnyKey: a key that is not PostgreSQL text (control's
// Idempotency-Key lock joins its parts with NUL; invalid UTF-8) locks and
// excludes like any other; it failed with SQLSTATE 22021 before.
func TestLockServiceAnyKey(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	for _, key := range []string{"idempotency\x00admin\x00k1", "bad \xff utf-8"} {
		unlock, err := a.LockService(ctx, key)
		if err != nil {
			t.Fatalf("lock %q: %v", key, err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		if _, err := b.LockService(short, key); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second holder of %q: err = %v, want DeadlineExceeded", key, err)
		}
		cancel()
		unlock()
		u, err := b.LockService(ctx, key)
		if err != nil {
			t.Fatalf("lock %q after unlock: %v", key, err)
		}
		u()
	}
	unlock, err := a.LockService(ctx, "idempotency\x00admin\x00k1")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	other, err := b.LockService(ctx, "idempotency\x00admin\x00k2")
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	other()
}

// TestLockServiceClose: Close frees the locks still held.
func TestLockServiceClose(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	unlock, err := a.LockService(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	unlock() // harmless after Close
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := b.LockService(ctx, "k")
	if err != nil {
		t.Fatalf("lock not freed by Close: %v", err)
	}
	u()
}

// TestLockServiceProcessDies: a lock held by another process excludes this
// one, and is freed when that process is killed.
func TestLockServiceProcessDies(t *testing.T) {
	dsn := newDB(t)
	l := openDSN(t, dsn)
	h := startHelper(t, "lock", "DSN="+dsn, "KEY=svc/api")
	h.expect(t, "LOCKED")
	ctx := context.Background()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := l.LockService(short, "svc/api"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock held by another process was granted: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		unlock, err := l.LockService(ctx, "svc/api")
		if err == nil {
			unlock()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("acquired while the other process holds it: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lock not freed after its holder was killed")
	}
}

// BenchmarkAppendParallel appends from 64 concurrent callers (at least) and
// reports the sustained rate of durable appends.
func BenchmarkAppendParallel(b *testing.B) {
	l, _ := openLedger(b)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((64 + procs - 1) / procs)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			if _, err := l.Append(context.Background(), rec("bench", i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if res := mustVerify(b, l); !res.OK || res.Count != n.Load() {
		b.Fatalf("Verify = %+v after %d appends", res, n.Load())
	}
}

// helper is the test binary re-executed in a helper mode.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *bytes.Buffer // read only after exited
	exited chan struct{}
	err    error // set before exited closes
}

func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	for _, e := range env {
		cmd.Env = append(cmd.Env, helperEnv+"_"+e)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 64), stderr: new(bytes.Buffer), exited: make(chan struct{})}
	cmd.Stderr = h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.err = cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		h.wait()
	})
	return h
}

// expect reads the helper's next line of output.
func (h *helper) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok || line != want {
			h.cmd.Process.Kill()
			h.wait()
			t.Fatalf("helper said %q (open %v), want %q; stderr:\n%s", line, ok, want, h.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("helper did not say %q", want)
	}
}

// wait waits for the helper to exit and returns its exit status.
func (h *helper) wait() error {
	<-h.exited
	return h.err
}

// runHelper is main() of a helper process.
func runHelper(mode string) int {
	get := func(k string) string { return os.Getenv(helperEnv + "_" + k) }
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 1
	}
	ctx := context.Background()
	l, err := Open(ctx, get("DSN"))
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	switch mode {
	case "append":
		n, _ := strconv.Atoi(get("N"))
		fmt.Println("READY")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fail(err)
		}
		const workers = 8
		var next atomic.Int64
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > n {
						return
					}
					if _, err := l.Append(ctx, rec(get("TAG"), i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err, failed := <-errs; failed {
			return fail(err)
		}
		fmt.Println("DONE")
		return 0
	case "lock":
		if _, err := l.LockService(ctx, get("KEY")); err != nil {
			return fail(err)
		}
		fmt.Println("LOCKED")
		for {
			time.Sleep(time.Hour) // until killed
		}
	}
	return fail(errors.New("unknown mode"))
}

// TestCloseWhileWaitingForLock: Close ends a wait for a lock instead of
// waiting for it.
func TestCloseWhileWaitingForLock(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	unlock, err := a.LockService(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got := make(chan error, 1)
	go func() {
		_, err := b.LockService(context.Background(), "k")
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs while a LockService waits")
	}
	if err := <-got; !errors.Is(err, ErrClosed) {
		t.Errorf("waiting LockService after Close: %v, want ErrClosed", err)
	}
}

// TestBadRecordInBatch: a record the database refuses fails alone; the
// others committed in the same group still succeed.
func TestBadRecordInBatch(t *testing.T) {
	l, dsn := openLedger(t)
	c := sqlConn(t, dsn)
	if _, err := c.Exec(context.Background(),
		"ALTER TABLE workload_runs ADD CONSTRAINT no_poison CHECK (message <> 'poison')"); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 64)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rec(fmt.Sprint("r", round), i)
				if i == 17 {
					r.Message = "poison"
				}
				_, errs[i] = l.Append(context.Background(), r)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if (err != nil) != (i == 17) {
				t.Errorf("round %d append %d: err = %v", round, i, err)
			}
		}
	}
	if res := mustVerify(t, l); !res.OK || res.Count != 5*63 {
		t.Errorf("Verify = %+v, want %d records", res, 5*63)
	}
}
