package telemetry

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/workload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard is how long a test waits for something that should happen before
// calling it a failure. It is never an assertion about speed.
const guard = 10 * time.Second

var errBoom = errors.New("backend went away")

// ---- fake upstream ----------------------------------------------------------

type item[T any] struct {
	v   T
	err error
	end bool
}

// session is one call of the fake open func: the test feeds it values one at
// a time (an unbuffered handoff, so a completed send means the hub's pump has
// finished fanning out the previous value).
type session[T any] struct {
	key    string
	ctx    context.Context
	items  chan item[T]
	ended  chan struct{} // closed when the open func's iterator returned
	ctxErr error         // ctx.Err() as the iterator returned; read after ended
}

type source[T any] struct {
	sessions chan *session[T]
	opens    atomic.Int64
	// linger, if set, keeps a cancelled upstream from returning until it is
	// closed (by release): a backend slow to hang up.
	linger      chan struct{}
	releaseOnce sync.Once

	mu      sync.Mutex
	running map[string]int
	overlap bool // two upstreams for one key ran at once
}

func newSource[T any]() *source[T] {
	return &source[T]{sessions: make(chan *session[T], 1000), running: map[string]int{}}
}

func (f *source[T]) open(ctx context.Context, key string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		f.opens.Add(1)
		f.mu.Lock()
		f.running[key]++
		if f.running[key] > 1 {
			f.overlap = true
		}
		f.mu.Unlock()
		s := &session[T]{key: key, ctx: ctx, items: make(chan item[T]), ended: make(chan struct{})}
		defer func() {
			f.mu.Lock()
			f.running[key]--
			f.mu.Unlock()
			s.ctxErr = ctx.Err()
			close(s.ended)
		}()
		f.sessions <- s
		var zero T
		for {
			select {
			case it := <-s.items:
				if it.end {
					if it.err != nil {
						yield(zero, it.err)
					}
					return
				}
				if !yield(it.v, nil) {
					return
				}
			case <-ctx.Done():
				if f.linger != nil {
					<-f.linger
				}
				return
			}
		}
	}
}

// lingering makes cancelled upstreams wait for release before returning.
// The cleanup releases them, so that a failing test does not hang in Close.
func (f *source[T]) lingering(t *testing.T) {
	f.linger = make(chan struct{})
	t.Cleanup(f.release)
}

func (f *source[T]) release() { f.releaseOnce.Do(func() { close(f.linger) }) }

func (f *source[T]) next(t *testing.T) *session[T] {
	t.Helper()
	select {
	case s := <-f.sessions:
		return s
	case <-time.After(guard):
		t.Fatal("upstream was never opened")
		return nil
	}
}

func (f *source[T]) noNewSession(t *testing.T) {
	t.Helper()
	select {
	case s := <-f.sessions:
		t.Fatalf("unexpected upstream opened for %q", s.key)
	default:
	}
}

func (s *session[T]) send(t *testing.T, v T) {
	t.Helper()
	s.put(t, item[T]{v: v})
}

func (s *session[T]) end(t *testing.T, err error) {
	t.Helper()
	s.put(t, item[T]{err: err, end: true})
}

func (s *session[T]) put(t *testing.T, it item[T]) {
	t.Helper()
	select {
	case s.items <- it:
	case <-s.ended:
		t.Fatalf("upstream %q ended before it was fed", s.key)
	case <-time.After(guard):
		t.Fatalf("upstream %q was not read from", s.key)
	}
}

// waitCancelled waits for the upstream to return and checks it returned
// because its context was cancelled.
func (s *session[T]) waitCancelled(t *testing.T) {
	t.Helper()
	waitClosed(t, s.ended, "upstream "+s.key+" to return")
	if !errors.Is(s.ctxErr, context.Canceled) {
		t.Fatalf("upstream %q returned with ctx.Err() = %v, want context.Canceled", s.key, s.ctxErr)
	}
}

// ---- subscribers ------------------------------------------------------------

