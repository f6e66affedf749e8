package azure

import (
	"context"
	"iter"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// logCursor remembers, per group, the newest timestamp emitted and how
// many lines carrying exactly that timestamp were emitted, so that a poll
// that returns the whole log again emits only what is new: nothing is
// repeated, and lines sharing a timestamp are not dropped.
type logCursor struct {
	last time.Time
	n    int
	seen bool
}

// logLine is one line of ACI's log with timestamps.
type logLine struct {
	t    time.Time
	text string
}

// parseLogs splits ACI container logs fetched with timestamps=true
// ("2026-11-27T02:45:00.1234567Z text" per line). A line without a
// timestamp (a continuation) takes the previous line's.
func parseLogs(content string) []logLine {
	content = strings.TrimSuffix(content, "\n")
	if content == "" {
		return nil
	}
	var out []logLine
	var prev time.Time
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSuffix(l, "\r")
		ts, text, _ := strings.Cut(l, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t, text = prev, l
		}
		prev = t
		out = append(out, logLine{t: t, text: text})
	}
	return out
}

// followWindow is how many of a log's newest lines a follow poll reads.
const followWindow = 1000

// covers reports whether a window of the newest lines, read with tail
// window, holds everything after the cursor: the log is shorter than the
// window, or the window starts strictly before the cursor's timestamp
// (then the lines at that timestamp are all inside it and counting them
// stays exact).
func (c *logCursor) covers(lines []logLine, window int) bool {
	if len(lines) < window {
		return true
	}
	if !c.seen { // seeding: the lines at the newest timestamp must all be inside
		return lines[0].t.Before(lines[len(lines)-1].t)
	}
	return lines[0].t.Before(c.last)
}

// listLogs reads a group's log with timestamps, the newest tail lines
// (all with tail < 0).
func (p *Provider) listLogs(ctx context.Context, group string, tail int) ([]logLine, error) {
	o := &armcontainerinstance.ContainersClientListLogsOptions{Timestamps: to.Ptr(true)}
	if tail >= 0 {
		o.Tail = to.Ptr(int32(tail))
	}
	resp, err := p.containers.ListLogs(ctx, p.opts.ResourceGroup, group, containerName, o)
	if err != nil {
		return nil, err
	}
	return parseLogs(str(resp.Content)), nil
}

// fresh returns the lines after the cursor and advances it.
func (c *logCursor) fresh(lines []logLine) []logLine {
	var out []logLine
	k := 0
	for _, l := range lines {
		switch {
		case l.t.After(c.last):
			c.last, c.n, k = l.t, 1, 1
			out = append(out, l)
		case l.t.Equal(c.last):
			k++
			if k > c.n {
				c.n = k
				out = append(out, l)
			}
		}
	}
	return out
}

// Logs implements provider.LogTailer. History comes from the
// containers' list-logs operation (timestamps on; Tail applies to the
// first read). Following attaches to each group's output stream
// (Containers_Attach, attach.go): a ListLogs read made after the stream
// opened gives the history, the stream's first lines that read already
// holds are dropped, and every later line comes from the stream as it is
// written, stdout and stderr told apart. When a stream ends while the run
// goes on, the group is attached again and the newest 1000 lines are read
// to fill the gap (resumed after the newest lines already emitted). If
// Attach is refused for a group (or the credentials lack
// containers/attach/action), that group is followed by polling: every
// pollInterval the newest 1000 lines are read and only lines newer than
// its cursor are emitted (see logCursor). Groups are observed every
// pollInterval either way, so that groups that appear (scale up) and new
// runs (restart) are read from their beginning.
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if err := p.permitted(provider.OpLogs); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		f := &follower{p: p, opts: opts, yield: yield, groups: map[string]*groupFollow{}, notify: make(chan struct{}, 1)}
		defer f.closeAll()
		for round := 0; ; round++ {
			groups, err := p.observe(ctx, name)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				yield(workload.LogLine{}, err)
				return
			}
			if round == 0 && len(groups) == 0 {
				yield(workload.LogLine{}, provider.NotFound(Name, "service %q has no container groups", workload.ServiceID(p.target, name)))
				return
			}
			running := map[string]bool{}
			for _, g := range groups {
				if g.stopped() || g.current() == nil {
					continue // no container run: no log
				}
				running[g.name] = true
				if !f.group(ctx, g, round) {
					return
				}
			}
			if !opts.Follow {
				return
			}
			for n, gf := range f.groups {
				if gf.sess != nil && !running[n] {
					if ok, _ := f.drain(gf); !ok {
						return
					}
					gf.sess.close()
					gf.sess = nil
				}
			}
			next := time.After(p.opts.PollInterval.D())
			for waiting := true; waiting; {
				select {
				case <-ctx.Done():
					return
				case <-next:
					waiting = false
				case <-f.notify:
					for _, gf := range f.groups {
						if ok, _ := f.drain(gf); !ok {
							return
						}
					}
				}
			}
		}
	}
}

