package ledger

import (
	"slices"
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
	// SQLite uses a partial index only when the query repeats its
	// condition; PostgreSQL proves the condition from the query's own
	// (and a repeated one would skew its row estimate), so the repeats
	// below are SQLite's only.
	sqlite := prefix == "?"
	eq("service", f.Service)
	eq("target", f.Target)
	if f.Targets != nil && !sqlite {
		// PostgreSQL: the targets one by one and the global halt
		// switch's own records, one OR condition (a BitmapOr of the
		// (target, seq) ranges, or the seq order for a page of a large
		// target; measured no better as a union).
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
	limit = f.EffectiveLimit()
	tail := " ORDER BY seq " + order + " LIMIT " + arg(limit+1)
	if f.Targets == nil || !sqlite {
		return selectWhere(columns, where) + tail, args, limit, nil
	}
	// SQLite: one SELECT per target and the global halt switch's, in a
	// UNION ALL ordered by seq, which SQLite plans as a merge of the
	// branches, each read in seq order from (target, seq) (migration
	// 0007) or from a better index of the other conditions (the rejected
	// rows' partial one), and stops after a page. With that index SQLite
	// plans an OR of targets as MULTI-INDEX OR and sorts every matching
	// row (1.2 s a page of a target of a third of a 400k-row ledger). A
	// target twice is one branch; with GlobalScope among them, its branch
	// holds the global halt's records.
	ts := slices.Compact(slices.Sorted(slices.Values(f.Targets)))
	var branches []string
	for _, t := range ts {
		branches = append(branches, selectWhere(columns, append([]string{"target = " + arg(t)}, where...)))
	}
	if !slices.Contains(ts, GlobalScope) {
		branches = append(branches, selectWhere(columns, append([]string{globalHaltRows}, where...)))
	}
	return strings.Join(branches, " UNION ALL ") + tail, args, limit, nil
}

// selectWhere is the SELECT of columns over workload_runs where every
// condition holds.
func selectWhere(columns string, where []string) string {
	q := "SELECT " + columns + " FROM workload_runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q
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
