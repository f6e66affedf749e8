package aws_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
)

// TestLogsTailSinceAndCursor pins the FilterLogEvents cursor (live tail
// off: livetail_test.go covers StartLiveTail).
func TestLogsTailSinceAndCursor(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{StartupLine: "boot"}, map[string]any{"liveTail": false})
	if _, err := p.Start(ctx(t), spec("lg", 1)); err != nil {
		t.Fatal(err)
	}
	id := f.Service("default", "lg").RunningTasks[0]
	stream := "lg/lg/" + id
	base := time.Now().Add(time.Minute).UnixMilli()
	for i, ts := range []int64{base, base + 1, base + 1, base + 2} {
		f.PutLogEvent("/alphaswarm/prod", stream, ts, "line"+string(rune('a'+i)))
	}
	// Tail 2: the last two lines.
	var got []string
	for l, err := range p.(provider.LogTailer).Logs(ctx(t), "lg", provider.LogOptions{Tail: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Instance != id {
			t.Errorf("line %q tagged %q, want task %s", l.Text, l.Instance, id)
		}
		got = append(got, l.Text)
	}
	if !slices.Equal(got, []string{"linec", "lined"}) {
		t.Errorf("tail 2 = %v", got)
	}
	// Since base+1: the three lines from there.
	got = nil
	for l := range p.(provider.LogTailer).Logs(ctx(t), "lg", provider.LogOptions{Tail: -1, Since: time.UnixMilli(base + 1)}) {
		got = append(got, l.Text)
	}
	if !slices.Equal(got, []string{"lineb", "linec", "lined"}) {
		t.Errorf("since = %v", got)
	}
	// Follow: a line in the same millisecond as the last one seen, and a
	// late one, arrive once each.
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	got = nil
	for l, err := range p.(provider.LogTailer).Logs(c, "lg", provider.LogOptions{Tail: -1, Follow: true, Since: time.UnixMilli(base)}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 4:
			f.PutLogEvent("/alphaswarm/prod", stream, base+2, "tie")
			f.PutLogEvent("/alphaswarm/prod", stream, base+1, "late")
		case 6:
			f.PutLogEvent("/alphaswarm/prod", stream, base+5, "end")
		}
		if len(got) == 7 {
			break
		}
	}
	want := []string{"linea", "lineb", "linec", "lined", "late", "tie", "end"}
	if !slices.Equal(got, want) {
		t.Errorf("follow = %v, want %v", got, want)
	}
}

// TestLogsTailReadsRecentHistoryOnly (review A2): `logs --tail N` without
// a Since reads back from now in widening windows until every running
// task's stream has N lines, instead of the log group's whole history;
// FilterLogEvents' empty pages with a next token (EmptyPages) are paged
// through.
func TestLogsTailReadsRecentHistoryOnly(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{StartupLine: "boot", EmptyPages: 2}, map[string]any{"liveTail": false})
	now := time.Now()
	f.SetClock(func() time.Time { return now.Add(-10 * 24 * time.Hour) })
	if _, err := p.Start(ctx(t), spec("hist", 2)); err != nil {
		t.Fatal(err)
	}
	f.SetClock(nil)
	ids := f.Service("default", "hist").RunningTasks
	if len(ids) != 2 {
		t.Fatalf("tasks %v", ids)
	}
	chatty, quiet := "hist/hist/"+ids[0], "hist/hist/"+ids[1]
	// Five to ten days ago: 3000 lines of the chatty task.
	old := now.Add(-10 * 24 * time.Hour)
	for i := range 3000 {
		f.PutLogEvent("/alphaswarm/prod", chatty, old.Add(time.Duration(i)*144*time.Second).UnixMilli(), "old")
	}
	// Two days ago, the quiet task's last lines; just now, the chatty one's.
	for i, s := range []string{"q1", "q2", "q3", "q4"} {
		f.PutLogEvent("/alphaswarm/prod", quiet, now.Add(-48*time.Hour+time.Duration(i)*time.Second).UnixMilli(), s)
	}
	for i, s := range []string{"c1", "c2", "c3", "c4"} {
		f.PutLogEvent("/alphaswarm/prod", chatty, now.Add(-10*time.Second+time.Duration(i)*time.Second).UnixMilli(), s)
	}
	var got []string
	for l, err := range p.(provider.LogTailer).Logs(ctx(t), "hist", provider.LogOptions{Tail: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
	}
	if want := []string{"q2", "q3", "q4", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Errorf("tail 3 = %v, want %v", got, want)
	}
	if n := f.FilteredEvents(); n > 100 {
		t.Errorf("FilterLogEvents returned %d events for a tail of 3 per task: the read went through the old history", n)
	}
	// Tail 0 reads no history at all.
	before := f.Requests("logs.FilterLogEvents")
	for range p.(provider.LogTailer).Logs(ctx(t), "hist", provider.LogOptions{Tail: 0}) {
		t.Error("tail 0 yielded a line")
	}
	if n := f.Requests("logs.FilterLogEvents") - before; n != 0 {
		t.Errorf("tail 0 sent %d FilterLogEvents requests", n)
	}
}
