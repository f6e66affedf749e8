package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// OIDCConfig configures one OIDC issuer whose JWTs are accepted.
type OIDCConfig struct {
	// Issuer is the issuer URL, exactly as it appears in the tokens' "iss"
	// claim and in the discovery document (mind trailing slashes: Auth0's
	// issuers end in "/"). It must be https, or http on a loopback host.
	Issuer string
	// Audience must be one of the tokens' "aud" values: the API identifier
	// (Auth0) or client id the tokens are issued for.
	Audience string
	// RolesClaim names the top-level claim holding the caller's roles,
	// matched exactly: "https://alphaswarm.io/roles" is one claim name,
	// never a path. Default "roles" (unless RolesClaimPath is set). The
	// claim may be a string or an array of strings; role names are matched
	// case-insensitively, unknown names are ignored and the highest known
	// role wins.
	RolesClaim string
	// RolesClaimPath, instead of RolesClaim, follows nested objects, one
	// exact key per element: ["realm_access", "roles"] (Keycloak).
	RolesClaimPath []string
	// UserClaim names the claim that identifies the caller (with the
	// issuer, it becomes Principal.User); default "sub". With "email", a
	// token whose "email_verified" is false is refused.
	UserClaim string
	// DefaultRole is given to a verified identity whose roles claim holds no
	// known role. Empty (the default): such a caller has no role.
	DefaultRole Role
	// Grants give roles by matching claims, on every target or on some
	// (a CI provider's token for one repository and environment may
	// operate one target). They add to the roles claim; the highest role
	// per target wins.
	Grants []Grant
	// HTTPClient fetches the discovery document and the JWKS; default
	// http.DefaultClient's transport. Each fetch is bounded by FetchTimeout.
	HTTPClient *http.Client
	// FetchTimeout bounds each discovery or JWKS fetch; default 5s.
	FetchTimeout time.Duration
	// KeyRefresh is the longest fetched signing keys are used without
	// fetching the JWKS again; default 5m. A key the issuer withdraws stops
	// verifying at most KeyRefresh after its withdrawal, as long as the
	// issuer can be reached (while it cannot, the keys last fetched stay
	// in use up to MaxKeyAge).
	KeyRefresh time.Duration
	// MaxKeyAge bounds how long keys are used while the JWKS cannot be
	// fetched again; default 1h (KeyRefresh if longer), at least
	// KeyRefresh. Past it, tokens are
	// Unavailable: a key withdrawn during an outage stops verifying at
	// most MaxKeyAge after it was last fetched.
	MaxKeyAge time.Duration
	// MinRefetch is the shortest time between two JWKS fetches caused by
	// tokens naming a key id that is not known; default 10s. Concurrent
	// fetches are always merged into one.
	MinRefetch time.Duration
	// MaxTokenLifetime refuses tokens whose exp is further than this after
	// their iat (after now when there is no iat); default 24h.
	MaxTokenLifetime time.Duration
	// ClockSkew is the tolerance for nbf and iat in the future; default 5m.
	ClockSkew time.Duration
	// DiscoveryRetry is the longest wait between two discovery attempts
	// while the issuer cannot be discovered; default 30s (attempts start at
	// 1s apart and double).
	DiscoveryRetry time.Duration
	// Logger reports discovery failures and recoveries; default
	// slog.Default().
	Logger *slog.Logger
}

// Grant gives Role to every token of the issuer whose claims match Claims:
// each named claim must be a string equal to the value, or an array of
// strings holding it. Targets limits the grant to those targets; empty
// means every target.
type Grant struct {
	Claims  map[string]string
	Role    Role
	Targets []string
}

