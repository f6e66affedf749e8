package client

import (
	"context"

	"github.com/alphaswarm/controller/api"
)

// History returns a service's spec revisions, newest first (GET
// .../history). Env and config values are never in them.
func (c *Client) History(ctx context.Context, target, service string) ([]api.Revision, error) {
	var out api.HistoryResponse
	if err := c.do(ctx, "GET", svc(target, service)+"/history", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Revisions, nil
}

// Rollback restores revision to of a service (0: the revision before the
// current one) through the server's audited pipeline (POST .../rollback).
// The result's Revision is the new revision the rollback recorded.
func (c *Client) Rollback(ctx context.Context, target, service string, to int) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "POST", svc(target, service)+"/rollback", nil, api.RollbackRequest{To: to}, &res)
}
