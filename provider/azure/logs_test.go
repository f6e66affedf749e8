package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
)

// logModes are the two ways a group is followed: its attached output
// stream, and polling ListLogs when attach is refused (here: the role
// lacks containers/attach/action).
var logModes = []struct {
	name  string
	roles []fakeazure.Role
}{
	{"attach", nil},
	{"polling", []fakeazure.Role{{Actions: []string{"*"}, NotActions: []string{actAttach}}}},
}

// checkLogMode asserts that the mode the test ran in was the one used.
func checkLogMode(t *testing.T, mode string, f *fakeazure.Fake) {
	t.Helper()
	t.Logf("%s: ListLogs %d calls (%d without tail), %d bytes of log read", mode, f.Calls("ListLogs"), f.Calls("ListLogs without tail"), f.LogBytes())
	switch n := f.Calls("attach sockets"); {
	case mode == "attach" && n == 0:
		t.Error("no attach socket was opened")
	case mode == "polling" && (n != 0 || f.Calls("Attach") != 0):
		t.Errorf("attach was used (%d calls, %d sockets) although the role lacks it", f.Calls("Attach"), n)
	}
}

func TestLogsNoRepeatNoDrop(t *testing.T) {
	for _, m := range logModes {
		t.Run(m.name, func(t *testing.T) { testLogsNoRepeatNoDrop(t, m.name, m.roles) })
	}
}

func testLogsNoRepeatNoDrop(t *testing.T, mode string, roles []fakeazure.Role) {
	p, f := openFake(t, fakeazure.Options{Roles: roles}, nil)
	defer checkLogMode(t, mode, f)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("lg", 1)); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UTC().Add(time.Second)
	f.AppendLog("lg-0", ts, "same-1")
	f.AppendLog("lg-0", ts, "same-2")
	// Non-follow, Tail 1: only the newest line.
	var tail []string
	for l, err := range p.Logs(ctx, "lg", provider.LogOptions{Tail: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		tail = append(tail, l.Text)
	}
	if !slices.Equal(tail, []string{"same-2"}) {
		t.Fatalf("Tail 1 = %q", tail)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []string
	for l, err := range p.Logs(fctx, "lg", provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Instance, "lg-0@") || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("line %+v: want instance lg-0@<start>, stream stdout and a time", l)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 3:
			// Written after several polls saw the first three: a fourth
			// line at the same timestamp as the last two, then a later one.
			time.Sleep(30 * time.Millisecond)
			f.AppendLog("lg-0", ts, "same-3")
			f.AppendLog("lg-0", ts.Add(time.Millisecond), "later")
		case 5:
			cancel()
		}
	}
	want := []string{startupLine, "same-1", "same-2", "same-3", "later"}
	if !slices.Equal(got, want) {
		t.Fatalf("followed lines = %q, want %q", got, want)
	}
	// Follow with Tail 0: none of the history, only what is written
	// after several polls.
	fctx, cancel = context.WithCancel(ctx)
	defer cancel()
	reads := f.Calls("ListLogs")
	go func() {
		// Once the follow has read (seeded from) the history.
		if eventually(func() bool { return f.Calls("ListLogs") > reads }) {
			time.Sleep(20 * time.Millisecond)
			f.AppendLog("lg-0", time.Now().UTC().Add(2*time.Second), "new")
		}
	}()
	got = nil
	for l, err := range p.Logs(fctx, "lg", provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
		cancel()
	}
	if !slices.Equal(got, []string{"new"}) {
		t.Fatalf("followed lines with tail 0 = %q, want [new]", got)
	}
}

func TestLogCursor(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 2, 45, 0, 0, time.UTC)
	l := func(sec int, text string) logLine {
		return logLine{t: t0.Add(time.Duration(sec) * time.Second), text: text}
	}
	polls := []struct {
		lines []logLine
		want  []string
	}{
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c")}, []string{"a", "b", "c"}},
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c")}, nil},
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c"), l(1, "d"), l(2, "e")}, []string{"d", "e"}},
		// After a restart ACI returns only the new run's log.
		{[]logLine{l(5, "restarted"), l(5, "again")}, []string{"restarted", "again"}},
		{[]logLine{l(5, "restarted"), l(5, "again")}, nil},
	}
	var c logCursor
	for i, p := range polls {
		var got []string
		for _, x := range c.fresh(p.lines) {
			got = append(got, x.text)
		}
		if !slices.Equal(got, p.want) {
			t.Fatalf("poll %d: fresh = %q, want %q", i, got, p.want)
		}
	}
	parsed := parseLogs("2026-11-27T02:45:00.1234567Z hello world\ncontinued\n2026-11-27T02:45:01Z bye\n")
	if len(parsed) != 3 || parsed[0].text != "hello world" || parsed[1].text != "continued" || !parsed[1].t.Equal(parsed[0].t) || parsed[2].text != "bye" {
		t.Fatalf("parseLogs = %+v", parsed)
	}
}

