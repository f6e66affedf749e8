package provider

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestRecheck(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	first, done := make(chan struct{}), make(chan struct{})
	var n atomic.Int32
	go Recheck(ctx, time.Millisecond, func(context.Context) { n.Add(1) }, first, done)
	select {
	case <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("first was not closed after the first check")
	}
	if got := n.Load(); got < 1 {
		t.Fatalf("first closed after %d checks, want at least 1", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := n.Load(); got < 3 {
		t.Fatalf("%d checks in 10 s at a 1 ms interval, want at least 3", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("done was not closed after ctx ended")
	}
	after := n.Load()
	time.Sleep(20 * time.Millisecond)
	if got := n.Load(); got != after {
		t.Fatalf("checks went on after done: %d then %d", after, got)
	}
}
