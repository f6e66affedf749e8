package api

import (
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Principal is the authenticated caller, as GET /v1/whoami serves it.
// Package control uses this type as control.Principal: the ledger's
// user_id, auth and user_name come from here and nowhere else.
type Principal struct {
	// User names the caller unambiguously across authentication methods:
	// a local token's user name (which holds neither ':' nor '@'), or
	// "oidc:<issuer>#<subject>" for an OIDC identity.
	User string `json:"user"`
	// Name is the display name: the local user name, or an OIDC identity's
	// email or name claim (its subject when it has neither).
	Name string `json:"name,omitempty"`
	// Auth is how the caller authenticated: "token:<token id>" or
	// "oidc:<issuer>".
	Auth string `json:"auth,omitempty"`
	// Role is the caller's role on every target ("" for none).
	Role string `json:"role,omitempty"`
	// TargetRoles grants roles on single targets, on top of Role (an OIDC
	// grant such as "this CI repository may operate target prod").
	TargetRoles map[string]string `json:"targetRoles,omitempty"`
}

// Result is the answer of every mutating call (deploy, stop, scale,
// restart, config, halt); package control returns it as control.Result.
type Result struct {
	RunID    string                     `json:"runId"`
	Status   *workload.DeploymentStatus `json:"status,omitempty"`
	Exec     *provider.ExecResult       `json:"exec,omitempty"`
	Halt     *HaltDetail                `json:"halt,omitempty"`
	Replayed bool                       `json:"replayed,omitempty"`
	// NoWait says the operation returned without waiting for the service
	// to become ready (the request's wait=false): Status is the backend's
	// first answer, not the end of the rollout. `status --watch` follows it.
	NoWait bool `json:"noWait,omitempty"`
	// Revision is the spec revision a successful start, scale,
	// apply_config or rollback recorded (GET .../history); 0 when none
	// was recorded.
	Revision int `json:"revision,omitempty"`
}

// HaltDetail is the switch position a halt call set.
type HaltDetail struct {
	On bool `json:"on"`
}

// TargetInfo describes a target in GET /v1/targets; package control
// returns it as control.TargetInfo.
type TargetInfo struct {
	Name         string                `json:"name"`
	Provider     string                `json:"provider"`
	Capabilities []provider.Capability `json:"capabilities"`
	Halted       bool                  `json:"halted"`
}

// Run is one row of the workload_runs ledger as GET /v1/runs serves it
// (the server copies it from its ledger.Record; a test keeps the two
// encodings equal).
type Run struct {
	Seq   int64  `json:"seq"`
	RunID string `json:"runId"`
	// Kind is intent, result or rejected.
	Kind string `json:"kind"`
	// UserID names the principal unambiguously (Principal.User).
	UserID string `json:"userId"`
	// Auth is how the principal authenticated; empty on version-1 rows.
	Auth string `json:"auth,omitempty"`
	// UserName is the principal's display name; empty on version-1 rows.
	UserName       string `json:"userName,omitempty"`
	Action         string `json:"action"`
	Target         string `json:"target"`
	Service        string `json:"service"`
	Provider       string `json:"provider"`
	RequestDigest  string `json:"requestDigest"`
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// Outcome is ok, error, interrupted, invalid, denied or halted (empty
	// on intents).
	Outcome   string `json:"outcome,omitempty"`
	ErrorCode string `json:"errorCode,omitempty"`
	// Message is a redacted, human-readable line.
	Message string `json:"message,omitempty"`
	// Detail is a redacted JSON summary; never a secret value.
	Detail string `json:"detail,omitempty"`
	// PolicyDigest is the digest of the policy bundle that allowed or
	// refused the request; empty when no policy was loaded and on rows
	// sealed before version 3.
	PolicyDigest string        `json:"policyDigest,omitempty"`
	Duration     time.Duration `json:"durationNs"`
	Time         time.Time     `json:"time"`
	PrevHash     string        `json:"prevHash"`
	Hash         string        `json:"hash"`
	// Version is the canonical encoding the row was sealed with.
	Version int `json:"version"`
}

// RunsPage is the answer of GET /v1/runs.
type RunsPage struct {
	Records []Run `json:"records"`
	// Next is the cursor of the following page; empty on the last.
	Next string `json:"next,omitempty"`
}

// VerifyResult is the answer of GET /v1/ledger/verify.
type VerifyResult struct {
	OK    bool  `json:"ok"`
	Count int64 `json:"count"`
	// FirstBroken is the sequence number of the first row that fails;
	// 0 when OK.
	FirstBroken int64  `json:"firstBroken,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Head is the hash of the last row.
	Head string `json:"head"`
}

// RunsQuery is the query of GET /v1/runs (each field is the parameter
// named in its comment); empty fields do not filter.
type RunsQuery struct {
	Service string // service
	Target  string // target
	// User matches a row's UserID or UserName: a principal's id (local
	// user name, oidc:<issuer>#<subject>) or its display name.
	User    string // user
	Action  string // action
	Kind    string // kind: intent, result or rejected
	Outcome string // outcome: ok, error, interrupted, invalid, denied or halted
	RunID   string // run
	Cursor  string // cursor: RunsPage.Next of the previous page
	Since   time.Time
	Until   time.Time // since (inclusive) and until (exclusive), RFC 3339
	Limit   int       // limit: 1..1000; 0 is the server's default
	// Descending returns the newest first (order=desc).
	Descending bool
}