type event[T any] struct {
	v   T
	err error
}

type consumer[T any] struct {
	events chan event[T]
	done   chan struct{}
	cancel context.CancelFunc
}

// subscribe starts a subscriber that forwards everything it gets to events
// (buffered by queue), and breaks after limit values if limit > 0.
func subscribe[T any](t *testing.T, h *Hub[string, T], key string, limit, queue int) *consumer[T] {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer[T]{events: make(chan event[T], queue), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		n := 0
		for v, err := range h.Subscribe(ctx, key) {
			select {
			case c.events <- event[T]{v, err}:
			case <-ctx.Done():
				return
			}
			if n++; limit > 0 && n >= limit {
				break
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		waitClosed(t, c.done, "subscriber to stop")
	})
	return c
}

func (c *consumer[T]) next(t *testing.T) event[T] {
	t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-time.After(guard):
		t.Fatal("subscriber received nothing")
		return event[T]{}
	}
}

func (c *consumer[T]) value(t *testing.T) T {
	t.Helper()
	e := c.next(t)
	if e.err != nil {
		t.Fatalf("subscriber got error %v, want a value", e.err)
	}
	return e.v
}

// finished waits for the subscriber's loop to end and returns what it had
// not yet handed over.
func (c *consumer[T]) finished(t *testing.T) []event[T] {
	t.Helper()
	waitClosed(t, c.done, "subscriber's loop to end")
	var rest []event[T]
	for {
		select {
		case e := <-c.events:
			rest = append(rest, e)
		default:
			return rest
		}
	}
}

// ---- helpers ----------------------------------------------------------------

