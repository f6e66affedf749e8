package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// OIDCConfig configures OIDC JWT authentication.
type OIDCConfig struct {
	// Issuer is the issuer URL, exactly as it appears in the tokens' "iss"
	// claim and in the discovery document (mind trailing slashes: Auth0's
	// issuers end in "/"). It must be https, or http on a loopback host.
	Issuer string
	// Audience must be one of the tokens' "aud" values: the API identifier
	// (Auth0) or client id the tokens are issued for.
	Audience string
	// RolesClaim names the claim holding the caller's roles; default
	// "roles". It is looked up as a top-level claim first, so namespaced
	// claims such as "https://alphaswarm.io/roles" (Auth0) work as is; if
	// there is no such top-level claim, a dotted name is followed into
	// nested objects ("realm_access.roles", Keycloak). The claim may be a
	// string or an array of strings; names are matched case-insensitively,
	// unknown names are ignored and the highest known role wins.
	RolesClaim string
	// UserClaim names the claim that becomes Principal.User; default "sub".
	// With "email", a token whose "email_verified" is false is refused.
	UserClaim string
	// DefaultRole is given to a verified identity whose roles claim holds no
	// known role. Empty (the default) refuses such callers.
	DefaultRole Role
	// HTTPClient fetches the discovery document and the JWKS; default a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// KeyMaxAge bounds how long fetched signing keys are trusted without
	// re-fetching the JWKS; default 1h, negative: forever. go-oidc
	// re-fetches only when a token names a key id it does not know, so
	// without this a key the issuer has withdrawn (compromised) would stay
	// trusted for as long as no such token arrives.
	KeyMaxAge time.Duration
}

// OIDC verifies JWTs issued by one OpenID Connect issuer.
//
// Verification is go-oidc's: the discovery document is fetched once, at
// NewOIDC; signing keys come from the issuer's jwks_uri through go-oidc's
// RemoteKeySet, which caches them and re-fetches when a token names a key
// id it has not seen, so the issuer's key rotation needs no restart. A
// token must carry a valid signature by one of those keys, with an
// algorithm the issuer advertises (never "none", never HMAC), the
// configured issuer, the configured audience among its audiences, and an
// "exp" in the future ("nbf", if present, is honoured with go-oidc's
// 5-minute leeway). Keys are dropped and re-fetched after KeyMaxAge.
type OIDC struct {
	cfg      OIDCConfig
	provider *oidc.Provider
	now      func() time.Time // drives KeyMaxAge only (tests replace it)

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	since    time.Time // when verifier's key set was made
}

// NewOIDC discovers the issuer and returns a verifier for its tokens. A
// bad configuration is an InvalidArgument error; an issuer that cannot be
// discovered is Unavailable.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	var fields []workload.FieldError
	if m := issuerProblem(cfg.Issuer); m != "" {
		fields = append(fields, workload.FieldError{Path: "issuer", Message: m})
	}
	if cfg.Audience == "" {
		fields = append(fields, workload.FieldError{Path: "audience", Message: "is required"})
	}
	if cfg.DefaultRole != "" && !cfg.DefaultRole.Valid() {
		fields = append(fields, workload.FieldError{Path: "defaultRole", Message: "must be empty or one of viewer, operator, admin"})
	}
	if len(fields) > 0 {
		return nil, workload.Invalid(fields...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.KeyMaxAge == 0 {
		cfg.KeyMaxAge = time.Hour
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery for %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery for %s: no jwks_uri", cfg.Issuer)
	}
	o := &OIDC{cfg: cfg, provider: provider, now: time.Now}
	o.verifier, o.since = o.newVerifier(), o.now()
	return o, nil
}

// newVerifier returns a verifier with a new, empty remote key set: keys
// are fetched on its first use. The key set's context only carries the
// HTTP client: go-oidc ignores its cancellation, and each Authenticate's
// own context bounds the wait for keys.
func (o *OIDC) newVerifier() *oidc.IDTokenVerifier {
	keyCtx := oidc.ClientContext(context.Background(), o.cfg.HTTPClient)
	return o.provider.VerifierContext(keyCtx, &oidc.Config{ClientID: o.cfg.Audience})
}

// currentVerifier returns the verifier, replacing it (and so its cached
// keys) once they are older than KeyMaxAge.
func (o *OIDC) currentVerifier() *oidc.IDTokenVerifier {
	o.mu.Lock()
	defer o.mu.Unlock()
	if now := o.now(); o.cfg.KeyMaxAge > 0 && now.Sub(o.since) >= o.cfg.KeyMaxAge {
		o.verifier, o.since = o.newVerifier(), now
	}
	return o.verifier
}

func issuerProblem(issuer string) string {
	if issuer == "" {
		return "is required"
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "must be an absolute URL"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return ""
		}
	}
	return "must be https (http only on a loopback host)"
}

