package fakegcp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// JWTBearerGrant is the grant_type of the service-account flow (RFC 7523).
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// OAuthServer is Google's OAuth 2.0 token endpoint for service accounts
// ("Using OAuth 2.0 for Server to Server Applications"), served over HTTP
// on 127.0.0.1. It owns one service account: ServiceAccountJSON is its key
// file, whose token_uri points here, and the endpoint exchanges a JWT
// assertion signed with that key for an access token, checking it the way
// the documentation describes:
//
//   - POST, form-encoded, grant_type JWTBearerGrant and an assertion;
//   - the assertion is a JWS: header alg RS256 (kid, when present, the
//     key's private_key_id), signature valid for the key;
//   - claims iss = the client_email, aud = the token_uri, a scope
//     (space-separated), iat and exp with exp after now, iat not in the
//     future (a minute of clock skew allowed) and exp - iat at most one
//     hour.
//
// A good assertion gets {"access_token", "expires_in": Lifetime in
// seconds, "scope", "token_type": "Bearer"}; a bad one HTTP 400 with
// {"error": "invalid_grant" (or invalid_request, unsupported_grant_type),
// "error_description"}. Valid tells which tokens it issued and whether
// they are still unexpired, so that a test API server can accept exactly
// those.
//
// Its methods may be called concurrently. Close it when done.
type OAuthServer struct {
	// Lifetime is how long issued tokens live (expires_in); default one
	// hour, as Google's. Set it before tokens are requested.
	Lifetime time.Duration

	srv   *httptest.Server
	key   *rsa.PrivateKey
	keyID string
	email string

	mu      sync.Mutex
	tokens  map[string]IssuedToken
	order   []string
	refuse  string // when set, every request is refused with it
	refused int
}

// IssuedToken is an access token the server handed out.
type IssuedToken struct {
	Value   string
	Email   string
	Scopes  []string
	Issued  time.Time
	Expires time.Time
}

// NewOAuth starts a token endpoint with a fresh RSA key for the service
// account demo-sa@<project>.iam.gserviceaccount.com.
func NewOAuth(project string) (*OAuthServer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	o := &OAuthServer{Lifetime: time.Hour, key: key, keyID: randHex(20),
		email: "demo-sa@" + project + ".iam.gserviceaccount.com", tokens: map[string]IssuedToken{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serveToken))
	return o, nil
}

// Close stops the server.
func (o *OAuthServer) Close() { o.srv.Close() }

// TokenURL is the token endpoint, the key file's token_uri.
func (o *OAuthServer) TokenURL() string { return o.srv.URL + "/token" }

// Email is the service account's client_email.
func (o *OAuthServer) Email() string { return o.email }

// PrivateKey is the service account's key.
func (o *OAuthServer) PrivateKey() *rsa.PrivateKey { return o.key }

// KeyID is the key's private_key_id.
func (o *OAuthServer) KeyID() string { return o.keyID }

// ServiceAccountJSON is the service account's key file, in the format the
// IAM API's keys.create returns (type service_account, PKCS#8 private key
// in PEM), with token_uri pointing at this server.
func (o *OAuthServer) ServiceAccountJSON(project string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(o.key)
	if err != nil {
		panic(err) // an RSA key always marshals
	}
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  project,
		"private_key_id":              o.keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                o.email,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   o.TokenURL(),
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"client_x509_cert_url":        "https://www.googleapis.com/robot/v1/metadata/x509/" + o.email,
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	return b
}

// Refuse makes every token request, even a good one, fail with
// invalid_grant and description (a key deleted or disabled), until
// Refuse("").
func (o *OAuthServer) Refuse(description string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refuse = description
}

// Valid reports whether token was issued by this server and has not
// expired, and returns what it was issued for.
func (o *OAuthServer) Valid(token string) (IssuedToken, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.tokens[token]
	if !ok || !time.Now().Before(t.Expires) {
		return IssuedToken{}, false
	}
	return t, true
}

