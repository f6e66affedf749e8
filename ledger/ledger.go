// Package ledger defines workload_runs, the append-only, hash-chained audit
// ledger: one intent record before every mutating provider call and one
// result record after it, each chained to the one before by sha256, so that
// changing, removing or reordering any row is detectable by Verify.
//
// Implementations (ledger/sqlite, ledger/postgres) register themselves with
// Register and are opened by URL with Open; all of them pass the suite in
// ledger/ledgertest. The package owns the record shape, the canonical
// encoding and the verification walk, so implementations cannot disagree on
// them. It never stores secret values: callers redact before appending.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Kind is the kind of a record.
type Kind string

// The kinds. A mutating operation writes an intent before the provider call
// and a result after it, with the same RunID. A request refused before any
// provider call (invalid, denied, halted) writes a single rejected record:
// who asked for what and why it was refused, never the request body.
const (
	KindIntent   Kind = "intent"
	KindResult   Kind = "result"
	KindRejected Kind = "rejected"
)

// Outcome is how an operation ended (empty on intents).
type Outcome string

// The outcomes.
const (
	OutcomeOK          Outcome = "ok"
	OutcomeError       Outcome = "error"
	OutcomeInterrupted Outcome = "interrupted"
	OutcomeInvalid     Outcome = "invalid"
	OutcomeDenied      Outcome = "denied"
	OutcomeHalted      Outcome = "halted"
)

// GenesisHash is the prev_hash of the first record.
var GenesisHash = strings.Repeat("0", 64)

// Record is one row of workload_runs.
type Record struct {
	Seq   int64  `json:"seq"`
	RunID string `json:"runId"`
	Kind  Kind   `json:"kind"`
	// UserID names the principal unambiguously: a local token's user name
	// (which can hold neither ':' nor '@'), or "oidc:<issuer>#<subject>"
	// for an OIDC identity. On version-1 rows it is whatever the
	// authenticator called the caller (an OIDC subject was stored bare).
	UserID string `json:"userId"`
	// Auth is how the principal authenticated: "token:<token id>" or
	// "oidc:<issuer>". Empty on version-1 rows.
	Auth string `json:"auth,omitempty"`
	// UserName is the principal's display name: a local token's user, an
	// OIDC identity's email or name claim (its subject when it has
	// neither). Empty on version-1 rows.
	UserName       string  `json:"userName,omitempty"`
	Action         string  `json:"action"`
	Target         string  `json:"target"`
	Service        string  `json:"service"`
	Provider       string  `json:"provider"`
	RequestDigest  string  `json:"requestDigest"`
	IdempotencyKey string  `json:"idempotencyKey,omitempty"`
	Outcome        Outcome `json:"outcome,omitempty"`
	ErrorCode      string  `json:"errorCode,omitempty"`
	// Message is a redacted, human-readable line: the error message of a
	// failed result, or what the status probe found for an interrupted run.
	Message string `json:"message,omitempty"`
	// Detail is a redacted JSON summary (the replicas asked for, the config
	// keys changed, the status reached). Never a secret value.
	Detail string `json:"detail,omitempty"`
	// PolicyDigest is the digest of the policy bundle (package policy)
	// that allowed or refused the request; empty when no policy was
	// loaded, and on rows sealed before version 3.
	PolicyDigest string        `json:"policyDigest,omitempty"`
	Duration     time.Duration `json:"durationNs"`
	Time         time.Time     `json:"time"`
	PrevHash     string        `json:"prevHash"`
	Hash         string        `json:"hash"`
	// Version is the canonical encoding the row was sealed with (stored in
	// its own column): 1 for rows written before Auth and UserName
	// existed, 2 for rows written before PolicyDigest existed,
	// CurrentVersion for new rows. Seal sets it. 0 (a row from
	// before the column, e.g. decoded from an old JSON export) means 1.
	Version int `json:"version"`
}

// CurrentVersion is the canonical encoding Seal uses.
const CurrentVersion = 3

