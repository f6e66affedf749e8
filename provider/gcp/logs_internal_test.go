package gcp

import (
	"testing"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestCursorAdmit: entries are deduplicated by insertId and timestamp,
// whatever their age; late entries are admitted.
func TestCursorAdmit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	entry := func(id string, d time.Duration) *loggingpb.LogEntry {
		return &loggingpb.LogEntry{InsertId: id, Timestamp: timestamppb.New(t0.Add(d))}
	}
	steps := []struct {
		e    *loggingpb.LogEntry
		want bool
	}{
		{entry("a", 0), true},
		{entry("b", time.Second), true},
		{entry("a", 0), false},                 // repeat
		{entry("late", -30*time.Second), true}, // older than the newest: still new
		{entry("late", -30*time.Second), false},
		{entry("a", 5*time.Millisecond), true}, // same id, other timestamp
		{entry("b", time.Second), false},
	}
	var c cursor
	for i, s := range steps {
		if got := c.admit(s.e); got != s.want {
			t.Errorf("step %d (%s): admit = %v, want %v", i, s.e.InsertId, got, s.want)
		}
	}
	if want := t0.Add(time.Second - logOverlap); !c.since().Equal(want) {
		t.Errorf("since = %v, want %v (logOverlap before the newest)", c.since(), want)
	}
	// The seen-set is bounded in time: far newer entries evict old ones.
	c.admit(entry("z", time.Hour))
	if len(c.seen) != 1 {
		t.Errorf("seen holds %d entries after an hour, want 1", len(c.seen))
	}
	c.floor = t0.Add(2 * time.Hour)
	if !c.since().Equal(c.floor) {
		t.Errorf("since = %v, want the floor %v", c.since(), c.floor)
	}
}
