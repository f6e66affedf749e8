package aws

import (
	"context"
	"iter"
	"sort"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// logCursor remembers where FilterLogEvents polls stand: the newest
// timestamp seen and the ids of every event seen within lag of it. Each
// poll starts lag before the newest timestamp (inclusive) and skips the
// ids already seen, so a line that shares the boundary millisecond, or
// that CloudWatch ingested late by up to lag, is neither dropped nor
// repeated. A line ingested later than lag behind the newest one seen is
// missed (CloudWatch gives no ingestion-ordered cursor for FilterLogEvents).
type logCursor struct {
	from int64 // the caller's since, ms; 0 = the beginning
	max  int64
	seen map[string]int64
}

const logLag = 10 * time.Second

func (c *logCursor) start() int64 {
	if c.max == 0 {
		return c.from
	}
	return max(c.from, c.max-logLag.Milliseconds())
}

// admit takes events sorted by time and returns those not seen yet.
func (c *logCursor) admit(evs []logtypes.FilteredLogEvent) []logtypes.FilteredLogEvent {
	var out []logtypes.FilteredLogEvent
	for _, e := range evs {
		ts, id := sdkaws.ToInt64(e.Timestamp), sdkaws.ToString(e.EventId)
		if ts < c.from {
			continue
		}
		if _, dup := c.seen[id]; dup {
			continue
		}
		c.seen[id] = ts
		c.max = max(c.max, ts)
		out = append(out, e)
	}
	for id, ts := range c.seen {
		if ts < c.max-logLag.Milliseconds() {
			delete(c.seen, id)
		}
	}
	return out
}

// Logs implements provider.LogTailer over CloudWatch Logs FilterLogEvents
// on the target's log group and the service's stream prefix.
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		s, err := p.existing(ctx, provider.OpLogs, name)
		if err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		cur := &logCursor{seen: map[string]int64{}}
		var evs []logtypes.FilteredLogEvent
		switch {
		case !opts.Since.IsZero():
			// Everything since Since, cut to Tail per task.
			cur.from = opts.Since.UnixMilli()
			evs, err = p.filter(ctx, name, cur)
		case opts.Tail == 0:
			// No history: the follow starts now. Reading the group's
			// whole history only to drop it costs a page per 1 MB or
			// 10,000 events of everything the service ever logged
			// (FilterLogEvents, CloudWatch Logs API reference).
			cur.from = p.now().UnixMilli()
		case opts.Tail > 0:
			evs, err = p.tailHistory(ctx, name, s, opts.Tail, cur)
		default:
			evs, err = p.filter(ctx, name, cur)
		}
		if err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if opts.Tail >= 0 {
			per := map[string]int{}
			keep := make([]bool, len(evs))
			for i := len(evs) - 1; i >= 0; i-- {
				st := sdkaws.ToString(evs[i].LogStreamName)
				if per[st] < opts.Tail {
					per[st]++
					keep[i] = true
				}
			}
			var kept []logtypes.FilteredLogEvent
			for i, e := range evs {
				if keep[i] {
					kept = append(kept, e)
				}
			}
			evs = kept
		}
		for _, e := range evs {
			if !yield(toLine(e), nil) {
				return
			}
		}
		if !opts.Follow {
			return
		}
		p.follow(ctx, name, cur, yield)
	}
}