// Canonical is the byte string a record's hash covers: every column but
// Hash, in a fixed order, as a JSON array, versioned. Version 1
// ("workload_runs/v1") is the encoding of rows written before Auth and
// UserName existed, kept so that those rows keep verifying; version 2
// adds Auth and UserName after UserID; version 3 adds PolicyDigest after
// Detail. An unknown version is encoded under its own tag, so it never
// matches a hash sealed as another.
func (r Record) Canonical() []byte {
	if r.Version <= 1 {
		b, _ := json.Marshal([]any{
			"workload_runs/v1", r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target,
			r.Service, r.Provider, r.RequestDigest, r.IdempotencyKey, string(r.Outcome),
			r.ErrorCode, r.Message, r.Detail, int64(r.Duration), r.Time.UnixNano(), r.PrevHash,
		})
		return b
	}
	if r.Version == 2 {
		b, _ := json.Marshal([]any{
			"workload_runs/v2", r.Seq, r.RunID, string(r.Kind), r.UserID, r.Auth, r.UserName,
			r.Action, r.Target, r.Service, r.Provider, r.RequestDigest, r.IdempotencyKey, string(r.Outcome),
			r.ErrorCode, r.Message, r.Detail, int64(r.Duration), r.Time.UnixNano(), r.PrevHash,
		})
		return b
	}
	b, _ := json.Marshal([]any{
		fmt.Sprintf("workload_runs/v%d", r.Version), r.Seq, r.RunID, string(r.Kind), r.UserID, r.Auth, r.UserName,
		r.Action, r.Target, r.Service, r.Provider, r.RequestDigest, r.IdempotencyKey, string(r.Outcome),
		r.ErrorCode, r.Message, r.Detail, r.PolicyDigest, int64(r.Duration), r.Time.UnixNano(), r.PrevHash,
	})
	return b
}

// ComputeHash returns the hex sha256 of r's canonical encoding.
func (r Record) ComputeHash() string {
	sum := sha256.Sum256(r.Canonical())
	return hex.EncodeToString(sum[:])
}

