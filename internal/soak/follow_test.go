package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// The followers of the soak: `logs -f` and `status --watch` as a user runs
// them against a load balancer in front of the replicas, each through its
// own round-robin TCP proxy (testkit.Proxy, so that its connections are
// its follower's alone), with the real client and client.WithReconnect.
// When the replica serving a follower is SIGKILLed, the follower must go
// on on another replica.
const (
	// followService is a service no operation of the soak touches: its
	// one pod lives through the whole soak, so its log is exactly the
	// lines the test appends (kwok serves every container the one log
	// file k8stest.Cluster.AppendLog writes).
	followService = "follow"
	// followEvery is the pace of the appended lines.
	followEvery = 100 * time.Millisecond
	followText  = "soak-follow-line "
	// followCatchUp bounds the wait, after the workload, for the followers
	// to show the last line and the final statuses.
	followCatchUp = time.Minute
)

// follower is one followed stream and the proxy it goes through.
type follower struct {
	name  string
	proxy *testkit.Proxy
	lost  atomic.Int64 // WithReconnect's notices: a working connection lost
	done  chan struct{}
	err   error // how the stream ended; nil when the test ended it
}

// followers are the soak's two followers and what they saw.
type followers struct {
	s            *soak
	c            *k8stest.Cluster
	cancel       context.CancelFunc
	logs, status *follower

	mu       sync.Mutex
	lines    []workload.LogLine                     // the logs follower's lines of the test
	statuses map[string][]workload.DeploymentStatus // the status follower's, per service id

	written    atomic.Int64 // lines appended so far
	writing    bool         // the writer was started
	stopWriter chan struct{}
	writerDone chan struct{}
	writeErr   error
	stopOnce   sync.Once
}

