package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
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
	discCalls atomic.Int32
	// jwksMode: 0 serves the keys, 1 answers 500, 2 hangs until the
	// request ends.
	jwksMode atomic.Int32
	release  chan struct{} // closed at cleanup: hanging JWKS requests end
}

func newIssuer(t testing.TB, kids ...string) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]*rsa.PrivateKey{}}
	is.publish(kids...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.discCalls.Add(1)
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
		switch is.jwksMode.Load() {
		case 1:
			http.Error(w, "down", http.StatusInternalServerError)
			return
		case 2:
			select {
			case <-r.Context().Done():
			case <-is.release:
			}
			return
		}
		is.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/openid-configuration") {
			is.discCalls.Add(1) // a discovery attempt at another path
		}
		http.NotFound(w, r)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.release = make(chan struct{})
	t.Cleanup(func() { close(is.release) }) // runs before Close: hanging requests end
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
	t.Cleanup(o.Close)
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
func sign(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	return signWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()[kid], KeyID: kid}}, claims)
}

func signWith(t testing.TB, key jose.SigningKey, claims map[string]any) string {
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
	nested := is.oidc(t, OIDCConfig{RolesClaimPath: []string{"realm_access", "roles"}})
	dotted := is.oidc(t, OIDCConfig{RolesClaim: "realm_access.roles"})
	short := is.oidc(t, OIDCConfig{MaxTokenLifetime: 2 * time.Hour})
	alice := func(role string) control.Principal {
		return control.Principal{User: PrincipalID(is.srv.URL, "auth0|alice"), Auth: "oidc:" + is.srv.URL, Role: role}
	}
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
			want:  alice("operator")},
		{name: "roles string", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "admin"})),
			want:  alice("admin")},
		{name: "namespaced array, highest wins, unknown ignored", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"https://alphaswarm.io/roles": []any{"viewer", "billing", 7, "Admin", "operator"}})),
			want:  alice("admin")},
		{name: "namespaced string", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"https://alphaswarm.io/roles": "operator"})),
			want:  alice("operator")},
		{name: "namespaced config ignores plain roles", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"roles": []string{"admin"}})),
			want:  alice("")},
		// Issue 21.6: a claim name is matched exactly, never as a path.
		{name: "namespaced name is not a path", o: namespaced,
			token: sign(t, "k1", is.claims(map[string]any{"https://alphaswarm": map[string]any{"io/roles": "admin"}})),
			want:  alice("")},
		{name: "dotted rolesClaim is one name", o: dotted,
			token: sign(t, "k1", is.claims(map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}})),
			want:  alice("")},
		{name: "dotted rolesClaim matches the literal name", o: dotted,
			token: sign(t, "k1", is.claims(map[string]any{"realm_access.roles": "operator"})),
			want:  alice("operator")},
		{name: "path ignores a literal dotted name", o: nested,
			token: sign(t, "k1", is.claims(map[string]any{"realm_access.roles": "admin"})),
			want:  alice("")},
		{name: "display name from email", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"email": "alice@example.com", "roles": "viewer"})),
			want:  control.Principal{User: PrincipalID(is.srv.URL, "auth0|alice"), Name: "alice@example.com", Role: "viewer"}},
		{name: "display name from name", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"name": "Alice Smith", "email": "alice@example.com", "email_verified": false, "roles": "viewer"})),
			want:  control.Principal{User: PrincipalID(is.srv.URL, "auth0|alice"), Name: "Alice Smith", Role: "viewer"}},
		{name: "nested claim path", o: nested,
			token: sign(t, "k1", is.claims(map[string]any{"realm_access": map[string]any{"roles": []string{"offline_access", "operator"}}})),
			want:  alice("operator")},
		{name: "audience array", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"aud": []string{"other", testAudience}, "roles": "viewer"})),
			want:  alice("viewer")},
		{name: "user from email", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"email": "alice@example.com", "email_verified": true, "roles": "viewer"})),
			want:  control.Principal{User: PrincipalID(is.srv.URL, "alice@example.com"), Name: "alice@example.com", Role: "viewer"}},
		{name: "email not verified", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"email": "alice@example.com", "email_verified": false, "roles": "viewer"})),
			code:  workload.Unauthenticated, msg: "not verified"},
		{name: "email missing", o: byEmail,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "viewer"})),
			code:  workload.Unauthenticated, msg: `"email"`},
		// Issue 21.2: no role is a principal without a role (the route's role
		// check refuses and audits it), not an error here.
		{name: "no role", o: plain,
			token: sign(t, "k1", is.claims(nil)),
			want:  alice("")},
		{name: "only unknown roles", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": []string{"root", "superuser"}})),
			want:  alice("")},
		{name: "roles of the wrong type", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"roles": map[string]any{"admin": true}})),
			want:  alice("")},
		{name: "default role", o: withDefault,
			token: sign(t, "k1", is.claims(nil)),
			want:  alice("viewer")},
		{name: "default role does not cap a higher role", o: withDefault,
			token: sign(t, "k1", is.claims(map[string]any{"roles": "admin"})),
			want:  alice("admin")},
		{name: "no sub", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"sub": nil, "roles": "admin"})),
			code:  workload.Unauthenticated, msg: `"sub"`},
		{name: "sub with space", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"sub": "alice smith", "roles": "admin"})),
			code:  workload.Unauthenticated},
		{name: "expired", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "expired"},
		// Issue 21.3: dates.
		{name: "no exp", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": nil, "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "no exp"},
		{name: "exp as a string", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": "9999999999", "roles": "admin"})),
			code:  workload.Unauthenticated, msg: `"exp" is not a NumericDate`},
		{name: "iat as a string", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"iat": fmt.Sprint(time.Now().Unix()), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: `"iat" is not a NumericDate`},
		{name: "nbf as a string", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"nbf": fmt.Sprint(time.Now().Unix()), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: `"nbf" is not a NumericDate`},
		{name: "iat an hour ahead", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"iat": time.Now().Add(time.Hour).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "issued in the future"},
		{name: "iat ten years ahead", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"iat": time.Now().AddDate(10, 0, 0).Unix(), "exp": time.Now().Add(10 * time.Minute).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "issued in the future"},
		{name: "iat within the skew", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"iat": time.Now().Add(2 * time.Minute).Unix(), "roles": "admin"})),
			want:  alice("admin")},
		{name: "nbf within the skew", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"nbf": time.Now().Add(2 * time.Minute).Unix(), "roles": "admin"})),
			want:  alice("admin")},
		{name: "exp in 2100 (default lifetime 24h)", o: plain,
			token: sign(t, "k1", is.claims(map[string]any{"exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "lives longer"},
		{name: "lifetime over the configured maximum", o: short,
			token: sign(t, "k1", is.claims(map[string]any{"exp": time.Now().Add(3 * time.Hour).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "at most 2h0m0s"},
		{name: "lifetime over the maximum, no iat", o: short,
			token: sign(t, "k1", is.claims(map[string]any{"iat": nil, "exp": time.Now().Add(3 * time.Hour).Unix(), "roles": "admin"})),
			code:  workload.Unauthenticated, msg: "lives longer"},
		{name: "lifetime within the configured maximum", o: short,
			token: sign(t, "k1", is.claims(map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "roles": "admin"})),
			want:  alice("admin")},
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
			code:  workload.Unauthenticated, msg: "does not publish"},
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
			if !principalIs(p, tt.want) {
				t.Fatalf("principal %+v; want %+v", p, tt.want)
			}
		})
	}
}

// TestOIDCKeyRotation: a new key verifies at once; a withdrawn key stops
// verifying once the keys are older than KeyRefresh, without any token
// forcing a fetch (issue 21.4).
func TestOIDCKeyRotation(t *testing.T) {
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{KeyRefresh: 5 * time.Minute, MinRefetch: time.Second})
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
	// by k2 verifies at once: its unknown kid causes a fetch.
	is.publish("k2")
	clock = clock.Add(2 * time.Second) // past MinRefetch
	p, err := o.Authenticate(ctx, sign(t, "k2", claims))
	if err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if p.Role != "operator" {
		t.Fatalf("principal %+v", p)
	}

	// Withdrawn while cached (no token with an unknown kid comes): k1
	// verifies until the keys are KeyRefresh old, then no longer.
	is.publish("k1")
	clock = clock.Add(2 * time.Second)
	if _, err := o.Authenticate(ctx, old); err != nil {
		t.Fatal(err) // k1 is fetched again (unknown kid in the cache)
	}
	is.publish("k2")
	clock = clock.Add(4 * time.Minute)
	if _, err := o.Authenticate(ctx, old); err != nil {
		t.Fatalf("within KeyRefresh the cached key still verifies: %v", err)
	}
	clock = clock.Add(time.Minute)
	_, err = o.Authenticate(ctx, old)
	wantCode(t, err, workload.Unauthenticated)

	// Overlap: both keys published, both verify.
	is.publish("k1", "k2")
	clock = clock.Add(5 * time.Minute)
	for _, kid := range []string{"k1", "k2"} {
		if _, err := o.Authenticate(ctx, sign(t, kid, claims)); err != nil {
			t.Fatalf("%s during overlap: %v", kid, err)
		}
	}
}

