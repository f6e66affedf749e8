package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

const testAudience = "https://api.alphaswarm.test"

// Test keys are generated once: RSA key generation is slow under -race.
var testKeys = sync.OnceValue(func() map[string]*rsa.PrivateKey {
	keys := map[string]*rsa.PrivateKey{}
	for _, kid := range []string{"k1", "k2", "rogue"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[kid] = k
	}
	return keys
})

// issuer is an OpenID provider served in-process: a discovery document and
// a JWKS endpoint whose keys can be swapped (rotation).
type issuer struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      map[string]*rsa.PrivateKey // kid → key, published in the JWKS
	claimed   string                     // issuer in the discovery document; "" = srv.URL
	jwksCalls atomic.Int32
}

func newIssuer(t *testing.T, kids ...string) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]*rsa.PrivateKey{}}
	is.publish(kids...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		iss := is.claimed
		is.mu.Unlock()
		if iss == "" {
			iss = is.srv.URL
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss,
			"authorization_endpoint":                is.srv.URL + "/authorize",
			"token_endpoint":                        is.srv.URL + "/token",
			"jwks_uri":                              is.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksCalls.Add(1)
		is.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// publish replaces the published keys.
func (is *issuer) publish(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = map[string]*rsa.PrivateKey{}
	for _, kid := range kids {
		is.keys[kid] = testKeys()[kid]
	}
}

func (is *issuer) oidc(t *testing.T, cfg OIDCConfig) *OIDC {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = is.srv.URL
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	cfg.HTTPClient = is.srv.Client()
	o, err := NewOIDC(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// claims returns valid claims for the issuer, with extra merged in (a nil
// value deletes a claim).
func (is *issuer) claims(extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": is.srv.URL,
		"aud": testAudience,
		"sub": "auth0|alice",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	maps.Copy(c, extra)
	for k, v := range c {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

// sign signs claims with RS256 under key kid, naming kid in the header.
func sign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	return signWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()[kid], KeyID: kid}}, claims)
}

func signWith(t *testing.T, key jose.SigningKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds an "alg": "none" JWT.
func unsigned(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": "k1"})
	p, _ := json.Marshal(claims)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

func TestOIDCAuthenticate(t *testing.T) {
	is := newIssuer(t, "k1")
	plain := is.oidc(t, OIDCConfig{})
	namespaced := is.oidc(t, OIDCConfig{RolesClaim: "https://alphaswarm.io/roles"})
	nested := is.oidc(t, OIDCConfig{RolesClaim: "realm_access.roles"})
	byEmail := is.oidc(t, OIDCConfig{UserClaim: "email"})
	withDefault := is.oidc(t, OIDCConfig{DefaultRole: RoleViewer})

	hmacKey := jose.SigningKey{Algorithm: jose.HS256, Key: []byte("the-rsa-public-key-as-an-hmac-secret")}
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		var c map[string]any
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(b, &c)
		c["roles"] = []string{"admin"}
		b, _ = json.Marshal(c)
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}

	tests := []struct {
		name  string
		o     *OIDC
		token string
		want  control.Principal
		code  workload.Code
		msg   string // in the error message
	}{
		{name: "roles array", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": []string{"viewer", "operator"}})),
			want:  control.Principal{User: "auth0|alice", Role: "operator"}},
		{name: "roles string", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "admin"})),
			want:  control.Principal{User: "auth0|alice", Role: "admin"}},
		{name: "namespaced array, highest wins, unknown ignored", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"https://alphaswarm.io/roles": []any{"viewer", "billing", 7, "Admin", "operator"}})),
			want:  control.Principal{User: "auth0|alice", Role: "admin"}},
		{name: "namespaced string", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"https://alphaswarm.io/roles": "operator"})),
			want:  control.Principal{User: "auth0|alice", Role: "operator"}},
		{name: "namespaced config ignores plain roles", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"roles": []string{"admin"}})),
			code:  workload.PermissionDenied, msg: "https://alphaswarm.io/roles"},
		{name: "nested claim path", o: nested,
			token: sign(t, "k1", is.claims(map[string]any{"realm_access": map[string]any{"roles": []string{"offline_access", "operator"}}})),
			want:  control.Principal{User: "auth0|alice", Role: "operator"}},
		{name: "audience array", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"aud": []string{"other", testAudience}, "roles": "viewer"})),
			want:  control.Principal{User: "auth0|alice", Role: "viewer"}},
		{name: "user from email", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"email": "alice@example.com", "email_verified": true, "roles": "viewer"})),
			want:  control.Principal{User: "alice@example.com", Role: "viewer"}},
		{name: "email not verified", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"email": "alice@example.com", "email_verified": false, "roles": "viewer"})),
			code:  workload.Unauthenticated, msg: "not verified"},
		{name: "email missing", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "viewer"})),
			code:  workload.Unauthenticated, msg: `"email"`},
		{name: "no role", o: plain,
			token: sign(t, "k1", is.claims(nil)),
			code:  workload.PermissionDenied, msg: "no role"},
		{name: "only unknown roles", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": []string{"root", "superuser"}})),
			code:  workload.PermissionDenied},
		{name: "roles of the wrong type", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": map[string]any{"admin": true}})),
			code:  workload.PermissionDenied},
		{name: "default role", o: withDefault,
			token: sign(t, "k1", is.claims(nil)),
			want:  control.Principal{User: "auth0|alice", Role: "viewer"}},
		{name: "default role does not cap a higher role", o: withDefault,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "admin"})),
			want:  control.Principal{User: "auth0|alice", Role: "admin"}},
		{name: "no sub", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"sub": nil, "roles": "admin"})),
			code:  workload.Unauthenticated, msg: `"sub"`},
		{name: "sub with space", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"sub": "alice smith", "roles": "admin"})),
			code:  workload.Unauthenticated},
		{name: "expired", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "expired"},
		{name: "no exp", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": nil, "roles": "admin"})),
			code:  workload.Unauthenticated},
		{name: "not yet valid", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "not valid yet"},
		{name: "wrong audience", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"aud": "https://other.api", "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "audience"},
		{name: "no audience", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"aud": nil, "roles": "admin"})),
			code:  workload.Unauthenticated},
		{name: "wrong issuer", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"iss": "https://evil.example", "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "issuer"},
		{name: "alg none", o: plain,
			token: unsigned(t, is.claims(map[string]any{"roles": "admin"})),
			code:  workload.Unauthenticated, msg: "malformed, unsigned"},
		{name: "HS256 (alg confusion)", o: plain,
			token: signWith(t, hmacKey, is.claims(map[string]any{"roles": "admin"})),
			code:  workload.Unauthenticated},
		{name: "unknown key, unknown kid", o: plain,
			token: sign(t, "rogue", is.claims(map[string]any{"roles": "admin"})),
			code:  workload.Unauthenticated, msg: "signature"},
		{name: "unknown key posing as a known kid", o: plain,
			token: signWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()["rogue"], KeyID: "k1"}}, is.claims(map[string]any{"roles": "admin"})),
			code:  workload.Unauthenticated, msg: "signature"},
		{name: "tampered payload", o: plain,
			token: tamper(sign(t, "k1", is.claims(map[string]any{"roles": "viewer"}))),
			code:  workload.Unauthenticated, msg: "signature"},
		{name: "garbage", o: plain, token: "a.b.c", code: workload.Unauthenticated},
		{name: "empty", o: plain, token: "", code: workload.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.o.Authenticate(context.Background(), tt.token)
			wantCode(t, err, tt.code)
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("error %q does not contain %q", err, tt.msg)
				}
				// Neither the token nor any of its segments is echoed.
				for _, seg := range strings.Split(tt.token, ".") {
					if len(seg) >= 8 && strings.Contains(err.Error(), seg[:8]) {
						t.Fatalf("error %q echoes the token", err)
					}
				}
				return
			}
			if p != tt.want {
				t.Fatalf("principal %+v; want %+v", p, tt.want)
			}
		})
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{KeyMaxAge: time.Hour})
	clock := time.Now()
	o.now = func() time.Time { return clock }
	ctx := context.Background()
	claims := is.claims(map[string]any{"roles": "operator"})
	old := sign(t, "k1", claims)
	if _, err := o.Authenticate(ctx, old); err != nil {
		t.Fatal(err)
	}
	calls := is.jwksCalls.Load()
	if _, err := o.Authenticate(ctx, old); err != nil {
		t.Fatal(err)
	}
	if is.jwksCalls.Load() != calls {
		t.Fatal("a known key was fetched again (keys are not cached)")
	}

	// The issuer rotates: k2 is published, k1 is withdrawn. A token signed
	// by k2 verifies without restarting anything: go-oidc re-fetches the
	// JWKS when a token names a key id it has not seen.
	//
	// go-oidc hands a verification that arrives while a key fetch is just
	// finishing that fetch's result, so a token with the new kid can fail
	// once right after a fetch; the next attempt fetches again. Hence the
	// retry.
	is.publish("k2")
	p, err := eventually(o, sign(t, "k2", claims))
	if err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if p.Role != "operator" {
		t.Fatalf("principal %+v", p)
	}
	if is.jwksCalls.Load() <= calls {
		t.Fatal("JWKS was not re-fetched")
	}

	// The withdrawn key stops verifying at the latest after KeyMaxAge.
	clock = clock.Add(time.Hour)
	_, err = o.Authenticate(ctx, old)
	wantCode(t, err, workload.Unauthenticated)

	// Overlap: both keys published, both verify.
	is.publish("k1", "k2")
	for _, kid := range []string{"k1", "k2"} {
		if _, err := eventually(o, sign(t, kid, claims)); err != nil {
			t.Fatalf("%s during overlap: %v", kid, err)
		}
	}
}