// Config returns the configuration, defaults filled in.
func (o *OIDC) Config() OIDCConfig { return o.cfg }

// Authenticate verifies rawJWT and returns its principal: User from the
// user claim, Role the highest known role in the roles claim (or
// DefaultRole).
//
// Every token that fails verification (malformed, unsigned or "none",
// signed by an unknown key, wrong issuer, wrong audience, expired) and
// every verified token without a usable user claim is an Unauthenticated
// error. A verified token that holds no known role (and no DefaultRole is
// configured) is PermissionDenied instead: the identity is proven, the
// caller just has no access, and a 403 tells them that re-authenticating
// will not help. Error messages never include the token; the verifier's
// own error is kept as the cause (Err), which is never serialised.
func (o *OIDC) Authenticate(ctx context.Context, rawJWT string) (control.Principal, error) {
	tok, err := o.currentVerifier().Verify(ctx, rawJWT)
	if err != nil {
		return control.Principal{}, &workload.Error{Code: workload.Unauthenticated, Message: verifyMessage(err), Err: err}
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return control.Principal{}, &workload.Error{Code: workload.Unauthenticated, Message: "OIDC token claims are not a JSON object", Err: err}
	}
	user, _ := claims[o.cfg.UserClaim].(string)
	if m := userProblem(user); m != "" {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "OIDC token claim %q is not a usable user name: %s", o.cfg.UserClaim, m)
	}
	if o.cfg.UserClaim == "email" {
		if v, ok := claims["email_verified"]; ok && v != true && v != "true" {
			return control.Principal{}, workload.Errorf(workload.Unauthenticated, "OIDC token email is not verified")
		}
	}
	role, ok := highest(roleNames(lookupClaim(claims, o.cfg.RolesClaim)))
	if !ok {
		if o.cfg.DefaultRole == "" {
			return control.Principal{}, workload.Errorf(workload.PermissionDenied,
				"%s has no role (viewer, operator or admin) in OIDC claim %q", user, o.cfg.RolesClaim)
		}
		role = o.cfg.DefaultRole
	}
	return control.Principal{User: user, Role: string(role)}, nil
}

// verifyMessage turns a go-oidc verification error into a message that is
// useful to the caller and holds nothing from the token.
func verifyMessage(err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return fmt.Sprintf("OIDC token expired at %s", exp.Expiry.UTC().Format(time.RFC3339))
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "audience"):
		return "OIDC token is not for this API (audience mismatch)"
	case strings.Contains(s, "different provider"):
		return "OIDC token is from another issuer"
	case strings.Contains(s, "malformed jwt"), strings.Contains(s, "not signed"), strings.Contains(s, "multiple signatures"):
		return "OIDC token is malformed, unsigned or uses an algorithm the issuer does not advertise"
	case strings.Contains(s, "signature"):
		return "OIDC token signature does not verify against the issuer's keys"
	case strings.Contains(s, "nbf"):
		return "OIDC token is not valid yet"
	}
	return "OIDC token is invalid"
}

// lookupClaim finds name in claims: as a top-level key first (namespaced
// URL claims contain dots and slashes), then as a dotted path into nested
// objects.
func lookupClaim(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// roleNames reads a roles claim: a string or an array (non-strings in it
// are ignored).
func roleNames(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