// TestOIDCUnknownKidRateLimited: tokens naming unknown key ids, sequential
// or concurrent, cost the issuer at most one JWKS fetch per MinRefetch
// (issue 21.4; main fetched once per token).
func TestOIDCUnknownKidRateLimited(t *testing.T) {
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{})
	ctx := context.Background()
	if _, err := o.Authenticate(ctx, sign(t, "k1", is.claims(map[string]any{"roles": "viewer"}))); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().Add(11 * time.Second) // past MinRefetch (10s) since that fetch
	o.now = func() time.Time { return clock }
	before := is.jwksCalls.Load()
	for i := range 20 {
		tok := signWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()["rogue"], KeyID: fmt.Sprintf("unknown-%d", i)}},
			is.claims(map[string]any{"roles": "admin"}))
		_, err := o.Authenticate(ctx, tok)
		wantCode(t, err, workload.Unauthenticated)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			tok := signWith(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: testKeys()["rogue"], KeyID: fmt.Sprintf("c-%d", i)}},
				is.claims(map[string]any{"roles": "admin"}))
			o.Authenticate(ctx, tok)
		})
	}
	wg.Wait()
	n := is.jwksCalls.Load() - before
	if n != 1 {
		t.Fatalf("70 tokens with unknown kids caused %d JWKS fetches; want 1", n)
	}
	t.Logf("70 tokens with unknown kids (20 sequential, 50 concurrent): %d JWKS fetch(es)", n)
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestOIDCIssuerDown: an issuer that cannot be reached at start is not an
// error; its tokens are Unavailable (503, retryable) until background
// discovery succeeds; then they verify (issue 21.5).
func TestOIDCIssuerDown(t *testing.T) {
	addr := freeAddr(t)
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: "http://" + addr, Audience: testAudience,
		FetchTimeout: 500 * time.Millisecond, DiscoveryRetry: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewOIDC with the issuer down: %v", err)
	}
	t.Cleanup(o.Close)
	if st := o.Status(); st.State != "discovering" || st.Error == "" {
		t.Fatalf("status %+v; want discovering with an error", st)
	}
	claims := map[string]any{"iss": "http://" + addr, "aud": testAudience, "sub": "alice", "roles": "viewer",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	_, err = o.Authenticate(context.Background(), sign(t, "k1", claims))
	wantCode(t, err, workload.Unavailable)

	// The issuer comes up on that address: a test issuer's handler,
	// served there instead of on its own listener.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address %s taken meanwhile: %v", addr, err)
	}
	up := newIssuer(t, "k1")
	up.srv.Close()
	up.srv.URL = "http://" + addr
	srv := &http.Server{Handler: up.srv.Config.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for o.Status().State == "discovering" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := o.Status(); st.State == "discovering" {
		t.Fatalf("background discovery did not succeed: %+v", st)
	}
	if _, err := o.Authenticate(context.Background(), sign(t, "k1", claims)); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
}

