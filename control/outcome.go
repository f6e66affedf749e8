package control

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// MaxTimeout bounds Request.Timeout.
const MaxTimeout = time.Hour

// waits reports whether an action is one that waits for the service to
// reach the state asked for (and so can end Failed or unfinished).
func waits(a workload.Action) bool {
	switch a {
	case workload.ActionStart, workload.ActionStop, workload.ActionScale, workload.ActionRestart, workload.ActionApplyConfig, workload.ActionRollback:
		return true
	}
	return false
}

// verdict is the one rule for every operation that waits, whatever the
// provider: the provider answers with the status the service reached, and
//
//   - Failed, or Degraded (stuck: some replicas can never become ready
//     without a change), is an error with code RolloutFailed;
//   - Pending or Progressing (the deadline passed before the rollout
//     finished) is an error with code Timeout: the change was made and may
//     still finish, so waiting again (status --watch) can succeed;
//   - anything else (Running, Stopped, Unknown) is success.
//
// Either error carries the status, which the result row's detail and the
// API's error envelope repeat, so a client sees what failed. An operation
// that did not wait (Request.NoWait) is judged by nothing: its status is
// the backend's first answer, typically Progressing.
func verdict(r *Request, st *workload.DeploymentStatus) error {
	if r.NoWait || !waits(r.Action) || st == nil {
		return nil
	}
	what := fmt.Sprintf("%s of %s", r.Action, r.Service)
	msg := st.Message
	if msg == "" {
		msg = fmt.Sprintf("%d/%d ready", st.Replicas.Ready, st.Replicas.Desired)
	}
	var e *workload.Error
	switch st.Phase {
	case workload.Failed, workload.Degraded:
		e = workload.Errorf(workload.RolloutFailed, "%s: the change was made, but the service is %s: %s", what, st.Phase, msg)
	case workload.Pending, workload.Progressing:
		e = workload.Errorf(workload.Timeout, "%s: the change was made, but the service was still %s at the operation's deadline: %s", what, st.Phase, msg)
	default:
		return nil
	}
	e.Provider = st.Provider
	e.Status = st
	return e
}

// withStatus makes sure an error of an operation that waited carries the
// service's status: a RolloutFailed or Timeout error a provider returned
// without one gets the status read now (with a short context of its own,
// since the operation's may have ended). Other errors pass unchanged.
func (rt *Runtime) withStatus(ctx context.Context, r *Request, err error) error {
	e := workload.AsError(err)
	if !waits(r.Action) || (e.Code != workload.RolloutFailed && e.Code != workload.Timeout) {
		return err
	}
	if e.Status != nil {
		c := *e
		c.Status = rt.normalise(r.Target, *e.Status)
		return &c
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st, serr := rt.targets[r.Target].Provider.Status(sctx, r.Service)
	if serr != nil {
		return err
	}
	c := *e
	c.Status = rt.normalise(r.Target, st)
	return &c
}

// redactStatus scrubs registered secrets from a status (its messages may
// quote a workload's output).
func (rt *Runtime) redactStatus(st *workload.DeploymentStatus) *workload.DeploymentStatus {
	b, err := json.Marshal(st)
	if err != nil {
		return st
	}
	red := rt.creds.Redact(string(b))
	if red == string(b) {
		return st
	}
	var out workload.DeploymentStatus
	if json.Unmarshal([]byte(red), &out) != nil {
		return nil
	}
	return &out
}

// callContext is the context of the provider call: the action's timeout
// (or the request's own), and the request's choice not to wait.
func (rt *Runtime) callContext(ctx context.Context, r *Request) (context.Context, context.CancelFunc) {
	d := rt.timeouts[r.Action]
	if r.Timeout > 0 {
		d = r.Timeout
	}
	if r.NoWait {
		ctx = provider.WithoutWait(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// validateWait checks the wait fields of a request.
func (r *Request) validateWait() []workload.FieldError {
	var errs []workload.FieldError
	if r.Timeout < 0 || r.Timeout > MaxTimeout {
		errs = append(errs, workload.FieldError{Path: "timeout", Message: "must be between 1s and 1h (0: the action's default)"})
	} else if r.Timeout > 0 && r.Timeout < time.Second {
		errs = append(errs, workload.FieldError{Path: "timeout", Message: "must be between 1s and 1h (0: the action's default)"})
	}
	if (r.NoWait || r.Timeout != 0) && !waits(r.Action) {
		errs = append(errs, workload.FieldError{Path: "wait", Message: fmt.Sprintf("%s does not wait for the service; wait and timeout apply to start, stop, scale, restart and apply_config", r.Action)})
	}
	return errs
}