// Issued returns the tokens issued so far, oldest first.
func (o *OAuthServer) Issued() []IssuedToken {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]IssuedToken, 0, len(o.order))
	for _, v := range o.order {
		out = append(out, o.tokens[v])
	}
	return out
}

// Refused is how many token requests were refused.
func (o *OAuthServer) Refused() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused
}

type tokenError struct {
	code, description string
}

func (e *tokenError) Error() string { return e.code + ": " + e.description }

func (o *OAuthServer) serveToken(w http.ResponseWriter, r *http.Request) {
	tok, err := o.grant(r)
	o.mu.Lock()
	if err != nil {
		o.refused++
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = &tokenError{"invalid_request", err.Error()}
		}
		status := http.StatusBadRequest
		if r.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": te.code, "error_description": te.description})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok.Value,
		"expires_in":   int64(tok.Expires.Sub(tok.Issued).Round(time.Second) / time.Second),
		"scope":        strings.Join(tok.Scopes, " "),
		"token_type":   "Bearer",
	})
}

// grant checks one token request and issues a token.
func (o *OAuthServer) grant(r *http.Request) (IssuedToken, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		return IssuedToken{}, &tokenError{"invalid_request", "token requests are POST " + o.TokenURL()}
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return IssuedToken{}, &tokenError{"invalid_request", "Content-Type must be application/x-www-form-urlencoded, not " + ct}
	}
	if err := r.ParseForm(); err != nil {
		return IssuedToken{}, &tokenError{"invalid_request", err.Error()}
	}
	if g := r.PostForm.Get("grant_type"); g != JWTBearerGrant {
		return IssuedToken{}, &tokenError{"unsupported_grant_type", fmt.Sprintf("Invalid grant_type: %s", g)}
	}
	claims, err := o.verify(r.PostForm.Get("assertion"))
	if err != nil {
		return IssuedToken{}, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.refuse != "" {
		return IssuedToken{}, &tokenError{"invalid_grant", o.refuse}
	}
	now := time.Now()
	t := IssuedToken{Value: "ya29.fake-" + randHex(24), Email: claims.Iss, Scopes: strings.Fields(claims.Scope),
		Issued: now, Expires: now.Add(o.Lifetime)}
	o.tokens[t.Value] = t
	o.order = append(o.order, t.Value)
	return t, nil
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
	Sub   string `json:"sub,omitempty"`
}

// verify checks a JWT assertion as the token endpoint documents it.
func (o *OAuthServer) verify(assertion string) (jwtClaims, error) {
	var c jwtClaims
	bad := func(d string) (jwtClaims, error) { return jwtClaims{}, &tokenError{"invalid_grant", d} }
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return bad("Invalid JWT: the assertion is not a JWS (header.claims.signature)")
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return bad("Invalid JWT header: " + err.Error())
	}
	if header.Alg != "RS256" {
		return bad(fmt.Sprintf("Invalid JWT: alg %q, want RS256", header.Alg))
	}
	if header.Kid != "" && header.Kid != o.keyID {
		return bad("Invalid JWT Signature.")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return bad("Invalid JWT Signature.")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&o.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return bad("Invalid JWT Signature.")
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return bad("Invalid JWT claims: " + err.Error())
	}
	switch {
	case c.Iss != o.email:
		return bad(fmt.Sprintf("Invalid JWT: iss %q is not the service account %s", c.Iss, o.email))
	case c.Aud != o.TokenURL():
		return bad(fmt.Sprintf("Invalid JWT: aud %q is not the token endpoint %s", c.Aud, o.TokenURL()))
	case c.Scope == "":
		return jwtClaims{}, &tokenError{"invalid_scope", "Empty or missing scope not allowed."}
	}
	now := time.Now()
	iat, exp := time.Unix(c.Iat, 0), time.Unix(c.Exp, 0)
	if c.Iat == 0 || c.Exp == 0 || iat.After(now.Add(time.Minute)) || !exp.After(now) || exp.Sub(iat) > time.Hour {
		return bad("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
	}
	return c, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