// follower is one Logs call's state.
type follower struct {
	p      *Provider
	opts   provider.LogOptions
	yield  func(workload.LogLine, error) bool
	groups map[string]*groupFollow
	notify chan struct{} // attach sessions signal new lines here
}

// groupFollow is what a Logs call knows of one group.
type groupFollow struct {
	c        logCursor
	run      string         // instance id of the run being read
	recent   []string       // the newest texts emitted (resume points)
	sess     *attachSession // open output stream, if any
	attached bool           // a stream was opened once
	poll     bool           // attach refused: follow by polling
}

func (f *follower) closeAll() {
	for _, gf := range f.groups {
		if gf.sess != nil {
			gf.sess.close()
		}
	}
}

// emit yields one line unless it is before Since; false ends the call.
func (f *follower) emit(gf *groupFollow, l workload.LogLine) bool {
	if !f.opts.Since.IsZero() && l.Time.Before(f.opts.Since) {
		return true
	}
	gf.recent = append(gf.recent, l.Text)
	if len(gf.recent) > recentLines {
		gf.recent = gf.recent[len(gf.recent)-recentLines:]
	}
	return f.yield(l, nil)
}

// drain emits what a group's stream delivered since the last drain; ok
// is false when the call must end, ended true when the stream has ended
// and everything it delivered was emitted.
func (f *follower) drain(gf *groupFollow) (ok, ended bool) {
	if gf.sess == nil {
		return true, false
	}
	lines, ended := gf.sess.take()
	for _, l := range lines {
		if !f.emit(gf, workload.LogLine{Time: l.t, Instance: gf.run, Stream: l.stream, Text: l.text}) {
			return false, ended
		}
	}
	return true, ended
}

// group reads one running group in one round; false ends the call.
func (f *follower) group(ctx context.Context, g group, round int) bool {
	gf := f.groups[g.name]
	if gf == nil {
		gf = &groupFollow{}
		f.groups[g.name] = gf
	}
	id := g.instanceID()
	if gf.run != "" && gf.run != id {
		// A new run (restart): its log starts over, and the old run's
		// stream ended with it.
		if gf.sess != nil {
			if ok, _ := f.drain(gf); !ok {
				return false
			}
			gf.sess.close()
			gf.sess = nil
		}
		gf.recent = nil
	}
	gf.run = id
	if !f.opts.Follow || gf.poll {
		_, ok := f.read(ctx, g, gf, round)
		return ok
	}
	if gf.sess != nil {
		ok, ended := f.drain(gf)
		if !ok {
			return false
		}
		if !ended {
			return true
		}
		gf.sess.close()
		gf.sess = nil
	}
	var sess *attachSession
	var err error = errAttachNotPermitted
	if f.p.attachAllowed() {
		sess, err = f.p.attach(ctx, g.name, f.notify)
	}
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		if !gf.attached {
			// Refused from the start: this group is polled.
			gf.poll = true
			slog.Info("azure logs: following by polling ListLogs", "target", f.p.target, "group", g.name, "reason", err)
			_, ok := f.read(ctx, g, gf, round)
			return ok
		}
		// The stream dropped and cannot be opened again now: fill the
		// gap from the log, attach again next round.
		_, ok := f.catchUp(ctx, g, gf)
		return ok
	}
	gf.sess = sess
	var history []logLine
	var ok bool
	if !gf.attached {
		gf.attached = true
		history, ok = f.read(ctx, g, gf, round)
	} else {
		history, ok = f.catchUp(ctx, g, gf)
	}
	if !ok {
		return false
	}
	// What the stream delivered while the log was read: drop what the
	// read already held.
	lines, _ := sess.take()
	for _, l := range lines[overlap(history, lines):] {
		if !f.emit(gf, workload.LogLine{Time: l.t, Instance: id, Stream: l.stream, Text: l.text}) {
			return false
		}
	}
	return true
}