// startFollowers deploys the followed service, starts both followers
// through their proxies and waits until each has its first answer.
func (s *soak) startFollowers(c *k8stest.Cluster, token string) *followers {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec, _ := json.Marshal(workload.DeploymentSpec{Name: followService, Image: image, Replicas: 1})
	if _, err := s.rs[0].cl.Deploy(client.WithIdempotencyKey(client.WithWait(ctx, true, 0), "soak-follow-r0"), target, spec, "application/json"); err != nil {
		t.Fatalf("deploying the followed service: %v", err)
	}
	var backends []string
	for _, r := range s.rs {
		backends = append(backends, r.listen)
	}
	fctx, fcancel := context.WithCancel(context.Background())
	f := &followers{s: s, c: c, cancel: fcancel, statuses: map[string][]workload.DeploymentStatus{},
		stopWriter: make(chan struct{}), writerDone: make(chan struct{})}
	t.Cleanup(f.stop)
	start := func(name string, follow func(ctx context.Context, cl *client.Client) error) *follower {
		fl := &follower{name: name, proxy: testkit.NewProxy(t, backends...), done: make(chan struct{})}
		cl, err := client.New("http://"+fl.proxy.Addr, token)
		if err != nil {
			t.Fatal(err)
		}
		ctx := client.WithReconnect(fctx, 2*time.Minute, func(error) { fl.lost.Add(1) })
		go func() {
			defer close(fl.done)
			fl.err = follow(ctx, cl)
		}()
		return fl
	}
	f.logs = start("logs -f "+followService, func(ctx context.Context, cl *client.Client) error {
		for l, err := range cl.Logs(ctx, target, followService, provider.LogOptions{Follow: true, Tail: -1}) {
			if err != nil {
				return err
			}
			if l.Text == k8stest.StartupLine || strings.HasPrefix(l.Text, followText) {
				f.mu.Lock()
				f.lines = append(f.lines, l)
				f.mu.Unlock()
			}
		}
		return nil
	})
	f.status = start("status --watch", func(ctx context.Context, cl *client.Client) error {
		for st, err := range cl.ServiceEvents(ctx) {
			if err != nil {
				return err
			}
			f.mu.Lock()
			f.statuses[st.ID] = append(f.statuses[st.ID], st)
			f.mu.Unlock()
		}
		return nil
	})
	for fl, answered := range map[*follower]func() bool{
		f.logs:   func() bool { return len(f.lines) > 0 },
		f.status: func() bool { return len(f.statuses) > 0 },
	} {
		testkit.WaitFor(t, time.Minute, fl.name+"'s first answer", func() bool {
			select {
			case <-fl.done:
				t.Fatalf("%s ended before its first answer: %v", fl.name, fl.err)
			default:
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			return answered()
		})
	}
	f.writing = true
	go f.write()
	return f
}

// write appends a numbered line to the followed log every followEvery
// until told to stop.
func (f *followers) write() {
	defer close(f.writerDone)
	tick := time.NewTicker(followEvery)
	defer tick.Stop()
	for {
		select {
		case <-f.stopWriter:
			return
		case <-tick.C:
		}
		n := f.written.Load()
		if err := f.c.AppendLog(followText + strconv.FormatInt(n, 10)); err != nil {
			f.writeErr = err
			return
		}
		f.written.Add(1)
	}
}

// stopWriting stops the writer and waits for it; it is idempotent.
func (f *followers) stopWriting() {
	f.stopOnce.Do(func() {
		close(f.stopWriter)
		if f.writing {
			<-f.writerDone
		}
	})
}

// stop ends the writer and both followers (at the test's end, also when
// it failed half-way); it is idempotent.
func (f *followers) stop() {
	f.stopWriting()
	f.cancel()
	for _, fl := range []*follower{f.logs, f.status} {
		if fl != nil {
			<-fl.done
			fl.proxy.Close()
		}
	}
}

// view is a status as `status --watch` shows it: all but the time it was
// observed.
func view(st workload.DeploymentStatus) string {
	st.ObservedAt = time.Time{}
	b, _ := json.Marshal(st)
	return string(b)
}

// finish stops the writer, waits until the followers show the last line
// and, for every service, the status a replica reports now, then ends
// them. The test must have stopped killing replicas.
func (f *followers) finish() {
	t := f.s.t
	f.stopWriting()
	if f.writeErr != nil {
		t.Errorf("appending to the followed log: %v", f.writeErr)
	}
	last := followText + strconv.FormatInt(f.written.Load()-1, 10)
	var diverged []string
	deadline := time.Now().Add(followCatchUp)
	for ; ; time.Sleep(500 * time.Millisecond) {
		f.mu.Lock()
		gotLast := slices.ContainsFunc(f.lines, func(l workload.LogLine) bool { return l.Text == last })
		f.mu.Unlock()
		diverged = f.diverged()
		if gotLast && len(diverged) == 0 {
			break
		}
		if time.Now().After(deadline) {
			if !gotLast {
				t.Errorf("%s: the last line %q was not shown within %v of the end", f.logs.name, last, followCatchUp)
			}
			for _, d := range diverged {
				t.Errorf("%s: %s", f.status.name, d)
			}
			break
		}
	}
	f.cancel()
	for _, fl := range []*follower{f.logs, f.status} {
		select {
		case <-fl.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not end within 10s of its context", fl.name)
		}
		if fl.err != nil {
			t.Errorf("%s ended with an error: %v", fl.name, fl.err)
		}
		fl.proxy.Close()
	}
}

// diverged compares, for every service, the last status the follower
// showed with the one a live replica reports now; it lists the
// differences.
func (f *followers) diverged() []string {
	var r *replica
	for _, c := range f.s.rs {
		if c.up.Load() {
			r = c
			break
		}
	}
	if r == nil {
		return []string{"no replica is up to ask"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	now, err := r.cl.Services(ctx, target)
	if err != nil {
		return []string{fmt.Sprintf("listing the services on replica %d: %v", r.i, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, st := range now {
		seen := f.statuses[st.ID]
		switch {
		case len(seen) == 0:
			out = append(out, fmt.Sprintf("%s never shown", st.ID))
		case view(seen[len(seen)-1]) != view(st):
			out = append(out, fmt.Sprintf("%s: last shown %s, now %s", st.ID, view(seen[len(seen)-1]), view(st)))
		}
	}
	return out
}

// check asserts what a user of the followers relies on and logs the
// counts. The logs follower: every appended line exactly once, in order,
// across the reconnects. The status follower: no status shown twice in a
// row, no rollout revision going back, and the last status of every
// service is the one the replicas report (checked by finish). Both: each
// connection a replica ended was ended by that replica's SIGKILL, the
// follower reconnected to another replica, and it did so at least once.
func (f *followers) check() {
	t := f.s.t
	f.mu.Lock()
	defer f.mu.Unlock()

	// Logs: exactly once, in order.
	var texts []string
	for _, l := range f.lines {
		if l.Text != k8stest.StartupLine {
			texts = append(texts, l.Text)
		}
	}
	written := int(f.written.Load())
	var missing, dup, disorder int
	seen := map[string]int{}
	prev := -1
	for _, s := range texts {
		n, err := strconv.Atoi(strings.TrimPrefix(s, followText))
		if err != nil || n < 0 || n >= written {
			t.Errorf("%s: a line the test did not write: %q", f.logs.name, s)
			continue
		}
		seen[s]++
		if seen[s] > 1 {
			dup++
			continue
		}
		if n < prev {
			disorder++
		}
		prev = max(prev, n)
	}
	for n := range written {
		if seen[followText+strconv.Itoa(n)] == 0 {
			missing++
		}
	}
	if missing+dup+disorder > 0 {
		t.Errorf("%s: of %d lines written, %d shown: %d missing, %d shown twice or more, %d out of order", f.logs.name, written, len(texts), missing, dup, disorder)
	}

	// Status: no repeat, no revision going back.
	var shown, repeats, backwards int
	for id, sts := range f.statuses {
		shown += len(sts)
		rev := 0
		for i, st := range sts {
			if i > 0 && view(st) == view(sts[i-1]) {
				repeats++
				t.Errorf("%s: %s shown twice in a row: %s", f.status.name, id, view(st))
			}
			if n, err := strconv.Atoi(st.Revision); err == nil {
				if n < rev {
					backwards++
					t.Errorf("%s: %s went back from revision %d to %d (status %d of %d)", f.status.name, id, rev, n, i+1, len(sts))
				}
				rev = max(rev, n)
			}
		}
	}

	// Reconnects.
	for _, fl := range []*follower{f.logs, f.status} {
		conns := fl.proxy.Conns()
		var byKill, replicas []int
		for i, pc := range conns {
			replicas = append(replicas, pc.Backend)
			r := f.s.rs[pc.Backend]
			closed := pc.Closed
			if closed.IsZero() {
				closed = time.Now()
			}
			kills := r.killsBetween(pc.Opened, closed)
			switch {
			case pc.BackendEnded && kills == 0:
				t.Errorf("%s: replica %d ended connection %d (%v–%v) without being killed", fl.name, pc.Backend, i, pc.Opened.Format(time.StampMilli), closed.Format(time.StampMilli))
			case !pc.BackendEnded && kills > 0:
				t.Errorf("%s: connection %d to replica %d outlived its SIGKILL", fl.name, i, pc.Backend)
			case pc.BackendEnded:
				byKill = append(byKill, i)
				if i+1 < len(conns) && conns[i+1].Backend == pc.Backend {
					t.Errorf("%s: after replica %d was killed, the follower reconnected to it again (connection %d)", fl.name, pc.Backend, i+1)
				}
			}
		}
		lost := int(fl.lost.Load())
		if len(byKill) == 0 || lost == 0 || lost > len(byKill) {
			t.Errorf("%s: %d connections ended by a SIGKILL of their replica, %d lost connections reported by the client: want at least one, and one report per kill at most", fl.name, len(byKill), lost)
		}
		t.Logf("soak: follower %q: %d connections through the proxy, to replicas %v; %d ended by a SIGKILL of their replica, each followed by a connection to another; the client reported %d lost and resumed each time",
			fl.name, len(conns), replicas, len(byKill), lost)
	}
	t.Logf("soak: follower %q: %d lines written, %d shown (%d missing, %d duplicated, %d out of order)", f.logs.name, written, len(texts), missing, dup, disorder)
	t.Logf("soak: follower %q: %d statuses of %d services shown (%d repeated, %d revisions going back); the last of each equals what the replicas report",
		f.status.name, shown, len(f.statuses), repeats, backwards)
}