func newTestHub[T any](t *testing.T, src *source[T], opts ...Option[T]) *Hub[string, T] {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last
	h := NewHub(src.open, opts...)
	t.Cleanup(h.Close)
	return h
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitSubscribers[T any](t *testing.T, h *Hub[string, T], key string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscribers on %q", n, key), func() bool { return h.Subscribers(key) == n })
}

// ---- tests ------------------------------------------------------------------

func TestOneUpstreamPerKey(t *testing.T) {
	for _, tc := range []struct{ keys, subs int }{
		{1, 1}, {1, 2}, {1, 10}, {1, 200}, {3, 1}, {3, 25},
	} {
		t.Run(fmt.Sprintf("keys=%d/subs=%d", tc.keys, tc.subs), func(t *testing.T) {
			src := newSource[int]()
			h := newTestHub(t, src)
			byKey := map[string][]*consumer[int]{}
			for k := range tc.keys {
				key := fmt.Sprintf("svc-%d", k)
				for range tc.subs {
					byKey[key] = append(byKey[key], subscribe(t, h, key, 0, 4))
				}
			}
			sessions := map[string]*session[int]{}
			for range tc.keys {
				s := src.next(t)
				if sessions[s.key] != nil {
					t.Fatalf("second upstream opened for %q", s.key)
				}
				sessions[s.key] = s
			}
			for key := range byKey {
				waitSubscribers(t, h, key, tc.subs)
			}
			if got := src.opens.Load(); got != int64(tc.keys) {
				t.Fatalf("open called %d times, want %d", got, tc.keys)
			}
			if got := h.Upstreams(); got != tc.keys {
				t.Fatalf("Upstreams() = %d, want %d", got, tc.keys)
			}
			for k := range tc.keys {
				key := fmt.Sprintf("svc-%d", k)
				sessions[key].send(t, k)
				for _, c := range byKey[key] {
					if v := c.value(t); v != k {
						t.Fatalf("subscriber of %q got %d, want %d", key, v, k)
					}
				}
			}
			for _, cs := range byKey {
				for _, c := range cs {
					c.cancel()
					c.finished(t)
				}
			}
			for _, s := range sessions {
				s.waitCancelled(t)
			}
			src.noNewSession(t)
			if got := h.Upstreams(); got != 0 {
				t.Fatalf("Upstreams() = %d after everyone left, want 0", got)
			}
		})
	}
}

func TestLastSubscriberLeavingCancelsUpstream(t *testing.T) {
	for _, tc := range []struct {
		name string
		// The subscribers break after this many values (0: never).
		firstLimit, secondLimit int
		leave                   func(c *consumer[int])
	}{
		{"break", 1, 2, func(*consumer[int]) {}},
		{"ctx cancel", 0, 0, func(c *consumer[int]) { c.cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource[int]()
			h := newTestHub(t, src)
			first := subscribe(t, h, "svc", tc.firstLimit, 4)
			sess := src.next(t)
			waitSubscribers(t, h, "svc", 1)
			second := subscribe(t, h, "svc", tc.secondLimit, 4)
			waitSubscribers(t, h, "svc", 2)

			sess.send(t, 1)
			first.value(t)
			second.value(t)
			tc.leave(first)
			if rest := first.finished(t); len(rest) != 0 {
				t.Fatalf("leaving subscriber got %v after leaving", rest)
			}
			if n := h.Subscribers("svc"); n != 1 {
				t.Fatalf("Subscribers = %d after the first left, want 1", n)
			}
			if err := sess.ctx.Err(); err != nil {
				t.Fatalf("upstream cancelled when the first subscriber left: %v", err)
			}

			sess.send(t, 2)
			if v := second.value(t); v != 2 {
				t.Fatalf("remaining subscriber got %d, want 2", v)
			}
			tc.leave(second)
			second.finished(t)
			sess.waitCancelled(t)
			if n := h.Upstreams(); n != 0 {
				t.Fatalf("Upstreams() = %d, want 0", n)
			}
			if n := h.Subscribers("svc"); n != 0 {
				t.Fatalf("Subscribers = %d, want 0", n)
			}
			if n := src.opens.Load(); n != 1 {
				t.Fatalf("open called %d times, want 1", n)
			}
		})
	}
}

// The slow subscriber takes the first value and then sits in its loop body
// while the upstream produces `sent` more. The fast subscriber is read after
// every value, and the fake upstream hands values over unbuffered, so when
// the upstream has been fed value i+1 the hub has finished fanning out value
// i: the slow subscriber's buffer holds exactly the last `buffer` values and
// the count of the rest.
func TestSlowSubscriberDropsOldest(t *testing.T) {
	for _, tc := range []struct {
		buffer, sent int
	}{
		{1, 1}, {1, 5}, {4, 3}, {4, 4}, {4, 10}, {DefaultBuffer, 200},
	} {
		t.Run(fmt.Sprintf("buffer=%d/sent=%d", tc.buffer, tc.sent), func(t *testing.T) {
			src := newSource[workload.MetricSample]()
			t.Cleanup(func() { goleak.VerifyNone(t) })
			var opts []Option[workload.MetricSample]
			if tc.buffer != DefaultBuffer {
				opts = append(opts, WithBuffer[workload.MetricSample](tc.buffer))
			}
			h := NewMetricsHub(src.open, opts...)
			t.Cleanup(h.Close)

			fast := subscribe(t, h, "svc", 0, 0) // unbuffered: paced by the test
			holding := make(chan workload.MetricSample)
			release := make(chan struct{})
			slowDone := make(chan struct{})
			var slow []workload.MetricSample
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				defer close(slowDone)
				first := true
				for v, err := range h.Subscribe(ctx, "svc") {
					if err != nil {
						t.Errorf("slow subscriber got error %v", err)
						return
					}
					if first {
						first = false
						holding <- v
						<-release
						continue
					}
					slow = append(slow, v)
				}
			}()
			sess := src.next(t)
			waitSubscribers(t, h, "svc", 2)

			sample := func(i int) workload.MetricSample {
				return workload.MetricSample{Service: "svc", Instances: i}
			}
			sess.send(t, sample(0))
			if v := fast.value(t); v.Instances != 0 {
				t.Fatalf("fast got %d, want 0", v.Instances)
			}
			select {
			case v := <-holding:
				if v.Instances != 0 || v.Dropped != 0 {
					t.Fatalf("slow's first value = %+v", v)
				}
			case <-time.After(guard):
				t.Fatal("slow subscriber never got its first value")
			}
			for i := 1; i <= tc.sent; i++ {
				sess.send(t, sample(i))
				v := fast.value(t)
				if v.Instances != i || v.Dropped != 0 {
					t.Fatalf("fast got {Instances:%d Dropped:%d}, want {%d 0}", v.Instances, v.Dropped, i)
				}
			}
			sess.end(t, nil) // every value has been fanned out once this returns
			if rest := fast.finished(t); len(rest) != 0 {
				t.Fatalf("fast got %v after the upstream ended", rest)
			}
			close(release)
			waitClosed(t, slowDone, "slow subscriber to finish")

			lost := max(0, tc.sent-tc.buffer)
			if len(slow) != tc.sent-lost {
				t.Fatalf("slow got %d values after the first, want %d", len(slow), tc.sent-lost)
			}
			for j, v := range slow {
				want, wantDropped := lost+1+j, 0
				if j == 0 {
					wantDropped = lost
				}
				if v.Instances != want || v.Dropped != wantDropped {
					t.Fatalf("slow value %d = {Instances:%d Dropped:%d}, want {%d %d}",
						j, v.Instances, v.Dropped, want, wantDropped)
				}
			}
		})
	}
}