// TestOIDCKeysUnavailable: a token that needs keys the controller cannot
// fetch (JWKS answers 500, or never answers) is Unavailable; cached keys
// keep working (issue 21.5; main answered 401, after 10 s while the JWKS
// hung). That the wait is bounded is shown without a clock: the hanging
// JWKS never answers, so Authenticate returns only through FetchTimeout,
// or through the caller's deadline when FetchTimeout is an hour.
func TestOIDCKeysUnavailable(t *testing.T) {
	for _, mode := range []struct {
		name string
		v    int32
	}{{"500", 1}, {"hang", 2}} {
		t.Run(mode.name, func(t *testing.T) {
			is := newIssuer(t, "k1")
			o := is.oidc(t, OIDCConfig{FetchTimeout: 200 * time.Millisecond, MinRefetch: time.Nanosecond})
			ctx := context.Background()
			// No keys fetched yet.
			is.jwksMode.Store(mode.v)
			_, err := o.Authenticate(ctx, sign(t, "k1", is.claims(map[string]any{"roles": "viewer"})))
			wantCode(t, err, workload.Unavailable)
			if !workload.AsError(err).Retryable {
				t.Fatalf("%v is not retryable", err)
			}
			if st := o.Status(); st.State != "keys_unavailable" {
				t.Fatalf("status %+v", st)
			}
			// Keys fetched, then the issuer fails: cached keys verify, a new
			// kid is Unavailable.
			is.jwksMode.Store(0)
			if _, err := o.Authenticate(ctx, sign(t, "k1", is.claims(map[string]any{"roles": "viewer"}))); err != nil {
				t.Fatal(err)
			}
			is.jwksMode.Store(mode.v)
			if _, err := o.Authenticate(ctx, sign(t, "k1", is.claims(map[string]any{"roles": "viewer"}))); err != nil {
				t.Fatalf("cached key while the issuer fails: %v", err)
			}
			_, err = o.Authenticate(ctx, sign(t, "k2", is.claims(map[string]any{"roles": "viewer"})))
			wantCode(t, err, workload.Unavailable)
			if mode.v != 2 {
				return
			}
			// The caller's deadline bounds the wait too.
			slow := is.oidc(t, OIDCConfig{FetchTimeout: time.Hour})
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err = slow.Authenticate(cctx, sign(t, "k1", is.claims(map[string]any{"roles": "viewer"})))
			wantCode(t, err, workload.Unavailable)
		})
	}
}

