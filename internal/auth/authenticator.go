package auth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// QueryTokenParam is the query parameter a browser's EventSource or
// WebSocket may carry its token in, when Authenticator.AllowQueryToken is
// set.
const QueryTokenParam = "access_token"

// Authenticator identifies the caller of an HTTP request from a bearer
// token: an "asw_" token is looked up in Tokens, a JWT (three dot-separated
// parts) is verified by the OIDC issuer its "iss" claim names (OIDC or one
// of Issuers). Tokens may be nil, and OIDC and Issuers empty, to disable
// that kind.
type Authenticator struct {
	Tokens *TokenStore
	OIDC   *OIDC
	// Issuers are further OIDC issuers (CI providers, other identity
	// providers), each with its own audience and role mapping.
	Issuers []*OIDC
	// AllowQueryToken also accepts the token in the access_token query
	// parameter of GET requests, for browser EventSource and WebSocket
	// clients, which cannot set headers. Off by default: URLs end up in
	// access logs, proxies and browser history, so whoever logs a request
	// URL must redact it (RedactURL).
	AllowQueryToken bool
}

// Authenticate returns the caller of r. Every failure is an
// Unauthenticated error, or Unavailable when an OIDC issuer's keys cannot
// be fetched (see OIDC.Authenticate); no error contains the token. A
// verified identity without a role is returned with Role "" for the
// caller's role check to refuse.
func (a *Authenticator) Authenticate(r *http.Request) (control.Principal, error) {
	token, err := a.bearer(r)
	if err != nil {
		return control.Principal{}, err
	}
	switch {
	case strings.HasPrefix(token, TokenPrefix):
		if a.Tokens == nil {
			return control.Principal{}, workload.Errorf(workload.Unauthenticated, "API tokens (asw_…) are not accepted by this server")
		}
		p, err := a.Tokens.Authenticate(token)
		if err == nil && strings.HasPrefix(p.User, "oidc:") {
			// Created before local names were kept apart from OIDC
			// principals: it would be recorded as one.
			return control.Principal{}, workload.Errorf(workload.Unauthenticated,
				"API token %s names a user that looks like an OIDC principal; revoke it and create one with another name", strings.TrimPrefix(p.Auth, "token:"))
		}
		return p, err
	case strings.Count(token, ".") == 2:
		o, err := a.issuerOf(token)
		if err != nil {
			return control.Principal{}, err
		}
		return o.Authenticate(r.Context(), token)
	}
	return control.Principal{}, workload.Errorf(workload.Unauthenticated, "bearer token is neither an API token (asw_…) nor a JWT")
}

// bearer extracts the token from the Authorization header or, if allowed,
// the access_token query parameter (RFC 6750 §2.1, §2.3; only one method
// per request).
func (a *Authenticator) bearer(r *http.Request) (string, error) {
	headers := r.Header.Values("Authorization")
	query, inQuery := r.URL.Query()[QueryTokenParam]
	switch {
	case len(headers) > 1:
		return "", workload.Errorf(workload.Unauthenticated, "more than one Authorization header")
	case len(headers) == 1 && inQuery:
		return "", workload.Errorf(workload.Unauthenticated, "send the token in the Authorization header or the %s parameter, not both", QueryTokenParam)
	case len(headers) == 1:
		scheme, token, _ := strings.Cut(strings.TrimSpace(headers[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			// Not echoed: a header without a scheme is the token itself.
			return "", workload.Errorf(workload.Unauthenticated, `unsupported Authorization scheme; send "Authorization: Bearer <token>"`)
		}
		if token = strings.TrimSpace(token); token == "" {
			return "", workload.Errorf(workload.Unauthenticated, `empty bearer token; send "Authorization: Bearer <token>"`)
		}
		return token, nil
	case inQuery:
		if !a.AllowQueryToken || r.Method != http.MethodGet {
			return "", workload.Errorf(workload.Unauthenticated, `the %s query parameter is not accepted here; send "Authorization: Bearer <token>"`, QueryTokenParam)
		}
		if len(query) != 1 || query[0] == "" {
			return "", workload.Errorf(workload.Unauthenticated, "%s must be given exactly once, non-empty", QueryTokenParam)
		}
		return query[0], nil
	}
	return "", workload.Errorf(workload.Unauthenticated, "authentication required: %s", a.how())
}

// how says how to authenticate to this server.
func (a *Authenticator) how() string {
	var kinds []string
	if a.Tokens != nil {
		kinds = append(kinds, "an API token (asw_…)")
	}
	for _, o := range a.AllIssuers() {
		kinds = append(kinds, "an OIDC access token from "+o.cfg.Issuer)
	}
	if len(kinds) == 0 {
		return "this server has no authentication method configured"
	}
	s := `send "Authorization: Bearer <token>" with ` + strings.Join(kinds, " or ")
	if a.AllowQueryToken {
		s += " (browser streams may use ?" + QueryTokenParam + "=<token> instead)"
	}
	return s
}

// AllIssuers returns OIDC and Issuers.
func (a *Authenticator) AllIssuers() []*OIDC {
	var out []*OIDC
	if a.OIDC != nil {
		out = append(out, a.OIDC)
	}
	for _, o := range a.Issuers {
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

// issuerOf picks the verifier for a JWT by its "iss" claim. The claim is
// read before any verification, only to choose the verifier; that
// verifier then checks the signature and the issuer again.
func (a *Authenticator) issuerOf(token string) (*OIDC, error) {
	all := a.AllIssuers()
	if len(all) == 0 {
		return nil, workload.Errorf(workload.Unauthenticated, "OIDC tokens are not accepted by this server")
	}
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var claims struct {
		Iss string `json:"iss"`
	}
	if err != nil || json.Unmarshal(b, &claims) != nil {
		return nil, workload.Errorf(workload.Unauthenticated, "OIDC token is malformed")
	}
	for _, o := range all {
		if o.cfg.Issuer == claims.Iss {
			return o, nil
		}
	}
	return nil, workload.Errorf(workload.Unauthenticated, "OIDC token is from an issuer this server does not accept")
}

// RedactURL returns u as a string with the access_token query parameter's
// value replaced, for logging.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	q := u.Query()
	if _, ok := q[QueryTokenParam]; !ok {
		return u.String()
	}
	c := *u
	q.Set(QueryTokenParam, "REDACTED")
	c.RawQuery = q.Encode()
	return c.String()
}
