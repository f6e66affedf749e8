package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/internal/dashboard"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger/sqlite"
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
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	led, err := sqlite.Open(context.Background(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	mem := providertest.NewMemory("local")
	mem.MetricsInterval = o.metricsInterval
	if mem.MetricsInterval == 0 {
		mem.MetricsInterval = 50 * time.Millisecond
	}
	log := slog.New(slog.DiscardHandler)
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil),
		Targets: append([]control.Target{{Name: "local", Provider: mem}}, o.extra...), Logger: log})
	if err != nil {
		led.Close()
		t.Fatal(err)
	}
	store, err := auth.OpenTokenStore(filepath.Join(dir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{mem: mem, rt: rt, tokens: map[string]string{}, users: map[string]string{},
		client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	for _, role := range auth.Roles {
		user := "dash-" + string(role)
		tok, _, err := store.Create(user, role, 0)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[string(role)], e.users[string(role)] = tok, user
	}
	e.api = httpapi.New(httpapi.Options{Runtime: rt, Auth: &auth.Authenticator{Tokens: store}, Tokens: store, Logger: log,
		Extra: dashboard.Routes(dashboard.Options{OIDC: o.oidc, HTTPClient: o.httpClient, Logger: log})})
	srv := httptest.NewServer(e.api.Handler())
	e.url = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.api.Drain(ctx)
		srv.CloseClientConnections()
		srv.Close()
		e.client.CloseIdleConnections()
		rt.Close()
		led.Close()
	})
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
