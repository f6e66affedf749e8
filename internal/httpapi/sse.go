package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// heartbeat keeps idle SSE connections (and proxies) alive.
const heartbeat = 15 * time.Second

// sse writes a server-sent event stream. Each write has a deadline, so a
// client that stops reading is disconnected instead of pinning the
// handler; the upstream hub drops its oldest samples meanwhile.
//
// Every event has an id: a sequence number within the connection, or
// endEventID on the event that ends a finished stream (see sse_end.go).
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	max time.Duration
	n   int // the last event id sent
}

func (s *Server) startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, rc: http.NewResponseController(w), max: s.wtimeout}
	e.flush()
	return e
}

func (e *sse) flush() error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.max))
	return e.rc.Flush()
}

func (e *sse) event(name string, v any) error {
	e.n++
	return e.write(strconv.Itoa(e.n), name, v)
}

func (e *sse) write(id, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.max))
	if _, err := fmt.Fprintf(e.w, "id: %s\nevent: %s\ndata: %s\n\n", id, name, b); err != nil {
		return err
	}
	return e.flush()
}

func (e *sse) comment() error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.max))
	if _, err := fmt.Fprint(e.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return e.flush()
}

// streamCtx ends with the request or when the server drains.
func (s *Server) streamCtx(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streamsCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// pump runs a stream's iterator in a goroutine so the handler can send
// heartbeats while the backend is quiet.
func pump[T any](ctx context.Context, seq func(yield func(T, error) bool), stopOnErr bool) <-chan item[T] {
	ch := make(chan item[T])
	go func() {
		defer close(ch)
		for v, err := range seq {
			select {
			case ch <- item[T]{v, err}:
			case <-ctx.Done():
				return
			}
			if err != nil && stopOnErr {
				return
			}
		}
	}()
	return ch
}

type item[T any] struct {
	v   T
	err error
}

// firstItemWait is how long a stream waits for its first item before
// answering 200 and starting the event stream: an error that comes at once
// (an unknown service, a bad name) is answered as a plain HTTP error
// envelope with its status code, which every HTTP client understands; one
// that comes later is an "error" event.
const firstItemWait = 500 * time.Millisecond

// beginStream runs the steps every SSE route takes before its first byte:
// a reconnect to a finished stream gets 204 (sse_end.go), the caller's
// stream quota, a context that ends with the request or a server drain,
// and the open-streams gauge. ok false means the answer was written.
func (s *Server) beginStream(w http.ResponseWriter, r *http.Request, p control.Principal, kind string) (ctx context.Context, end func(), ok bool) {
	if streamFinished(w, r) {
		return nil, nil, false
	}
	done, err := s.openStream(w, p)
	if err != nil {
		writeError(w, err)
		return nil, nil, false
	}
	ctx, cancel := s.streamCtx(r)
	closed := s.metrics.streamOpened(kind)
	return ctx, func() { closed(); cancel(); done() }, true
}

func serveStream[T any](s *Server, w http.ResponseWriter, r *http.Request, p control.Principal, kind, event string,
	open func(ctx context.Context) func(yield func(T, error) bool)) {
	ctx, end, ok := s.beginStream(w, r, p, kind)
	if !ok {
		return
	}
	defer end()
	items := pump(ctx, open(ctx), true)
	// Surface an immediate error (unknown service) as a plain envelope.
	var first *item[T]
	select {
	case it, ok := <-items:
		if !ok {
			if kind == "logs" {
				// No lines (a quiet service, tail 0, no replicas) is an
				// empty answer, not an error: as `kubectl logs` does.
				s.startSSE(w).end("end", map[string]string{"reason": "no lines"})
				return
			}
			writeError(w, workload.Errorf(workload.Unavailable, "the %s stream ended before it began", kind))
			return
		}
		if it.err != nil {
			writeError(w, it.err)
			return
		}
		first = &it
	case <-time.After(firstItemWait):
	case <-ctx.Done():
		return
	}
	e := s.startSSE(w)
	if first != nil {
		if err := e.event(event, first.v); err != nil {
			return
		}
	}
	relay(s, ctx, e, items, event, true)
}

// relay sends items as events named event until the stream ends, the
// client goes or the server drains, with a heartbeat comment while the
// upstream is quiet. An error item is an "error" event: the last one when
// errorEnds (the upstream stopped), else the stream goes on.
func relay[T any](s *Server, ctx context.Context, e *sse, items <-chan item[T], event string, errorEnds bool) {
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case it, ok := <-items:
			if !ok {
				e.end("end", map[string]string{"reason": "stream ended"})
				return
			}
			if it.err != nil && errorEnds {
				e.end("error", workload.Fail(it.err))
				return
			}
			var err error
			if it.err != nil {
				err = e.event("error", workload.Fail(it.err))
			} else {
				err = e.event(event, it.v)
			}
			if err != nil {
				return // the client went away or stopped reading
			}
		case <-tick.C:
			if err := e.comment(); err != nil {
				return
			}
		case <-ctx.Done():
			if s.streamsCtx.Err() != nil {
				e.event("end", map[string]string{"reason": "server shutting down"})
			}
			return
		}
	}
}

func (s *Server) metricsSSE(w http.ResponseWriter, r *http.Request, p control.Principal) {
	target, service := r.PathValue("target"), r.PathValue("service")
	serveStream(s, w, r, p, "metrics", "sample", func(ctx context.Context) func(yield func(workload.MetricSample, error) bool) {
		return s.rt.StreamMetrics(ctx, target, service)
	})
}

func (s *Server) logsSSE(w http.ResponseWriter, r *http.Request, p control.Principal) {
	q := r.URL.Query()
	opts := provider.LogOptions{Tail: 100}
	var errs []workload.FieldError
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, workload.FieldError{Path: "follow", Message: "must be true or false"})
		}
		opts.Follow = b
	}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			errs = append(errs, workload.FieldError{Path: "tail", Message: "must be a number of lines, or -1 for all"})
		}
		opts.Tail = n
	}
	if v := q.Get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			opts.Since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			opts.Since = time.Now().Add(-d)
		} else {
			errs = append(errs, workload.FieldError{Path: "since", Message: "must be an RFC 3339 time or a duration like 10m"})
		}
	}
	if len(errs) > 0 {
		writeError(w, workload.Invalid(errs...))
		return
	}
	target, service := r.PathValue("target"), r.PathValue("service")
	serveStream(s, w, r, p, "logs", "line", func(ctx context.Context) func(yield func(workload.LogLine, error) bool) {
		return s.rt.Logs(ctx, target, service, opts)
	})
}

// servicesSSE streams every service's status, then each change, over one
// connection (event "status"; "error" events report a target that failed
// and do not end the stream).
func (s *Server) servicesSSE(w http.ResponseWriter, r *http.Request, p control.Principal) {
	ctx, end, ok := s.beginStream(w, r, p, "services")
	if !ok {
		return
	}
	defer end()
	var visible func(string) bool // a principal with grants on some targets only sees theirs
	if !auth.RoleOn(p, "").Allows(auth.RoleViewer) {
		visible = func(t string) bool { return auth.RoleOn(p, t).Allows(auth.RoleViewer) }
	}
	relay(s, ctx, s.startSSE(w), pump(ctx, s.rt.WatchOnly(ctx, visible), false), "status", false)
}
