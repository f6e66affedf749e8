package ledger

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewRunID returns a new run id: "run_" and 24 hex digits, the first 12 the
// time in milliseconds since the Unix epoch, the other 12 random.
//
// The time comes first so that run ids sort, roughly, in the order runs
// began, and so that every index keyed on run id (workload_runs' run_id
// index, workload_revisions' primary key, on both ledgers) grows at its
// right edge like the seq-ordered ones: a random id lands each insert on
// a random leaf page, which a commit must then write (and PostgreSQL log in
// full after each checkpoint) — at 64 concurrent callers, several pages
// per operation that no reader asked for. 48 random bits keep ids begun in
// the same millisecond apart (two alike among 1,000 runs in one
// millisecond: about 2 in a billion). A run id names a run; it grants
// nothing, so it needs no more randomness than that.
func NewRunID() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return "run_" + hex.EncodeToString(b[:])
}
