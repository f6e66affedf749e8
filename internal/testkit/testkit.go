// Package testkit is the one way tests stand the system up: a context tied
// to the test, a poll-until helper, and NewStack, the whole control plane
// in process (ledger, provider, runtime, API with the dashboard mounted)
// assembled the way `alphaswarm serve` assembles it.
//
// It is for tests only and must not be imported by non-test code. It
// starts nothing that outlives the test: everything it opens is closed by
// t.Cleanup.
package testkit

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// Context returns a context that ends after d, or when the test ends,
// whichever comes first.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// maxPoll is the longest WaitFor sleeps between two calls of cond.
const maxPoll = 100 * time.Millisecond

// WaitFor calls cond until it returns true, and fails the test if it has
// not after d, saying it was waiting for what. It asks again after 1ms,
// then twice as long each time up to 100ms, so a cheap condition is seen
// at once and an expensive one (a docker ps) is not asked in a busy loop.
// It must be called from the test's goroutine.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, maxPoll) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
			return
		}
		time.Sleep(pause)
	}
}

// Buffer is an io.Writer that goroutines may write while the test reads
// it: a log sink for a stack's Logger.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