// tailHistory reads, without a Since, enough recent history for the last
// tail lines of each task: windows going back from now, each twice as
// long as the one before, until every stream seen and every running
// task's stream holds tail events, the window passed the task's creation,
// or it passed the service's creation (nothing older belongs to it). It
// replaces reading the log group's entire history, which for a
// long-lived service is gigabytes and thousands of calls.
func (p *Provider) tailHistory(ctx context.Context, name string, s *ecstypes.Service, tail int, cur *logCursor) ([]logtypes.FilteredLogEvent, error) {
	// The running tasks' streams (<prefix>/<container>/<task id>, the
	// awslogs driver's naming; prefix and container are the service name)
	// and when each task was created.
	need := map[string]int64{}
	tasks, err := p.tasks(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		var created int64
		if t.CreatedAt != nil {
			created = t.CreatedAt.UnixMilli()
		}
		need[name+"/"+name+"/"+taskID(sdkaws.ToString(t.TaskArn))] = created
	}
	var floor int64
	if s.CreatedAt != nil {
		floor = s.CreatedAt.UnixMilli()
	}
	now := p.now().UnixMilli()
	end, span := now, time.Minute.Milliseconds()
	count := map[string]int{}
	var all []logtypes.FilteredLogEvent
	for first := true; ; first = false {
		start := max(end-span, floor)
		stop := end
		if first {
			stop = -1 // the newest window is open-ended (clock skew)
		}
		evs, err := p.filterRange(ctx, name, start, stop)
		if err != nil {
			return nil, err
		}
		all = append(all, evs...)
		for _, e := range evs {
			count[sdkaws.ToString(e.LogStreamName)]++
		}
		done := start <= floor
		if !done {
			done = true
			for _, n := range count {
				if n < tail {
					done = false
				}
			}
			for st, created := range need {
				if count[st] < tail && start > created {
					done = false
				}
			}
		}
		if done {
			break
		}
		end, span = start-1, span*2
	}
	sortEvents(all)
	return cur.admit(all), nil
}

// filterRange reads every event of the service's streams with a
// timestamp in [start, end] ms, end < 0 meaning no end (all pages).
func (p *Provider) filterRange(ctx context.Context, name string, start, end int64) ([]logtypes.FilteredLogEvent, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName:        sdkaws.String(p.opts.LogGroup),
		LogStreamNamePrefix: sdkaws.String(name + "/"),
		StartTime:           sdkaws.Int64(start),
	}
	if end >= 0 {
		in.EndTime = sdkaws.Int64(end)
	}
	var out []logtypes.FilteredLogEvent
	pg := cloudwatchlogs.NewFilterLogEventsPaginator(p.logs, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			if workload.CodeOf(mapErr("", err)) == workload.NotFound {
				return nil, nil
			}
			return nil, mapErr("FilterLogEvents "+p.opts.LogGroup, err)
		}
		out = append(out, page.Events...)
	}
	return out, nil
}

func sortEvents(out []logtypes.FilteredLogEvent) {
	sort.SliceStable(out, func(i, j int) bool {
		a, b := sdkaws.ToInt64(out[i].Timestamp), sdkaws.ToInt64(out[j].Timestamp)
		if a != b {
			return a < b
		}
		return sdkaws.ToString(out[i].EventId) < sdkaws.ToString(out[j].EventId)
	})
}

// filter reads every event from the cursor on (all pages), advancing it.
// A log group that does not exist yet holds no lines.
func (p *Provider) filter(ctx context.Context, name string, cur *logCursor) ([]logtypes.FilteredLogEvent, error) {
	in := &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName:        sdkaws.String(p.opts.LogGroup),
		LogStreamNamePrefix: sdkaws.String(name + "/"),
	}
	if st := cur.start(); st > 0 {
		in.StartTime = sdkaws.Int64(st)
	}
	var out []logtypes.FilteredLogEvent
	pg := cloudwatchlogs.NewFilterLogEventsPaginator(p.logs, in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			if workload.CodeOf(mapErr("", err)) == workload.NotFound {
				return nil, nil
			}
			return nil, mapErr("FilterLogEvents "+p.opts.LogGroup, err)
		}
		out = append(out, page.Events...)
	}
	sortEvents(out)
	return cur.admit(out), nil
}

func toLine(e logtypes.FilteredLogEvent) workload.LogLine {
	st := sdkaws.ToString(e.LogStreamName)
	return workload.LogLine{
		Time:     time.UnixMilli(sdkaws.ToInt64(e.Timestamp)),
		Instance: st[strings.LastIndex(st, "/")+1:],
		Stream:   "stdout",
		Text:     strings.TrimSuffix(sdkaws.ToString(e.Message), "\n"),
	}
}
