// Package control is the workload runtime (the decision record's
// WorkloadRuntime): the one path from a request to a provider. For a
// mutating action it runs, in order:
//
//	validate → halt switch → admission (target policy) → policy as code (policy.go) →
//	per-service lock → idempotency key →
//	durable intent → provider call (with timeout) → result → answer
//
// If the intent cannot be written the provider is not called (fail closed,
// Unavailable). Unrelated services never wait for each other; one service is
// strictly serialised, across processes too when the ledger is a
// ledger.ServiceLocker (PostgreSQL advisory locks). Exec is the exception:
// it holds the service lock only until its intent is written, so an
// interactive session never blocks a scale or stop of its service.
//
// # What the ledger records
//
//   - A mutating request that passes validation and the halt switch writes
//     an intent before the provider call and a result after it.
//   - A request refused before any provider call — invalid input, a halted
//     target, a request outside the target's policy (admission.go), a
//     denied role (reported by the API through Reject) — writes one
//     rejected record: who, what action, which target and service, the
//     request digest and the error code; never the request body. This is what
//     the Kubernetes audit log does for refused requests, and it means a
//     probing or misbehaving client is visible in the audit trail.
//   - Unauthenticated requests write nothing: there is no user to record,
//     and recording them would let anyone fill the ledger.
//   - An intent left without a result (the controller died) is closed on the
//     next start with outcome interrupted, after a Status probe whose answer
//     is recorded.
//
// Reads (status, list, metrics, logs, runs) write nothing. Package control
// never authenticates: its callers pass the authenticated Principal.
//
// # How a metrics sample travels
//
// A client's GET .../metrics reaches the SSE handler (internal/httpapi,
// serveStream), which ranges over Runtime.StreamMetrics. That checks the
// target and the name only and subscribes to the runtime's hub, a
// telemetry.Hub keyed by serviceKey{target, name}. For a service's first
// subscriber the hub opens one upstream through the func given to it in
// New: the target's Provider.StreamMetrics(name). The docker provider in
// turn subscribes to its own hub keyed by container id (one Engine stats
// stream per container) and sums the containers each tick. A sample comes
// back the same way: provider → hub pump → every subscriber's ring buffer
// (a slow reader loses its oldest samples; the next one says how many in
// Dropped) → the SSE handler, which writes it as a "sample" event. However
// many clients watch a service, the provider streams it once; the upstream
// closes when the last subscriber leaves.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/telemetry"
	"github.com/alphaswarm/controller/workload"
)

// Target is a configured provider instance.
type Target struct {
	Name     string
	Provider provider.Provider
	// Policy is the target's static admission policy (see admit); the
	// zero value is the default policy.
	Policy provider.Policy
}

// Observer receives measurements; all methods may be called concurrently.
type Observer interface {
	// Operation is called once per mutating request that reached the
	// provider (or was refused), with its outcome.
	Operation(action workload.Action, providerName string, outcome ledger.Outcome, d time.Duration)
	// LedgerAppend is called after every ledger append.
	LedgerAppend(d time.Duration, err error)
}

// Options configures a Runtime.
type Options struct {
	Ledger      ledger.Ledger
	Targets     []Target
	Credentials *credentials.Resolver
	Logger      *slog.Logger
	// Timeouts bounds each action's provider call; DefaultTimeouts fills
	// what is missing.
	Timeouts map[workload.Action]time.Duration
	Observer Observer
	// RecoverLockWait is how long recovery waits for a service lock before
	// deciding that another live process owns the intent; default 2s.
	RecoverLockWait time.Duration
	// RecoverSettle bounds how long recovery re-probes, in all, waiting
	// for backends to finish what interrupted runs started; default
	// DefaultRecoverSettle (see recover.go).
	RecoverSettle time.Duration
	// ListPollInterval is how often Watch lists a target whose provider is
	// not a provider.Watcher; default DefaultListPollInterval.
	ListPollInterval time.Duration
	// Policy, when set, decides every mutating request after admission
	// (policy.go); nil: no policy.
	Policy policy.Evaluator
	// RoleOn is the principal's role on a target as the policy input
	// states it (auth.RoleOn); nil: the principal's Role.
	RoleOn func(p Principal, target string) string
	// RevisionKey (RevisionKeySize bytes, LoadRevisionKey) seals the env
	// and config values of recorded revisions (history_seal.go). nil:
	// revisions keep no values, and one that had some cannot be rolled
	// back to. Controllers sharing a ledger must share the key.
	RevisionKey []byte
}

