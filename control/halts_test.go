package control

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestHaltReaderNeverAnswersWithAnOlderRead: callers that arrive while a
// read runs get the next read (started after they arrived), shared among
// them, never the one already under way.
func TestHaltReaderNeverAnswersWithAnOlderRead(t *testing.T) {
	release := make(chan struct{})
	started := make(chan int, 10)
	var mu sync.Mutex
	n := 0
	h := &haltReader{read: func(ctx context.Context) (map[string]bool, error) {
		mu.Lock()
		n++
		id := n
		mu.Unlock()
		started <- id
		<-release
		return map[string]bool{"read": id == 2}, nil
	}}
	first := make(chan map[string]bool)
	go func() {
		m, _ := h.halts(context.Background())
		first <- m
	}()
	if id := <-started; id != 1 {
		t.Fatalf("first read is #%d", id)
	}
	// Five callers arrive while read #1 runs.
	var wg sync.WaitGroup
	got := make([]map[string]bool, 5)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = h.halts(context.Background())
		}()
	}
	waitQueued(t, h, 5)
	release <- struct{}{} // end read #1
	if m := <-first; m["read"] {
		t.Errorf("the first caller got read #2: %v", m)
	}
	if id := <-started; id != 2 {
		t.Fatalf("second read is #%d", id)
	}
	release <- struct{}{} // end read #2
	wg.Wait()
	for i, m := range got {
		if !m["read"] {
			t.Errorf("caller %d that arrived during read #1 got its answer: %v", i, m)
		}
	}
	select {
	case id := <-started:
		t.Errorf("read #%d started for nobody", id)
	default:
	}
	// Each caller owns its map.
	got[0]["read"] = false
	if !got[1]["read"] {
		t.Error("callers share one map")
	}
}

// waitQueued waits until n callers are queued on the next read.
func waitQueued(t *testing.T, h *haltReader, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		queued := 0
		if h.next != nil {
			queued = h.next.waiters
		}
		h.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHaltReaderErrorsAndCancel(t *testing.T) {
	boom := errors.New("ledger down")
	block := make(chan struct{})
	h := &haltReader{read: func(ctx context.Context) (map[string]bool, error) {
		<-block
		return nil, boom
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := h.halts(ctx)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("a caller that gives up gets %v, want context.Canceled", err)
	}
	close(block) // the read it started still ends (no goroutine left behind)
	if _, err := h.halts(context.Background()); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the ledger's error", err)
	}
}
