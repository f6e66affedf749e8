package telemetry

import (
	"context"
	"errors"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/alphaswarm/controller/workload"
)

// DefaultBuffer is the per-subscriber buffer size when WithBuffer is not
// given.
const DefaultBuffer = 64

// ErrClosed is yielded to every subscriber still iterating when the hub is
// closed, and to any that starts iterating afterwards. It is an Unavailable
// *workload.Error, so the API serves it as 503.
var ErrClosed = &workload.Error{Code: workload.Unavailable, Message: "telemetry hub closed", Retryable: true}

// ErrReused is yielded when the iterator returned by Subscribe is ranged over
// a second time. Call Subscribe again instead.
var ErrReused = errors.New("telemetry: subscription iterated more than once")

// Option configures a Hub.
type Option[T any] func(*config[T])

type config[T any] struct {
	buffer      int
	markDropped func(T, int) T
}

// WithBuffer sets how many values each subscriber may have waiting before
// the oldest is dropped. n must be at least 1; NewHub panics otherwise.
func WithBuffer[T any](n int) Option[T] {
	return func(c *config[T]) { c.buffer = n }
}

// WithMarkDropped sets the hook that tells a subscriber it lost values: the
// first value it reads after losing n (n > 0) is passed through mark, on the
// subscriber's goroutine, and mark's result is what the subscriber receives.
// mark gets the subscriber's own shallow copy of the value; it must not
// modify what the value refers to. Without the hook, losses are silent.
func WithMarkDropped[T any](mark func(v T, n int) T) Option[T] {
	return func(c *config[T]) { c.markDropped = mark }
}

// Hub fans out one upstream per key (of type K: a service, a container) to
// any number of subscribers. The zero
// value is not usable; call NewHub. All methods are safe for concurrent use.
type Hub[K comparable, T any] struct {
	open   func(ctx context.Context, key K) iter.Seq2[T, error]
	buffer int
	mark   func(T, int) T

	ctx    context.Context // parent of every upstream's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per pump goroutine

	mu     sync.Mutex
	closed bool
	// streams holds the upstream each key's subscribers are attached to.
	streams map[K]*stream[K, T]
	// latest holds, per key, the most recent upstream whose pump has not
	// exited, attached or not; a new upstream waits for it before opening.
	latest map[K]*stream[K, T]
}

// stream is one upstream and its subscribers.
type stream[K comparable, T any] struct {
	key    K
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the pump has exited

	// subs is replaced, never modified, under Hub.mu; the pump reads it
	// without the lock.
	subs atomic.Pointer[[]*sub[K, T]]
	// detached (under Hub.mu) is set once the stream is out of
	// Hub.streams: no subscriber can join it any more.
	detached bool
}

// sub is one subscriber's buffer: a ring that drops its oldest value when
// full.
type sub[K comparable, T any] struct {
	st   *stream[K, T]
	wake chan struct{} // capacity 1: "something changed"

	mu      sync.Mutex
	ring    []T
	head, n int
	dropped int   // values lost since the subscriber last read one
	ended   bool  // no more values will be pushed
	err     error // yielded after the buffer is drained, if ended
}

// NewHub returns a hub that calls open to start the upstream for a key. The
// hub calls open from its own goroutine, at most once at a time per key,
// with a context it cancels when the key's last subscriber leaves or the hub
// is closed. open must stop (return from the iterator) promptly once that
// context is cancelled, and must stop when yield returns false; an error it
// yields ends the upstream and is passed to every subscriber.
func NewHub[K comparable, T any](open func(ctx context.Context, key K) iter.Seq2[T, error], opts ...Option[T]) *Hub[K, T] {
	if open == nil {
		panic("telemetry: NewHub with nil open func")
	}
	c := config[T]{buffer: DefaultBuffer}
	for _, o := range opts {
		o(&c)
	}
	if c.buffer < 1 {
		panic("telemetry: buffer size must be at least 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub[K, T]{
		open:    open,
		buffer:  c.buffer,
		mark:    c.markDropped,
		ctx:     ctx,
		cancel:  cancel,
		streams: map[K]*stream[K, T]{},
		latest:  map[K]*stream[K, T]{},
	}
}

// NewMetricsHub returns a hub of metric samples whose subscribers learn of
// lost samples through MetricSample.Dropped: the first sample after a loss of
// n has n added to its Dropped field.
func NewMetricsHub[K comparable](open func(ctx context.Context, key K) iter.Seq2[workload.MetricSample, error], opts ...Option[workload.MetricSample]) *Hub[K, workload.MetricSample] {
	opts = append([]Option[workload.MetricSample]{WithMarkDropped(markSampleDropped)}, opts...)
	return NewHub(open, opts...)
}

// markSampleDropped is NewMetricsHub's MarkDropped hook: it adds n to
// s.Dropped.
func markSampleDropped(s workload.MetricSample, n int) workload.MetricSample {
	s.Dropped += n
	return s
}

// Subscribe returns an iterator over the values the upstream for key yields
// from the moment iteration starts. The subscription exists only while the
// loop runs: starting the loop joins (opening the upstream if the key has
// none), and leaving it, for whatever reason, leaves.
//
// The iteration ends, without an error, when ctx ends or the loop body
// breaks. When the upstream ends, the subscriber first gets the values still
// in its buffer, then the upstream's error (once, with the zero T) if it
// ended with one, and the iteration ends. When the hub is closed the
// buffered values are discarded and ErrClosed is yielded.
//
// The iterator is single-use: a second range yields ErrReused. It must be
// ranged over from one goroutine; the loop body may take as long as it likes
// without affecting the upstream or other subscribers.
func (h *Hub[K, T]) Subscribe(ctx context.Context, key K) iter.Seq2[T, error] {
	var used atomic.Bool
	return func(yield func(T, error) bool) {
		var zero T
		if used.Swap(true) {
			yield(zero, ErrReused)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s, err := h.join(key)
		if err != nil {
			yield(zero, err)
			return
		}
		defer h.leave(s)
		done := ctx.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			v, ok, ended, err := s.pop(h.mark)
			if ok {
				if !yield(v, nil) {
					return
				}
				continue
			}
			if ended {
				if err != nil {
					yield(zero, err)
				}
				return
			}
			select {
			case <-s.wake:
			case <-done:
				return
			}
		}
	}
}

// Upstreams returns how many keys have an upstream with subscribers attached
// (open, or about to be opened).
func (h *Hub[K, T]) Upstreams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}

