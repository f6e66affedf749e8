package control

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Principal is the authenticated caller (the wire type api.Principal, which
// GET /v1/whoami serves). The ledger's user_id, auth and user_name come
// from here and nowhere else.
type Principal = api.Principal

// Request is one mutating operation.
type Request struct {
	Principal Principal
	Action    workload.Action
	Target    string
	// Service is the service name within Target (empty for halt).
	Service string
	// Spec is the deployment for start; Spec.Name must equal Service.
	Spec *workload.DeploymentSpec
	// Replicas is the count for scale.
	Replicas int
	// Config is the new config for apply_config.
	Config map[string]string
	// ToRevision is the revision a rollback restores; 0 means the one
	// before the current one (rollback.go).
	ToRevision int
	// Exec is the command for exec.
	Exec *provider.ExecRequest
	// HaltOn is the switch position for halt; Target "" or "*" is global.
	HaltOn bool
	// IdempotencyKey makes a retried request return the first one's result.
	IdempotencyKey string
	// NoWait makes start, stop, scale, restart and apply_config return as
	// soon as the backend accepted the change (provider.WithoutWait); the
	// result then says it did not wait and its status is not judged.
	NoWait bool
	// Timeout replaces the action's default deadline (0 keeps it; at most
	// MaxTimeout). A waited operation still unfinished at the deadline is
	// a Timeout error carrying the status.
	Timeout time.Duration

	// policyDigest is the digest of the policy bundle that decided the
	// request (policy.go); the rows of the request carry it.
	policyDigest string
	// rollback is what precheck resolved of a rollback (rollback.go).
	rollback *rollbackPlan
	// dryRun makes precheck a diff's admission check (diff.go): the same
	// steps, with no rejected row written (reject).
	dryRun bool
	// haltAtIntent: the halt switch is checked by the intent's append, in
	// its transaction (Runtime.appendIntent), not read by precheck.
	haltAtIntent bool
}

// Result is what a mutating operation returns (the wire type api.Result).
type Result = api.Result

// key is the lock key of the request.
func (r *Request) key() string {
	if r.Action == workload.ActionHalt {
		return "halt"
	}
	return workload.ServiceID(r.Target, r.Service)
}

func (r *Request) scope() string {
	if r.Action == workload.ActionHalt && (r.Target == "" || r.Target == ledger.GlobalScope) {
		return ledger.GlobalScope
	}
	return r.Target
}

// validate checks the request's shape. The principal and the target's
// existence are checked by precheck.
func (r *Request) validate() error {
	if !r.Action.Mutating() {
		return workload.Invalid(workload.FieldError{Path: "action", Message: fmt.Sprintf("%q is not a mutating action", r.Action)})
	}
	var errs []workload.FieldError
	if r.Action != workload.ActionHalt {
		if m := workload.ValidateName(r.Target); m != "" {
			errs = append(errs, workload.FieldError{Path: "target", Message: m})
		}
		if m := workload.ValidateName(r.Service); m != "" {
			errs = append(errs, workload.FieldError{Path: "service", Message: m})
		}
	} else if r.Target != "" && r.Target != ledger.GlobalScope {
		if m := workload.ValidateName(r.Target); m != "" {
			errs = append(errs, workload.FieldError{Path: "target", Message: m})
		}
	}
	switch r.Action {
	case workload.ActionStart:
		if r.Spec == nil {
			errs = append(errs, workload.FieldError{Path: "spec", Message: "is required"})
			break
		}
		if err := r.Spec.Validate(); err != nil {
			errs = append(errs, workload.AsError(err).Fields...)
		}
		if r.Spec.Name != r.Service {
			errs = append(errs, workload.FieldError{Path: "name", Message: fmt.Sprintf("spec name %q does not match service %q", r.Spec.Name, r.Service)})
		}
		if r.Spec.Target != "" && r.Spec.Target != r.Target {
			errs = append(errs, workload.FieldError{Path: "target", Message: fmt.Sprintf("spec target %q does not match target %q", r.Spec.Target, r.Target)})
		}
	case workload.ActionScale:
		if m := workload.ValidateReplicas(r.Replicas); m != "" {
			errs = append(errs, workload.FieldError{Path: "replicas", Message: m})
		}
	case workload.ActionApplyConfig:
		if r.Config == nil {
			errs = append(errs, workload.FieldError{Path: "config", Message: "is required"})
		}
		errs = append(errs, workload.ValidateConfig("config", r.Config)...)
	case workload.ActionRollback:
		if r.ToRevision < 0 {
			errs = append(errs, workload.FieldError{Path: "to", Message: "must be a revision number (1 or more), or 0 for the revision before the current one"})
		}
	case workload.ActionExec:
		if r.Exec == nil || len(r.Exec.Command) == 0 || r.Exec.Command[0] == "" {
			errs = append(errs, workload.FieldError{Path: "command", Message: "is required"})
		}
	}
	errs = append(errs, r.validateWait()...)
	if len(r.IdempotencyKey) > 255 {
		errs = append(errs, workload.FieldError{Path: "idempotencyKey", Message: "must be at most 255 characters"})
	}
	if !utf8.ValidString(r.IdempotencyKey) || strings.ContainsFunc(r.IdempotencyKey, unicode.IsControl) {
		// The key is stored in the ledger and locked by name: a
		// PostgreSQL text column refuses NUL and invalid UTF-8 (SQLSTATE
		// 22021), which would surface as an unavailable ledger.
		errs = append(errs, workload.FieldError{Path: "idempotencyKey", Message: "must be valid UTF-8 without control characters"})
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// canonical is the request as it is digested: everything that determines
// the operation, redacted. The same request always yields the same digest.
func (rt *Runtime) canonical(r *Request) []byte {
	m := map[string]any{
		"action":  r.Action,
		"target":  r.scope(),
		"service": r.Service,
		"user":    r.Principal.User,
	}
	switch r.Action {
	case workload.ActionStart:
		m["spec"] = r.Spec
	case workload.ActionScale:
		m["replicas"] = r.Replicas
	case workload.ActionApplyConfig:
		m["config"] = r.Config
	case workload.ActionRollback:
		m["to"] = r.ToRevision
	case workload.ActionExec:
		m["command"] = r.Exec.Command
		m["tty"] = r.Exec.TTY
		m["instance"] = r.Exec.Instance
	case workload.ActionHalt:
		m["on"] = r.HaltOn
	}
	if r.NoWait { // absent when false: digests of waited requests are unchanged
		m["noWait"] = true
	}
	if r.Timeout != 0 {
		m["timeout"] = r.Timeout.String()
	}
	b, _ := json.Marshal(m) // map keys are sorted: canonical
	return []byte(rt.creds.Redact(string(b)))
}

func (rt *Runtime) digest(r *Request) string {
	sum := sha256.Sum256(rt.canonical(r))
	return hex.EncodeToString(sum[:])
}

// detail is the redacted summary stored on the intent: enough to read the
// audit trail, never a value that could be secret (config values and env
// values are left out; their keys are kept).
func (rt *Runtime) detail(r *Request) string {
	m := map[string]any{}
	switch r.Action {
	case workload.ActionStart, workload.ActionRollback:
		s := r.Spec
		m["image"] = s.Image
		m["replicas"] = s.Replicas
		m["envKeys"] = slices.Sorted(maps.Keys(s.Env))
		var secretEnv []string
		for _, sec := range s.Secrets {
			secretEnv = append(secretEnv, sec.Env)
		}
		m["secretEnv"] = secretEnv
		m["configKeys"] = slices.Sorted(maps.Keys(s.Config))
		if s.Compose != nil {
			m["compose"] = s.Compose.File
		}
		if r.rollback != nil { // the intent names both revisions
			m["fromRevision"], m["toRevision"] = r.rollback.from, r.rollback.to
		}
	case workload.ActionScale:
		m["replicas"] = r.Replicas
	case workload.ActionApplyConfig:
		m["configKeys"] = slices.Sorted(maps.Keys(r.Config))
	case workload.ActionExec:
		// Arguments are free text (--password=...) that every viewer could
		// read: the intent keeps the program, the argument count and a
		// digest of the whole command, never the arguments.
		m["argv0"] = argv0(r.Exec.Command)
		m["argc"] = len(r.Exec.Command)
		sum := sha256.Sum256(commandBytes(r.Exec.Command))
		m["commandSha256"] = hex.EncodeToString(sum[:])
		m["tty"] = r.Exec.TTY
		m["instance"] = r.Exec.Instance
	case workload.ActionHalt:
		return rt.encode(ledger.HaltDetail{On: r.HaltOn})
	}
	if r.NoWait {
		m["wait"] = false
	}
	if r.Timeout != 0 {
		m["timeout"] = r.Timeout.String()
	}
	return rt.encode(m)
}

func (rt *Runtime) encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return rt.creds.Redact(string(b))
}

// argv0 is the program of an exec command as the ledger shows it: a path
// of ordinary characters, else "?" (an argv[0] can be free text too, e.g.
// "PASSWORD=x sh" given as one word).
func argv0(cmd []string) string {
	if len(cmd) == 0 {
		return ""
	}
	p := cmd[0]
	if len(p) > 256 {
		return "?"
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._+-", c)) {
			return "?"
		}
	}
	return p
}

// commandBytes is the command as it is digested: the JSON array of its
// arguments, so that ["a b"] and ["a","b"] differ.
func commandBytes(cmd []string) []byte {
	b, _ := json.Marshal(cmd)
	return b
}