// TestOIDCGrants: grants match claims and give roles on every target or on
// some (issue 21.7).
func TestOIDCGrants(t *testing.T) {
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{RolesClaim: "roles", Grants: []Grant{
		{Claims: map[string]string{"repository": "acme/shop", "environment": "production"}, Role: RoleOperator, Targets: []string{"prod"}},
		{Claims: map[string]string{"repository": "acme/shop"}, Role: RoleViewer, Targets: []string{"prod", "staging"}},
		{Claims: map[string]string{"groups": "sre"}, Role: RoleOperator},
	}})
	ctx := context.Background()
	tests := []struct {
		name    string
		claims  map[string]any
		role    string
		targets map[string]string
	}{
		{"repository and environment", map[string]any{"repository": "acme/shop", "environment": "production"}, "",
			map[string]string{"prod": "operator", "staging": "viewer"}},
		{"other environment", map[string]any{"repository": "acme/shop", "environment": "staging"}, "",
			map[string]string{"prod": "viewer", "staging": "viewer"}},
		{"other repository", map[string]any{"repository": "acme/shop-fork", "environment": "production"}, "", nil},
		{"array claim holds the value", map[string]any{"groups": []any{"dev", "sre"}}, "operator", nil},
		{"roles claim and grant, highest wins", map[string]any{"roles": "viewer", "groups": "sre"}, "operator", nil},
		{"value of the wrong type", map[string]any{"repository": []any{"acme/shop"}, "environment": true}, "",
			map[string]string{"prod": "viewer", "staging": "viewer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := o.Authenticate(ctx, sign(t, "k1", is.claims(tt.claims)))
			if err != nil {
				t.Fatal(err)
			}
			if p.Role != tt.role || !maps.Equal(p.TargetRoles, tt.targets) {
				t.Fatalf("role %q targets %v; want %q %v", p.Role, p.TargetRoles, tt.role, tt.targets)
			}
		})
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
	if n := is.jwksCalls.Load(); n != 1 {
		t.Errorf("16 concurrent first verifications fetched the JWKS %d times; want 1", n)
	}
}