func TestLossesAreSilentWithoutMarkDropped(t *testing.T) {
	src := newSource[int]()
	h := newTestHub(t, src, WithBuffer[int](2))
	holding, release := make(chan int), make(chan struct{})
	done := make(chan struct{})
	var got []int
	go func() {
		defer close(done)
		for v := range h.Subscribe(context.Background(), "svc") {
			if v == 0 {
				holding <- v
				<-release
				continue
			}
			got = append(got, v)
		}
	}()
	sess := src.next(t)
	sess.send(t, 0)
	<-holding
	for i := 1; i <= 5; i++ {
		sess.send(t, i)
	}
	sess.end(t, nil)
	close(release)
	waitClosed(t, done, "subscriber to finish")
	if fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("got %v, want [4 5]", got)
	}
}

func TestUpstreamEndReachesAll(t *testing.T) {
	for _, tc := range []struct {
		name   string
		subs   int
		values int
		err    error
	}{
		{"error/1 sub", 1, 1, errBoom},
		{"error/3 subs", 3, 2, errBoom},
		{"error/50 subs", 50, 1, errBoom},
		{"error before any value", 3, 0, errBoom},
		{"clean end", 3, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource[int]()
			h := newTestHub(t, src)
			var cs []*consumer[int]
			for range tc.subs {
				cs = append(cs, subscribe(t, h, "svc", 0, tc.values+2))
			}
			sess := src.next(t)
			waitSubscribers(t, h, "svc", tc.subs)
			for i := range tc.values {
				sess.send(t, i)
			}
			sess.end(t, tc.err)
			for n, c := range cs {
				evs := c.finished(t)
				want := tc.values
				if tc.err != nil {
					want++
				}
				if len(evs) != want {
					t.Fatalf("subscriber %d got %d events %v, want %d", n, len(evs), evs, want)
				}
				for i := range tc.values {
					if evs[i].err != nil || evs[i].v != i {
						t.Fatalf("subscriber %d event %d = %+v, want value %d", n, i, evs[i], i)
					}
				}
				if tc.err != nil {
					if last := evs[len(evs)-1]; !errors.Is(last.err, tc.err) {
						t.Fatalf("subscriber %d last event = %+v, want error %v", n, last, tc.err)
					}
				}
			}
			waitClosed(t, sess.ended, "upstream to return")
			if n := h.Upstreams(); n != 0 {
				t.Fatalf("Upstreams() = %d after the upstream ended, want 0", n)
			}
			if n := h.Subscribers("svc"); n != 0 {
				t.Fatalf("Subscribers = %d after the upstream ended, want 0", n)
			}
			// The key is not poisoned: the next subscriber opens a new upstream.
			c := subscribe(t, h, "svc", 1, 1)
			src.next(t).send(t, 42)
			if v := c.value(t); v != 42 {
				t.Fatalf("resubscriber got %d, want 42", v)
			}
		})
	}
}

