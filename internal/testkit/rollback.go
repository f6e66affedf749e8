package testkit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/workload"
)

// RollbackScenario is issue 20's rollback test for one provider: through
// a control.Runtime over an SQLite ledger (with a revision key), deploy
// V1, deploy V2, roll back, and check that the runtime's status and the
// backend's own view (Observe) show V1 again, that the rollback's intent
// row names both revisions, and that neither the history nor any ledger
// row holds a config or env value of either spec.
type RollbackScenario struct {
	// Target is the provider under test; its name is the target's.
	Target control.Target
	// V1 and V2 are the two deployments of one service (same Name,
	// different Image); give them Config and Env values to check they are
	// kept out of sight (values distinctive enough not to occur by
	// chance in a row).
	V1, V2 workload.DeploymentSpec
	// Observe reads the image the backend runs for the service, asked of
	// the backend itself (the fake's state, the Engine, the API server),
	// not through the provider's Status.
	Observe func(ctx context.Context) (string, error)
	// Timeout bounds each operation; default 3 minutes.
	Timeout time.Duration
}

// Run runs the scenario and returns the runtime (for further checks on
// the same service) after rolling back.
func (s RollbackScenario) Run(t *testing.T) *control.Runtime {
	t.Helper()
	if s.V1.Name == "" || s.V1.Name != s.V2.Name || s.V1.Image == s.V2.Image {
		t.Fatal("testkit: RollbackScenario needs V1 and V2 of one service with different images")
	}
	if s.Observe == nil {
		t.Fatal("testkit: RollbackScenario needs Observe: the backend's own view, not the provider's")
	}
	if s.Timeout == 0 {
		s.Timeout = 3 * time.Minute
	}
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	key := make([]byte, control.RevisionKeySize)
	rand.Read(key)
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Targets: []control.Target{s.Target},
		Credentials: credentials.FromMap(nil), RevisionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	op := control.Principal{User: "rollback-test", Role: "operator"}
	name, target := s.V1.Name, s.Target.Name
	do := func(r control.Request) control.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
		defer cancel()
		r.Principal, r.Target, r.Service = op, target, name
		res, err := rt.Do(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", r.Action, err)
		}
		return res
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
		defer cancel()
		rt.Do(ctx, control.Request{Principal: op, Action: workload.ActionStop, Target: target, Service: name})
	})
	v1, v2 := s.V1, s.V2
	if r := do(control.Request{Action: workload.ActionStart, Spec: &v1}); r.Revision != 1 {
		t.Fatalf("deploy v1 recorded revision %d, want 1", r.Revision)
	}
	if r := do(control.Request{Action: workload.ActionStart, Spec: &v2}); r.Revision != 2 {
		t.Fatalf("deploy v2 recorded revision %d, want 2", r.Revision)
	}
	s.observe(t, "deploying v2", s.V2.Image)
	res := do(control.Request{Action: workload.ActionRollback})
	if res.Revision != 3 || res.Status == nil {
		t.Fatalf("rollback: revision %d, status %v; want revision 3 with a status", res.Revision, res.Status)
	}
	ctx := context.Background()
	// A provider whose status does not carry the image (aws: it lives in
	// the task definition) leaves it empty; Observe checks the backend.
	st, err := rt.Status(ctx, target, name)
	if err != nil || (st.Image != "" && st.Image != s.V1.Image) {
		t.Fatalf("status after the rollback: image %q (%v), want %q", st.Image, err, s.V1.Image)
	}
	s.observe(t, "the rollback", s.V1.Image)
	page, err := led.Query(ctx, ledger.Filter{RunID: res.RunID, Kind: ledger.KindIntent})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("the rollback's intent: %v, %v", page.Records, err)
	}
	var d struct{ FromRevision, ToRevision int }
	if err := json.Unmarshal([]byte(page.Records[0].Detail), &d); err != nil || d.FromRevision != 2 || d.ToRevision != 1 {
		t.Errorf("the rollback's intent detail %s: want fromRevision 2, toRevision 1", page.Records[0].Detail)
	}
	hist, err := rt.History(ctx, target, name)
	if err != nil || len(hist) != 3 || !hist[0].Current || hist[0].Action != "rollback" {
		t.Fatalf("history after the rollback: %+v, %v", hist, err)
	}
	raw, _ := json.Marshal(hist)
	all, err := led.Query(ctx, ledger.Filter{Limit: ledger.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := json.Marshal(all)
	for _, spec := range []workload.DeploymentSpec{s.V1, s.V2} {
		for k, v := range spec.Config {
			if strings.Contains(string(raw), v) || strings.Contains(string(rows), v) {
				t.Errorf("config value of %s appears in the history or the ledger", k)
			}
		}
		for k, v := range spec.Env {
			if strings.Contains(string(raw), v) || strings.Contains(string(rows), v) {
				t.Errorf("env value of %s appears in the history or the ledger", k)
			}
		}
	}
	return rt
}

// observe waits until the backend runs want: a backend may still be
// replacing instances when the operation answered (docker answers after
// the first new replica and stops the old ones after).
func (s RollbackScenario) observe(t *testing.T, after, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	var last string
	var err error
	for {
		if last, err = s.Observe(ctx); err == nil && last == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after %s the backend runs %q (%v), want %q", after, last, err, want)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
