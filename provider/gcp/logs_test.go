package gcp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// followLogs follows name's logs, calling step after each new distinct
// line with the set seen so far; it stops when step returns true.
func followLogs(t *testing.T, p *gcp.Provider, name string, step func(seen map[string]int) bool) map[string]int {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	seen := map[string]int{}
	for line, err := range p.Logs(c, name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		seen[line.Text]++
		if seen[line.Text] > 1 {
			t.Fatalf("line %q repeated", line.Text)
		}
		if step(seen) {
			return seen
		}
	}
	t.Fatalf("follow ended; saw %v", seen)
	return nil
}

// TestLogsFollowLateEntry: an entry older than the newest one yielded
// (late, out of order) is still yielded.
func TestLogsFollowLateEntry(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("late"), 1)
	mustStart(t, p, sp)
	lc, err := logging.NewClient(context.Background(), option.WithGRPCConn(f.Conn()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string, at time.Time) {
		_, err := lc.WriteLogEntries(ctx(t), &loggingpb.WriteLogEntriesRequest{Entries: []*loggingpb.LogEntry{{
			LogName:   "projects/demo-project/logs/run.googleapis.com%2Fstdout",
			Resource:  &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": sp.Name, "location": "europe-west1"}},
			Timestamp: timestamppb.New(at), Payload: &loggingpb.LogEntry_TextPayload{TextPayload: text},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	done := false
	followLogs(t, p, sp.Name, func(seen map[string]int) bool {
		if seen[startupLine] == 1 && !done {
			done = true
			go func() { // once the tail is open: the tail delivers both
				for f.Calls("TailLogEntries") < 1 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
				write("new", time.Now().Add(time.Second))
				write("late", time.Now().Add(-30*time.Second))
			}()
		}
		return seen["new"] == 1 && seen["late"] == 1
	})
}

// TestLogsTailReconnects: a tail stream that ends or fails transiently is
// reopened, and what was written meanwhile is caught up, once.
func TestLogsTailReconnects(t *testing.T) {
	for _, brk := range []error{nil, status.Error(codes.Unavailable, "server going away"), status.Error(codes.Internal, "stream reset")} {
		t.Run(status.Code(brk).String(), func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("recon"), 1)
			mustStart(t, p, sp)
			emitWhenTailing := func(n int, text string) {
				go func() {
					for f.Calls("TailLogEntries") < n {
						time.Sleep(5 * time.Millisecond)
					}
					time.Sleep(50 * time.Millisecond)
					f.EmitLog(sp.Name, text)
				}()
			}
			started, broken := false, false
			followLogs(t, p, sp.Name, func(seen map[string]int) bool {
				if seen[startupLine] == 1 && !started {
					started = true
					emitWhenTailing(1, "before")
				}
				if seen["before"] == 1 && !broken {
					broken = true
					f.BreakTails(brk)
					f.EmitLog(sp.Name, "between")
					emitWhenTailing(2, "after")
				}
				return seen["before"] == 1 && seen["between"] == 1 && seen["after"] == 1
			})
			if n := f.Calls("TailLogEntries"); n < 2 {
				t.Fatalf("TailLogEntries opened %d times, want a reconnection", n)
			}
		})
	}
}

// TestLogsGapCaughtUp: entries written between the history read and the
// tail's start are caught up.
func TestLogsGapCaughtUp(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("gap"), 1)
	mustStart(t, p, sp)
	once := false
	f.BeforeTail = func() {
		if !once {
			once = true
			f.EmitLog(sp.Name, "in the gap")
		}
	}
	followLogs(t, p, sp.Name, func(seen map[string]int) bool { return seen["in the gap"] == 1 })
}

// TestLogsTailSuppressionCaughtUp: entries the tail reports as suppressed
// are read back with ListLogEntries.
func TestLogsTailSuppressionCaughtUp(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("supp"), 1)
	mustStart(t, p, sp)
	started, suppressed := false, false
	followLogs(t, p, sp.Name, func(seen map[string]int) bool {
		if seen[startupLine] == 1 && !started {
			started = true
			go func() {
				for f.Calls("TailLogEntries") < 1 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
				f.EmitLog(sp.Name, "first")
			}()
		}
		if seen["first"] == 1 && !suppressed {
			suppressed = true
			// Once the catch-up after the first response is done (the
			// history read was the first list), a suppressed batch must
			// trigger another catch-up.
			go func() {
				for f.Calls("ListLogEntries") < 2 {
					time.Sleep(5 * time.Millisecond)
				}
				f.SuppressTail()
				f.EmitLog(sp.Name, "suppressed")
			}()
		}
		return seen["suppressed"] == 1
	})
}

// TestLogsPollingFallback: when TailLogEntries is refused, following polls
// ListLogEntries with a cursor that neither drops nor repeats lines.
func TestLogsPollingFallback(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("poll"), 2)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	f.Fail("TailLogEntries", status.Error(codes.Unimplemented, "TailLogEntries is not served here"))
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]int{}
	emitted := false
	for line, err := range p.Logs(c, sp.Name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		seen[line.Instance+" "+line.Text]++
		if len(seen) == 2 && !emitted {
			emitted = true
			f.EmitLog(sp.Name, "after-1")
			f.EmitLog(sp.Name, "after-2")
		}
		if len(seen) == 6 {
			break
		}
	}
	if len(seen) != 6 {
		t.Fatalf("saw %d distinct lines, want 6 (2 startup + 2x2 emitted): %v", len(seen), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("line %q seen %d times", k, n)
		}
	}
	if f.Calls("ListLogEntries") < 2 {
		t.Errorf("ListLogEntries called %d times; want history plus polling", f.Calls("ListLogEntries"))
	}
}

