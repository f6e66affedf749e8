package ledger

import (
	"strconv"
	"strings"
)

// unusualRows is the condition of the partial indexes
// workload_runs_unusual_kind and _outcome (migration 0005 of both SQL
// backends): refused requests and runs that did not end ok, which the
// runs listings filter for and which are rare.
const unusualRows = "(kind = 'rejected' OR outcome NOT IN ('', 'ok'))"

// globalHaltRows is the condition of the records Filter.Targets keeps
// besides its targets': the global halt switch's intents and results
// (never a refused request, which changed nothing).
const globalHaltRows = "(target = '" + GlobalScope + "' AND action = 'halt' AND kind <> 'rejected')"

// SelectSQL renders f as one SELECT of columns over workload_runs for the
// SQL backends: f's conditions, the cursor, the order and a LIMIT one past
// the page (so that the caller knows whether a next page exists). prefix
// is the backend's numbered placeholder ("$" for PostgreSQL, "?" for
// SQLite's ?NNN); an argument used twice is bound once. It returns the
// query, its arguments and the page size; ErrInvalidFilter for a bad
// cursor.
func (f Filter) SelectSQL(columns, prefix string) (query string, args []any, limit int, err error) {
	after, err := f.CursorSeq()
	if err != nil {
		return "", nil, 0, err
	}
	var where []string
	arg := func(v any) string {
		args = append(args, v)
		return prefix + strconv.Itoa(len(args))
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = "+arg(v))
		}
	}
	eq("service", f.Service)
	eq("target", f.Target)
	if f.Targets != nil {
		// The targets one by one (the same SQL on both backends), and the
		// global halt switch's own records. Today this walks the seq
		// order as a ?target= listing does. Before adding an index on
		// (target, seq): SQLite plans this OR with it as MULTI-INDEX OR
		// and a sort of every matching row (1.2 s a page of a target of
		// a third of a 400k-row ledger, against 0.8 ms without the
		// index); one UNION ALL branch per target avoids that (2.4 ms)
		// but costs 1.4-1.8x without the index, and on PostgreSQL it
		// measured no better (same-run figures:
		// docs/notes/2026-12-05-4/scope.md).
		c := globalHaltRows
		if len(f.Targets) > 0 {
			ps := make([]string, len(f.Targets))
			for i, t := range f.Targets {
				ps[i] = arg(t)
			}
			c = "target IN (" + strings.Join(ps, ", ") + ") OR " + c
		}
		where = append(where, "("+c+")")
	}
	if f.UserID != "" {
		// Either form of the principal: its id or its display name.
		a := arg(f.UserID)
		where = append(where, "(user_id = "+a+" OR user_name = "+a+")")
	}
	eq("action", f.Action)
	eq("kind", string(f.Kind))
	eq("outcome", string(f.Outcome))
	// SQLite uses a partial index only when the query repeats its
	// condition; PostgreSQL proves the condition from the query's own
	// (and a repeated one would skew its row estimate), so the repeats
	// below are SQLite's only.
	sqlite := prefix == "?"
	if sqlite && (f.Kind == KindRejected || (f.Outcome != "" && f.Outcome != OutcomeOK)) {
		// Implied by the two above: the condition of the partial
		// indexes of these rare rows (migration 0005).
		where = append(where, unusualRows)
	}
	eq("run_id", f.RunID)
	if f.IdempotencyKey != "" {
		c := "idempotency_key = " + arg(f.IdempotencyKey)
		if sqlite {
			// The condition of SQLite's index of keyed rows: without
			// it every request with a key read the whole ledger.
			c += " AND idempotency_key <> ''"
		}
		where = append(where, c)
	}
	if !f.Since.IsZero() {
		where = append(where, "time_ns >= "+arg(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		where = append(where, "time_ns < "+arg(f.Until.UnixNano()))
	}
	order := "ASC"
	if f.Descending {
		order = "DESC"
	}
	if after > 0 {
		if f.Descending {
			where = append(where, "seq < "+arg(after))
		} else {
			where = append(where, "seq > "+arg(after))
		}
	}
	query = "SELECT " + columns + " FROM workload_runs"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	limit = f.EffectiveLimit()
	query += " ORDER BY seq " + order + " LIMIT " + arg(limit+1)
	return query, args, limit, nil
}

// PageOf cuts records, read with the LIMIT of SelectSQL, to one page of
// limit records and sets the cursor of the next page when there is one.
func PageOf(records []Record, limit int) Page {
	if records == nil {
		records = []Record{}
	}
	page := Page{Records: records}
	if len(records) > limit {
		page.Records = records[:limit]
		page.Next = NextCursor(page.Records[limit-1])
	}
	return page
}
