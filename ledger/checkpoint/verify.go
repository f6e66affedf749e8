package checkpoint

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// state is the ledger folded row by row: its length, head and halt
// switches, as Halts would report them at that row.
type state struct {
	seq   int64
	head  string
	halts map[string]bool
	// haltSeq is, per scope, the seq of the latest successful halt result.
	haltSeq map[string]int64
}

func newState() *state {
	return &state{head: ledger.GenesisHash, halts: map[string]bool{}, haltSeq: map[string]int64{}}
}

// fold takes r as the next row (no chain checks).
func (s *state) fold(r ledger.Record) {
	s.seq, s.head = r.Seq, r.Hash
	if scope, on, ok := haltOf(r); ok {
		s.haltSeq[scope] = r.Seq
		if on {
			s.halts[scope] = true
		} else {
			delete(s.halts, scope)
		}
	}
}

// haltOf reports the halt switch r sets, if it is a successful halt result.
func haltOf(r ledger.Record) (scope string, on, ok bool) {
	if r.Action != "halt" || r.Kind != ledger.KindResult || r.Outcome != ledger.OutcomeOK {
		return "", false, false
	}
	var d ledger.HaltDetail
	if json.Unmarshal([]byte(r.Detail), &d) != nil {
		return "", false, false
	}
	return r.Target, d.On, true
}

func (s *state) haltList() []string { return slices.Sorted(maps.Keys(s.halts)) }

// rowsAfter iterates the rows with seq > after in seq order, a page at a
// time.
func rowsAfter(ctx context.Context, l ledger.Ledger, after int64) iter.Seq2[ledger.Record, error] {
	return func(yield func(ledger.Record, error) bool) {
		for {
			page, err := l.Query(ctx, ledger.Filter{Cursor: fmt.Sprintf("s%d", after), Limit: ledger.MaxLimit})
			if err != nil {
				yield(ledger.Record{}, err)
				return
			}
			for _, r := range page.Records {
				if !yield(r, nil) {
					return
				}
				after = r.Seq
			}
			if page.Next == "" {
				return
			}
		}
	}
}

// Mismatch is a checkpoint the ledger does not honour.
type Mismatch struct {
	// Index is the checkpoint's position in the file, from 1.
	Index  int       `json:"index"`
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// Report is what VerifyLedger found.
type Report struct {
	OK bool `json:"ok"`
	// Rows is the number of rows stored, counted past a break.
	Rows int64 `json:"rows"`
	// Chain is the hash-chain walk (its Count stops at the first break).
	Chain ledger.VerifyResult `json:"chain"`
	// Checkpoints is how many checkpoints were given; Matched how many the
	// ledger honours.
	Checkpoints int `json:"checkpoints"`
	Matched     int `json:"matched"`
	// FirstBad is the first checkpoint (in file order) that is missing,
	// different, or badly signed.
	FirstBad *Mismatch `json:"firstBadCheckpoint,omitempty"`
	// Last is the last well-signed checkpoint.
	Last *Checkpoint `json:"lastCheckpoint,omitempty"`
	// Halts are the halt scopes on according to the rows.
	Halts  []string `json:"halts"`
	Reason string   `json:"reason,omitempty"`

	final *state
}

// Summary is one line for people.
func (r Report) Summary() string {
	if r.OK {
		return fmt.Sprintf("ledger OK: %d rows, head %.16s…, %d of %d checkpoints present", r.Rows, r.Chain.Head, r.Matched, r.Checkpoints)
	}
	return "LEDGER DOES NOT VERIFY: " + r.Reason
}

// VerifyLedger walks the whole ledger once: it checks the hash chain and
// that every checkpoint in cps is signed by pub and names a row the ledger
// still holds, with the same hash and the same halt state. pub may be nil
// when cps is empty.
func VerifyLedger(ctx context.Context, l ledger.Ledger, cps []Checkpoint, pub ed25519.PublicKey) (Report, error) {
	rep := Report{Checkpoints: len(cps), Halts: []string{}}
	bad := make(map[int]string) // index → reason
	bySeq := map[int64][]int{}
	for i, c := range cps {
		if pub == nil {
			bad[i] = "no public key to check its signature with"
			continue
		}
		if err := c.Check(pub); err != nil {
			bad[i] = err.Error()
			continue
		}
		bySeq[c.Seq] = append(bySeq[c.Seq], i)
		rep.Last = &cps[i]
	}
	seen := map[int]bool{}
	st := newState()
	chain := ledger.VerifyResult{OK: true, Head: ledger.GenesisHash}
	check := func() {
		for _, i := range bySeq[st.seq] {
			seen[i] = true
			c := cps[i]
			switch {
			case c.Head != st.head:
				bad[i] = fmt.Sprintf("row %d holds hash %.16s…, the checkpoint signed %.16s…: the ledger was rewritten", c.Seq, st.head, c.Head)
			case !slices.Equal(st.haltList(), sorted(c.Halts)):
				bad[i] = fmt.Sprintf("at row %d the ledger's halt switches are [%s], the checkpoint signed [%s]: a halt row was removed or forged",
					c.Seq, strings.Join(st.haltList(), ","), strings.Join(sorted(c.Halts), ","))
			}
		}
	}
	check() // checkpoints of the empty ledger
	for r, err := range rowsAfter(ctx, l, 0) {
		if err != nil {
			return Report{}, err
		}
		if chain.OK {
			fail := func(reason string) { chain.OK, chain.FirstBroken, chain.Reason = false, st.seq+1, reason }
			switch {
			case r.Seq != st.seq+1:
				fail(fmt.Sprintf("sequence %d is missing (next row found is %d)", st.seq+1, r.Seq))
			case r.PrevHash != st.head:
				fail(fmt.Sprintf("row %d: prev_hash does not match the hash of row %d", r.Seq, r.Seq-1))
			case r.ComputeHash() != r.Hash:
				fail(fmt.Sprintf("row %d: contents do not match its hash", r.Seq))
			default:
				chain.Count++
				chain.Head = r.Hash
			}
		}
		rep.Rows++
		st.fold(r)
		check()
	}
	for i, c := range cps {
		if _, isBad := bad[i]; isBad || seen[i] {
			continue
		}
		if c.Seq > st.seq {
			bad[i] = fmt.Sprintf("the checkpoint signed row %d but the ledger ends at row %d: rows were removed from the tail", c.Seq, st.seq)
		} else {
			bad[i] = fmt.Sprintf("the checkpoint signed row %d, which the ledger no longer holds", c.Seq)
		}
	}
	if !chain.OK {
		chain.Head = st.head
	}
	rep.Chain, rep.Halts, rep.final = chain, st.haltList(), st
	rep.Matched = len(cps) - len(bad)
	for i := range cps {
		if reason, ok := bad[i]; ok {
			rep.FirstBad = &Mismatch{Index: i + 1, Seq: cps[i].Seq, Time: cps[i].Time, Reason: reason}
			break
		}
	}
	rep.OK = chain.OK && rep.FirstBad == nil
	switch {
	case !chain.OK:
		rep.Reason = fmt.Sprintf("chain broken at row %d: %s", chain.FirstBroken, chain.Reason)
		if rep.FirstBad != nil {
			rep.Reason += "; " + rep.FirstBad.String()
		}
	case rep.FirstBad != nil:
		rep.Reason = rep.FirstBad.String()
	}
	return rep, nil
}

func (m *Mismatch) String() string {
	return fmt.Sprintf("checkpoint #%d (row %d, %s): %s", m.Index, m.Seq, m.Time.Format(time.RFC3339), m.Reason)
}

func sorted(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	if c == nil {
		c = []string{}
	}
	return c
}