func TestResubscribeOpensNewUpstream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		linger bool // the old upstream is slow to return after cancellation
	}{
		{"old upstream returns promptly", false},
		{"old upstream lingers", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource[int]()
			h := newTestHub(t, src)
			if tc.linger {
				src.lingering(t)
			}
			a := subscribe(t, h, "svc", 1, 1)
			s1 := src.next(t)
			s1.send(t, 1)
			a.value(t)
			a.finished(t)
			waitFor(t, "first upstream to be cancelled", func() bool { return s1.ctx.Err() != nil })
			if n := h.Upstreams(); n != 0 {
				t.Fatalf("Upstreams() = %d after everyone left, want 0", n)
			}

			b := subscribe(t, h, "svc", 1, 1)
			waitSubscribers(t, h, "svc", 1)
			if tc.linger {
				// The new upstream must wait for the old one to return.
				src.noNewSession(t)
				if n := src.opens.Load(); n != 1 {
					t.Fatalf("open called %d times while the old upstream still ran, want 1", n)
				}
				src.release()
			}
			s1.waitCancelled(t)
			s2 := src.next(t)
			if s2 == s1 || s2.ctx.Err() != nil {
				t.Fatal("second subscriber did not get a fresh upstream")
			}
			s2.send(t, 2)
			if v := b.value(t); v != 2 {
				t.Fatalf("resubscriber got %d, want 2", v)
			}
			b.finished(t)
			s2.waitCancelled(t)
			if n := src.opens.Load(); n != 2 {
				t.Fatalf("open called %d times, want 2", n)
			}
			src.mu.Lock()
			overlap := src.overlap
			src.mu.Unlock()
			if overlap {
				t.Fatal("two upstreams for one key ran at the same time")
			}
		})
	}
}

func TestSubscriberCancelDoesNotAffectOthers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		victim int // which subscriber's ctx is cancelled: 0 opened the upstream
	}{
		{"first subscriber (opened the upstream)", 0},
		{"later subscriber", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource[int]()
			h := newTestHub(t, src)
			cs := []*consumer[int]{subscribe(t, h, "svc", 0, 4)}
			sess := src.next(t)
			waitSubscribers(t, h, "svc", 1)
			cs = append(cs, subscribe(t, h, "svc", 0, 4))
			waitSubscribers(t, h, "svc", 2)
			sess.send(t, 1)
			for _, c := range cs {
				c.value(t)
			}

			victim, other := cs[tc.victim], cs[1-tc.victim]
			victim.cancel()
			if rest := victim.finished(t); len(rest) != 0 {
				t.Fatalf("cancelled subscriber got %v; want its loop to end quietly", rest)
			}
			if err := sess.ctx.Err(); err != nil {
				t.Fatalf("upstream cancelled with a subscriber left: %v", err)
			}
			for i := 2; i <= 4; i++ {
				sess.send(t, i)
				if v := other.value(t); v != i {
					t.Fatalf("other subscriber got %d, want %d", v, i)
				}
			}
			if n := h.Subscribers("svc"); n != 1 {
				t.Fatalf("Subscribers = %d, want 1", n)
			}
		})
	}
}

