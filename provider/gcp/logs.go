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

// cursor remembers what was yielded so that a following stream (tail or
// polling) neither drops nor repeats entries: entries older than the
// newest timestamp are dropped, entries at that timestamp are deduplicated
// by insertId.
type cursor struct {
	last time.Time
	seen map[string]bool // insertIds at last
}

func (c *cursor) admit(e *loggingpb.LogEntry) bool {
	t := e.GetTimestamp().AsTime()
	switch {
	case t.Before(c.last):
		return false
	case t.After(c.last):
		c.last, c.seen = t, map[string]bool{}
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[e.InsertId] {
		return false
	}
	c.seen[e.InsertId] = true
	return true
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
// TailLogEntries, opened before the history is read so nothing falls in
// between; if the endpoint refuses it (Unimplemented), Logs polls
// ListLogEntries every PollInterval with a cursor instead.
func (p *Provider) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		if err := p.validName(name); err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		svc, err := p.get(ctx, name)
		if err == nil && svc == nil {
			err = notFound(workload.ServiceID(p.target, name))
		}
		if err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		resources := []string{"projects/" + p.project}
		var tail loggingpb.LoggingServiceV2_TailLogEntriesClient
		if opts.Follow {
			tail, err = p.logs.TailLogEntries(ctx)
			if err == nil {
				err = tail.Send(&loggingpb.TailLogEntriesRequest{ResourceNames: resources, Filter: p.logFilter(name, opts.Since), BufferWindow: durationpb.New(time.Second)})
			}
			if err != nil {
				tail = nil
			}
		}
		var cur cursor
		hist, err := p.history(ctx, resources, name, opts)
		if err != nil {
			yield(workload.LogLine{}, err)
			return
		}
		for _, e := range hist {
			if cur.admit(e) && !yield(toLine(e), nil) {
				return
			}
		}
		if !opts.Follow {
			return
		}
		if tail != nil {
			for {
				resp, err := tail.Recv()
				if err == io.EOF || ctx.Err() != nil {
					return
				}
				if status.Code(err) == codes.Unimplemented {
					break // fall back to polling
				}
				if err != nil {
					yield(workload.LogLine{}, mapErr("TailLogEntries "+name, err))
					return
				}
				for _, e := range resp.Entries {
					if cur.admit(e) && !yield(toLine(e), nil) {
						return
					}
				}
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.opts.PollInterval.D()):
			}
			since := cur.last
			if since.IsZero() {
				since = opts.Since
			}
			entries, err := p.list(ctx, resources, p.logFilter(name, since), "timestamp asc", 0)
			if err != nil {
				if ctx.Err() == nil {
					yield(workload.LogLine{}, err)
				}
				return
			}
			for _, e := range entries {
				if cur.admit(e) && !yield(toLine(e), nil) {
					return
				}
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

func (p *Provider) list(ctx context.Context, resources []string, filter, order string, limit int) ([]*loggingpb.LogEntry, error) {
	req := &loggingpb.ListLogEntriesRequest{ResourceNames: resources, Filter: filter, OrderBy: order}
	if limit > 0 && limit < 1000 {
		req.PageSize = int32(limit)
	}
	it := p.logs.ListLogEntries(ctx, req)
	var out []*loggingpb.LogEntry
	for limit <= 0 || len(out) < limit {
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
