package gcp

// Test seams: the package's external tests open providers against the
// in-process fakegcp through these; they are not part of the package's
// API.

import (
	"context"
	"io"

	"google.golang.org/api/option"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// OpenWithClientOptions is Open with the given client options instead of
// credentials from the environment: grpcOpts for the gRPC clients,
// restOpts for the REST ones (the permission checks). Tests pass
// fakegcp's GRPCOptions and RESTOptions.
func OpenWithClientOptions(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver, grpcOpts, restOpts []option.ClientOption) (*Provider, error) {
	p, err := open(ctx, cfg, creds, openConfig{clientOpts: grpcOpts, restOpts: restOpts})
	if err != nil {
		return nil, err
	}
	rp, ok := p.(*Provider)
	if !ok {
		_ = p.(io.Closer).Close()
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.mode: OpenWithClientOptions opens Cloud Run targets; use OpenGKEWithClientOptions for gke", cfg.Name)
	}
	return rp, nil
}

// OpenGKEWithClientOptions is Open for a target in GKE mode, with the
// given client options for the GKE API client instead of credentials from
// the environment. The cluster's access tokens still come from
// GOOGLE_APPLICATION_CREDENTIALS. It exists for tests, which pass
// option.WithGRPCConn to an in-process fake and
// option.WithoutAuthentication; never use it against Google Cloud.
func OpenGKEWithClientOptions(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver, opts ...option.ClientOption) (*GKEProvider, error) {
	return openGKE(ctx, cfg, creds, openConfig{clientOpts: opts})
}

// RecheckAccess runs the permission check again once the first one (at
// open) has ended, so that a test can change the fake's grants after
// opening.
func (p *Provider) RecheckAccess(ctx context.Context) {
	<-p.accessFirst
	p.checkAccess(ctx)
}