// DefaultTimeouts are the per-action provider timeouts.
var DefaultTimeouts = map[workload.Action]time.Duration{
	workload.ActionStart:       5 * time.Minute,
	workload.ActionStop:        2 * time.Minute,
	workload.ActionScale:       3 * time.Minute,
	workload.ActionRestart:     5 * time.Minute,
	workload.ActionApplyConfig: 5 * time.Minute,
	workload.ActionRollback:    5 * time.Minute,
	workload.ActionExec:        time.Hour,
	workload.ActionHalt:        30 * time.Second,
}

// Runtime runs workload operations. It is safe for concurrent use.
type Runtime struct {
	ledger   ledger.Ledger
	locker   ledger.ServiceLocker // nil for single-process ledgers
	targets  map[string]Target
	creds    *credentials.Resolver
	log      *slog.Logger
	timeouts map[workload.Action]time.Duration
	obs      Observer
	locks    *keyedMutex
	metrics  *telemetry.Hub[serviceKey, workload.MetricSample]
	recWait  time.Duration
	settle   time.Duration
	listPoll time.Duration
	haltSw   *haltReader            // shared reads of the halt switch (halts.go)
	guarded  ledger.GuardedAppender // nil: the halt switch and revision head are read before appends (guard.go)
	policy   policy.Evaluator
	roleOn   func(Principal, string) string
	revs     ledger.RevisionStore // nil: no history (history.go)
	sealer   *sealer              // nil: no revision key
	recovery recoveryMark         // what recovery passes know (recover.go)
	revCache revisionCache        // newest revision per service (history.go)
}

// New builds a Runtime and closes intents that an earlier process left
// without a result.
func New(ctx context.Context, o Options) (*Runtime, error) {
	if o.Ledger == nil {
		return nil, errors.New("control: a ledger is required")
	}
	rt := &Runtime{
		ledger:   o.Ledger,
		targets:  map[string]Target{},
		creds:    o.Credentials,
		log:      o.Logger,
		timeouts: map[workload.Action]time.Duration{},
		obs:      o.Observer,
		locks:    newKeyedMutex(),
		recWait:  o.RecoverLockWait,
		settle:   o.RecoverSettle,
		haltSw:   &haltReader{read: o.Ledger.Halts},
		policy:   o.Policy,
		roleOn:   o.RoleOn,
	}
	if rt.settle <= 0 {
		rt.settle = DefaultRecoverSettle
	}
	if rt.listPoll = o.ListPollInterval; rt.listPoll <= 0 {
		rt.listPoll = DefaultListPollInterval
	}
	if rt.creds == nil {
		rt.creds = credentials.FromEnv()
	}
	if rt.log == nil {
		rt.log = slog.New(credentials.NewHandler(slog.Default().Handler(), rt.creds))
	}
	if rt.recWait == 0 {
		rt.recWait = 2 * time.Second
	}
	if l, ok := o.Ledger.(ledger.ServiceLocker); ok {
		rt.locker = l
	}
	if l, ok := o.Ledger.(ledger.GuardedAppender); ok {
		rt.guarded = l
	}
	if err := rt.setHistory(o); err != nil {
		return nil, err
	}
	for a, d := range DefaultTimeouts {
		rt.timeouts[a] = d
	}
	for a, d := range o.Timeouts {
		rt.timeouts[a] = d
	}
	for _, t := range o.Targets {
		if m := workload.ValidateName(t.Name); m != "" {
			return nil, fmt.Errorf("control: target %q: %s", t.Name, m)
		}
		if _, dup := rt.targets[t.Name]; dup {
			return nil, fmt.Errorf("control: target %q configured twice", t.Name)
		}
		rt.targets[t.Name] = t
	}
	rt.registerManagedSecrets(ctx)
	rt.metrics = telemetry.NewMetricsHub(func(ctx context.Context, key serviceKey) iter.Seq2[workload.MetricSample, error] {
		// The hub calls this once per service, however many watch it; see
		// "How a metrics sample travels" in the package doc.
		return rt.targets[key.target].Provider.StreamMetrics(ctx, key.name)
	})
	if _, err := rt.Recover(ctx); err != nil {
		return nil, fmt.Errorf("control: recovering interrupted runs: %w", err)
	}
	return rt, nil
}

