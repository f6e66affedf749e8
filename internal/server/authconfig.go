package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/config"
)

// oidcConfig converts one configured issuer.
func oidcConfig(o config.OIDC, log *slog.Logger) auth.OIDCConfig {
	c := auth.OIDCConfig{Issuer: o.Issuer, Audience: o.Audience, RolesClaim: o.RolesClaim, RolesClaimPath: o.RolesClaimPath,
		UserClaim: o.UserClaim, DefaultRole: auth.Role(o.DefaultRole), MaxTokenLifetime: o.MaxLifetime.D(),
		ClockSkew: o.ClockSkew.D(), KeyRefresh: o.JWKSRefresh.D(), MaxKeyAge: o.JWKSMaxAge.D(), MinRefetch: o.JWKSMinRefetch.D(),
		FetchTimeout: o.FetchTimeout.D(), Logger: log}
	for _, g := range o.Grants {
		c.Grants = append(c.Grants, auth.Grant{Claims: g.Claims, Role: auth.Role(g.Role), Targets: g.Targets})
	}
	return c
}

// openIssuers starts verifying the configured OIDC issuers' tokens. An
// issuer that cannot be reached is not an error: it is discovered in the
// background (until ctx ends) while local tokens work.
func openIssuers(ctx context.Context, a *auth.Authenticator, ac config.Auth, log *slog.Logger) error {
	if o := ac.OIDC; o != nil {
		v, err := auth.NewOIDC(ctx, oidcConfig(*o, log))
		if err != nil {
			return fmt.Errorf("auth.oidc: %w", err)
		}
		a.OIDC = v
	}
	for i, o := range ac.Issuers {
		v, err := auth.NewOIDC(ctx, oidcConfig(o, log))
		if err != nil {
			a.Close()
			return fmt.Errorf("auth.issuers[%d]: %w", i, err)
		}
		a.Issuers = append(a.Issuers, v)
	}
	return nil
}
