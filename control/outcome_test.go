package control_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// resultOf returns the one result record of run.
func (e *env) resultOf(t *testing.T, run string) ledger.Record {
	t.Helper()
	recs := e.records(t, ledger.Filter{RunID: run, Kind: ledger.KindResult})
	if len(recs) != 1 {
		t.Fatalf("run %s: %d result records", run, len(recs))
	}
	return recs[0]
}

// lastResult returns the newest result record.
func (e *env) lastResult(t *testing.T) ledger.Record {
	t.Helper()
	recs := e.records(t, ledger.Filter{Kind: ledger.KindResult})
	if len(recs) == 0 {
		t.Fatal("no result records")
	}
	return recs[len(recs)-1]
}

// D2: every operation that waits and ends Failed is an error with code
// rollout_failed, the status attached to the error and to the result row.
// On the old code each of these returned the Failed status as a success
// and the ledger said ok.
func TestFailedRolloutIsAFailedOperation(t *testing.T) {
	mem := providertest.NewMemory("local")
	failing := false
	mem.Fail = func(op provider.Operation, service string) string {
		if failing {
			return "ImagePullBackOff: Back-off pulling image"
		}
		return ""
	}
	e := newEnv(t, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 2)})
	failing = true
	for _, r := range []control.Request{
		{Action: workload.ActionStart, Service: "web", Spec: spec("web", 2)},
		{Action: workload.ActionScale, Service: "web", Replicas: 3},
		{Action: workload.ActionRestart, Service: "web"},
		{Action: workload.ActionApplyConfig, Service: "web", Config: map[string]string{"k": "v"}},
	} {
		t.Run(string(r.Action), func(t *testing.T) {
			_, err := e.do(t, r)
			we := workload.AsError(err)
			if we == nil || we.Code != workload.RolloutFailed {
				t.Fatalf("err = %v, want rollout_failed", err)
			}
			if we.Status == nil || we.Status.Phase != workload.Failed || !strings.Contains(we.Status.Message, "ImagePullBackOff") ||
				we.Status.ID != "local/web" {
				t.Fatalf("error status = %+v", we.Status)
			}
			if !strings.Contains(we.Message, "ImagePullBackOff") || we.Retryable {
				t.Errorf("error = %+v", we)
			}
			rec := e.lastResult(t)
			if rec.Outcome != ledger.OutcomeError || rec.ErrorCode != string(workload.RolloutFailed) {
				t.Fatalf("result row = %+v", rec)
			}
			var detail control.Result
			if err := json.Unmarshal([]byte(rec.Detail), &detail); err != nil || detail.Status == nil || detail.Status.Phase != workload.Failed {
				t.Fatalf("result detail %q does not carry the Failed status", rec.Detail)
			}
		})
	}
	// Stopping a failed service is what a user does next: it succeeds.
	if _, err := e.do(t, control.Request{Action: workload.ActionStop, Service: "web"}); err != nil {
		t.Fatalf("stop of a failed service: %v", err)
	}
}

// A replayed idempotent request that failed its rollout answers the same
// error with the same status.
func TestFailedRolloutReplayCarriesStatus(t *testing.T) {
	mem := providertest.NewMemory("local")
	mem.Fail = func(provider.Operation, string) string { return "CrashLoopBackOff" }
	e := newEnv(t, mem, nil)
	r := control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1), IdempotencyKey: "k1"}
	_, err1 := e.do(t, r)
	_, err2 := e.do(t, r)
	for _, err := range []error{err1, err2} {
		we := workload.AsError(err)
		if we == nil || we.Code != workload.RolloutFailed || we.Status == nil || we.Status.Message != "CrashLoopBackOff" {
			t.Fatalf("err = %+v", we)
		}
	}
}

// The deadline passing while the rollout is under way is a Timeout error
// carrying the Progressing status, not a success.
func TestUnfinishedRolloutIsATimeout(t *testing.T) {
	mem := providertest.NewMemory("local")
	mem.ReadyAfter = time.Hour
	e := newEnv(t, mem, nil)
	_, err := e.do(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 2), Timeout: time.Second})
	we := workload.AsError(err)
	if we == nil || we.Code != workload.Timeout || we.Status == nil || we.Status.Phase != workload.Progressing {
		t.Fatalf("err = %+v", we)
	}
	if rec := e.lastResult(t); rec.ErrorCode != string(workload.Timeout) || !strings.Contains(rec.Detail, `"Progressing"`) {
		t.Fatalf("result row = %+v", rec)
	}
}