// OIDC verifies JWTs issued by one OpenID Connect issuer.
//
// The discovery document is fetched at NewOIDC and, if the issuer cannot be
// reached, again in the background until it can (local tokens work in the
// meantime; OIDC tokens are answered Unavailable). Signing keys come from
// the issuer's jwks_uri (keys.go). A token must be a compact JWS with one
// signature, by a published key, with an asymmetric algorithm the issuer
// advertises (never "none", never HMAC; go-jose checks the signature); its
// claims must name the configured issuer and the audience, and carry
// numeric dates: an exp in the future, an nbf and iat no further than
// ClockSkew in the future, and a lifetime (exp − iat) of at most
// MaxTokenLifetime.
type OIDC struct {
	cfg    OIDCConfig
	log    *slog.Logger
	now    func() time.Time
	keys   *keySet
	stop   context.CancelFunc
	looped chan struct{} // closed when the discovery loop has ended
}

// NewOIDC checks cfg and starts verifying tokens of its issuer. A bad
// configuration is an InvalidArgument error. An issuer that cannot be
// discovered is not an error: discovery is retried in the background until
// ctx ends or Close is called, and Status reports it.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	o := &OIDC{cfg: cfg, log: cfg.Logger, now: time.Now, looped: make(chan struct{})}
	o.keys = newKeySet(cfg, func() time.Time { return o.now() })
	var lctx context.Context
	lctx, o.stop = context.WithCancel(context.WithoutCancel(ctx))
	if err := o.keys.discover(lctx); err != nil {
		o.log.Warn("OIDC issuer cannot be discovered; retrying in the background (its tokens are answered unavailable until then)",
			"issuer", cfg.Issuer, "err", err)
		go o.discoverLoop(ctx, lctx)
	} else {
		close(o.looped)
	}
	return o, nil
}

