package azure

import (
	"context"
	"iter"
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

// Logs implements provider.LogTailer with the containers' list-logs
// operation (timestamps on). Following polls every pollInterval and
// fetches each group's log again, emitting only lines newer than its
// cursor (see logCursor); groups that appear later (scale up) are read
// from their beginning. ACI merges stdout and stderr: every line has
// stream "stdout".
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
		cursors := map[string]*logCursor{}
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
			for _, g := range groups {
				if g.stopped() || g.current() == nil {
					continue // no container run: no log
				}
				c := cursors[g.name]
				if c == nil {
					c = &logCursor{}
					cursors[g.name] = c
				}
				// Following with Tail 0: the newest window of the
				// history only seeds the cursor, and nothing of it is
				// emitted (a tail=0 read would leave the cursor at zero
				// and the next round would emit the whole history).
				seed := !c.seen && round == 0 && opts.Follow && opts.Tail == 0
				tail := -1
				switch {
				case !c.seen && round == 0 && opts.Tail >= 0 && !seed:
					tail = opts.Tail
				case seed || c.seen:
					// Without a tail, ListLogs returns the whole log, up
					// to 4 MB, on every poll; the newest followWindow
					// lines hold what is new unless more than that came
					// in since the last poll (checked below).
					tail = followWindow
				}
				lines, err := p.listLogs(ctx, g.name, tail)
				if err == nil && tail == followWindow && !c.covers(lines, followWindow) {
					lines, err = p.listLogs(ctx, g.name, -1)
				}
				if ctx.Err() != nil {
					return
				}
				if isNotFound(err) || isConflict(err) {
					continue // deleted or transitioning: read it next round
				}
				if err != nil {
					yield(workload.LogLine{}, mapErr("list logs of "+g.name, err))
					return
				}
				c.seen = true
				if seed {
					c.fresh(lines)
					continue
				}
				id := g.instanceID()
				for _, l := range c.fresh(lines) {
					if !opts.Since.IsZero() && l.t.Before(opts.Since) {
						continue
					}
					if !yield(workload.LogLine{Time: l.t, Instance: id, Stream: "stdout", Text: l.text}, nil) {
						return
					}
				}
			}
			if !opts.Follow {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.opts.PollInterval.D()):
			}
		}
	}
}