// eventually authenticates tok, retrying for a while: see the comment in
// TestOIDCKeyRotation.
func eventually(o *OIDC, tok string) (p control.Principal, err error) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, err = o.Authenticate(context.Background(), tok); err == nil || time.Now().After(deadline) {
			return p, err
		}
	}
}

func TestOIDCConcurrent(t *testing.T) {
	is := newIssuer(t, "k1", "k2")
	o := is.oidc(t, OIDCConfig{})
	toks := []string{
		sign(t, "k1", is.claims(map[string]any{"roles": "viewer"})),
		sign(t, "k2", is.claims(map[string]any{"roles": "viewer"})),
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := o.Authenticate(context.Background(), toks[i%2]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestNewOIDC(t *testing.T) {
	is := newIssuer(t, "k1")
	tests := []struct {
		name string
		cfg  OIDCConfig
		code workload.Code
		msg  string
	}{
		{"ok", OIDCConfig{Issuer: is.srv.URL, Audience: testAudience}, "", ""},
		{"no issuer", OIDCConfig{Audience: testAudience}, workload.InvalidArgument, "issuer"},
		{"no audience", OIDCConfig{Issuer: is.srv.URL}, workload.InvalidArgument, "audience"},
		{"relative issuer", OIDCConfig{Issuer: "issuer.example", Audience: "a"}, workload.InvalidArgument, "issuer"},
		{"plain http issuer", OIDCConfig{Issuer: "http://idp.example.com", Audience: "a"}, workload.InvalidArgument, "https"},
		{"bad default role", OIDCConfig{Issuer: is.srv.URL, Audience: "a", DefaultRole: "root"}, workload.InvalidArgument, "defaultRole"},
		{"issuer mismatch (trailing slash)", OIDCConfig{Issuer: is.srv.URL + "/", Audience: "a"}, workload.Unavailable, "did not match"},
		{"no discovery document", OIDCConfig{Issuer: is.srv.URL + "/tenant", Audience: "a"}, workload.Unavailable, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.HTTPClient = is.srv.Client()
			o, err := NewOIDC(context.Background(), tt.cfg)
			wantCode(t, err, tt.code)
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("error %q does not contain %q", err, tt.msg)
				}
				return
			}
			if c := o.Config(); c.RolesClaim != "roles" || c.UserClaim != "sub" || c.KeyMaxAge != time.Hour {
				t.Fatalf("defaults not filled in: %+v", c)
			}
		})
	}

	// The discovery document names another issuer.
	is.mu.Lock()
	is.claimed = "https://evil.example"
	is.mu.Unlock()
	_, err := NewOIDC(context.Background(), OIDCConfig{Issuer: is.srv.URL, Audience: "a", HTTPClient: is.srv.Client()})
	wantCode(t, err, workload.Unavailable)
}
