package gcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// logFilter selects the service's container output in Cloud Logging.
func (p *Provider) logFilter(name string, since time.Time) string {
	f := fmt.Sprintf(`resource.type = "cloud_run_revision" AND resource.labels.service_name = %q AND resource.labels.location = %q`, name, p.opts.Region)
	if !since.IsZero() {
		f += fmt.Sprintf(` AND timestamp >= %q`, since.UTC().Format(time.RFC3339Nano))
	}
	return f
}

// logOverlap is how far before the newest entry yielded a re-read
// (reconnected tail, catch-up, polling) starts, so that entries that
// arrive late or out of order are not lost; the cursor remembers what it
// yielded for twice as long.
const logOverlap = 2 * time.Minute

// cursor remembers what was yielded so that overlapping reads (history,
// tail, catch-up, polling) neither drop nor repeat entries: an entry is
// new unless its insertId and timestamp were seen, whatever its age.
type cursor struct {
	floor   time.Time            // re-reads never start before this
	last    time.Time            // newest timestamp yielded
	seen    map[string]time.Time // insertId@timestamp → timestamp
	evicted time.Time            // last eviction's horizon
}

func (c *cursor) admit(e *loggingpb.LogEntry) bool {
	t := e.GetTimestamp().AsTime()
	key := e.InsertId + "@" + t.UTC().Format(time.RFC3339Nano)
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if _, ok := c.seen[key]; ok {
		return false
	}
	c.seen[key] = t
	if t.After(c.last) {
		c.last = t
		if horizon := t.Add(-2 * logOverlap); horizon.Sub(c.evicted) > logOverlap/4 {
			c.evicted = horizon
			for k, v := range c.seen {
				if v.Before(horizon) {
					delete(c.seen, k)
				}
			}
		}
	}
	return true
}

// since is where a re-read starts: logOverlap before the newest entry,
// not before floor.
func (c *cursor) since() time.Time {
	if c.last.IsZero() {
		return c.floor
	}
	s := c.last.Add(-logOverlap)
	if s.Before(c.floor) {
		return c.floor
	}
	return s
}

func toLine(e *loggingpb.LogEntry) workload.LogLine {
	l := workload.LogLine{Time: e.GetTimestamp().AsTime(), Instance: e.Labels["instanceId"], Stream: "stdout"}
	if strings.Contains(e.LogName, "stderr") {
		l.Stream = "stderr"
	}
	if l.Instance == "" {
		l.Instance = e.GetResource().GetLabels()["revision_name"]
	}
	switch {
	case e.GetTextPayload() != "":
		l.Text = e.GetTextPayload()
	case e.GetJsonPayload() != nil:
		if m, ok := e.GetJsonPayload().GetFields()["message"]; ok {
			l.Text = m.GetStringValue()
		} else {
			b, _ := e.GetJsonPayload().MarshalJSON()
			l.Text = string(b)
		}
	}
	return l
}

