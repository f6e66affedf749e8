package cli_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// jwxIssuer is an OpenID provider built on lestrrat-go/jwx, a JOSE library
// the server does not use (it verifies with go-jose): discovery document,
// JWKS and RS256 signing are jwx's.
type jwxIssuer struct {
	url       string
	priv      jwk.Key // kid "k1"
	rogue     jwk.Key // not published
	pub       jwk.Set
	jwksCalls atomic.Int32
	srv       *http.Server
}

func newJWXIssuer(t *testing.T) *jwxIssuer {
	t.Helper()
	is := &jwxIssuer{pub: jwk.NewSet()}
	for _, kid := range []string{"k1", "rogue"} {
		raw, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		k, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, kid)
		k.Set(jwk.AlgorithmKey, jwa.RS256())
		if kid == "k1" {
			is.priv = k
			pub, err := jwk.PublicKeyOf(k)
			if err != nil {
				t.Fatal(err)
			}
			pub.Set(jwk.KeyUsageKey, "sig")
			is.pub.AddKey(pub)
		} else {
			is.rogue = k
		}
	}
	return is
}

// serve starts the issuer on addr ("127.0.0.1:0" for any port).
func (is *jwxIssuer) serve(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	is.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.url, "jwks_uri": is.url + "/jwks",
			"authorization_endpoint": is.url + "/authorize", "token_endpoint": is.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(is.pub)
	})
	is.srv = &http.Server{Handler: mux}
	go is.srv.Serve(ln)
	t.Cleanup(func() { is.srv.Close() })
}

// token signs claims (iss, iat and exp added unless given; a nil value
// removes a claim) with jwx, as key (default the published k1).
func (is *jwxIssuer) token(t *testing.T, aud string, claims map[string]any, key ...jwk.Key) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": is.url, "aud": aud, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	k := is.priv
	if len(key) > 0 {
		k = key[0]
	}
	hdr := jws.NewHeaders()
	hdr.Set(jws.TypeKey, "JWT")
	b, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), k, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type apiReply struct {
	status int
	env    struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  *workload.Error `json:"error"`
	}
	ctype string
}

func apiCall(t *testing.T, method, url, bearer, body string, hdr ...string) apiReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := apiReply{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	if err := json.Unmarshal(b, &r.env); err != nil && r.ctype == "application/json" {
		t.Fatalf("%s %s: not an envelope: %s", method, url, b)
	}
	return r
}