// Subscribers returns how many subscribers are iterating over key.
func (h *Hub[K, T]) Subscribers(key K) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st := h.streams[key]; st != nil {
		return len(*st.subs.Load())
	}
	return 0
}

// Close cancels every upstream, ends every subscription with ErrClosed and
// waits until every goroutine the hub started has exited (so until every
// open func has returned). Subscribers' loops end on their own goroutines,
// at their next step. Close may be called more than once.
func (h *Hub[K, T]) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		h.cancel()
		for key, st := range h.streams {
			delete(h.streams, key)
			st.detached = true
			for _, s := range *st.subs.Load() {
				s.finish(ErrClosed, true)
			}
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// join attaches a new subscriber to key's upstream, starting one if needed.
func (h *Hub[K, T]) join(key K) (*sub[K, T], error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	st := h.streams[key]
	var prev *stream[K, T]
	fresh := st == nil
	if fresh {
		ctx, cancel := context.WithCancel(h.ctx)
		st = &stream[K, T]{key: key, ctx: ctx, cancel: cancel, done: make(chan struct{})}
		st.subs.Store(&[]*sub[K, T]{})
		prev = h.latest[key]
		h.streams[key] = st
		h.latest[key] = st
	}
	s := &sub[K, T]{st: st, wake: make(chan struct{}, 1), ring: make([]T, h.buffer)}
	old := *st.subs.Load()
	subs := make([]*sub[K, T], len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	st.subs.Store(&subs)
	if fresh {
		// Only now: the pump reads subs without the lock, and the first
		// subscriber must be there for the first value.
		h.wg.Add(1)
		go h.pump(st, prev)
	}
	return s, nil
}

// leave detaches s; if it was the last subscriber, the upstream is
// cancelled and forgotten (its pump exits in the background).
func (h *Hub[K, T]) leave(s *sub[K, T]) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := s.st
	if st.detached {
		return
	}
	old := *st.subs.Load()
	subs := make([]*sub[K, T], 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	st.subs.Store(&subs)
	if len(subs) == 0 {
		st.detached = true
		delete(h.streams, st.key)
		st.cancel()
	}
}

// pump runs one upstream: it waits for the key's previous upstream to be
// gone, opens this one, copies every value into every subscriber's buffer,
// and hands the upstream's end to the subscribers still attached.
func (h *Hub[K, T]) pump(st *stream[K, T], prev *stream[K, T]) {
	defer h.wg.Done()
	defer close(st.done)
	defer st.cancel()
	if prev != nil {
		<-prev.done
	}
	var err error
	if st.ctx.Err() == nil {
		err = h.run(st)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.latest[st.key] == st {
		delete(h.latest, st.key)
	}
	if st.detached {
		return
	}
	st.detached = true
	delete(h.streams, st.key)
	for _, s := range *st.subs.Load() {
		s.finish(err, false)
	}
}

// run ranges over the upstream until it ends, errs, or st is cancelled.
func (h *Hub[K, T]) run(st *stream[K, T]) error {
	seq := h.open(st.ctx, st.key)
	if seq == nil {
		return nil
	}
	done := st.ctx.Done()
	for v, err := range seq {
		if err != nil {
			return err
		}
		select {
		case <-done:
			return nil
		default:
		}
		for _, s := range *st.subs.Load() {
			s.push(v)
		}
	}
	return nil
}

// push appends v, dropping the oldest value if the buffer is full. It never
// blocks beyond the subscriber's short critical section.
func (s *sub[K, T]) push(v T) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	size := len(s.ring)
	if s.n == size {
		var zero T
		s.ring[s.head] = zero
		s.head = (s.head + 1) % size
		s.n--
		s.dropped++
	}
	s.ring[(s.head+s.n)%size] = v
	s.n++
	// The reader waits only after finding the buffer empty, so only the
	// push that ends an empty spell needs to wake it.
	wasEmpty := s.n == 1
	s.mu.Unlock()
	if wasEmpty {
		s.notify()
	}
}

// pop takes the oldest buffered value, marked with the losses before it. If
// there is none, it reports whether the subscription has ended, and why.
func (s *sub[K, T]) pop(mark func(T, int) T) (v T, ok, ended bool, err error) {
	s.mu.Lock()
	if s.n == 0 {
		ended, err = s.ended, s.err
		s.mu.Unlock()
		return v, false, ended, err
	}
	var zero T
	v = s.ring[s.head]
	s.ring[s.head] = zero
	s.head = (s.head + 1) % len(s.ring)
	s.n--
	lost := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if lost > 0 && mark != nil {
		v = mark(v, lost)
	}
	return v, true, false, nil
}

// finish ends the subscription with err (nil: the upstream ended cleanly),
// discarding the buffered values if discard is set. The first call wins.
func (s *sub[K, T]) finish(err error, discard bool) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.err = true, err
	if discard {
		clear(s.ring)
		s.head, s.n, s.dropped = 0, 0, 0
	}
	s.mu.Unlock()
	s.notify()
}

func (s *sub[K, T]) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