func TestNewOIDC(t *testing.T) {
	is := newIssuer(t, "k1")
	tests := []struct {
		name  string
		cfg   OIDCConfig
		code  workload.Code
		msg   string
		state string
	}{
		{"ok", OIDCConfig{Issuer: is.srv.URL, Audience: testAudience}, "", "", "ok"},
		{"no issuer", OIDCConfig{Audience: testAudience}, workload.InvalidArgument, "issuer", ""},
		{"no audience", OIDCConfig{Issuer: is.srv.URL}, workload.InvalidArgument, "audience", ""},
		{"relative issuer", OIDCConfig{Issuer: "issuer.example", Audience: "a"}, workload.InvalidArgument, "issuer", ""},
		{"plain http issuer", OIDCConfig{Issuer: "http://idp.example.com", Audience: "a"}, workload.InvalidArgument, "https", ""},
		{"issuer with a fragment", OIDCConfig{Issuer: "https://idp.example.com/#x", Audience: "a"}, workload.InvalidArgument, "fragment", ""},
		{"bad default role", OIDCConfig{Issuer: is.srv.URL, Audience: "a", DefaultRole: "root"}, workload.InvalidArgument, "defaultRole", ""},
		{"claim and path", OIDCConfig{Issuer: is.srv.URL, Audience: "a", RolesClaim: "roles", RolesClaimPath: []string{"a", "b"}}, workload.InvalidArgument, "rolesClaimPath", ""},
		{"grant without claims", OIDCConfig{Issuer: is.srv.URL, Audience: "a", Grants: []Grant{{Role: RoleViewer}}}, workload.InvalidArgument, "grants[0].claims", ""},
		{"grant with a bad target", OIDCConfig{Issuer: is.srv.URL, Audience: "a", Grants: []Grant{{Claims: map[string]string{"x": "y"}, Role: RoleViewer, Targets: []string{"Bad Name"}}}}, workload.InvalidArgument, "grants[0].targets[0]", ""},
		{"negative refresh", OIDCConfig{Issuer: is.srv.URL, Audience: "a", KeyRefresh: -1}, workload.InvalidArgument, "keyRefresh", ""},
		{"max key age under the refresh", OIDCConfig{Issuer: is.srv.URL, Audience: "a", KeyRefresh: time.Hour, MaxKeyAge: time.Minute}, workload.InvalidArgument, "maxKeyAge", ""},
		// Discovery failures are not errors: the issuer is retried.
		{"issuer mismatch (trailing slash)", OIDCConfig{Issuer: is.srv.URL + "/", Audience: "a"}, "", "", "discovering"},
		{"no discovery document", OIDCConfig{Issuer: is.srv.URL + "/tenant", Audience: "a"}, "", "", "discovering"},
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
			defer o.Close()
			if st := o.Status(); st.State != tt.state && !(tt.state == "ok" && st.State == "ok") {
				t.Fatalf("status %+v; want %s", st, tt.state)
			}
			if c := o.Config(); c.RolesClaim != "roles" || c.UserClaim != "sub" || c.KeyRefresh != 5*time.Minute ||
				c.MinRefetch != 10*time.Second || c.MaxTokenLifetime != 24*time.Hour || c.FetchTimeout != 5*time.Second || c.MaxKeyAge != time.Hour {
				t.Fatalf("defaults not filled in: %+v", c)
			}
		})
	}
}

// TestOIDCFailingIssuerNotHammered: while discovery or the JWKS fails,
// requests do not each call the issuer (at most one attempt per
// MinRefetch), and cached keys keep verifying after KeyRefresh when the
// refresh fails.
func TestOIDCFailingIssuerNotHammered(t *testing.T) {
	is := newIssuer(t, "k1")
	o := is.oidc(t, OIDCConfig{KeyRefresh: time.Minute, MinRefetch: time.Minute, MaxKeyAge: 10 * time.Minute})
	clock := time.Now()
	o.now = func() time.Time { return clock }
	ctx := context.Background()
	tok := sign(t, "k1", is.claims(map[string]any{"roles": "viewer"}))
	if _, err := o.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	is.jwksMode.Store(1) // the JWKS answers 500 from now on
	clock = clock.Add(2 * time.Minute)
	before := is.jwksCalls.Load()
	for range 20 {
		if _, err := o.Authenticate(ctx, tok); err != nil {
			t.Fatalf("cached key after a failed refresh: %v", err)
		}
		_, err := o.Authenticate(ctx, sign(t, "k2", is.claims(map[string]any{"roles": "viewer"})))
		if c := workload.CodeOf(err); c != workload.Unavailable && c != workload.Unauthenticated {
			t.Fatalf("unknown kid while the JWKS fails: %v", err)
		}
	}
	if n := is.jwksCalls.Load() - before; n > 1 {
		t.Fatalf("40 requests while the JWKS fails made %d fetches; want at most 1", n)
	}
	if st := o.Status(); st.State != "keys_unavailable" {
		t.Fatalf("status %+v", st)
	}
	// Past MaxKeyAge the cached keys are no longer trusted: a key withdrawn
	// during the outage stops verifying in bounded time.
	clock = clock.Add(9 * time.Minute)
	_, err := o.Authenticate(ctx, tok)
	wantCode(t, err, workload.Unavailable)
	if n := is.jwksCalls.Load() - before; n > 2 {
		t.Fatalf("%d fetches", n)
	}

	// Discovery failing: requests answer unavailable without calling the
	// issuer each time.
	down := newIssuer(t, "k1")
	var d *OIDC
	d, err = NewOIDC(context.Background(), OIDCConfig{Issuer: down.srv.URL + "/nowhere", Audience: testAudience,
		HTTPClient: down.srv.Client(), MinRefetch: time.Minute, DiscoveryRetry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	calls := down.discCalls.Load()
	for range 20 {
		_, err := d.Authenticate(ctx, sign(t, "k1", down.claims(map[string]any{"iss": down.srv.URL + "/nowhere"})))
		wantCode(t, err, workload.Unavailable)
	}
	if n := down.discCalls.Load() - calls; n > 1 {
		t.Fatalf("20 requests while discovery fails made %d discovery calls", n)
	}
}