// Logs implements provider.LogTailer. Tail applies to the service as a
// whole (Cloud Logging has no per-instance tail). Following uses
// TailLogEntries; once the stream answers (or after catchUpDelay) one
// ListLogEntries from logOverlap before the newest entry catches up with
// what was written between the history read and the stream's start. A
// stream that ends (EOF) or fails with a retryable code is reopened with
// backoff, followed by the same catch-up; reported suppression triggers
// a catch-up too. If the endpoint refuses TailLogEntries (Unimplemented),
// Logs polls ListLogEntries every PollInterval from logOverlap before the
// newest entry instead. A cursor of insertIds keeps all of these from
// dropping or repeating entries.
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if _, err := p.existing(ctx, provider.OpLogs, name, nil); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		resources := []string{"projects/" + p.project}
		cur := &cursor{floor: opts.Since}
		if opts.Tail == 0 && opts.Follow && p.now().After(cur.floor) {
			cur.floor = p.now() // only new entries
		}
		hist, err := p.history(ctx, resources, name, opts)
		if err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		if opts.Tail > 0 && len(hist) > 0 {
			// Only the newest Tail entries: re-reads start at the oldest.
			cur.floor = hist[0].GetTimestamp().AsTime()
		}
		stopped := false
		emit := func(e *loggingpb.LogEntry) bool {
			if cur.admit(e) && !yield(toLine(e), nil) {
				stopped = true
			}
			return !stopped
		}
		for _, e := range hist {
			if !emit(e) {
				return
			}
		}
		if !opts.Follow {
			return
		}
		// "Number of open live-tailing sessions: 10 per Google Cloud
		// project" (cloud.google.com/logging/quotas): this target keeps
		// at most MaxTailSessions open and refuses further follows.
		select {
		case p.tailSlots <- struct{}{}:
			defer func() { <-p.tailSlots }()
		default:
			yield(workload.LogLine{}, provider.Errorf(Name, workload.RateLimited, "logs %s: %d follows are open on target %s, the most it keeps (Cloud Logging allows 10 live-tailing sessions per project; options.maxTailSessions)", workload.ServiceID(p.target, name), cap(p.tailSlots), p.target))
			return
		}
		base := max(p.opts.PollInterval.D(), 10*time.Millisecond)
		delay, failures := base, 0
		for {
			end, progressed, err := p.tail(ctx, resources, name, cur, emit)
			if stopped || ctx.Err() != nil {
				return
			}
			if end == tailUnsupported {
				break
			}
			if end == tailFailed {
				yield(workload.LogLine{}, err)
				return
			}
			// tailBroken: reopen with backoff.
			if progressed {
				delay, failures = base, 0
			}
			if failures++; failures > maxTailFailures {
				yield(workload.LogLine{}, afterTailRetries(name, err))
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 30*time.Second)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.opts.PollInterval.D()):
			}
			entries, err := p.list(ctx, resources, p.logFilter(name, cur.since()), "timestamp asc", 0)
			if err != nil {
				if ctx.Err() == nil {
					yield(workload.LogLine{}, err)
				}
				return
			}
			for _, e := range entries {
				if !emit(e) {
					return
				}
			}
		}
	}
}

// maxTailFailures bounds consecutive TailLogEntries reopenings that
// yield nothing before Logs gives up.
const maxTailFailures = 8

// catchUpGap is the least time between two catch-up reads of one tail
// stream triggered by suppressed entries: five poll intervals (10 s by
// default, six reads a minute per follower).
func (p *Provider) catchUpGap() time.Duration { return 5 * p.opts.PollInterval.D() }

// catchUpDelay is how long a new tail stream may stay silent before the
// catch-up read runs anyway.
const catchUpDelay = 2 * time.Second

type tailEnd int

const (
	tailBroken      tailEnd = iota // EOF or a retryable error: reopen
	tailUnsupported                // Unimplemented: poll instead
	tailFailed                     // any other error: report it
)

func afterTailRetries(name string, err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		e := provider.Errorf(Name, workload.Unavailable, "TailLogEntries %s: the stream ended %d times in a row", name, maxTailFailures+1)
		e.Err = err
		return e
	}
	return mapErr("TailLogEntries "+name, err)
}