func TestCancelledContextNeverSubscribes(t *testing.T) {
	src := newSource[int]()
	h := newTestHub(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for v, err := range h.Subscribe(ctx, "svc") {
		t.Fatalf("got %v, %v from a cancelled subscription", v, err)
	}
	if n := src.opens.Load(); n != 0 {
		t.Fatalf("open called %d times, want 0", n)
	}
}

func TestCloseEndsSubscribers(t *testing.T) {
	for _, tc := range []struct {
		keys, subs int
		linger     bool
	}{
		{1, 1, false}, {1, 5, false}, {3, 4, false}, {2, 3, true},
	} {
		t.Run(fmt.Sprintf("keys=%d/subs=%d/linger=%v", tc.keys, tc.subs, tc.linger), func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) })
			src := newSource[int]()
			h := NewHub(src.open, WithBuffer[int](8))
			t.Cleanup(h.Close) // a no-op unless the test failed before Close
			if tc.linger {
				src.lingering(t) // released before the cleanup Close
			}
			var cs []*consumer[int]
			for k := range tc.keys {
				for range tc.subs {
					cs = append(cs, subscribe(t, h, fmt.Sprint("svc-", k), 0, 16))
				}
			}
			var sessions []*session[int]
			for range tc.keys {
				s := src.next(t)
				sessions = append(sessions, s)
				waitSubscribers(t, h, s.key, tc.subs)
				s.send(t, 1)
			}
			for _, c := range cs {
				c.value(t)
			}

			closed := make(chan struct{})
			go func() {
				defer close(closed)
				h.Close()
			}()
			if tc.linger {
				for _, s := range sessions {
					waitFor(t, "upstream cancellation", func() bool { return s.ctx.Err() != nil })
				}
				select {
				case <-closed:
					t.Fatal("Close returned while an upstream was still running")
				default:
				}
				src.release()
			}
			waitClosed(t, closed, "Close to return")
			for _, s := range sessions {
				s.waitCancelled(t) // already returned: Close waited for it
			}
			for i, c := range cs {
				evs := c.finished(t)
				if len(evs) != 1 || !errors.Is(evs[0].err, ErrClosed) {
					t.Fatalf("subscriber %d got %+v at Close, want exactly ErrClosed", i, evs)
				}
			}
			if n := h.Upstreams(); n != 0 {
				t.Fatalf("Upstreams() = %d after Close, want 0", n)
			}

			// Closed stays closed, and Close is idempotent.
			var errs []error
			for _, err := range h.Subscribe(context.Background(), "svc-0") {
				errs = append(errs, err)
			}
			if len(errs) != 1 || !errors.Is(errs[0], ErrClosed) {
				t.Fatalf("Subscribe after Close yielded %v, want [ErrClosed]", errs)
			}
			if got, want := src.opens.Load(), int64(tc.keys); got != want {
				t.Fatalf("open called %d times, want %d", got, want)
			}
			h.Close()
			if workload.CodeOf(ErrClosed) != workload.Unavailable {
				t.Fatalf("ErrClosed code = %s", workload.CodeOf(ErrClosed))
			}
		})
	}
}

func TestSubscribeIsSingleUse(t *testing.T) {
	src := newSource[int]()
	h := newTestHub(t, src)
	seq := h.Subscribe(context.Background(), "svc")
	got := make(chan int)
	go func() {
		for v := range seq {
			got <- v
			break
		}
		close(got)
	}()
	src.next(t).send(t, 7)
	if v := <-got; v != 7 {
		t.Fatalf("got %d, want 7", v)
	}
	<-got
	var errs []error
	for _, err := range seq {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrReused) {
		t.Fatalf("second range yielded %v, want [ErrReused]", errs)
	}
	if n := src.opens.Load(); n != 1 {
		t.Fatalf("open called %d times, want 1", n)
	}
}

func TestNewHubRejectsBadOptions(t *testing.T) {
	open := func(context.Context, string) iter.Seq2[int, error] { return nil }
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"nil open", func() { NewHub[string, int](nil) }},
		{"zero buffer", func() { NewHub(open, WithBuffer[int](0)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}

func TestMarkSampleDropped(t *testing.T) {
	s := markSampleDropped(workload.MetricSample{Service: "svc", Dropped: 2}, 3)
	if s.Dropped != 5 || s.Service != "svc" {
		t.Fatalf("got %+v", s)
	}
}
