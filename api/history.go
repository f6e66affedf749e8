package api

import (
	"time"

	"github.com/alphaswarm/controller/workload"
)

// Revision is one spec revision of a service, as GET
// /v1/targets/{target}/services/{service}/history serves it. Every
// successful start, scale, apply_config and rollback records one, linked
// to its ledger run (RunID: the run whose result row in the hash chain
// names the revision).
//
// Spec holds references only: secret references as the spec names them,
// and every env and config value replaced by "(set)" (the values are kept
// sealed by the controller and restored only by a rollback).
type Revision struct {
	Revision int       `json:"revision"`
	Time     time.Time `json:"time"`
	// User is the display name of whoever made the change (the ledger
	// row's user name, else its user id).
	User   string `json:"user"`
	RunID  string `json:"runId"`
	Action string `json:"action"`
	// Summary says what changed against the previous revision (image
	// a→b, replicas 2→3, config keys changed), never a value of config,
	// env or a secret.
	Summary string                  `json:"summary"`
	Spec    workload.DeploymentSpec `json:"spec"`
	// Current marks the revision the service runs now: the newest one,
	// unless the service was stopped after it.
	Current bool `json:"current,omitempty"`
	// Partial: the revision was recorded by a scale or apply_config of a
	// service deployed before history was kept, so only part of its spec
	// is known; it cannot be rolled back to.
	Partial bool `json:"partial,omitempty"`
	// Problem, when set, says why the revision cannot be restored (its
	// stored spec is missing or does not match the ledger, its values
	// were sealed with another key).
	Problem string `json:"problem,omitempty"`
}

// HistoryResponse is the answer of GET .../history: newest first.
type HistoryResponse struct {
	Revisions []Revision `json:"revisions"`
}

// RollbackRequest is the body of POST .../rollback. To 0 (or absent)
// means the revision before the current one.
type RollbackRequest struct {
	To int `json:"to"`
}