// fill checks the configuration and fills in defaults.
func (cfg *OIDCConfig) fill() error {
	if cfg.RolesClaim == "" && len(cfg.RolesClaimPath) == 0 {
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
	if cfg.RolesClaim != "" && len(cfg.RolesClaimPath) > 0 {
		fields = append(fields, workload.FieldError{Path: "rolesClaimPath", Message: "set rolesClaim or rolesClaimPath, not both"})
	}
	if slices.Contains(cfg.RolesClaimPath, "") {
		fields = append(fields, workload.FieldError{Path: "rolesClaimPath", Message: "must not hold an empty key"})
	}
	if cfg.DefaultRole != "" && !cfg.DefaultRole.Valid() {
		fields = append(fields, workload.FieldError{Path: "defaultRole", Message: "must be empty or one of viewer, operator, admin"})
	}
	for i, g := range cfg.Grants {
		p := fmt.Sprintf("grants[%d]", i)
		if len(g.Claims) == 0 {
			fields = append(fields, workload.FieldError{Path: p + ".claims", Message: "must name at least one claim"})
		}
		if !g.Role.Valid() {
			fields = append(fields, workload.FieldError{Path: p + ".role", Message: "must be one of viewer, operator, admin"})
		}
		for j, t := range g.Targets {
			if m := workload.ValidateName(t); m != "" {
				fields = append(fields, workload.FieldError{Path: fmt.Sprintf("%s.targets[%d]", p, j), Message: m})
			}
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"fetchTimeout", &cfg.FetchTimeout, 5 * time.Second},
		{"keyRefresh", &cfg.KeyRefresh, 5 * time.Minute},
		{"minRefetch", &cfg.MinRefetch, 10 * time.Second},
		{"maxTokenLifetime", &cfg.MaxTokenLifetime, 24 * time.Hour},
		{"clockSkew", &cfg.ClockSkew, 5 * time.Minute},
		{"discoveryRetry", &cfg.DiscoveryRetry, 30 * time.Second},
	} {
		switch {
		case *d.v < 0:
			fields = append(fields, workload.FieldError{Path: d.name, Message: "must not be negative"})
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case cfg.MaxKeyAge < 0:
		fields = append(fields, workload.FieldError{Path: "maxKeyAge", Message: "must not be negative"})
	case cfg.MaxKeyAge == 0:
		cfg.MaxKeyAge = max(time.Hour, cfg.KeyRefresh)
	}
	if cfg.MaxKeyAge < cfg.KeyRefresh {
		fields = append(fields, workload.FieldError{Path: "maxKeyAge", Message: "must be at least keyRefresh"})
	}
	if len(fields) > 0 {
		return workload.Invalid(fields...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

// discoverLoop retries discovery with doubling waits up to DiscoveryRetry.
func (o *OIDC) discoverLoop(parent, ctx context.Context) {
	defer close(o.looped)
	wait := time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-parent.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if o.keys.discovered() {
			return // a request discovered it
		}
		if err := o.keys.discover(ctx); err == nil {
			o.log.Info("OIDC issuer discovered", "issuer", o.cfg.Issuer)
			return
		}
		wait = min(2*wait, o.cfg.DiscoveryRetry)
	}
}

// Close stops background discovery.
func (o *OIDC) Close() {
	o.stop()
	<-o.looped
}

func issuerProblem(issuer string) string {
	if issuer == "" {
		return "is required"
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "must be an absolute URL"
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(issuer, "#") {
		return "must not have a query or fragment (OpenID Connect Discovery 1.0 §2)"
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

// Status is an issuer's state, for /readyz and metrics.
type Status struct {
	Issuer string `json:"issuer"`
	// State is "ok" (keys fetched), "discovering" (the discovery document
	// could not be fetched yet) or "keys_unavailable" (the last JWKS fetch
	// failed).
	State string `json:"state"`
	// KeysFetched is when the JWKS was last fetched successfully.
	KeysFetched time.Time `json:"keysFetched,omitzero"`
	// JWKSFetches counts JWKS fetch attempts.
	JWKSFetches int64 `json:"jwksFetches"`
	// Error is the last discovery or JWKS error.
	Error string `json:"error,omitempty"`
}

// Status reports the issuer's state.
func (o *OIDC) Status() Status { return o.keys.status() }

// PrincipalID is the Principal.User of an OIDC identity: the issuer and
// the user claim's value, which no local user name can look like (local
// names hold neither ':' nor '@'; an issuer URL has no '#').
func PrincipalID(issuer, subject string) string { return "oidc:" + issuer + "#" + subject }

// Authenticate verifies rawJWT and returns its principal: User from the
// issuer and user claim (PrincipalID), Name from the email or name claim,
// Role the highest known role in the roles claim, DefaultRole or a
// target-independent grant, TargetRoles the grants limited to targets.
//
// A token that fails verification, or whose user claim is not usable, is
// an Unauthenticated error. A token that cannot be checked because the
// issuer cannot be discovered or its keys cannot be fetched is Unavailable
// (retryable). A verified token that grants no role is not an error: the
// principal has no role, and the caller's role check refuses it (and
// audits the refusal) like any other. Error messages never include the
// token; the underlying cause is kept as Err, which is never serialised.
func (o *OIDC) Authenticate(ctx context.Context, rawJWT string) (control.Principal, error) {
	payload, err := o.keys.verify(ctx, rawJWT)
	if err != nil {
		return control.Principal{}, err
	}
	claims, err := o.checkClaims(payload)
	if err != nil {
		return control.Principal{}, err
	}
	user, _ := claims[o.cfg.UserClaim].(string)
	if m := userProblem(user); m != "" {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "OIDC token claim %q is not a usable user name: %s", o.cfg.UserClaim, m)
	}
	verified, hasVerified := claims["email_verified"]
	emailOK := !hasVerified || verified == true || verified == "true"
	if o.cfg.UserClaim == "email" && !emailOK {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "OIDC token email is not verified")
	}
	p := control.Principal{User: PrincipalID(o.cfg.Issuer, user), Auth: "oidc:" + o.cfg.Issuer}
	if email, _ := claims["email"].(string); emailOK && userProblem(email) == "" {
		p.Name = email
	} else if name, _ := claims["name"].(string); displayProblem(name) == "" {
		p.Name = name
	}
	var rolesClaim any
	if len(o.cfg.RolesClaimPath) > 0 {
		rolesClaim = lookupPath(claims, o.cfg.RolesClaimPath)
	} else {
		rolesClaim = claims[o.cfg.RolesClaim]
	}
	role, ok := highest(roleNames(rolesClaim))
	if !ok {
		role = o.cfg.DefaultRole
	}
	for _, g := range o.cfg.Grants {
		if !g.matches(claims) {
			continue
		}
		if len(g.Targets) == 0 {
			if g.Role.rank() > role.rank() {
				role = g.Role
			}
			continue
		}
		for _, t := range g.Targets {
			if cur := Role(p.TargetRoles[t]); g.Role.rank() > cur.rank() {
				if p.TargetRoles == nil {
					p.TargetRoles = map[string]string{}
				}
				p.TargetRoles[t] = string(g.Role)
			}
		}
	}
	p.Role = string(role)
	return p, nil
}

// matches reports whether every claim g names holds its value.
func (g Grant) matches(claims map[string]any) bool {
	for name, want := range g.Claims {
		switch v := claims[name].(type) {
		case string:
			if v != want {
				return false
			}
		case []any:
			if !slices.Contains(v, any(want)) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// checkClaims decodes the verified payload and checks issuer, audience and
// dates.
func (o *OIDC) checkClaims(payload []byte) (map[string]any, error) {
	bad := func(format string, args ...any) error {
		return workload.Errorf(workload.Unauthenticated, "OIDC token "+format, args...)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, bad("claims are not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, bad("claims are not a JSON object")
	}
	if iss, _ := claims["iss"].(string); iss != o.cfg.Issuer {
		return nil, bad("is from another issuer")
	}
	switch aud := claims["aud"].(type) {
	case string:
		if aud != o.cfg.Audience {
			return nil, bad("is not for this API (audience mismatch)")
		}
	case []any:
		if !slices.Contains(aud, any(o.cfg.Audience)) {
			return nil, bad("is not for this API (audience mismatch)")
		}
	default:
		return nil, bad("is not for this API (audience mismatch)")
	}
	now := o.now()
	date := func(name string) (time.Time, bool, error) {
		v, ok := claims[name]
		if !ok {
			return time.Time{}, false, nil
		}
		n, isNum := v.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
			return time.Time{}, true, bad("claim %q is not a NumericDate (a JSON number of seconds, RFC 7519 §2)", name)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true, nil
	}
	exp, hasExp, err := date("exp")
	if err != nil {
		return nil, err
	}
	if !hasExp {
		return nil, bad("has no exp (expiry) claim")
	}
	if !now.Before(exp) {
		return nil, bad("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, hasNbf, err := date("nbf")
	if err != nil {
		return nil, err
	}
	if hasNbf && nbf.After(now.Add(o.cfg.ClockSkew)) {
		return nil, bad("is not valid yet (nbf is %s)", nbf.UTC().Format(time.RFC3339))
	}
	iat, hasIat, err := date("iat")
	if err != nil {
		return nil, err
	}
	if hasIat && iat.After(now.Add(o.cfg.ClockSkew)) {
		return nil, bad("was issued in the future (iat is %s)", iat.UTC().Format(time.RFC3339))
	}
	from := now
	if hasIat {
		from = iat
	}
	if exp.Sub(from) > o.cfg.MaxTokenLifetime {
		return nil, bad("lives longer than this server accepts (at most %s from iat to exp)", o.cfg.MaxTokenLifetime)
	}
	return claims, nil
}

// lookupPath follows path (exact keys) into nested objects.
func lookupPath(claims map[string]any, path []string) any {
	var cur any = claims
	for _, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[key]; !ok {
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

// discoveryDoc is what is read from the discovery document.
type discoveryDoc struct {
	JWKSURI string   `json:"jwks_uri"`
	Algs    []string `json:"id_token_signing_alg_values_supported"`
}

// fetchDiscovery fetches and checks the discovery document with go-oidc
// (which refuses a document naming another issuer).
func fetchDiscovery(ctx context.Context, cfg OIDCConfig) (discoveryDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.FetchTimeout)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return discoveryDoc{}, err
	}
	var d discoveryDoc
	if err := provider.Claims(&d); err != nil {
		return discoveryDoc{}, err
	}
	if d.JWKSURI == "" {
		return discoveryDoc{}, errors.New("the discovery document has no jwks_uri")
	}
	return d, nil
}
