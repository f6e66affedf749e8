package credentials

import (
	"io"
	"strings"
	"sync"
	"time"
)

// StreamWriter redacts a byte stream (command output) on its way to w.
// Create one with Resolver.Writer. It is safe for concurrent use.
//
// A secret split across two Writes is still caught: while the end of what
// was written is the beginning of a registered secret, those bytes (at most
// the longest secret's length minus one) are held back and written with the
// next Write, at Close, or after the hold time passes without a Write, so
// that an interactive terminal never waits for the rest of a prompt that
// merely starts like a secret. The limit: a program that prints part of a
// secret, pauses longer than the hold time and prints the rest shows both
// parts. Redaction guards against accidental disclosure; it cannot stop a
// command that sets out to print a value it can read (it can print it in
// pieces, reversed or encoded).
type StreamWriter struct {
	r    *Resolver
	w    io.Writer
	hold time.Duration

	mu      sync.Mutex
	pending string
	timer   *time.Timer
	err     error
	closed  bool
}

// Writer returns a StreamWriter in front of w. hold is how long bytes that
// may begin a secret are held back waiting for the next Write; 0 holds them
// until the next Write or Close. Close flushes; it does not close w.
func (r *Resolver) Writer(w io.Writer, hold time.Duration) *StreamWriter {
	return &StreamWriter{r: r, w: w, hold: hold}
}

// Write implements io.Writer. It reports len(p) written when the redacted
// output (minus held bytes) reached w.
func (s *StreamWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	buf := s.pending + string(p)
	s.pending = ""
	if s.r == nil || s.r.maxLen() == 0 {
		return len(p), s.emit(buf)
	}
	red := s.r.Redact(buf)
	keep := 0
	if !s.closed { // after Close nothing would flush what is held
		keep = s.r.heldSuffix(red)
	}
	if err := s.emit(red[:len(red)-keep]); err != nil {
		return 0, err
	}
	if keep > 0 {
		s.pending = red[len(red)-keep:]
		if s.hold > 0 {
			s.timer = time.AfterFunc(s.hold, s.flushPending)
		}
	}
	return len(p), nil
}

func (s *StreamWriter) emit(b string) error {
	if b == "" {
		return nil
	}
	if _, err := io.WriteString(s.w, b); err != nil {
		s.err = err
		return err
	}
	return nil
}

func (s *StreamWriter) flushPending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && s.pending != "" {
		_ = s.emit(s.pending)
	}
	s.pending = ""
}

// Close writes what is held back and stops the hold timer.
func (s *StreamWriter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.err == nil && s.pending != "" {
		_ = s.emit(s.pending)
	}
	s.pending = ""
	return s.err
}

// heldSuffix is the length of the longest suffix of s that is a proper
// prefix of a registered secret: the bytes that may be the start of a
// secret whose rest has not been written yet.
func (r *Resolver) heldSuffix(s string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	best := 0
	for _, v := range r.secrets {
		for k := min(len(v)-1, len(s)); k > best; k-- {
			if strings.HasPrefix(v, s[len(s)-k:]) {
				best = k
				break
			}
		}
	}
	return best
}
