package postgres

import (
	"encoding/json"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

// What the writer knows of the guards' answers (AppendGuarded).
//
// A guarded append needs, in its transaction, the halt switches and the
// revision heads of the services it checks. Read every time, they are two
// more statements in the transaction's first pipeline, and the revision
// heads one index probe per service of the batch: at 64 callers they made
// the transaction's first round trip several times longer than the bare
// head read, and this writer's transactions are the ledger's throughput.
//
// The writer's own transactions change those answers only through the rows
// they commit, which it sees (ledger.BatchGuards.Accepted). So after each
// commit it keeps them (guardCache), right as long as the ledger's head is
// still the row it wrote last: no other process has appended since. The
// reads are still sent in the same pipeline, but each is conditional on
// the head having moved (haltsIfMovedSQL, revisionHeadsIfMovedSQL: a
// one-time filter on the head the statement reads itself, the same row the
// head read sees, since every appender holds the append lock): when nobody
// else appended, they return at once without reading, and the writer uses
// what it knows; when someone did, they read everything, as before. A
// service the writer has not seen yet is read unconditionally.

// maxGuardHeads bounds the revision heads the writer keeps; a full map
// starts again empty.
var maxGuardHeads = 1 << 16 // a var: tests lower it

// guardCache is the writer's knowledge (used by the writer goroutine only).
type guardCache struct {
	valid bool  // halts and heads were right when the ledger's head was at
	at    int64 // the head's seq (0: an empty ledger)
	halts map[string]bool
	// haltsKnown: halts holds every scope's switch (it was read, or kept
	// since); otherwise only the halts this writer committed are in it.
	haltsKnown bool
	heads      map[[2]string]int64 // {target, service} → revision head
}

// headNone is a head no ledger has: the conditional reads always read.
const headNone = -1

// haltsIfMovedSQL is haltsSQL, reading nothing when the ledger's head is
// $1.
const haltsIfMovedSQL = `SELECT DISTINCT ON (target) target, seq, detail FROM workload_runs
	WHERE action = 'halt' AND kind = 'result' AND outcome = 'ok'
	  AND $1::bigint IS DISTINCT FROM (SELECT max(seq) FROM workload_runs)
	ORDER BY target, seq DESC`

// revisionHeadsIfMovedSQL is RevisionHead for each {target, service} of
// its arrays $1 and $2 whose element of $3 is false, and for every one of
// them when the ledger's head is not $4: one statement for a batch.
var revisionHeadsIfMovedSQL = `SELECT k.t, k.s, COALESCE((` +
	strings.NewReplacer("$1", "k.s", "$2", "k.t").Replace(revHeadSQL) +
	`), 0) FROM unnest($1::text[], $2::text[], $3::boolean[]) AS k(t, s, known)
	WHERE NOT k.known OR $4::bigint IS DISTINCT FROM (SELECT max(seq) FROM workload_runs)`

// guardReads are the conditional reads a batch's guards need.
type guardReads struct {
	halts bool        // haltsIfMovedSQL is queued
	heads [][2]string // revisionHeadsIfMovedSQL is queued for these
}

// queue queues, after the head read, the reads the guards of the batch
// (recs, guards) need, conditional on what c knows.
func (c *guardCache) queue(b *pgx.Batch, recs []ledger.Record, guards []*ledger.Guard) guardReads {
	if len(c.heads) >= maxGuardHeads {
		c.valid = false // start again: read everything (read empties the maps)
	}
	at := int64(headNone)
	if c.valid {
		at = c.at
	}
	var q guardReads
	if ledger.NeedsHalts(guards) {
		q.halts = true
		haltsAt := at
		if !c.haltsKnown {
			haltsAt = headNone
		}
		b.Queue(haltsIfMovedSQL, haltsAt)
	}
	if q.heads = ledger.HeadKeys(recs, guards); len(q.heads) > 0 {
		ts, ss, known := make([]string, len(q.heads)), make([]string, len(q.heads)), make([]bool, len(q.heads))
		for i, k := range q.heads {
			ts[i], ss[i] = k[0], k[1]
			_, known[i] = c.heads[k]
			known[i] = known[i] && c.valid
		}
		b.Queue(revisionHeadsIfMovedSQL, ts, ss, known, at)
	}
	return q
}

// read reads the answers of q from br, the ledger's head being head, and
// returns what the batch's guards check against: what was read, and what
// c knows where nothing was.
func (c *guardCache) read(br pgx.BatchResults, q guardReads, head int64) (*ledger.BatchGuards, error) {
	if !c.valid || head != c.at {
		// Another process appended (or nothing is known): forget
		// everything; the reads below read it all.
		c.valid, c.halts, c.haltsKnown, c.heads = false, nil, false, nil
	}
	if c.heads == nil {
		c.heads = map[[2]string]int64{}
	}
	if q.halts {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		on, err := scanHalts(rows)
		if err != nil {
			return nil, err
		}
		if !c.haltsKnown {
			c.halts, c.haltsKnown = on, true
		}
	}
	if len(q.heads) > 0 {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var k [2]string
			var seq int64
			if err := rows.Scan(&k[0], &k[1], &seq); err != nil {
				return nil, err
			}
			c.heads[k] = seq
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if c.halts == nil {
		c.halts = map[string]bool{}
	}
	// The batch's accepted rows move these maps (BatchGuards.Accepted);
	// committed, c is right at the last row (committed).
	c.valid = false
	return &ledger.BatchGuards{Halts: c.halts, Heads: c.heads}, nil
}

// committed records that the transaction committed rows, and the
// ledger's head is now at.
func (c *guardCache) committed(rows []ledger.Record, at int64) {
	c.valid, c.at = true, at
	for _, r := range rows {
		// A halt result whose detail does not decode moved nothing in
		// halts (BatchGuards.Accepted), but the halts read refuses it:
		// read them again, and fail as that read does.
		if r.Action == "halt" && r.Kind == ledger.KindResult && r.Outcome == ledger.OutcomeOK &&
			json.Unmarshal([]byte(r.Detail), &ledger.HaltDetail{}) != nil {
			c.haltsKnown = false
		}
	}
}
