package ledger_test

import (
	"regexp"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

func TestNewRunID(t *testing.T) {
	format := regexp.MustCompile(`^run_[0-9a-f]{24}$`)
	seen := map[string]bool{}
	prev := ""
	for i := range 2000 {
		id := ledger.NewRunID()
		if !format.MatchString(id) {
			t.Fatalf("NewRunID() = %q, want run_ and 24 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewRunID() repeated %q after %d ids", id, i)
		}
		seen[id] = true
		// Ids of different milliseconds sort in the order they were made
		// (the indexes keyed on run id grow at their right edge).
		if i%500 == 0 {
			if prev != "" && prev[:16] >= id[:16] {
				t.Errorf("id %q, made 2 ms after %q, does not sort after it", id, prev)
			}
			prev = id
			time.Sleep(2 * time.Millisecond)
		}
	}
	ms := time.Now().UnixMilli()
	id := ledger.NewRunID()
	var got int64
	for _, c := range id[4:16] {
		got = got<<4 | int64(hexVal(c))
	}
	if got < ms || got > ms+1000 {
		t.Errorf("the first 12 digits of %q are %d, want the time in ms (≈%d)", id, got, ms)
	}
}

func hexVal(c rune) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}
