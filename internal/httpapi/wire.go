package httpapi

import (
	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/ledger"
)

// runsPage is a ledger page as GET /v1/runs serves it.
func runsPage(p ledger.Page) api.RunsPage {
	out := api.RunsPage{Records: make([]api.Run, len(p.Records)), Next: p.Next}
	for i, r := range p.Records {
		out.Records[i] = runOf(r)
	}
	return out
}

// runOf is one ledger row on the wire; TestRunEncodesAsTheLedgerRecord
// keeps the two encodings equal.
func runOf(r ledger.Record) api.Run {
	return api.Run{
		Seq: r.Seq, RunID: r.RunID, Kind: string(r.Kind), UserID: r.UserID, Auth: r.Auth, UserName: r.UserName,
		Action: r.Action, Target: r.Target, Service: r.Service, Provider: r.Provider, RequestDigest: r.RequestDigest,
		IdempotencyKey: r.IdempotencyKey, Outcome: string(r.Outcome), ErrorCode: r.ErrorCode, Message: r.Message,
		Detail: r.Detail, PolicyDigest: r.PolicyDigest, Duration: r.Duration, Time: r.Time, PrevHash: r.PrevHash, Hash: r.Hash, Version: r.Version,
	}
}