// TestLogsFollowWithinCloudLoggingQuotas (review G3): a chatty service's
// tail reports suppressed entries in every response; the catch-up reads
// that brings are spaced (at most one per five poll intervals) so that
// the project's 60 read requests a minute (enforced by the fake) are not
// spent; reads use 1000-entry pages; a follow beyond the project's 10
// live-tailing sessions is rate_limited instead of retrying against the
// quota.
func TestLogsFollowWithinCloudLoggingQuotas(t *testing.T) {
	t.Run("suppression storm", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"pollInterval": "200ms"})
		sp := spec(providertest.Name("storm"), 1)
		mustStart(t, p, sp)
		for i := range 120 {
			f.EmitLog(sp.Name, fmt.Sprintf("old %03d", i))
		}
		f.SuppressEvery = true
		sent := 0
		began := time.Now()
		seen := followLogs(t, p, sp.Name, func(seen map[string]int) bool {
			if seen["old 119"] == 1 && sent == 0 {
				go func() {
					for i := range 100 {
						f.EmitLog(sp.Name, fmt.Sprintf("new %03d", i))
						time.Sleep(10 * time.Millisecond)
					}
				}()
				sent = 1
			}
			return seen["new 099"] == 1
		})
		for i := range 100 {
			if seen[fmt.Sprintf("new %03d", i)] != 1 {
				t.Fatalf("new %03d missing", i)
			}
		}
		// The history (one 1000-entry page for 120+ entries), the
		// catch-up after the first response, then at most one per
		// second (5 x 200ms) of suppression (100 responses or so).
		if n, most := f.Calls("ListLogEntries"), 3+int(time.Since(began)/time.Second); n > most {
			t.Errorf("%d ListLogEntries calls in %s of suppression; want at most %d", n, time.Since(began), most)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"maxTailSessions": 2})
		sp := spec(providertest.Name("tails"), 1)
		mustStart(t, p, sp)
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		for range 2 {
			go func() {
				for range p.Logs(c, sp.Name, provider.LogOptions{Follow: true}) {
				}
			}()
		}
		for f.OpenTails() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		for _, err := range p.Logs(c, sp.Name, provider.LogOptions{Follow: true}) {
			if workload.CodeOf(err) != workload.RateLimited || !strings.Contains(err.Error(), "live-tailing sessions") {
				t.Fatalf("third follow = %v; want rate_limited naming the session limit", err)
			}
			break
		}
		if f.Calls("TailLogEntries") != 2 {
			t.Errorf("%d TailLogEntries streams opened; want 2", f.Calls("TailLogEntries"))
		}
	})
}