// TestLogsFollowReadsNewestWindow (review Z4): following no longer
// downloads each group's whole log (up to 4 MB) every poll: it reads the
// newest lines (tail) and falls back to a full read only when more lines
// arrived than the window holds; every line still arrives exactly once.
func TestLogsFollowReadsNewestWindow(t *testing.T) {
	for _, m := range logModes {
		t.Run(m.name, func(t *testing.T) { testLogsFollowReadsNewestWindow(t, m.name, m.roles) })
	}
}

func testLogsFollowReadsNewestWindow(t *testing.T, mode string, roles []fakeazure.Role) {
	p, f := openFake(t, fakeazure.Options{Roles: roles}, nil)
	defer checkLogMode(t, mode, f)
	if _, err := p.Start(ctxT(t), spec("chat", 1)); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := range 5000 {
		f.AppendLog("chat-0", base.Add(time.Duration(i)*time.Millisecond), fmt.Sprintf("old %d", i))
	}
	c, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var got []string
	emit := func(from, n int) {
		for i := range n {
			f.AppendLog("chat-0", time.Now(), fmt.Sprintf("new %05d", from+i))
		}
	}
	go func() {
		for f.Calls("ListLogs") == 0 { // the follow has seeded its cursor
			time.Sleep(2 * time.Millisecond)
		}
		emit(0, 10)
	}()
	for l, err := range p.Logs(c, "chat", provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Text, "new ") {
			t.Fatalf("history line %q emitted while following with tail 0", l.Text)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 10:
			emit(10, 1500) // more than the window between two polls
		case 1510:
			emit(1510, 5)
		}
		if len(got) == 1515 {
			break
		}
	}
	for i, l := range got {
		if want := fmt.Sprintf("new %05d", i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
	if n := f.Calls("ListLogs without tail"); n > 2 {
		t.Errorf("%d full log reads; want at most 2 (seeding is a window read, one burst larger than the window)", n)
	}
}

// TestLogsFollowAttach (issue 15, review Z4/#13): following streams each
// group's output through Containers_Attach instead of re-reading its log:
// stdout and stderr are told apart, lines arrive once, a dropped stream is
// attached again and the gap filled from the log without repeats, and a
// group whose Attach is refused is followed by polling.
func TestLogsFollowAttach(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("att", 1)); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type seen struct{ stream, text string }
	var got []seen
	step := 0
	for l, err := range p.Logs(fctx, "att", provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Instance, "att-0@") {
			t.Fatalf("line %+v: instance", l)
		}
		got = append(got, seen{l.Stream, l.Text})
		switch {
		case l.Text == startupLine && step == 0:
			step++
			waitFor(t, func() bool { return f.Calls("attach sockets") == 1 })
			f.EmitLog(testTarget, "att", "out-1")
			f.EmitStderr(testTarget, "att", "err-1")
		case l.Text == "err-1":
			// The stream drops; output goes on meanwhile.
			f.DropAttach("att-0")
			f.EmitLog(testTarget, "att", "gap-1")
			f.EmitLog(testTarget, "att", "gap-2")
			go func() {
				if eventually(func() bool { return f.Calls("attach sockets") == 2 }) {
					f.EmitLog(testTarget, "att", "after")
				}
			}()
		case l.Text == "after":
			cancel()
		}
		if len(got) > 10 {
			t.Fatalf("too many lines: %q", got)
		}
	}
	want := []seen{{"stdout", startupLine}, {"stdout", "out-1"}, {"stderr", "err-1"}, {"stdout", "gap-1"}, {"stdout", "gap-2"}, {"stdout", "after"}}
	if !slices.Equal(got, want) {
		t.Fatalf("followed = %q, want %q", got, want)
	}
	// One history read per attach, nothing while the stream delivers.
	if n := f.Calls("ListLogs"); n > 2 {
		t.Errorf("ListLogs calls = %d, want at most 2 (history at attach, gap after the drop)", n)
	}

	// Attach refused by the service although the permission check allowed
	// it: the group is polled and nothing is lost.
	f.SetRoles(fakeazure.Role{Actions: []string{"*"}, NotActions: []string{actAttach}})
	sockets := f.Calls("attach sockets")
	fctx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() {
		if eventually(func() bool { return f.Calls("AuthorizationFailed") > 0 }) {
			time.Sleep(20 * time.Millisecond)
			f.EmitLog(testTarget, "att", "polled")
		}
	}()
	var polled []string
	for l, err := range p.Logs(fctx, "att", provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatal(err)
		}
		polled = append(polled, l.Text)
		cancel()
	}
	if !slices.Equal(polled, []string{"polled"}) || f.Calls("AuthorizationFailed") != 1 || f.Calls("attach sockets") != sockets {
		t.Fatalf("after a refused attach: lines %q, refusals %d, new sockets %d; want [polled], one refusal, no socket",
			polled, f.Calls("AuthorizationFailed"), f.Calls("attach sockets")-sockets)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if !eventually(cond) {
		t.Fatal("condition not met within 10s")
	}
}

// eventually reports whether cond held within 10 s (the caller's context
// ends the test sooner when it does not).
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
