package providertest

import (
	"context"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// noWait: under provider.WithoutWait, Start, Scale and Stop return without
// an error once the backend accepted the change (the status may be any
// phase but Failed), and the service then converges on its own: nobody is
// waiting, the backend does the work.
func (s *suite) noWait(t *testing.T) {
	s.require(t, provider.OpScale)
	name := Name("nowait")
	s.cleanup(t, name)
	ctx := provider.WithoutWait(s.ctx(t))
	st, err := s.h.Provider.Start(ctx, s.h.Spec(name, 1))
	if err != nil {
		t.Fatalf("Start without waiting: %v", err)
	}
	if st.Phase == workload.Failed {
		t.Fatalf("Start without waiting: Failed: %s", st.Message)
	}
	s.waitPhase(t, name, st, workload.Running, 1)
	s.observe(t, name, 1)
	st, err = s.h.Provider.Scale(ctx, name, 2)
	if err != nil {
		t.Fatalf("Scale without waiting: %v", err)
	}
	s.waitPhase(t, name, st, workload.Running, 2)
	s.observe(t, name, 2)
	st, err = s.h.Provider.Stop(ctx, name)
	if err != nil {
		t.Fatalf("Stop without waiting: %v", err)
	}
	// Stopped, or unknown where stop deletes the service (Kubernetes'
	// deleteOnStop).
	wctx := s.ctx(t)
	for st.Phase != workload.Stopped || st.Replicas.Ready != 0 {
		select {
		case <-wctx.Done():
			t.Fatalf("%s: phase %s ready %d after a Stop without waiting, want Stopped or unknown (%s)", name, st.Phase, st.Replicas.Ready, st.Message)
		case <-time.After(100 * time.Millisecond):
		}
		st, err = s.h.Provider.Status(wctx, name)
		if workload.CodeOf(err) == workload.NotFound {
			break
		}
		if err != nil {
			t.Fatalf("Status(%s): %v", name, err)
		}
	}
	s.observe(t, name, 0)
}

// logsEmpty: a logs request that selects no line (every line is older
// than Since, or Tail 0 without Follow) ends without an error: no lines is
// an empty answer.
func (s *suite) logsEmpty(t *testing.T) {
	s.require(t, provider.OpLogs)
	name := Name("quiet")
	s.startService(t, name, 1)
	for _, opts := range []provider.LogOptions{
		{Tail: -1, Since: time.Now().Add(time.Hour)},
		{Tail: 0},
	} {
		ctx, cancel := context.WithTimeout(s.ctx(t), 30*time.Second)
		for line, err := range provider.Logs(ctx, s.h.Provider, name, opts) {
			if err != nil {
				cancel()
				t.Fatalf("logs %+v: %v (no lines is an empty answer, not an error)", opts, err)
			}
			if opts.Tail == 0 {
				cancel()
				t.Fatalf("logs with tail 0: got %q", line.Text)
			}
			if !line.Time.IsZero() && line.Time.Before(opts.Since) {
				cancel()
				t.Fatalf("logs since %s: got a line of %s: %q", opts.Since, line.Time, line.Text)
			}
		}
		cancel()
	}
}
