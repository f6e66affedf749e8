package provider

import (
	"slices"
	"sync"
)

// Subscribers tells the watchers of a provider's cache which services
// changed (Watch, and the provider's own waits). Each Subscriber collects
// the names of changed services until it takes them, so that a burst of
// changes wakes it once and a slow reader misses none. The zero value is
// ready to use. Its methods, and a Subscriber's, may be called
// concurrently.
type Subscribers struct {
	mu   sync.Mutex
	subs map[*Subscriber]struct{}
}

// Subscriber collects the names of changed services for one watcher.
type Subscriber struct {
	filter  string // one service, or "" for all
	mu      sync.Mutex
	pending map[string]struct{}
	wake    chan struct{}
}

// Subscribe adds a subscriber to the changes of the service name, or of
// every service when name is "". cancel removes it.
func (ss *Subscribers) Subscribe(name string) (s *Subscriber, cancel func()) {
	s = &Subscriber{filter: name, pending: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	ss.mu.Lock()
	if ss.subs == nil {
		ss.subs = map[*Subscriber]struct{}{}
	}
	ss.subs[s] = struct{}{}
	ss.mu.Unlock()
	return s, func() {
		ss.mu.Lock()
		delete(ss.subs, s)
		ss.mu.Unlock()
	}
}

// Notify tells the subscribers to the service name, and those to every
// service, that it changed.
func (ss *Subscribers) Notify(name string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.subs {
		if s.filter != "" && s.filter != name {
			continue
		}
		s.mu.Lock()
		s.pending[name] = struct{}{}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Wake is ready when names are pending: once for any number of
// notifications since the last Take.
func (s *Subscriber) Wake() <-chan struct{} { return s.wake }

// Take returns the pending names, sorted, and forgets them.
func (s *Subscriber) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.pending))
	for n := range s.pending {
		names = append(names, n)
	}
	clear(s.pending)
	slices.Sort(names)
	return names
}
