package aws_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
)

// followLines starts a service with p, follows its logs from now on (Tail
// 0) with follower (p if nil) and emits n lines in bursts of burst, a few
// milliseconds apart; it returns the lines the follow yielded once n have
// arrived (or the test deadline).
func followLines(t *testing.T, p, follower provider.Provider, f *fakeaws.Fake, name string, n, burst int) []string {
	t.Helper()
	if _, err := p.Start(ctx(t), spec(name, 1)); err != nil {
		t.Fatal(err)
	}
	if follower == nil {
		follower = p
	}
	c, cancel := context.WithTimeout(ctx(t), 20*time.Second)
	defer cancel()
	go func() {
		// Give the follow a moment to start, then emit.
		time.Sleep(50 * time.Millisecond)
		for i := 0; i < n; {
			for j := 0; j < burst && i < n; j++ {
				f.EmitLog("default", name, fmt.Sprintf("line %03d", i))
				i++
			}
			select {
			case <-c.Done():
				return
			case <-time.After(7 * time.Millisecond):
			}
		}
	}()
	var got []string
	for l, err := range follower.(provider.LogTailer).Logs(c, name, provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatalf("after %d lines: %v", len(got), err)
		}
		if !strings.HasPrefix(l.Text, "line ") {
			// The task's startup line, when FilterLogEvents found it only
			// after the first read (SearchDelay).
			continue
		}
		got = append(got, l.Text)
		if len(got) == n {
			break
		}
	}
	return got
}

// exactlyOnceInOrder fails t unless got is "line 000" .. "line n-1".
func exactlyOnceInOrder(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d lines, want %d: %q", len(got), n, got)
	}
	for i, l := range got {
		if want := fmt.Sprintf("line %03d", i); l != want {
			t.Fatalf("line %d = %q, want %q (dropped, repeated or reordered): %q", i, l, want, got)
		}
	}
}

// TestLogsFollowLiveTail: following goes through StartLiveTail sessions;
// when CloudWatch ends a session another starts, and the poll that covers
// each seam neither drops nor repeats a line.
func TestLogsFollowLiveTail(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	f.SetLiveTail(fakeaws.LiveTailOptions{Interval: 30 * time.Millisecond, MaxUpdates: 3})
	// The follower polls once an hour: every line comes from live tail or
	// a session's first catch-up read, and a fallback to polling would
	// show as missing lines.
	follower := openOn(t, f, map[string]any{"pollInterval": "1h"})
	got := followLines(t, p, follower, f, "lt", 200, 1)
	exactlyOnceInOrder(t, got, 200)
	sessions, filters := f.Requests("logs.StartLiveTail"), f.Requests("logs.FilterLogEvents")
	// Each session ends with SessionTimeoutException (the three-hour
	// limit): a normal end, so following stays live past maxBroken (5)
	// such ends instead of falling back to polling (review A1).
	if sessions < 7 {
		t.Errorf("%d StartLiveTail sessions, want more than 6 (each ends after 3 updates)", sessions)
	}
	// One first read, then one catch-up read per session: no polling.
	if filters > sessions+1 {
		t.Errorf("%d FilterLogEvents calls for %d live sessions: the follow polled", filters, sessions)
	}
	t.Logf("%d lines over %d live sessions, %d FilterLogEvents calls", len(got), sessions, filters)
}

// TestLogsFollowFallsBackToPolling: a session that CloudWatch samples (it
// drops lines above 500/s) or refuses (no logs:StartLiveTail permission)
// hands over to polling, still without dropping or repeating a line.
func TestLogsFollowFallsBackToPolling(t *testing.T) {
	for _, tc := range []struct {
		name string
		live fakeaws.LiveTailOptions
	}{
		{"sampled", fakeaws.LiveTailOptions{Interval: 30 * time.Millisecond, SampleAbove: 3}},
		{"refused", fakeaws.LiveTailOptions{Disabled: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, f := openFake(t, fakeaws.Options{}, nil)
			f.SetLiveTail(tc.live)
			got := followLines(t, p, nil, f, "fb", 60, 20)
			exactlyOnceInOrder(t, got, 60)
			// The first read, then at least one poll.
			if n := f.Requests("logs.FilterLogEvents"); n < 2 {
				t.Errorf("%d FilterLogEvents calls: the follow did not poll", n)
			}
			if n := f.Requests("logs.StartLiveTail"); n != 1 {
				t.Errorf("%d StartLiveTail calls, want 1 (then polling for good)", n)
			}
		})
	}
}

// TestLogsFollowLiveTailSearchDelay: FilterLogEvents finds a line only a
// while after CloudWatch ingested it, and a session starts a while after
// it was asked for; the lines ingested just before a session started are
// in neither its live stream nor its first catch-up read. The polls while
// the session is young recover them: every line arrives exactly once.
func TestLogsFollowLiveTailSearchDelay(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{SearchDelay: 300 * time.Millisecond}, nil)
	f.SetLiveTail(fakeaws.LiveTailOptions{Interval: 15 * time.Millisecond, StartDelay: 100 * time.Millisecond})
	follower := openOn(t, f, map[string]any{"pollInterval": "50ms"})
	got := followLines(t, p, follower, f, "sd", 120, 5)
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	for i := range 120 {
		if l := fmt.Sprintf("line %03d", i); seen[l] != 1 {
			t.Errorf("%s arrived %d times, want once", l, seen[l])
		}
	}
	if n := f.Requests("logs.StartLiveTail"); n != 1 {
		t.Errorf("%d StartLiveTail sessions, want 1 (the session does not end)", n)
	}
}
