package dashboard_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a real control plane on loopback: the HTTP API with the dashboard
// mounted as serve mounts it, the hashed token store, the runtime, an
// SQLite ledger and the in-memory provider as target "local".
type env struct {
	url    string
	api    *httpapi.Server
	mem    *providertest.Memory
	rt     *control.Runtime
	tokens map[string]string // role -> bearer token
	users  map[string]string // role -> user name
	client *http.Client
}

type envOptions struct {
	metricsInterval time.Duration
	oidc            *config.OIDC
	httpClient      *http.Client
	// extra targets beside "local"
	extra []control.Target
	// creds is the runtime's resolver (default: none)
	creds *credentials.Resolver
	// principals are more callers, by name: each gets a bearer token
	// (tokens[name]) that authenticates as that principal, beside the
	// token store's (a principal with roles on single targets, as an
	// OIDC grant gives, which the token store cannot make).
	principals map[string]control.Principal
}

// grantAuth authenticates the tokens of envOptions.principals and hands
// every other request to the stack's authenticator.
type grantAuth struct {
	next   httpapi.Authenticator
	tokens map[string]control.Principal
}

func (a grantAuth) Authenticate(r *http.Request) (control.Principal, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if p, ok := a.tokens[tok]; ok {
			return p, nil
		}
	}
	return a.next.Authenticate(r)
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	mem := providertest.NewMemory("local")
	mem.MetricsInterval = o.metricsInterval
	if mem.MetricsInterval == 0 {
		mem.MetricsInterval = 50 * time.Millisecond
	}
	grants := grantAuth{tokens: map[string]control.Principal{}}
	tokens, users := map[string]string{}, map[string]string{}
	for name, p := range o.principals {
		tok := "asw_grant_" + name
		grants.tokens[tok], tokens[name], users[name] = p, tok, p.User
	}
	s := testkit.NewStack(t, testkit.Options{Targets: append([]control.Target{{Name: "local", Provider: mem}}, o.extra...), Memory: mem,
		UserPrefix: "dash", OIDC: o.oidc, HTTPClient: o.httpClient, Credentials: o.creds,
		API: func(ho *httpapi.Options) {
			if len(grants.tokens) > 0 {
				grants.next = ho.Auth
				ho.Auth = grants
			}
		}})
	maps.Copy(tokens, s.Tokens)
	maps.Copy(users, s.Users)
	e := &env{url: s.URL, api: s.API, mem: mem, rt: s.Runtime, tokens: tokens, users: users,
		client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	t.Cleanup(e.client.CloseIdleConnections)
	return e
}

type response struct {
	status int
	header http.Header
	body   string
}

// get fetches path as role ("" for no token).
func (e *env) do(t testing.TB, role, method, path, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) get(t testing.TB, role, path string) response { return e.do(t, role, "GET", path, "") }

// deploy starts services through the API, as the operator, in parallel.
func (e *env) deploy(t testing.TB, names ...string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 8)
	for _, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := e.call("operator", "POST", "/v1/targets/local/services", fmt.Sprintf(`{"name":%q,"image":"example/%s:1","replicas":1}`, n, n))
			if r.err != nil {
				errs <- fmt.Errorf("deploy %s: %w", n, r.err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type callResult struct {
	data json.RawMessage
	err  error
}

// call is a goroutine-safe API call returning the envelope's data.
func (e *env) call(role, method, path, body string) callResult {
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		return callResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return callResult{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var data json.RawMessage
	err = workload.DecodeEnvelope(b, &data)
	return callResult{data: data, err: err}
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("svc-%03d", i)
	}
	return out
}