// Seal fills in Seq, PrevHash and Hash for a record appended after prev
// (nil for the first record), and normalises Time to UTC nanoseconds.
// Implementations call it inside their append transaction.
func Seal(r Record, prev *Record) Record {
	if prev == nil {
		r.Seq, r.PrevHash = 1, GenesisHash
	} else {
		r.Seq, r.PrevHash = prev.Seq+1, prev.Hash
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	if r.Version == 0 {
		r.Version = CurrentVersion
	}
	r.Time = time.Unix(0, r.Time.UnixNano()).UTC()
	r.Hash = r.ComputeHash()
	return r
}

// Filter selects records for Query. Zero fields match everything.
type Filter struct {
	Service string
	Target  string
	// Targets, when not nil, keeps only the records of these targets and
	// the intent and result records of the global halt switch (Target
	// GlobalScope, action halt: a global halt stops every target, so
	// whoever may see a target sees it). Every other record is left out:
	// those of other targets (their rejected requests too), global-scope
	// records of other actions, and records naming no target (token
	// administration, a refused halt request). An empty, non-nil Targets
	// keeps only the global halt's records. It is a query's condition,
	// not a filter of its page: pages and cursors count only the records
	// it keeps. The API sets it for a principal whose roles cover some
	// targets only.
	Targets []string
	// UserID matches a record's UserID or its UserName (the display
	// name), so either form of a principal finds its rows.
	UserID         string
	Action         string
	Kind           Kind
	Outcome        Outcome
	RunID          string
	IdempotencyKey string
	Since, Until   time.Time // Since inclusive, Until exclusive
	// Cursor continues a previous page (Page.Next).
	Cursor string
	// Limit caps the page; 0 means DefaultLimit, at most MaxLimit.
	Limit int
	// Descending returns the newest first.
	Descending bool
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a query.
type Page struct {
	Records []Record `json:"records"`
	// Next is the cursor of the following page; empty on the last.
	Next string `json:"next,omitempty"`
}

// EffectiveLimit clamps f.Limit.
func (f Filter) EffectiveLimit() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// CursorSeq decodes f.Cursor into the last seq already seen (0: none).
func (f Filter) CursorSeq() (int64, error) {
	if f.Cursor == "" {
		return 0, nil
	}
	var seq int64
	if _, err := fmt.Sscanf(f.Cursor, "s%d", &seq); err != nil || seq < 0 {
		return 0, fmt.Errorf("%w: bad cursor %q", ErrInvalidFilter, f.Cursor)
	}
	return seq, nil
}

// NextCursor builds Page.Next from the last record of a full page.
func NextCursor(last Record) string { return fmt.Sprintf("s%d", last.Seq) }

// ErrInvalidFilter is returned by Query for a malformed filter.
var ErrInvalidFilter = errors.New("ledger: invalid filter")

// VerifyResult is what Verify found.
type VerifyResult struct {
	OK    bool  `json:"ok"`
	Count int64 `json:"count"`
	// FirstBroken is the sequence number of the first row that fails;
	// 0 when OK.
	FirstBroken int64  `json:"firstBroken,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Head is the hash of the last row (GenesisHash for an empty ledger).
	Head string `json:"head"`
}

// VerifyChain walks records in seq order and checks that seqs run 1, 2, 3…
// without gaps, that each prev_hash is the hash before it, and that each
// hash matches its row. Implementations feed it their rows.
func VerifyChain(rows iter.Seq2[Record, error]) (VerifyResult, error) {
	res := VerifyResult{OK: true, Head: GenesisHash}
	want := int64(1)
	for r, err := range rows {
		if err != nil {
			return VerifyResult{}, err
		}
		fail := func(reason string) (VerifyResult, error) {
			res.OK, res.FirstBroken, res.Reason = false, want, reason
			return res, nil
		}
		switch {
		case r.Seq != want:
			return fail(fmt.Sprintf("sequence %d is missing (next row found is %d)", want, r.Seq))
		case r.PrevHash != res.Head:
			return fail(fmt.Sprintf("row %d: prev_hash does not match the hash of row %d", r.Seq, r.Seq-1))
		case r.Version <= 1 && (r.Auth != "" || r.UserName != ""):
			// Version 1 does not hash these columns: set on such a row they
			// were written afterwards.
			return fail(fmt.Sprintf("row %d: a version-1 row carries auth or user_name, which that version does not cover", r.Seq))
		case r.Version <= 2 && r.PolicyDigest != "":
			return fail(fmt.Sprintf("row %d: a version-%d row carries policy_digest, which that version does not cover", r.Seq, max(r.Version, 1)))
		case r.ComputeHash() != r.Hash:
			return fail(fmt.Sprintf("row %d: contents do not match its hash", r.Seq))
		}
		res.Head = r.Hash
		res.Count++
		want++
	}
	return res, nil
}

// Ledger is the audit store. Implementations are safe for concurrent use.
type Ledger interface {
	// Append seals r (seq, prev_hash, hash, time when zero) and stores it.
	// When Append returns nil the record is durable (committed and synced)
	// and visible to every other connection. Concurrent appends are ordered
	// into one chain.
	Append(ctx context.Context, r Record) (Record, error)
	// Query returns records matching f in seq order.
	Query(ctx context.Context, f Filter) (Page, error)
	// Verify checks the whole chain.
	Verify(ctx context.Context) (VerifyResult, error)
	// Unfinished returns intents that have no result, oldest first.
	Unfinished(ctx context.Context) ([]Record, error)
	// Halts returns the halt switches that are on: "*" for the global
	// switch, a target name for a target's. It reads the latest successful
	// halt result per scope.
	Halts(ctx context.Context) (map[string]bool, error)
	Close() error
}

// ServiceLocker is implemented by ledgers shared by several controller
// processes: LockService holds key until unlock is called or the process
// dies, across every process on the same ledger.
type ServiceLocker interface {
	LockService(ctx context.Context, key string) (unlock func(), err error)
}

// HaltDetail is the Detail of a halt record.
type HaltDetail struct {
	On bool `json:"on"`
}

// GlobalScope is the Target of a global halt record.
const GlobalScope = "*"

// Opener opens a ledger from a URL.
type Opener func(ctx context.Context, u *url.URL) (Ledger, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a ledger implementation available for URLs with scheme.
// It panics on a nil opener or a scheme registered twice.
func Register(scheme string, o Opener) {
	mu.Lock()
	defer mu.Unlock()
	if o == nil {
		panic("ledger: Register opener is nil for " + scheme)
	}
	if _, dup := openers[scheme]; dup {
		panic("ledger: Register called twice for " + scheme)
	}
	openers[scheme] = o
}

// Open opens the ledger a URL names: "sqlite:/path/to/ledger.db",
// "postgres://user@host/db?sslmode=disable".
func Open(ctx context.Context, rawURL string) (Ledger, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ledger url: %w", err)
	}
	scheme := u.Scheme
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	mu.RLock()
	o, ok := openers[scheme]
	mu.RUnlock()
	if !ok {
		mu.RLock()
		names := make([]string, 0, len(openers))
		for n := range openers {
			names = append(names, n)
		}
		mu.RUnlock()
		slices.Sort(names)
		registered := strings.Join(names, ", ")
		if registered == "" {
			registered = "none"
		}
		// The hint provider.Open gives: a ledger joins the registry from
		// its package's init, so a missing blank import is the usual cause.
		return nil, fmt.Errorf("ledger url scheme %q: no such ledger (registered: %s; is its package imported?)", u.Scheme, registered)
	}
	return o(ctx, u)
}