// Close ends the metrics streams the runtime holds. It does not close the
// ledger or the providers, which the caller owns.
func (rt *Runtime) Close() { rt.metrics.Close() }

func newRunID() string { return ledger.NewRunID() }

func (rt *Runtime) append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	start := time.Now()
	out, err := rt.ledger.Append(ctx, r)
	if rt.obs != nil {
		rt.obs.LedgerAppend(time.Since(start), err)
	}
	return out, err
}

// appendIntent appends r's intent. When the halt switch is checked at the
// intent (Request.haltAtIntent), the append requires, in its own
// transaction, that neither the target nor the whole control plane is
// halted (ledger.Guard): a halt committed before the intent refuses it, and
// the error is a *ledger.HaltedError.
func (rt *Runtime) appendIntent(ctx context.Context, r *Request, intent ledger.Record) (ledger.Record, error) {
	if !r.haltAtIntent {
		return rt.append(ctx, intent)
	}
	start := time.Now()
	out, err := rt.guarded.AppendGuarded(ctx, intent, nil, ledger.Guard{Unhalted: []string{ledger.GlobalScope, r.Target}})
	if rt.obs != nil && !errors.Is(err, ledger.ErrGuard) {
		rt.obs.LedgerAppend(time.Since(start), err)
	}
	return out, err
}

func (rt *Runtime) observe(action workload.Action, providerName string, outcome ledger.Outcome, d time.Duration) {
	if rt.obs != nil {
		rt.obs.Operation(action, providerName, outcome, d)
	}
}

func (rt *Runtime) providerName(target string) string {
	if t, ok := rt.targets[target]; ok {
		return provider.NameOf(t.Provider)
	}
	return ""
}

// Reject records a request refused before reaching the runtime (a denied
// role, an undecodable body) as one rejected ledger record. err's code and
// redacted message are stored; the body never is.
func (rt *Runtime) Reject(ctx context.Context, p Principal, action workload.Action, target, service string, err error) error {
	return rt.reject(ctx, &Request{Principal: p, Action: action, Target: target, Service: service}, "", err)
}

