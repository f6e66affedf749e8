package credentials

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestManagedSecretsRegisteredAtStart: a fresh Resolver (a restarted
// controller) redacts every ALPHASWARM_SECRET_* value before anything
// resolved it.
func TestManagedSecretsRegisteredAtStart(t *testing.T) {
	t.Setenv("ALPHASWARM_SECRET_RESTART_TEST", "hunter2-supersecret-value")
	for name, r := range map[string]*Resolver{
		"FromEnv": FromEnv(),
		"FromMap": FromMap(map[string]string{"ALPHASWARM_SECRET_DB": "hunter2-supersecret-value", "PLAIN": "not-a-secret-value"}),
	} {
		got := r.Redact("DB_PASSWORD=hunter2-supersecret-value PLAIN=not-a-secret-value")
		if got != "DB_PASSWORD=[REDACTED] PLAIN=not-a-secret-value" {
			t.Errorf("%s: Redact = %q", name, got)
		}
	}
}

// TestStreamWriterSplitSecrets writes output in every chunking and checks
// that no secret crosses a Write boundary unredacted.
func TestStreamWriterSplitSecrets(t *testing.T) {
	r := FromMap(map[string]string{"ALPHASWARM_SECRET_A": "hunter2-supersecret", "ALPHASWARM_SECRET_B": "supercalifragilistic"})
	const out = "pw=hunter2-supersecret\nsu=supercalifragilistic hunhunter2-supersecret! tail hun"
	const want = "pw=[REDACTED]\nsu=[REDACTED] hun[REDACTED]! tail hun"
	for _, size := range []int{1, 2, 3, 5, 7, 11, 19, 64} {
		var b lockedBuffer
		w := r.Writer(&b, 0)
		for i := 0; i < len(out); i += size {
			n, err := w.Write([]byte(out[i:min(i+size, len(out))]))
			if err != nil || n != min(size, len(out)-i) {
				t.Fatalf("size %d: Write = %d, %v", size, n, err)
			}
		}
		if strings.Contains(b.String(), "hunter2-supersecret") {
			t.Fatalf("size %d: secret before Close: %q", size, b.String())
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("size %d: got %q, want %q", size, b.String(), want)
		}
	}
}

// TestStreamWriterHoldTimer: bytes that only look like the start of a
// secret (an interactive prompt) reach the client after the hold time
// without another Write.
func TestStreamWriterHoldTimer(t *testing.T) {
	r := FromMap(map[string]string{"ALPHASWARM_SECRET_A": "hunter2-supersecret"})
	var b lockedBuffer
	w := r.Writer(&b, 20*time.Millisecond)
	defer w.Close()
	w.Write([]byte("prompt> hun"))
	if got := b.String(); got != "prompt> " {
		t.Fatalf("before the hold time: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.String() != "prompt> hun" {
		if time.Now().After(deadline) {
			t.Fatalf("held bytes never flushed: %q", b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamWriterNoSecrets passes bytes straight through.
func TestStreamWriterNoSecrets(t *testing.T) {
	var b lockedBuffer
	w := FromMap(nil).Writer(&b, 0)
	w.Write([]byte("abc"))
	if b.String() != "abc" {
		t.Fatalf("got %q", b.String())
	}
}

// TestStreamWriterAfterClose: a late Write (a provider's copy finishing
// after the command returned) is redacted and not held for ever.
func TestStreamWriterAfterClose(t *testing.T) {
	r := FromMap(map[string]string{"ALPHASWARM_SECRET_A": "hunter2-supersecret"})
	var b lockedBuffer
	w := r.Writer(&b, 0)
	w.Close()
	w.Write([]byte("late hunter2-supersecret hun"))
	if got := b.String(); got != "late [REDACTED] hun" {
		t.Fatalf("got %q", got)
	}
}
