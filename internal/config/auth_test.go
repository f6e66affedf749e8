package config

import (
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// TestAuthIssuers: several issuers, grants, claim paths, lifetimes and the
// local token TTL parse (issue 21.3, 21.4, 21.6, 21.7); mistakes name the
// key.
func TestAuthIssuers(t *testing.T) {
	c, err := Parse([]byte(`auth:
  tokenMaxTTL: 24h
  oidc:
    issuer: https://idp.example/
    audience: https://alphaswarm.example
    rolesClaimPath: [realm_access, roles]
    maxLifetime: 1h
    jwksRefresh: 2m
    jwksMaxAge: 30m
    jwksMinRefetch: 30s
    fetchTimeout: 3s
    clockSkew: 1m
    clientId: dash
  issuers:
  - issuer: https://token.actions.githubusercontent.com
    audience: https://alphaswarm.example/ci
    grants:
    - claims: {repository: acme/shop, environment: production}
      role: operator
      targets: [prod]
`), "/data")
	if err != nil {
		t.Fatal(err)
	}
	o := c.Auth.OIDC
	if c.Auth.TokenMaxTTL.D() != 24*time.Hour || !slices.Equal(o.RolesClaimPath, []string{"realm_access", "roles"}) ||
		o.MaxLifetime.D() != time.Hour || o.JWKSRefresh.D() != 2*time.Minute || o.JWKSMaxAge.D() != 30*time.Minute || o.JWKSMinRefetch.D() != 30*time.Second ||
		o.FetchTimeout.D() != 3*time.Second || o.ClockSkew.D() != time.Minute {
		t.Fatalf("auth = %+v, oidc = %+v", c.Auth, o)
	}
	if len(c.Auth.Issuers) != 1 || len(c.Auth.Issuers[0].Grants) != 1 || c.Auth.Issuers[0].Grants[0].Claims["environment"] != "production" ||
		c.Auth.Issuers[0].Grants[0].Targets[0] != "prod" {
		t.Fatalf("issuers = %+v", c.Auth.Issuers)
	}

	for _, tc := range []struct {
		name, doc string
		paths     []string
	}{
		{"claim and path", "auth:\n  oidc:\n    issuer: https://x\n    audience: a\n    rolesClaim: r\n    rolesClaimPath: [a]\n", []string{"auth.oidc.rolesClaimPath"}},
		{"bad grant", "auth:\n  issuers:\n  - issuer: https://x\n    audience: a\n    grants:\n    - role: root\n      targets: [Bad_Name]\n",
			[]string{"auth.issuers[0].grants[0].claims", "auth.issuers[0].grants[0].role", "auth.issuers[0].grants[0].targets[0]"}},
		{"clientId on a further issuer", "auth:\n  issuers:\n  - issuer: https://x\n    audience: a\n    clientId: c\n", []string{"auth.issuers[0].clientId"}},
		{"same issuer twice", "auth:\n  oidc:\n    issuer: https://x\n    audience: a\n  issuers:\n  - issuer: https://x\n    audience: b\n", []string{"auth.issuers[0].issuer"}},
		{"http issuer", "auth:\n  issuers:\n  - issuer: http://evil.example\n    audience: a\n", []string{"auth.issuers[0].issuer"}},
		{"negative lifetime", "auth:\n  oidc:\n    issuer: https://x\n    audience: a\n    maxLifetime: -1h\n", []string{"auth.oidc.maxLifetime"}},
		{"bad default role", "auth:\n  oidc:\n    issuer: https://x\n    audience: a\n    defaultRole: root\n", []string{"auth.oidc.defaultRole"}},
		{"unknown grant key", "auth:\n  issuers:\n  - issuer: https://x\n    audience: a\n    grants:\n    - claims: {a: b}\n      role: viewer\n      target: [x]\n", []string{"auth.issuers[0].grants[0].target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "/data")
			var got []string
			for _, f := range workload.AsError(err).Fields {
				got = append(got, f.Path)
			}
			if err == nil || !slices.Equal(got, tc.paths) {
				t.Fatalf("error %v: fields %v, want %v", err, got, tc.paths)
			}
		})
	}
}