// TestServeOIDCEndToEnd runs `alphaswarm serve` against two OIDC issuers
// built on lestrrat-go/jwx — one for people (down when the server starts),
// one for CI with a claim grant on a single target — and checks issue 21
// end to end: the server starts with an issuer down and local tokens work
// (21.5), /readyz and /metrics say so, its tokens are 503 until it comes
// up; ledger rows name principals unambiguously and runs --user finds them
// by id or display name (21.1); a token with no role is refused and
// audited (21.2); dates (21.3); unknown key ids do not make the server
// fetch the JWKS per request (21.4); the CI grant works on its target only
// (21.7); API tokens get a maximum TTL and cannot take an OIDC-looking
// name (21.1, 21.7); an oversized header gets the JSON envelope.
func TestServeOIDCEndToEnd(t *testing.T) {
	people, ci := newJWXIssuer(t), newJWXIssuer(t)
	ci.serve(t, "127.0.0.1:0")
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peopleAddr := hold.Addr().String()
	hold.Close() // nothing listens there yet: the people issuer is down
	peopleURL := "http://" + peopleAddr
	people.url = peopleURL

	data := filepath.Join(t.TempDir(), "data")
	cfg := filepath.Join(t.TempDir(), "alphaswarm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
noLocalTarget: true
auth:
  tokenMaxTTL: 24h
  oidc:
    issuer: %s
    audience: https://alphaswarm.test
    fetchTimeout: 1s
    jwksMinRefetch: 1m
  issuers:
  - issuer: %s
    audience: alphaswarm-ci
    rolesClaim: no-roles-here
    grants:
    - claims: {repository: acme/shop, environment: production}
      role: operator
      targets: [staging]
`, peopleURL, ci.url)), 0o600)

	s := startServe(t, data, cfg)
	adminTok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(adminTok))
	u := s.url

	// 21.5: up with the issuer down; local tokens work.
	if r := apiCall(t, "GET", u+"/v1/whoami", admin, ""); r.status != 200 {
		t.Fatalf("local admin token while the issuer is down: %d %+v", r.status, r.env.Error)
	}
	r := apiCall(t, "GET", u+"/readyz", "", "")
	if r.status != 200 || !strings.Contains(string(r.env.Data), `"state":"discovering"`) || !strings.Contains(string(r.env.Data), peopleURL) {
		t.Fatalf("/readyz with the issuer down: %d %s", r.status, r.env.Data)
	}
	_, metrics := s.get(t, "/metrics")
	if !strings.Contains(metrics, fmt.Sprintf(`alphaswarm_oidc_issuer_up{issuer=%q,state="discovering"} 0`, peopleURL)) {
		t.Fatalf("/metrics lacks the down issuer:\n%s", grepLines(metrics, "alphaswarm_oidc"))
	}
	r = apiCall(t, "GET", u+"/v1/whoami", people.token(t, "https://alphaswarm.test", map[string]any{"sub": "alice", "roles": "viewer"}), "")
	if r.status != 503 || r.env.Error == nil || r.env.Error.Code != workload.Unavailable || !r.env.Error.Retryable {
		t.Fatalf("token of the down issuer: %d %+v", r.status, r.env.Error)
	}

	// The issuer comes up; background discovery finds it.
	people.serve(t, peopleAddr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = apiCall(t, "GET", u+"/readyz", "", "")
		if !strings.Contains(string(r.env.Data), `"state":"discovering"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("issuer not discovered in 20s: %s", r.env.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	aud := "https://alphaswarm.test"
	scale := func(target, tok string) apiReply {
		return apiCall(t, "POST", u+"/v1/targets/"+target+"/services/web/scale", tok, `{"replicas":1}`)
	}

	// 21.1: an OIDC subject "admin" is not the local admin.
	oidcAdmin := people.token(t, aud, map[string]any{"sub": "admin", "email": "alice@example.com", "roles": "operator"})
	r = apiCall(t, "GET", u+"/v1/whoami", oidcAdmin, "")
	var who struct{ User, Name, Auth, Role string }
	json.Unmarshal(r.env.Data, &who)
	if r.status != 200 || who.User != "oidc:"+peopleURL+"#admin" || who.Name != "alice@example.com" || who.Auth != "oidc:"+peopleURL || who.Role != "operator" {
		t.Fatalf("whoami: %d %+v", r.status, who)
	}
	if r := scale("local", oidcAdmin); r.status == 403 || r.status == 401 {
		t.Fatalf("operator scale: %d %+v", r.status, r.env.Error)
	}
	// 21.2: no role, or only unknown roles: 403 and a rejected row, as for
	// a viewer.
	for _, sub := range []string{"norole", "unknownrole", "viewer1"} {
		claims := map[string]any{"sub": sub}
		switch sub {
		case "unknownrole":
			claims["roles"] = []string{"superuser"}
		case "viewer1":
			claims["roles"] = "viewer"
		}
		if r := scale("local", people.token(t, aud, claims)); r.status != 403 || r.env.Error.Code != workload.PermissionDenied {
			t.Fatalf("%s scale: %d %+v", sub, r.status, r.env.Error)
		}
	}
	// 21.3: dates.
	for name, claims := range map[string]map[string]any{
		"exp as a string": {"sub": "d", "roles": "admin", "exp": "9999999999"},
		"iat ahead":       {"sub": "d", "roles": "admin", "iat": time.Now().AddDate(10, 0, 0).Unix()},
		"no exp":          {"sub": "d", "roles": "admin", "exp": nil},
		"exp in 2100":     {"sub": "d", "roles": "admin", "exp": time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()},
	} {
		r := apiCall(t, "GET", u+"/v1/whoami", people.token(t, aud, claims), "")
		if r.status != 401 {
			t.Errorf("%s: %d %+v", name, r.status, r.env.Error)
		} else if name == "no exp" && !strings.Contains(r.env.Error.Message, "no exp") {
			t.Errorf("no exp: message %q", r.env.Error.Message)
		}
	}
	// 21.4: twenty tokens with unknown key ids cost at most one fetch.
	before := people.jwksCalls.Load()
	for i := range 20 {
		k, _ := jwk.Import(mustRaw(t, people.rogue))
		k.Set(jwk.KeyIDKey, fmt.Sprintf("unknown-%d", i))
		if r := apiCall(t, "GET", u+"/v1/whoami", people.token(t, aud, map[string]any{"sub": "x", "roles": "admin"}, k), ""); r.status != 401 {
			t.Fatalf("unknown kid: %d", r.status)
		}
	}
	if n := people.jwksCalls.Load() - before; n > 1 {
		t.Fatalf("20 unknown kids caused %d JWKS fetches", n)
	}

	// 21.7: the CI issuer's grant: operator on staging only.
	ciTok := ci.token(t, "alphaswarm-ci", map[string]any{"sub": "repo:acme/shop:environment:production",
		"repository": "acme/shop", "environment": "production"})
	if r := scale("staging", ciTok); r.status == 403 || r.status == 401 {
		t.Fatalf("CI token on its target: %d %+v", r.status, r.env.Error)
	}
	if r := scale("local", ciTok); r.status != 403 {
		t.Fatalf("CI token on another target: %d %+v", r.status, r.env.Error)
	}
	if r := apiCall(t, "GET", u+"/v1/ledger/verify", ciTok, ""); r.status != 403 {
		t.Fatalf("CI token on a route of every target: %d", r.status)
	}
	// The ledger listing is scoped: the CI token sees staging's rows (its
	// scale there, refused: this controller has no such target), not its
	// refused scale of local.
	if r := apiCall(t, "GET", u+"/v1/runs", ciTok, ""); r.status != 200 ||
		!strings.Contains(string(r.env.Data), `"target":"staging"`) || strings.Contains(string(r.env.Data), `"target":"local"`) {
		t.Fatalf("CI token's runs: %d %s", r.status, r.env.Data)
	}
	// A listing across targets shows the CI token its grant's targets
	// only: staging, which this controller does not configure, so none.
	if r := apiCall(t, "GET", u+"/v1/targets", ciTok, ""); r.status != 200 || string(r.env.Data) != "[]" {
		t.Fatalf("CI token's targets: %d %s", r.status, r.env.Data)
	}
	otherEnv := ci.token(t, "alphaswarm-ci", map[string]any{"sub": "repo:acme/shop:environment:dev",
		"repository": "acme/shop", "environment": "dev"})
	if r := scale("staging", otherEnv); r.status != 403 {
		t.Fatalf("CI token of another environment: %d", r.status)
	}
	// A people token is not a CI token (audience is per issuer).
	if r := scale("staging", ci.token(t, aud, map[string]any{"sub": "x", "repository": "acme/shop", "environment": "production"})); r.status != 401 {
		t.Fatalf("CI issuer token for the people audience: %d", r.status)
	}

	// 21.1: the rows, by id and by display name.
	runs := func(user string) []map[string]any {
		r := apiCall(t, "GET", u+"/v1/runs?limit=1000&user="+url.QueryEscape(user), admin, "")
		var page struct{ Records []map[string]any }
		json.Unmarshal(r.env.Data, &page)
		return page.Records
	}
	byName, byID := runs("alice@example.com"), runs("oidc:"+peopleURL+"#admin")
	if len(byName) == 0 || len(byName) != len(byID) {
		t.Fatalf("rows by display name %d, by id %d", len(byName), len(byID))
	}
	for _, rec := range byID {
		if rec["userId"] != "oidc:"+peopleURL+"#admin" || rec["auth"] != "oidc:"+peopleURL || rec["userName"] != "alice@example.com" || rec["version"] != float64(ledger.CurrentVersion) {
			t.Fatalf("row %v", rec)
		}
	}
	if rows := runs("admin"); len(rows) != 0 {
		t.Fatalf("the local admin has rows of the OIDC subject admin: %v", rows)
	}
	if rows := runs("oidc:" + peopleURL + "#norole"); len(rows) != 1 || rows[0]["kind"] != "rejected" || rows[0]["outcome"] != "denied" {
		t.Fatalf("no-role identity's rows: %v", rows)
	}
	if rows := runs("oidc:" + ci.url + "#repo:acme/shop:environment:production"); len(rows) < 2 {
		t.Fatalf("CI rows: %v", rows)
	}
	out, code := s.cli(t, "runs", "--user", "alice@example.com", "--server", u, "--token", admin)
	if code != 0 || !strings.Contains(out, "oidc:"+peopleURL+"#admin") {
		t.Fatalf("runs --user alice@example.com: %d\n%s", code, out)
	}
	// The CI identity lists its own target's runs from the CLI.
	if out, code := s.cli(t, "runs", "-o", "json", "--server", u, "--token", ciTok); code != 0 ||
		!strings.Contains(out, `"target": "staging"`) || strings.Contains(out, `"target": "local"`) {
		t.Fatalf("runs as the CI identity: %d\n%s", code, out)
	}
	if r := apiCall(t, "GET", u+"/v1/ledger/verify", admin, ""); r.status != 200 || !strings.Contains(string(r.env.Data), `"ok":true`) {
		t.Fatalf("verify: %d %s", r.status, r.env.Data)
	}

	// 21.7: API tokens live at most tokenMaxTTL; 21.1: no OIDC-looking names.
	r = apiCall(t, "POST", u+"/v1/tokens", admin, `{"user":"deployer","role":"admin"}`)
	var created struct{ Info struct{ Expires time.Time } }
	json.Unmarshal(r.env.Data, &created)
	if r.status != 201 || created.Info.Expires.IsZero() || time.Until(created.Info.Expires) > 24*time.Hour+time.Minute {
		t.Fatalf("token without ttl: %d %s", r.status, r.env.Data)
	}
	for _, body := range []string{`{"user":"deployer","role":"admin","ttl":"48h"}`, `{"user":"oidc:x","role":"viewer"}`, `{"user":"a@b","role":"viewer"}`} {
		if r := apiCall(t, "POST", u+"/v1/tokens", admin, body); r.status != 400 || r.env.Error.Code != workload.InvalidArgument {
			t.Fatalf("%s: %d %+v", body, r.status, r.env.Error)
		}
	}

	// The 431 for an oversized header is the envelope.
	r = apiCall(t, "GET", u+"/v1/whoami", strings.Repeat("x", 100<<10), "")
	if r.status != 431 || r.ctype != "application/json" || r.env.Error == nil || r.env.Error.Code != workload.InvalidArgument {
		t.Fatalf("oversized header: %d %s %+v", r.status, r.ctype, r.env.Error)
	}
}

func mustRaw(t *testing.T, k jwk.Key) *rsa.PrivateKey {
	t.Helper()
	var raw rsa.PrivateKey
	if err := jwk.Export(k, &raw); err != nil {
		t.Fatal(err)
	}
	return &raw
}