// Wait is a choice: a no-wait operation answers at once with the backend's
// first status, is not judged by it, and its result row says it did not
// wait.
func TestNoWait(t *testing.T) {
	mem := providertest.NewMemory("local")
	mem.ReadyAfter = time.Hour
	e := newEnv(t, mem, nil)
	// Instances ready in an hour: had the call waited, ctx would end it.
	ctx := testkit.Context(t, time.Minute)
	res, err := e.rt.Do(ctx, control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web",
		Spec: spec("web", 2), NoWait: true})
	if err != nil || ctx.Err() != nil {
		t.Fatal(err)
	}
	if !res.NoWait || res.Status == nil || res.Status.Phase != workload.Progressing {
		t.Fatalf("result = %+v", res)
	}
	rec := e.resultOf(t, res.RunID)
	if rec.Outcome != ledger.OutcomeOK || !strings.Contains(rec.Detail, `"noWait":true`) {
		t.Fatalf("result row = %+v", rec)
	}
	intent := e.records(t, ledger.Filter{RunID: res.RunID, Kind: ledger.KindIntent})
	if len(intent) != 1 || !strings.Contains(intent[0].Detail, `"wait":false`) {
		t.Fatalf("intent = %+v", intent)
	}
	// A waited operation is unchanged: its result row has no noWait.
	mem.ReadyAfter = 0
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "api", Spec: spec("api", 1)})
	res, err = e.do(t, control.Request{Action: workload.ActionScale, Service: "api", Replicas: 2})
	if err != nil || res.NoWait || strings.Contains(e.resultOf(t, res.RunID).Detail, "noWait") {
		t.Fatalf("waited scale: %+v, %v", res, err)
	}
	// Even a Failed first answer is not judged when the caller chose not
	// to wait: the status says it.
	mem.Fail = func(provider.Operation, string) string { return "CrashLoopBackOff" }
	res, err = e.do(t, control.Request{Action: workload.ActionRestart, Service: "api", NoWait: true})
	if err != nil || res.Status.Phase != workload.Failed {
		t.Fatalf("no-wait restart: %+v, %v", res, err)
	}
}

func TestWaitFieldsValidated(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, r := range []control.Request{
		{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1), Timeout: -time.Second},
		{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1), Timeout: 2 * time.Hour},
		{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1), Timeout: time.Millisecond},
		{Action: workload.ActionExec, Service: "web", Exec: &provider.ExecRequest{Command: []string{"echo"}}, NoWait: true},
	} {
		_, err := e.do(t, r)
		we := workload.AsError(err)
		if we == nil || we.Code != workload.InvalidArgument || len(we.Fields) == 0 ||
			(we.Fields[0].Path != "timeout" && we.Fields[0].Path != "wait") {
			t.Errorf("%+v: err = %v", r, err)
		}
	}
}

// The request's timeout replaces the action's default.
func TestRequestTimeout(t *testing.T) {
	mem := providertest.NewMemory("local")
	mem.Delay = time.Hour
	e := newEnv(t, mem, nil)
	ctx := testkit.Context(t, time.Minute)
	start := time.Now()
	_, err := e.rt.Do(ctx, control.Request{Principal: alice, Action: workload.ActionStart, Target: "local", Service: "web",
		Spec: spec("web", 1), Timeout: time.Second})
	if workload.CodeOf(err) != workload.Timeout || ctx.Err() != nil {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

// An idempotency key the ledger cannot store (NUL, other control
// characters, invalid UTF-8) is refused with its field path before
// anything is written, not reported as an unavailable ledger.
func TestIdempotencyKeyRefused(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	for _, key := range []string{"a\x00b", "line\nbreak", "\xff\xfe", strings.Repeat("k", 256)} {
		_, err := e.rt.Do(testkit.Context(t, time.Minute), control.Request{Principal: alice, Action: workload.ActionStart,
			Target: "local", Service: "web", Spec: spec("web", 1), IdempotencyKey: key})
		we := workload.AsError(err)
		if we == nil || we.Code != workload.InvalidArgument || len(we.Fields) != 1 || we.Fields[0].Path != "idempotencyKey" {
			t.Errorf("key %q: err = %v", key, err)
		}
	}
	if _, err := e.rt.Do(testkit.Context(t, time.Minute), control.Request{Principal: alice, Action: workload.ActionStart,
		Target: "local", Service: "web", Spec: spec("web", 1), IdempotencyKey: "deploy-2026-12-05 ünïcode"}); err != nil {
		t.Fatalf("a printable UTF-8 key: %v", err)
	}
}