// errAttachNotPermitted is why a group is polled when the permission
// check found containers/attach/action missing.
var errAttachNotPermitted = provider.Errorf(Name, workload.PermissionDenied, "the target's credentials lack %s", actAttach)

// read is one ListLogs read of a group, cursor-filtered: the first read
// honours Tail (with Follow and Tail 0 it only seeds the cursor), later
// ones read the newest followWindow lines, or the whole log when more
// than that arrived. It returns the lines read.
func (f *follower) read(ctx context.Context, g group, gf *groupFollow, round int) ([]logLine, bool) {
	c, opts := &gf.c, f.opts
	// Following with Tail 0: the newest window of the history only seeds
	// the cursor, and nothing of it is emitted (a tail=0 read would leave
	// the cursor at zero and the next round would emit the whole history).
	seed := !c.seen && round == 0 && opts.Follow && opts.Tail == 0
	tail := -1
	switch {
	case !c.seen && round == 0 && opts.Tail >= 0 && !seed:
		tail = opts.Tail
	case seed || c.seen:
		// Without a tail, ListLogs returns the whole log, up to 4 MB, on
		// every poll; the newest followWindow lines hold what is new
		// unless more than that came in since the last poll (checked
		// below).
		tail = followWindow
	}
	lines, err := f.p.listLogs(ctx, g.name, tail)
	if err == nil && tail == followWindow && !c.covers(lines, followWindow) {
		lines, err = f.p.listLogs(ctx, g.name, -1)
	}
	if ctx.Err() != nil {
		return nil, false
	}
	if isNotFound(err) || isConflict(err) {
		return nil, true // deleted or transitioning: read it next round
	}
	if err != nil {
		f.yield(workload.LogLine{}, mapErr("list logs of "+g.name, err))
		return nil, false
	}
	c.seen = true
	if seed {
		c.fresh(lines)
		return lines, true
	}
	for _, l := range c.fresh(lines) {
		if !f.emit(gf, workload.LogLine{Time: l.t, Instance: gf.run, Stream: "stdout", Text: l.text}) {
			return nil, false
		}
	}
	return lines, true
}

// catchUp reads the newest followWindow lines after a stream ended and
// emits those after the newest lines already emitted (or, when they
// cannot be found in the window, those newer than the cursor).
func (f *follower) catchUp(ctx context.Context, g group, gf *groupFollow) ([]logLine, bool) {
	lines, err := f.p.listLogs(ctx, g.name, followWindow)
	if ctx.Err() != nil {
		return nil, false
	}
	if isNotFound(err) || isConflict(err) {
		return nil, true
	}
	if err != nil {
		f.yield(workload.LogLine{}, mapErr("list logs of "+g.name, err))
		return nil, false
	}
	j := resume(lines, gf.recent)
	if j < 0 && len(lines) >= followWindow {
		// More arrived than the window holds: the whole log.
		if all, err := f.p.listLogs(ctx, g.name, -1); err == nil {
			lines, j = all, resume(all, gf.recent)
		}
	}
	next := gf.c.fresh(lines)
	if j >= 0 {
		next = lines[j:]
	}
	for _, l := range next {
		if !f.emit(gf, workload.LogLine{Time: l.t, Instance: gf.run, Stream: "stdout", Text: l.text}) {
			return nil, false
		}
	}
	return lines, true
}