// retryableTail reports whether a tail stream ending with err is reopened.
func retryableTail(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// tail runs one TailLogEntries stream from cur.since(), emitting entries
// until the stream ends, ctx ends or emit returns false. progressed says
// whether the stream delivered a response.
func (p *Provider) tail(ctx context.Context, resources []string, name string, cur *cursor, emit func(*loggingpb.LogEntry) bool) (end tailEnd, progressed bool, err error) {
	classify := func(err error) (tailEnd, bool, error) {
		switch {
		case ctx.Err() != nil:
			return tailBroken, progressed, ctx.Err()
		case status.Code(err) == codes.Unimplemented:
			return tailUnsupported, progressed, err
		case retryableTail(err):
			return tailBroken, progressed, err
		}
		return tailFailed, progressed, mapErr("TailLogEntries "+name, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := cur.since()
	stream, err := p.logs.TailLogEntries(sctx)
	if err == nil {
		err = stream.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: resources, Filter: p.logFilter(name, from), BufferWindow: durationpb.New(time.Second)})
	}
	if err != nil {
		return classify(err)
	}
	type recv struct {
		resp *loggingpb.TailLogEntriesResponse
		err  error
	}
	ch := make(chan recv)
	go func() {
		for {
			resp, err := stream.Recv()
			select {
			case ch <- recv{resp, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	catchUp := func(since time.Time) (tailEnd, bool, error, bool) {
		entries, err := p.list(ctx, resources, p.logFilter(name, since), "timestamp asc", 0)
		if err != nil {
			var we *workload.Error
			if errors.As(err, &we) && we.Err != nil {
				err = we.Err // classify the gRPC status
			}
			e, pr, err := classify(err)
			return e, pr, err, true
		}
		for _, e := range entries {
			if !emit(e) {
				return tailBroken, progressed, nil, true
			}
		}
		return 0, false, nil, false
	}
	timer := time.NewTimer(catchUpDelay)
	defer timer.Stop()
	caughtUp := false
	// Suppression catch-ups run at most every catchUpGap: a chatty
	// service reports suppression in every response, and a read per
	// response would spend the project's 60 reads a minute in seconds.
	var lastCatchUp time.Time
	pending := false
	for {
		select {
		case <-ctx.Done():
			return tailBroken, progressed, ctx.Err()
		case <-timer.C:
			switch {
			case !caughtUp:
				caughtUp = true
				lastCatchUp = time.Now()
				if e, pr, err, stop := catchUp(from); stop {
					return e, pr, err
				}
			case pending:
				pending = false
				lastCatchUp = time.Now()
				if e, pr, err, stop := catchUp(cur.since()); stop {
					return e, pr, err
				}
			}
		case r := <-ch:
			if r.err != nil {
				return classify(r.err)
			}
			progressed = true
			for _, e := range r.resp.Entries {
				if !emit(e) {
					return tailBroken, progressed, nil
				}
			}
			since := time.Time{}
			switch {
			case !caughtUp:
				caughtUp, since = true, from
			case len(r.resp.SuppressionInfo) > 0 && time.Since(lastCatchUp) < p.catchUpGap():
				// Entries were dropped by the service: read them back
				// once the gap since the last catch-up has passed.
				if !pending {
					pending = true
					timer.Reset(p.catchUpGap() - time.Since(lastCatchUp))
				}
				continue
			case len(r.resp.SuppressionInfo) > 0:
				since = cur.since()
			default:
				continue
			}
			lastCatchUp = time.Now()
			if e, pr, err, stop := catchUp(since); stop {
				return e, pr, err
			}
		}
	}
}

// history returns the starting entries, oldest first: all since Since,
// or the newest Tail of them.
func (p *Provider) history(ctx context.Context, resources []string, name string, opts provider.LogOptions) ([]*loggingpb.LogEntry, error) {
	if opts.Tail == 0 {
		return nil, nil
	}
	if opts.Tail < 0 {
		return p.list(ctx, resources, p.logFilter(name, opts.Since), "timestamp asc", 0)
	}
	es, err := p.list(ctx, resources, p.logFilter(name, opts.Since), "timestamp desc", opts.Tail)
	slices.Reverse(es)
	return es, err
}

// maxLogPage is ListLogEntries' largest page ("Default is 50. If the value
// is negative or exceeds 1000, the request is rejected", logging.proto,
// ListLogEntriesRequest.page_size). Reads use it (or the limit): at the
// default of 50 a read costs twenty times the requests, against a quota
// of 60 read requests a minute per project.
const maxLogPage = 1000

func (p *Provider) list(ctx context.Context, resources []string, filter, order string, limit int) ([]*loggingpb.LogEntry, error) {
	req := &loggingpb.ListLogEntriesRequest{ResourceNames: resources, Filter: filter, OrderBy: order, PageSize: maxLogPage}
	if limit > 0 && limit < maxLogPage {
		req.PageSize = int32(limit)
	}
	it := p.logs.ListLogEntries(ctx, req)
	var out []*loggingpb.LogEntry
	for first := true; limit <= 0 || len(out) < limit; first = false {
		// Each page is one read request: take a turn before it.
		if pi := it.PageInfo(); pi.Remaining() == 0 && (first || pi.Token != "") {
			if err := p.logReads.Wait(ctx); err != nil {
				return nil, provider.Errorf(Name, workload.Timeout, "ListLogEntries: waiting for a turn within logReadsPerMinute: %w", err)
			}
		}
		e, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, mapErr("ListLogEntries", err)
		}
		out = append(out, e)
	}
	return out, nil
}
