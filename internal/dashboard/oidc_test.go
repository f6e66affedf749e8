package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/config"
)

func TestOIDCHandlers(t *testing.T) {
	// Without OIDC: no button, and the routes say it is not configured.
	plain := newEnv(t, envOptions{})
	if r := plain.get(t, "", "/signin"); strings.Contains(r.body, `id="oidc"`) {
		t.Errorf("sign-in offers OIDC without configuration")
	}
	if r := plain.get(t, "", "/ui/oidc/authorize?code_challenge="+strings.Repeat("a", 43)+"&state="+strings.Repeat("b", 20)); !strings.Contains(r.body, `"code":"unsupported"`) {
		t.Errorf("authorize without OIDC: %d %s", r.status, r.body)
	}

	issuer := newFakeIssuer(t, "dash-client", "asw_from_issuer")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	e := newEnv(t, envOptions{oidc: &config.OIDC{Issuer: issuer.URL, Audience: "https://alphaswarm.test", ClientID: "dash-client"}, httpClient: hc})
	if r := e.get(t, "", "/signin"); !strings.Contains(r.body, `id="oidc" data-issuer="`+issuer.URL+`"`) {
		t.Errorf("sign-in lacks the OIDC button:\n%s", r.body)
	}

	for _, q := range []string{"", "code_challenge=short&state=" + strings.Repeat("b", 20), "code_challenge=" + strings.Repeat("a", 43) + "&state=x"} {
		r := e.get(t, "", "/ui/oidc/authorize?"+q)
		if r.status != 400 || !strings.Contains(r.body, `"code":"invalid_argument"`) {
			t.Errorf("authorize?%s: %d %s", q, r.status, r.body)
		}
	}

	// A good request is sent to the issuer with the PKCE parameters.
	noRedirect := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(noRedirect.CloseIdleConnections)
	challenge, state := strings.Repeat("c", 43), strings.Repeat("s", 22)
	resp, err := noRedirect.Get(e.url + "/ui/oidc/authorize?code_challenge=" + challenge + "&state=" + state)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), issuer.URL+"/authorize?") ||
		q.Get("client_id") != "dash-client" || q.Get("code_challenge") != challenge || q.Get("code_challenge_method") != "S256" ||
		q.Get("state") != state || q.Get("redirect_uri") != e.url+"/signin/callback" || q.Get("response_type") != "code" ||
		q.Get("audience") != "https://alphaswarm.test" || !strings.Contains(q.Get("scope"), "openid") {
		t.Fatalf("authorize redirect: %d %s", resp.StatusCode, loc)
	}

	// The token exchange: JSON only, a verifier required, the issuer's
	// refusal passed on as unauthenticated.
	verifier := strings.Repeat("v", 43)
	for _, c := range []struct {
		ctype, body string
		status      int
		code        string
	}{
		{"text/plain", `{"code":"x","verifier":"` + verifier + `"}`, 400, "invalid_argument"},
		{"application/json", `{"code":"x","verifier":"short"}`, 400, "invalid_argument"},
		{"application/json", `not json`, 400, "invalid_argument"},
		{"application/json", `{"code":"unknown","verifier":"` + verifier + `"}`, 401, "unauthenticated"},
	} {
		r := e.do(t, "", "POST", "/ui/oidc/token", c.body, "Content-Type", c.ctype)
		if r.status != c.status || !strings.Contains(r.body, `"code":"`+c.code+`"`) {
			t.Errorf("token %s %s: %d %s", c.ctype, c.body, r.status, r.body)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("token response may be cached")
		}
	}
	if r := e.get(t, "", "/ui/oidc/token"); r.status != 405 {
		t.Errorf("GET /ui/oidc/token: %d", r.status)
	}
}
