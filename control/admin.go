package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/workload"
)

// Administrative actions change who may use the control plane, not a
// workload. They are recorded like workload operations (see Administer).
const (
	ActionTokenCreate workload.Action = "token_create"
	ActionTokenRevoke workload.Action = "token_revoke"
)

// RecordedActions lists every action written to the ledger: the mutating
// workload actions (Do), the administrative ones (Administer) and the
// acceptance of a broken ledger at start (ledger/checkpoint). A ledger
// query by action is checked against it.
var RecordedActions = []workload.Action{
	workload.ActionStart, workload.ActionStop, workload.ActionScale, workload.ActionRestart, workload.ActionApplyConfig,
	workload.ActionRollback, workload.ActionExec, workload.ActionHalt, ActionTokenCreate, ActionTokenRevoke, checkpoint.AcceptAction,
}

// Administer records fn, a change to the control plane's own access (a
// token created or revoked), in the ledger the way Do records a workload
// operation: an intent carrying detail before fn runs (fn does not run when
// the intent cannot be written: Unavailable), then a result carrying what fn
// returned, or its error. It returns the run id. Target and service are
// empty; the details name the token id, user and role, never a token.
//
// A halt does not refuse these: a halt stops changes to workloads, and
// revoking a leaked token (or issuing one to whoever handles the incident)
// is what an admin does while workloads are halted. Callers check the role;
// a refusal before Administer is recorded with Reject.
func (rt *Runtime) Administer(ctx context.Context, p Principal, action workload.Action, detail any, fn func() (any, error)) (string, error) {
	if p.User == "" {
		return "", workload.Errorf(workload.Unauthenticated, "no authenticated user")
	}
	d := rt.encode(detail)
	canon, _ := json.Marshal(map[string]any{"action": action, "user": p.User, "detail": json.RawMessage(d)})
	sum := sha256.Sum256(canon)
	digest := hex.EncodeToString(sum[:])
	intent, err := rt.append(ctx, ledger.Record{RunID: newRunID(), Kind: ledger.KindIntent, UserID: p.User, Auth: p.Auth, UserName: p.Name,
		Action: string(action), RequestDigest: digest, Detail: d})
	if err != nil {
		rt.log.Error("ledger: intent not written; administrative change not made", "action", action, "err", err)
		return "", workload.Errorf(workload.Unavailable, "audit ledger unavailable; the change was not made: %w", err)
	}
	start := time.Now()
	out, callErr := fn()
	result := ledger.Record{RunID: intent.RunID, Kind: ledger.KindResult, UserID: p.User, Auth: p.Auth, UserName: p.Name, Action: string(action),
		RequestDigest: digest, Outcome: ledger.OutcomeOK, Duration: time.Since(start)}
	if callErr != nil {
		e := workload.AsError(callErr)
		result.Outcome, result.ErrorCode, result.Message = ledger.OutcomeError, string(e.Code), truncate(rt.creds.Redact(e.Message), 1024)
	} else if out != nil {
		result.Detail = rt.encode(out)
	}
	if _, err := rt.append(context.WithoutCancel(ctx), result); err != nil {
		rt.log.Error("ledger: result not written; the run stays open until recovery", "run", intent.RunID, "err", err)
	}
	rt.observe(action, "", result.Outcome, result.Duration)
	if callErr != nil {
		return intent.RunID, rt.redactErr(callErr)
	}
	rt.log.Info("administrative change", "run", intent.RunID, "action", action, "user", p.User)
	return intent.RunID, nil
}
