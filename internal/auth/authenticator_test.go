package auth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

func TestAuthenticator(t *testing.T) {
	store := newStore(t)
	apiTok, _, err := store.Create("ci-bot", RoleOperator, 0)
	if err != nil {
		t.Fatal(err)
	}
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{RolesClaim: "https://alphaswarm.io/roles"})
	jwt := sign(t, "k1", is.claims(map[string]any{"https://alphaswarm.io/roles": []string{"admin"}}))
	wrongAud := sign(t, "k1", is.claims(map[string]any{"aud": "other", "https://alphaswarm.io/roles": "admin"}))

	both := &Authenticator{Tokens: store, OIDC: o}
	browser := &Authenticator{Tokens: store, OIDC: o, AllowQueryToken: true}
	tokensOnly := &Authenticator{Tokens: store}
	oidcOnly := &Authenticator{OIDC: o}
	none := &Authenticator{}

	apiUser := control.Principal{User: "ci-bot", Name: "ci-bot", Role: "operator"}
	oidcUser := control.Principal{User: PrincipalID(is.srv.URL, "auth0|alice"), Auth: "oidc:" + is.srv.URL, Role: "admin"}

	tests := []struct {
		name    string
		a       *Authenticator
		method  string
		target  string
		headers []string // Authorization header values
		want    control.Principal
		code    workload.Code
		msg     string
	}{
		{name: "api token", a: both, headers: []string{"Bearer " + apiTok}, want: apiUser},
		{name: "scheme case-insensitive", a: both, headers: []string{"bearer " + apiTok}, want: apiUser},
		{name: "extra spaces", a: both, headers: []string{"  Bearer   " + apiTok + " "}, want: apiUser},
		{name: "jwt", a: both, headers: []string{"Bearer " + jwt}, want: oidcUser},
		{name: "jwt wrong audience", a: both, headers: []string{"Bearer " + wrongAud}, code: workload.Unauthenticated, msg: "audience"},
		{name: "revoked-looking api token", a: both, headers: []string{"Bearer " + TokenPrefix + strings.Repeat("x", 43)}, code: workload.Unauthenticated},
		{name: "missing", a: both, code: workload.Unauthenticated, msg: `send "Authorization: Bearer <token>" with an API token (asw_…) or an OIDC access token from ` + is.srv.URL},
		{name: "missing, tokens only", a: tokensOnly, code: workload.Unauthenticated, msg: "with an API token (asw_…)"},
		{name: "missing, browser", a: browser, code: workload.Unauthenticated, msg: "?access_token=<token>"},
		{name: "missing, nothing configured", a: none, code: workload.Unauthenticated, msg: "no authentication method"},
		{name: "basic scheme", a: both, headers: []string{"Basic YWxpY2U6c2VjcmV0"}, code: workload.Unauthenticated, msg: "unsupported Authorization scheme"},
		{name: "no scheme", a: both, headers: []string{apiTok}, code: workload.Unauthenticated, msg: "unsupported Authorization scheme"},
		{name: "empty bearer", a: both, headers: []string{"Bearer "}, code: workload.Unauthenticated, msg: "empty bearer token"},
		{name: "two headers", a: both, headers: []string{"Bearer " + apiTok, "Bearer " + jwt}, code: workload.Unauthenticated, msg: "more than one"},
		{name: "unknown format", a: both, headers: []string{"Bearer opaque-token-123"}, code: workload.Unauthenticated, msg: "neither"},
		{name: "jwt without oidc", a: tokensOnly, headers: []string{"Bearer " + jwt}, code: workload.Unauthenticated, msg: "OIDC tokens are not accepted"},
		{name: "api token without store", a: oidcOnly, headers: []string{"Bearer " + apiTok}, code: workload.Unauthenticated, msg: "API tokens (asw_…) are not accepted"},
		{name: "query token off by default", a: both, target: "/v1/x/logs?access_token=" + apiTok, code: workload.Unauthenticated, msg: "not accepted here"},
		{name: "query token allowed", a: browser, target: "/v1/x/logs?access_token=" + apiTok, want: apiUser},
		{name: "query jwt allowed", a: browser, target: "/v1/x/exec/ws?access_token=" + jwt, want: oidcUser},
		{name: "query token only for GET", a: browser, method: "POST", target: "/v1/x/stop?access_token=" + apiTok, code: workload.Unauthenticated, msg: "not accepted here"},
		{name: "query token twice", a: browser, target: "/v1/x?access_token=" + apiTok + "&access_token=" + apiTok, code: workload.Unauthenticated, msg: "exactly once"},
		{name: "query token empty", a: browser, target: "/v1/x?access_token=", code: workload.Unauthenticated, msg: "exactly once"},
		{name: "header and query", a: browser, target: "/v1/x?access_token=" + apiTok, headers: []string{"Bearer " + apiTok}, code: workload.Unauthenticated, msg: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodGet
			}
			if target == "" {
				target = "/v1/whoami"
			}
			r := httptest.NewRequest(method, target, nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			p, err := tt.a.Authenticate(r)
			wantCode(t, err, tt.code)
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("error %q does not contain %q", err, tt.msg)
				}
				noSecret(t, err.Error(), apiTok)
				if strings.Contains(err.Error(), strings.Split(jwt, ".")[1][:16]) || strings.Contains(err.Error(), "YWxpY2U6") {
					t.Fatalf("error %q echoes a credential", err)
				}
				return
			}
			if !principalIs(p, tt.want) {
				t.Fatalf("principal %+v; want %+v", p, tt.want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/x/logs?access_token=asw_secret&follow=1", "/v1/x/logs?access_token=REDACTED&follow=1"},
		{"/v1/x/logs?follow=1", "/v1/x/logs?follow=1"},
		{"/v1/x", "/v1/x"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := RedactURL(u); got != tt.want {
			t.Errorf("RedactURL(%s) = %s; want %s", tt.in, got, tt.want)
		}
		if u.String() != tt.in {
			t.Errorf("RedactURL modified its argument")
		}
	}
	if RedactURL(nil) != "" {
		t.Error("RedactURL(nil)")
	}
}

// TestOIDCLookingLocalTokenRefused: a local token created (before names
// were restricted) for a user "oidc:<issuer>#<subject>" does not
// authenticate: its rows would pass for that OIDC identity's (issue 21.1).
func TestOIDCLookingLocalTokenRefused(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "store_v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `"user": "ci-bot"`, `"user": "oidc:https://idp.example#admin"`, 1))
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := OpenTokenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/whoami", nil)
	r.Header.Set("Authorization", "Bearer "+TestdataToken)
	_, err = (&Authenticator{Tokens: store}).Authenticate(r)
	wantCode(t, err, workload.Unauthenticated)
	if !strings.Contains(err.Error(), "looks like an OIDC principal") {
		t.Fatalf("error %v", err)
	}
}
