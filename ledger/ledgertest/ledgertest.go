// Package ledgertest is the conformance suite every ledger implementation
// passes: chain building under concurrency, durability across connections,
// queries with cursors, unfinished intents, halt switches, and tamper
// detection on every column.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// Option configures Run.
type Option func(*config)

type config struct {
	tamper func(t *testing.T, l ledger.Ledger, seq int64, column string, value any)
	reopen func(t *testing.T, l ledger.Ledger) ledger.Ledger
}

// WithTamper lets the suite change one column of one stored row behind the
// ledger's back (dropping append-only guards as needed). Column names are
// the workload_runs column names; value is an int64 or a string.
func WithTamper(f func(t *testing.T, l ledger.Ledger, seq int64, column string, value any)) Option {
	return func(c *config) { c.tamper = f }
}

// WithReopen lets the suite open a second, independent connection to the
// same storage as l.
func WithReopen(f func(t *testing.T, l ledger.Ledger) ledger.Ledger) Option {
	return func(c *config) { c.reopen = f }
}

// Run runs the suite. open returns a new, empty ledger; the caller closes it
// with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) ledger.Ledger, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	t.Run("EmptyVerifies", func(t *testing.T) { testEmpty(t, open(t)) })
	t.Run("AppendChains", func(t *testing.T) { testAppendChains(t, open(t)) })
	t.Run("ConcurrentAppendsOneChain", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("Query", func(t *testing.T) { testQuery(t, open(t)) })
	t.Run("Unfinished", func(t *testing.T) { testUnfinished(t, open(t)) })
	t.Run("UnfinishedAfter", func(t *testing.T) { RunUnfinishedAfter(t, open) })
	t.Run("Halts", func(t *testing.T) { testHalts(t, open(t)) })
	t.Run("MixedVersions", func(t *testing.T) { testMixedVersions(t, open(t)) })
	t.Run("VisibleToSecondConnection", func(t *testing.T) {
		if c.reopen == nil {
			t.Fatal("ledgertest: WithReopen is required: durability across connections must be checked")
		}
		l := open(t)
		testVisible(t, l, c.reopen(t, l))
	})
	t.Run("Tamper", func(t *testing.T) {
		if c.tamper == nil {
			t.Fatal("ledgertest: WithTamper is required: tamper detection must be checked")
		}
		testTamper(t, open, c.tamper)
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func rec(i int, kind ledger.Kind) ledger.Record {
	r := ledger.Record{
		RunID:         fmt.Sprintf("run-%04d", i),
		Kind:          kind,
		UserID:        fmt.Sprintf("user-%d", i%3),
		Auth:          fmt.Sprintf("token:tok%d", i%3),
		UserName:      fmt.Sprintf("name-%d", i%3),
		Action:        []string{"start", "scale", "restart", "stop"}[i%4],
		Target:        "local",
		Service:       fmt.Sprintf("svc-%d", i%5),
		Provider:      "memory",
		RequestDigest: fmt.Sprintf("%064x", i),
		Detail:        fmt.Sprintf(`{"i":%d}`, i),
		PolicyDigest:  fmt.Sprintf("sha256:%064x", i%2),
	}
	if kind == ledger.KindResult {
		r.Outcome = ledger.OutcomeOK
		if i%7 == 0 {
			r.Outcome, r.ErrorCode, r.Message = ledger.OutcomeError, "unavailable", "backend down"
		}
		r.Duration = time.Duration(i) * time.Millisecond
	}
	return r
}

func mustAppend(t *testing.T, l ledger.Ledger, r ledger.Record) ledger.Record {
	t.Helper()
	out, err := l.Append(ctx(t), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return out
}

func mustVerify(t *testing.T, l ledger.Ledger) ledger.VerifyResult {
	t.Helper()
	res, err := l.Verify(ctx(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func testEmpty(t *testing.T, l ledger.Ledger) {
	res := mustVerify(t, l)
	if !res.OK || res.Count != 0 || res.Head != ledger.GenesisHash {
		t.Fatalf("empty ledger: %+v", res)
	}
	page, err := l.Query(ctx(t), ledger.Filter{})
	if err != nil || len(page.Records) != 0 || page.Next != "" {
		t.Fatalf("empty query: %+v, %v", page, err)
	}
}

func testAppendChains(t *testing.T, l ledger.Ledger) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	first := rec(1, ledger.KindIntent)
	first.Time = at
	a := mustAppend(t, l, first)
	b := mustAppend(t, l, rec(1, ledger.KindResult))
	if a.Seq != 1 || b.Seq != 2 {
		t.Fatalf("seqs = %d, %d; want 1, 2", a.Seq, b.Seq)
	}
	if a.PrevHash != ledger.GenesisHash || b.PrevHash != a.Hash {
		t.Fatalf("chain: a.prev=%s b.prev=%s a.hash=%s", a.PrevHash, b.PrevHash, a.Hash)
	}
	if a.Hash != a.ComputeHash() || b.Hash != b.ComputeHash() {
		t.Fatal("returned hashes do not match the records")
	}
	if !a.Time.Equal(at) {
		t.Fatalf("time = %v, want %v (nanoseconds must survive)", a.Time, at)
	}
	if b.Time.IsZero() {
		t.Fatal("zero time was not filled in")
	}
	page, err := l.Query(ctx(t), ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.Records[0] != a || page.Records[1] != b {
		t.Fatalf("stored records differ from returned ones:\n got %+v\nwant %+v %+v", page.Records, a, b)
	}
	res := mustVerify(t, l)
	if !res.OK || res.Count != 2 || res.Head != b.Hash {
		t.Fatalf("verify: %+v", res)
	}
}

func testConcurrent(t *testing.T, l ledger.Ledger) {
	const workers, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.Append(ctx(t), rec(w*each+i, ledger.KindIntent)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	res := mustVerify(t, l)
	if !res.OK || res.Count != workers*each {
		t.Fatalf("verify after concurrent appends: %+v", res)
	}
}

func testQuery(t *testing.T, l ledger.Ledger) {
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var all []ledger.Record
	for i := range 30 {
		for _, k := range []ledger.Kind{ledger.KindIntent, ledger.KindResult} {
			r := rec(i, k)
			r.Time = base.Add(time.Duration(i) * time.Minute)
			if i == 3 {
				r.IdempotencyKey = "key-3"
			}
			all = append(all, mustAppend(t, l, r))
		}
	}
	count := func(pred func(ledger.Record) bool) int {
		n := 0
		for _, r := range all {
			if pred(r) {
				n++
			}
		}
		return n
	}
	cases := []struct {
		name string
		f    ledger.Filter
		want int
	}{
		{"all", ledger.Filter{Limit: 1000}, len(all)},
		{"service", ledger.Filter{Service: "svc-2"}, count(func(r ledger.Record) bool { return r.Service == "svc-2" })},
		{"user", ledger.Filter{UserID: "user-1"}, count(func(r ledger.Record) bool { return r.UserID == "user-1" })},
		{"user by display name", ledger.Filter{UserID: "name-2"}, count(func(r ledger.Record) bool { return r.UserName == "name-2" })},
		{"action", ledger.Filter{Action: "scale"}, count(func(r ledger.Record) bool { return r.Action == "scale" })},
		{"kind", ledger.Filter{Kind: ledger.KindResult}, 30},
		{"outcome", ledger.Filter{Outcome: ledger.OutcomeError}, count(func(r ledger.Record) bool { return r.Outcome == ledger.OutcomeError })},
		{"run", ledger.Filter{RunID: "run-0007"}, 2},
		{"idempotency", ledger.Filter{IdempotencyKey: "key-3"}, 2},
		{"target", ledger.Filter{Target: "nowhere"}, 0},
		{"since", ledger.Filter{Since: base.Add(10 * time.Minute)}, 40},
		{"until", ledger.Filter{Until: base.Add(10 * time.Minute)}, 20},
		{"window", ledger.Filter{Since: base.Add(10 * time.Minute), Until: base.Add(12 * time.Minute)}, 4},
		{"combined", ledger.Filter{Service: "svc-1", Kind: ledger.KindIntent, Action: "scale"},
			count(func(r ledger.Record) bool {
				return r.Service == "svc-1" && r.Kind == ledger.KindIntent && r.Action == "scale"
			})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := collect(t, l, tc.f)
			if len(got) != tc.want {
				t.Fatalf("got %d records, want %d", len(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq <= got[i-1].Seq {
					t.Fatal("records not in seq order")
				}
			}
		})
	}
	t.Run("Pagination", func(t *testing.T) {
		for _, desc := range []bool{false, true} {
			var seen []int64
			f := ledger.Filter{Limit: 7, Descending: desc}
			pages := 0
			for {
				page, err := l.Query(ctx(t), f)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(page.Records) > 7 {
					t.Fatalf("page of %d exceeds limit 7", len(page.Records))
				}
				for _, r := range page.Records {
					seen = append(seen, r.Seq)
				}
				if page.Next == "" {
					break
				}
				f.Cursor = page.Next
			}
			if len(seen) != len(all) || pages != (len(all)+6)/7 {
				t.Fatalf("desc=%v: %d records in %d pages, want %d", desc, len(seen), pages, len(all))
			}
			for i := 1; i < len(seen); i++ {
				if (seen[i] <= seen[i-1]) != desc {
					t.Fatalf("desc=%v: order broken at %d", desc, i)
				}
			}
		}
	})
	t.Run("BadCursor", func(t *testing.T) {
		_, err := l.Query(ctx(t), ledger.Filter{Cursor: "garbage"})
		if !errors.Is(err, ledger.ErrInvalidFilter) {
			t.Fatalf("err = %v, want ErrInvalidFilter", err)
		}
	})
}

func collect(t *testing.T, l ledger.Ledger, f ledger.Filter) []ledger.Record {
	t.Helper()
	var out []ledger.Record
	for {
		page, err := l.Query(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		f.Cursor = page.Next
	}
}

func testUnfinished(t *testing.T, l ledger.Ledger) {
	for i := range 6 {
		mustAppend(t, l, rec(i, ledger.KindIntent))
		if i%2 == 0 {
			mustAppend(t, l, rec(i, ledger.KindResult))
		}
	}
	rej := rec(99, ledger.KindRejected)
	rej.Outcome = ledger.OutcomeDenied
	mustAppend(t, l, rej)
	open, err := l.Unfinished(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range open {
		ids = append(ids, r.RunID)
	}
	if fmt.Sprint(ids) != "[run-0001 run-0003 run-0005]" {
		t.Fatalf("unfinished = %v", ids)
	}
}

// RunUnfinishedAfter checks ledger.UnfinishedAfter on ledgers open
// returns (new and empty each call): the intents without a result after a
// seq, with runs closed out of order, an intent left open while later runs
// come and go, rejected rows, and an after beyond the head. Run calls it;
// a wrapper ledger (ledger/checkpoint) calls it on its own.
func RunUnfinishedAfter(t *testing.T, open func(t *testing.T) ledger.Ledger) {
	l := open(t)
	check := func(t *testing.T, after, wantHead int64, want string) {
		t.Helper()
		got, head, err := ledger.UnfinishedAfter(ctx(t), l, after)
		if err != nil {
			t.Fatalf("UnfinishedAfter(%d): %v", after, err)
		}
		var ids []string
		for i, r := range got {
			ids = append(ids, r.RunID)
			if r.Kind != ledger.KindIntent || r.Seq <= after || r.Seq > head || (i > 0 && r.Seq <= got[i-1].Seq) {
				t.Errorf("UnfinishedAfter(%d) returned seq %d (%s): want intents in (%d, %d], oldest first", after, r.Seq, r.Kind, after, head)
			}
		}
		if head != wantHead || fmt.Sprint(ids) != want {
			t.Fatalf("UnfinishedAfter(%d) = %v, head %d; want %s, head %d", after, ids, head, want, wantHead)
		}
	}
	check(t, 0, 0, "[]") // empty
	reject := rec(99, ledger.KindRejected)
	reject.Outcome = ledger.OutcomeDenied
	for _, r := range []ledger.Record{
		rec(0, ledger.KindIntent), rec(0, ledger.KindResult), // seq 1, 2
		rec(1, ledger.KindIntent),                            // 3: stays open (a long exec)
		rec(2, ledger.KindIntent), rec(3, ledger.KindIntent), // 4, 5
		rec(3, ledger.KindResult), rec(2, ledger.KindResult), // 6, 7: closed out of order
		reject,                    // 8
		rec(4, ledger.KindIntent), // 9
	} {
		mustAppend(t, l, r)
	}
	for _, c := range []struct {
		after, head int64
		want        string
	}{
		{0, 9, "[run-0001 run-0004]"},
		{2, 9, "[run-0001 run-0004]"},
		{3, 9, "[run-0004]"}, // the open intent at 3 is the caller's to remember
		{4, 9, "[run-0004]"}, // run 2's intent is before after, its result after: not returned
		{8, 9, "[run-0004]"},
		{9, 9, "[]"},
		{50, 9, "[]"}, // after beyond the head: head tells the caller
	} {
		t.Run(fmt.Sprintf("after=%d", c.after), func(t *testing.T) { check(t, c.after, c.head, c.want) })
	}
	// Later rows: run 1 closes long after it began, run 5 begins.
	mustAppend(t, l, rec(1, ledger.KindResult)) // 10
	mustAppend(t, l, rec(5, ledger.KindIntent)) // 11
	for _, c := range []struct {
		after, head int64
		want        string
	}{
		{0, 11, "[run-0004 run-0005]"},
		{9, 11, "[run-0005]"},
		{10, 11, "[run-0005]"},
		{11, 11, "[]"},
	} {
		t.Run(fmt.Sprintf("later/after=%d", c.after), func(t *testing.T) { check(t, c.after, c.head, c.want) })
	}
	// Unfinished and UnfinishedAfter(0) agree.
	all, err := l.Unfinished(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].RunID != "run-0004" || all[1].RunID != "run-0005" {
		t.Fatalf("Unfinished = %v, want run-0004 and run-0005", all)
	}
}

func testHalts(t *testing.T, l ledger.Ledger) {
	halt := func(scope string, on bool, outcome ledger.Outcome) {
		r := ledger.Record{RunID: fmt.Sprintf("halt-%s-%v-%s", scope, on, outcome), Kind: ledger.KindResult,
			UserID: "admin", Action: "halt", Target: scope, Outcome: outcome,
			Detail: fmt.Sprintf(`{"on":%v}`, on)}
		mustAppend(t, l, r)
	}
	get := func() map[string]bool {
		h, err := l.Halts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := get(); len(h) != 0 {
		t.Fatalf("fresh ledger halts = %v", h)
	}
	halt(ledger.GlobalScope, true, ledger.OutcomeOK)
	halt("prod", true, ledger.OutcomeOK)
	halt("edge", true, ledger.OutcomeError) // failed halts do not count
	if h := get(); !h[ledger.GlobalScope] || !h["prod"] || h["edge"] || len(h) != 2 {
		t.Fatalf("halts = %v", h)
	}
	halt(ledger.GlobalScope, false, ledger.OutcomeOK)
	if h := get(); h[ledger.GlobalScope] || !h["prod"] {
		t.Fatalf("after global off: %v", h)
	}
}

func testVisible(t *testing.T, l, second ledger.Ledger) {
	for i := range 5 {
		r := mustAppend(t, l, rec(i, ledger.KindIntent))
		page, err := second.Query(ctx(t), ledger.Filter{RunID: r.RunID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 || page.Records[0].Hash != r.Hash {
			t.Fatalf("record %d not visible on a second connection right after Append: %+v", r.Seq, page.Records)
		}
		// Recovery in another process finds the intent it did not write.
		open, head, err := ledger.UnfinishedAfter(ctx(t), second, r.Seq-1)
		if err != nil {
			t.Fatal(err)
		}
		if head != r.Seq || len(open) != 1 || open[0].Hash != r.Hash {
			t.Fatalf("UnfinishedAfter(%d) on a second connection right after Append = %+v, head %d; want the intent at %d", r.Seq-1, open, head, r.Seq)
		}
	}
}

// columnValues maps each workload_runs column to an accessor and a changed
// value.
var tamperColumns = []struct {
	column string
	change func(r ledger.Record) any
}{
	{"seq", func(r ledger.Record) any { return r.Seq + 1000 }},
	{"run_id", func(r ledger.Record) any { return r.RunID + "x" }},
	{"kind", func(r ledger.Record) any { return "result" }},
	{"user_id", func(r ledger.Record) any { return "mallory" }},
	{"action", func(r ledger.Record) any { return r.Action + "x" }},
	{"target", func(r ledger.Record) any { return "elsewhere" }},
	{"service", func(r ledger.Record) any { return "other" }},
	{"provider", func(r ledger.Record) any { return "aws" }},
	{"request_digest", func(r ledger.Record) any { return "ff" + r.RequestDigest[2:] }},
	{"idempotency_key", func(r ledger.Record) any { return "forged" }},
	{"outcome", func(r ledger.Record) any { return "ok" }},
	{"error_code", func(r ledger.Record) any { return "internal" }},
	{"message", func(r ledger.Record) any { return "nothing happened" }},
	{"detail", func(r ledger.Record) any { return `{"i":-1}` }},
	{"duration_ns", func(r ledger.Record) any { return int64(r.Duration) + 1 }},
	{"time_ns", func(r ledger.Record) any { return r.Time.UnixNano() + 1 }},
	{"prev_hash", func(r ledger.Record) any { return ledger.GenesisHash }},
	{"hash", func(r ledger.Record) any { return ledger.GenesisHash }},
	{"auth", func(r ledger.Record) any { return "oidc:https://evil.example" }},
	{"user_name", func(r ledger.Record) any { return "someone-else" }},
	{"version", func(r ledger.Record) any { return 1 }},
	{"policy_digest", func(r ledger.Record) any { return "sha256:forged" }},
}

func testTamper(t *testing.T, open func(t *testing.T) ledger.Ledger,
	tamper func(t *testing.T, l ledger.Ledger, seq int64, column string, value any)) {
	l := open(t)
	for i := range 6 {
		mustAppend(t, l, rec(i, ledger.KindIntent))
	}
	page, err := l.Query(ctx(t), ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	const victim = 4
	orig := page.Records[victim-1]
	for _, tc := range tamperColumns {
		t.Run(tc.column, func(t *testing.T) {
			if res := mustVerify(t, l); !res.OK {
				t.Fatalf("ledger broken before tampering: %+v", res)
			}
			tamper(t, l, victim, tc.column, tc.change(orig))
			res := mustVerify(t, l)
			restoreSeq := int64(victim)
			if tc.column == "seq" {
				restoreSeq = orig.Seq + 1000
			}
			tamper(t, l, restoreSeq, tc.column, originalValue(orig, tc.column))
			if res.OK || res.FirstBroken != victim {
				t.Fatalf("after changing %s of row %d: verify = %+v, want failure at %d", tc.column, victim, res, victim)
			}
		})
	}
	if res := mustVerify(t, l); !res.OK {
		t.Fatalf("ledger broken after restoring every column: %+v", res)
	}
}

func originalValue(r ledger.Record, column string) any {
	switch column {
	case "seq":
		return r.Seq
	case "run_id":
		return r.RunID
	case "kind":
		return string(r.Kind)
	case "user_id":
		return r.UserID
	case "action":
		return r.Action
	case "target":
		return r.Target
	case "service":
		return r.Service
	case "provider":
		return r.Provider
	case "request_digest":
		return r.RequestDigest
	case "idempotency_key":
		return r.IdempotencyKey
	case "outcome":
		return string(r.Outcome)
	case "error_code":
		return r.ErrorCode
	case "message":
		return r.Message
	case "detail":
		return r.Detail
	case "duration_ns":
		return int64(r.Duration)
	case "time_ns":
		return r.Time.UnixNano()
	case "prev_hash":
		return r.PrevHash
	case "hash":
		return r.Hash
	case "auth":
		return r.Auth
	case "user_name":
		return r.UserName
	case "version":
		return r.Version
	case "policy_digest":
		return r.PolicyDigest
	}
	panic("ledgertest: unknown column " + column)
}

// testMixedVersions: rows sealed with the version-1 encoding (before auth
// and user_name existed) and the version-2 one (before policy_digest) keep
// verifying among current rows, and each row reads back with the version
// it was sealed with.
func testMixedVersions(t *testing.T, l ledger.Ledger) {
	var want []ledger.Record
	for i := range 6 {
		r := rec(i, ledger.KindIntent)
		wantV := ledger.CurrentVersion
		switch i % 3 {
		case 0:
			r.Version, r.Auth, r.UserName, r.PolicyDigest = 1, "", "", ""
			wantV = 1
		case 1:
			r.Version, r.PolicyDigest = 2, ""
			wantV = 2
		}
		got := mustAppend(t, l, r)
		if got.Version != wantV {
			t.Fatalf("row %d sealed as version %d, want %d", got.Seq, got.Version, wantV)
		}
		want = append(want, got)
	}
	if res := mustVerify(t, l); !res.OK || res.Count != 6 {
		t.Fatalf("Verify = %+v, want 6 rows OK", res)
	}
	got := collect(t, l, ledger.Filter{})
	for i := range want {
		if got[i].Version != want[i].Version || got[i].Auth != want[i].Auth || got[i].UserName != want[i].UserName ||
			got[i].PolicyDigest != want[i].PolicyDigest {
			t.Errorf("row %d read back as version %d auth %q name %q policy %q, sealed as %d %q %q %q", i+1,
				got[i].Version, got[i].Auth, got[i].UserName, got[i].PolicyDigest, want[i].Version, want[i].Auth, want[i].UserName, want[i].PolicyDigest)
		}
	}
	// A version-1 row claiming an auth method was written outside Seal.
	bad := ledger.Seal(ledger.Record{RunID: "x", Kind: ledger.KindIntent, UserID: "u", Auth: "token:t", Version: 1}, nil)
	res, err := ledger.VerifyChain(func(yield func(ledger.Record, error) bool) { yield(bad, nil) })
	if err != nil || res.OK {
		t.Errorf("a version-1 row with auth set verified: %+v %v", res, err)
	}
}
