package aws_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

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

// TestConfigValueLimit (review #9, SSM): a value over the Standard tier's
// 4 KB is invalid_argument naming the key, before any parameter is
// written; the fake refuses such a PutParameter as SSM does.
func TestConfigValueLimit(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	sp := spec("big", 1)
	sp.Config = map[string]string{"A": "small", "B": strings.Repeat("x", 4097)}
	_, err := p.Start(ctx(t), sp)
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "config.B") || !provider.NothingChanged(err) {
		t.Fatalf("Start = %v; want invalid_argument at config.B", err)
	}
	if n := f.Requests("ssm.PutParameter") + f.Requests("ecs.RegisterTaskDefinition"); n != 0 {
		t.Fatalf("%d writes before the refusal", n)
	}
	sp.Config = nil
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	err = p.ApplyConfig(ctx(t), "big", map[string]string{"A": "small", "B": strings.Repeat("x", 4097)})
	if workload.CodeOf(err) != workload.InvalidArgument || f.Requests("ssm.PutParameter") != 0 {
		t.Fatalf("ApplyConfig = %v after %d PutParameter", err, f.Requests("ssm.PutParameter"))
	}
	if err := p.ApplyConfig(ctx(t), "big", map[string]string{"B": strings.Repeat("x", 4096)}); err != nil {
		t.Fatalf("4096 bytes: %v", err)
	}
}
