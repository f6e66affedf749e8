package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// oidcClient runs the server's half of the authorization-code flow with
// PKCE for a public client: it finds the issuer's endpoints, sends the
// browser to the authorization endpoint and exchanges the code (with the
// verifier only the browser knows) at the token endpoint. It keeps
// nothing: the browser holds the verifier, the state and the token.
type oidcClient struct {
	issuer, clientID, audience string
	http                       *http.Client

	mu      sync.Mutex
	disc    *discovery
	fetched time.Time
}

type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// discoveryTTL is how long the issuer's endpoints are cached.
const discoveryTTL = time.Hour

func (o *oidcClient) discover(ctx context.Context) (*discovery, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.disc != nil && time.Since(o.fetched) < discoveryTTL {
		return o.disc, nil
	}
	u := strings.TrimSuffix(o.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, workload.Errorf(workload.InvalidArgument, "auth.oidc.issuer: %v", err)
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery at %s: %v", o.issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery at %s answered %s", o.issuer, resp.Status)
	}
	var d discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery at %s: %v", o.issuer, err)
	}
	if d.AuthorizationEndpoint == "" || d.TokenEndpoint == "" {
		return nil, workload.Errorf(workload.Unavailable, "OIDC discovery at %s names no authorization or token endpoint", o.issuer)
	}
	o.disc, o.fetched = &d, time.Now()
	return o.disc, nil
}

// callbackURI is where the issuer sends the browser back: this server's
// /signin/callback, as the browser addressed it. It must be registered
// with the issuer as a redirect URI of the client.
func callbackURI(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/signin/callback"
}

var (
	reChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	reState     = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)
	reVerifier  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// oidcAuthorize redirects to the issuer's authorization endpoint with the
// browser's S256 challenge and state.
func (d *Dashboard) oidcAuthorize(w http.ResponseWriter, r *http.Request) {
	if d.oidc == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "this server has no OIDC sign-in configured (auth.oidc.clientId)"))
		return
	}
	q := r.URL.Query()
	challenge, state := q.Get("code_challenge"), q.Get("state")
	var errs []workload.FieldError
	if !reChallenge.MatchString(challenge) {
		errs = append(errs, workload.FieldError{Path: "code_challenge", Message: "must be an S256 challenge (43 base64url characters)"})
	}
	if !reState.MatchString(state) {
		errs = append(errs, workload.FieldError{Path: "state", Message: "must be 16 to 128 base64url characters"})
	}
	if len(errs) > 0 {
		writeError(w, workload.Invalid(errs...))
		return
	}
	disc, err := d.oidc.discover(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	u, err := url.Parse(disc.AuthorizationEndpoint)
	if err != nil {
		writeError(w, workload.Errorf(workload.Unavailable, "the issuer's authorization endpoint is not a URL"))
		return
	}
	aq := u.Query()
	aq.Set("response_type", "code")
	aq.Set("client_id", d.oidc.clientID)
	aq.Set("redirect_uri", callbackURI(r))
	aq.Set("scope", "openid profile email")
	aq.Set("state", state)
	aq.Set("code_challenge", challenge)
	aq.Set("code_challenge_method", "S256")
	if d.oidc.audience != "" {
		// Auth0 issues JWT access tokens for an API only when asked.
		aq.Set("audience", d.oidc.audience)
	}
	u.RawQuery = aq.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// tokenRequest is the body of POST /ui/oidc/token.
type tokenRequest struct {
	Code     string `json:"code"`
	Verifier string `json:"verifier"`
}

// TokenResponse answers POST /ui/oidc/token: the bearer token the page
// sends to the API.
type TokenResponse struct {
	Token     string `json:"token"`
	ExpiresIn int    `json:"expiresIn,omitempty"`
}

// oidcToken exchanges an authorization code (and the PKCE verifier) for
// tokens at the issuer, and hands the browser the one the API accepts: the
// access token when it is a JWT, else the ID token, else whatever access
// token the issuer gave.
func (d *Dashboard) oidcToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if d.oidc == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "this server has no OIDC sign-in configured (auth.oidc.clientId)"))
		return
	}
	// A JSON body cannot be sent across origins without a preflight.
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, workload.Errorf(workload.InvalidArgument, "send the code as application/json"))
		return
	}
	var body tokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&body); err != nil {
		writeError(w, workload.Invalid(workload.FieldError{Path: "body", Message: "must be {\"code\":…,\"verifier\":…}"}))
		return
	}
	if body.Code == "" || len(body.Code) > 4096 || !reVerifier.MatchString(body.Verifier) {
		writeError(w, workload.Invalid(workload.FieldError{Path: "code", Message: "a code and a PKCE verifier are required"}))
		return
	}
	disc, err := d.oidc.discover(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {body.Code},
		"redirect_uri":  {callbackURI(r)},
		"client_id":     {d.oidc.clientID},
		"code_verifier": {body.Verifier},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, disc.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		writeError(w, workload.Errorf(workload.Unavailable, "the issuer's token endpoint is not a URL"))
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := d.oidc.http.Do(req)
	if err != nil {
		writeError(w, workload.Errorf(workload.Unavailable, "OIDC token endpoint: %v", err))
		return
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken      string `json:"access_token"`
		IDToken          string `json:"id_token"`
		ExpiresIn        int    `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		writeError(w, workload.Errorf(workload.Unavailable, "OIDC token endpoint answered %s without JSON", resp.Status))
		return
	}
	if resp.StatusCode != http.StatusOK || tr.Error != "" {
		msg := strings.TrimSpace(tr.Error + ": " + tr.ErrorDescription)
		if len(msg) > 300 {
			msg = msg[:300]
		}
		writeError(w, workload.Errorf(workload.Unauthenticated, "the issuer refused the sign-in (%s)", msg))
		return
	}
	tok := tr.AccessToken
	if strings.Count(tok, ".") != 2 && tr.IDToken != "" {
		tok = tr.IDToken
	}
	if tok == "" {
		writeError(w, workload.Errorf(workload.Unauthenticated, "the issuer returned no token the API can verify"))
		return
	}
	b, _ := json.Marshal(workload.OK(TokenResponse{Token: tok, ExpiresIn: tr.ExpiresIn}))
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