func (rt *Runtime) reject(ctx context.Context, r *Request, digest string, cause error) error {
	if r.dryRun {
		return nil // a diff's admission check records nothing (diff.go)
	}
	e := workload.AsError(cause)
	outcome := ledger.OutcomeInvalid
	switch e.Code {
	case workload.PermissionDenied, workload.Unauthenticated:
		outcome = ledger.OutcomeDenied
	case workload.Halted:
		outcome = ledger.OutcomeHalted
	}
	rec := ledger.Record{
		RunID: newRunID(), Kind: ledger.KindRejected, UserID: r.Principal.User, Auth: r.Principal.Auth, UserName: r.Principal.Name, Action: string(r.Action),
		Target: truncate(r.Target, 253), Service: truncate(r.Service, 253), Provider: rt.providerName(r.Target),
		RequestDigest: digest, IdempotencyKey: truncate(r.IdempotencyKey, 255), Outcome: outcome, ErrorCode: string(e.Code),
		Message: truncate(rt.creds.Redact(e.Message), 1024), PolicyDigest: r.policyDigest,
	}
	_, err := rt.append(context.WithoutCancel(ctx), rec)
	rt.observe(r.Action, rec.Provider, outcome, 0)
	if err != nil {
		rt.log.Error("ledger: recording a rejected request failed", "action", r.Action, "target", r.Target,
			"service", r.Service, "user", r.Principal.User, "err", err)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Do runs one mutating request through the whole pipeline.
func (rt *Runtime) Do(ctx context.Context, r Request) (Result, error) {
	// 1–2b. Principal, validate, halt switch, admission (precheck.go).
	r.haltAtIntent = rt.guarded != nil && r.Action != workload.ActionHalt
	digest, err := rt.precheck(ctx, &r)
	if err != nil {
		return Result{}, err
	}

	// 3. Per-service lock, in process and (when the ledger offers it) across
	// processes; before it, the idempotency key's lock (idempotency.go).
	unlockKey, err := rt.lockIdempotencyKey(ctx, &r)
	if err != nil {
		return Result{}, err
	}
	defer unlockKey()
	hold, err := rt.lockService(ctx, &r, digest) // fenced where locks can be lost (fence.go)
	if err != nil {
		return Result{}, err
	}
	unlock := sync.OnceFunc(hold.unlock)
	defer unlock()

	// 4. Idempotency.
	if r.IdempotencyKey != "" {
		res, done, err := rt.replay(ctx, &r, digest)
		if done || err != nil {
			return res, err
		}
	}

	// 4b. The revision the request will record (history.go), read under
	// the lock; a rollback's intent names the revision it replaces.
	plan, err := rt.planRevision(ctx, &r)
	if err != nil {
		return Result{}, err
	}
	if plan != nil && r.rollback != nil {
		r.rollback.from = plan.latest
	}

	// 5. Durable intent.
	runID := newRunID()
	if r.Action == workload.ActionExec {
		unlockRun, err := rt.lock(ctx, runLockKey(runID)) // see execlock.go
		if err != nil {
			return Result{}, err
		}
		defer unlockRun()
	}
	p := rt.providerName(r.Target)
	intent := ledger.Record{
		RunID: runID, Kind: ledger.KindIntent, UserID: r.Principal.User, Auth: r.Principal.Auth, UserName: r.Principal.Name, Action: string(r.Action),
		Target: r.scope(), Service: r.Service, Provider: p, RequestDigest: digest,
		IdempotencyKey: r.IdempotencyKey, Detail: hold.intentDetail(rt.detail(&r)), PolicyDigest: r.policyDigest,
	}
	if r.Action != workload.ActionHalt {
		intent.Target = r.Target
	}
	intent, err = rt.appendIntent(ctx, &r, intent)
	if herr := (*ledger.HaltedError)(nil); errors.As(err, &herr) {
		err := haltedError(herr.Scope, r.Target)
		rt.reject(ctx, &r, digest, err)
		return Result{}, err
	}
	if err != nil {
		rt.log.Error("ledger: intent not written; provider not called", "action", r.Action, "service", r.key(), "err", err)
		return Result{}, workload.Errorf(workload.Unavailable, "audit ledger unavailable; the operation was not attempted: %w", err)
	}
	if r.Action == workload.ActionExec {
		unlock() // exec does not hold its service (execlock.go)
	}

	// 6. Provider call.
	start := time.Now()
	res, callErr := hold.call(ctx, &r) // rt.call, fenced (fence.go)
	elapsed := time.Since(start)

	// 7. Result, written even if the caller has gone.
	result := ledger.Record{
		RunID: intent.RunID, Kind: ledger.KindResult, UserID: intent.UserID, Auth: intent.Auth, UserName: intent.UserName, Action: intent.Action,
		Target: intent.Target, Service: intent.Service, Provider: p, RequestDigest: digest,
		IdempotencyKey: r.IdempotencyKey, Outcome: ledger.OutcomeOK, Duration: elapsed,
		Detail: rt.resultDetail(res), PolicyDigest: r.policyDigest,
	}
	var rev *pendingRevision
	if callErr == nil && recordsRevision(r.Action) {
		rev = rt.prepareRevision(&r, intent.RunID, plan) // written with the result (history.go)
	}
	if callErr != nil {
		e := workload.AsError(callErr)
		if e.Provider == "" && r.Action != workload.ActionHalt {
			e = e.WithProvider(p)
		}
		if e.Status != nil { // what failed, or what was still under way (outcome.go)
			e = &workload.Error{Code: e.Code, Message: e.Message, Provider: e.Provider, Retryable: e.Retryable,
				Fields: e.Fields, Status: rt.redactStatus(e.Status), Err: e.Err}
			result.Detail = rt.resultDetail(Result{Status: e.Status, NoWait: r.NoWait})
		}
		callErr = e
		result.Outcome, result.ErrorCode, result.Message = ledger.OutcomeError, string(e.Code), truncate(rt.creds.Redact(e.Message), 1024)
		if r.Action == workload.ActionExec && clientGone(ctx) { // not a failure (clientgone.go)
			result.Outcome, result.ErrorCode = ledger.OutcomeInterrupted, ""
			result.Message = truncate(rt.creds.Redact(context.Cause(ctx).Error()), 1024)
		}
	}
	if res.Revision, err = rt.appendResult(context.WithoutCancel(ctx), &r, result, res, rev); err != nil {
		// The operation ran; its intent stays open and the next start closes
		// it after probing the backend. Say so loudly.
		rt.log.Error("ledger: result not written; the run stays open until recovery", "run", intent.RunID, "err", err)
	}
	rt.observe(r.Action, p, result.Outcome, elapsed)
	if callErr != nil {
		// The log handler redacts; the error is logged whole so operators
		// see the backend's own words.
		rt.log.Warn("workload operation failed", "run", intent.RunID, "action", r.Action, "target", r.Target,
			"service", r.Service, "user", r.Principal.User, "code", result.ErrorCode, "duration", elapsed, "err", callErr)
		return Result{RunID: intent.RunID}, rt.redactErr(callErr)
	}
	rt.log.Info("workload operation", "run", intent.RunID, "action", r.Action, "target", r.Target, "service", r.Service,
		"user", r.Principal.User, "outcome", result.Outcome, "duration", elapsed)
	res.RunID = intent.RunID
	return res, nil
}

// safeDigest digests a request that failed validation; it must not panic on
// the missing parts.
func (rt *Runtime) safeDigest(r *Request) string {
	c := *r
	if c.Action == workload.ActionStart && c.Spec == nil {
		c.Spec = &workload.DeploymentSpec{}
	}
	if c.Action == workload.ActionExec && c.Exec == nil {
		c.Exec = &provider.ExecRequest{}
	}
	return rt.digest(&c)
}

func (rt *Runtime) targetList() string {
	names := make([]string, 0, len(rt.targets))
	for n := range rt.targets {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

func (rt *Runtime) lock(ctx context.Context, key string) (func(), error) {
	return rt.lockAs(ctx, key, "operation on "+key, key)
}

// lockAs holds key in this process and, when the ledger offers locks,
// across processes. what names the holder a caller waits for ("operation
// on local/web") and name the lock in an unavailable error.
func (rt *Runtime) lockAs(ctx context.Context, key, what, name string) (func(), error) {
	unlock, err := rt.locks.Lock(ctx, key)
	if err != nil {
		return nil, workload.Errorf(workload.Timeout, "waiting for another %s: %w", what, err)
	}
	if rt.locker == nil {
		return unlock, nil
	}
	dunlock, err := rt.locker.LockService(ctx, key)
	if err != nil {
		unlock()
		if ctx.Err() != nil {
			return nil, workload.Errorf(workload.Timeout, "waiting for another controller's %s: %w", what, err)
		}
		return nil, workload.Errorf(workload.Unavailable, "ledger lock for %s: %w", name, err)
	}
	return func() { dunlock(); unlock() }, nil
}

// replay answers a request whose idempotency key was seen before.
func (rt *Runtime) replay(ctx context.Context, r *Request, digest string) (Result, bool, error) {
	page, err := rt.ledger.Query(ctx, ledger.Filter{IdempotencyKey: r.IdempotencyKey, Limit: ledger.MaxLimit})
	if err != nil {
		return Result{}, false, workload.Errorf(workload.Unavailable, "ledger unavailable, refusing to operate: %w", err)
	}
	var found, started *ledger.Record
	for i, rec := range page.Records {
		if rec.Kind == ledger.KindRejected {
			continue
		}
		if rec.RequestDigest != digest {
			return Result{}, true, keyConflict(r.IdempotencyKey, rec.RunID)
		}
		if rec.Kind == ledger.KindResult {
			found = &page.Records[i]
		} else if started == nil {
			started = &page.Records[i]
		}
	}
	if found == nil && started != nil {
		return Result{RunID: started.RunID, Replayed: true}, true, unfinishedRun(started)
	}
	if found == nil {
		return Result{}, false, nil
	}
	res := Result{RunID: found.RunID, Replayed: true}
	if found.Outcome != ledger.OutcomeOK {
		code := workload.Code(found.ErrorCode)
		if !code.Valid() {
			code = workload.Internal
		}
		msg := found.Message
		if found.Outcome == ledger.OutcomeInterrupted {
			code, msg = workload.Unavailable, "the first attempt was interrupted: "+found.Message
		}
		e := &workload.Error{Code: code, Message: msg, Provider: found.Provider, Retryable: code.Retryable()}
		var first Result
		if found.Detail != "" && json.Unmarshal([]byte(found.Detail), &first) == nil {
			e.Status = first.Status // the status the first attempt ended in (outcome.go)
		}
		return res, true, e
	}
	if found.Detail != "" {
		if found.Action == string(workload.ActionHalt) {
			var h api.HaltDetail
			_ = json.Unmarshal([]byte(found.Detail), &h)
			res.Halt = &h
		} else {
			_ = json.Unmarshal([]byte(found.Detail), &res)
		}
		res.RunID, res.Replayed = found.RunID, true
	}
	return res, true, nil
}

func (rt *Runtime) resultDetail(res Result) string {
	if res.Halt != nil {
		return rt.encode(*res.Halt)
	}
	res.RunID = ""
	return rt.encode(res)
}

// Redact replaces every secret value the runtime's resolver has handed
// out with credentials.Redacted. The API uses it on command output.
func (rt *Runtime) Redact(s string) string { return rt.creds.Redact(s) }

// redactErr scrubs registered secrets from an error's message before it
// leaves the runtime.
func (rt *Runtime) redactErr(err error) error {
	if err == nil {
		return nil
	}
	e := workload.AsError(err)
	if red := rt.creds.Redact(e.Message); red != e.Message {
		c := *e
		c.Message = red
		c.Err = nil // the cause may repeat the secret
		return &c
	}
	return err
}

// call invokes the provider with the action's timeout.
func (rt *Runtime) call(ctx context.Context, r *Request) (Result, error) {
	res, err := rt.callProvider(ctx, r)
	if err != nil {
		return res, rt.withStatus(ctx, r, err)
	}
	if res.Status != nil {
		res.NoWait = r.NoWait
		if err := verdict(r, res.Status); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func (rt *Runtime) callProvider(ctx context.Context, r *Request) (Result, error) {
	ctx, cancel := rt.callContext(ctx, r)
	defer cancel()
	if r.Action == workload.ActionHalt {
		return Result{Halt: &api.HaltDetail{On: r.HaltOn}}, nil
	}
	p := rt.targets[r.Target].Provider
	var st workload.DeploymentStatus
	var err error
	switch r.Action {
	case workload.ActionStart, workload.ActionRollback:
		st, err = p.Start(ctx, r.startSpec())
	case workload.ActionStop:
		st, err = p.Stop(ctx, r.Service)
	case workload.ActionScale:
		st, err = p.Scale(ctx, r.Service, r.Replicas)
	case workload.ActionRestart:
		st, err = provider.Restart(ctx, p, r.Service)
	case workload.ActionApplyConfig:
		if err = p.ApplyConfig(ctx, r.Service, r.Config); err == nil {
			st, err = p.Status(ctx, r.Service)
		}
	case workload.ActionExec:
		req := *r.Exec
		// Command output is redacted like everything else the system
		// writes, interactive streams included (see credentials.StreamWriter).
		for _, w := range []*io.Writer{&req.Stdout, &req.Stderr} {
			if *w != nil {
				sw := rt.creds.Writer(*w, execOutputHold)
				defer sw.Close()
				*w = sw
			}
		}
		res, err := provider.Exec(ctx, p, r.Service, req)
		if err != nil {
			if ctx.Err() != nil && res.Orphan == nil {
				res.Orphan = &provider.ExecOrphan{Detail: "unknown: the session ended before the command and provider " +
					rt.providerName(r.Target) + " closed its streams without reporting whether the process ended"}
			}
			if res.Orphan != nil {
				// The result row says what became of the process.
				return Result{Exec: &res}, timeoutErr(ctx, err)
			}
			return Result{}, timeoutErr(ctx, err)
		}
		return Result{Exec: &res}, nil
	default:
		return Result{}, workload.Errorf(workload.Internal, "action %q has no provider call", r.Action)
	}
	if err != nil {
		return Result{}, timeoutErr(ctx, err)
	}
	return Result{Status: rt.normalise(r.Target, st)}, nil
}

func timeoutErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && workload.CodeOf(err) == workload.Internal {
		return workload.Errorf(workload.Timeout, "%w", err)
	}
	return err
}

func (rt *Runtime) normalise(target string, st workload.DeploymentStatus) *workload.DeploymentStatus {
	st.Target = target
	if st.Name != "" {
		st.ID = workload.ServiceID(target, st.Name)
	}
	if st.Provider == "" {
		st.Provider = rt.providerName(target)
	}
	if st.Instances == nil {
		st.Instances = []workload.Instance{}
	}
	return &st
}

// execOutputHold is how long exec output that may begin a secret is held
// back waiting for the rest (credentials.StreamWriter).
const execOutputHold = 250 * time.Millisecond
