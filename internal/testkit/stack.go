package testkit

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/internal/dashboard"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger"
	_ "github.com/alphaswarm/controller/ledger/sqlite" // the sqlite: ledger serve opens by default
	"github.com/alphaswarm/controller/provider/providertest"
)

// Options adjusts NewStack. The zero value is serve's defaults over one
// in-memory target named "local".
type Options struct {
	// Targets replaces the default single target "local" served by a
	// providertest.Memory (Stack.Memory is then nil unless one of the
	// targets is that Memory: set Memory too).
	Targets []control.Target
	// Memory, with Targets, is the in-memory provider among them that
	// Stack.Memory returns.
	Memory *providertest.Memory
	// MetricsInterval is the default Memory's sample interval (default
	// 50ms).
	MetricsInterval time.Duration
	// Credentials resolves secrets (default: none, credentials.FromMap(nil)).
	Credentials *credentials.Resolver
	// Logger receives the runtime's and the API's logs (default: discarded).
	Logger *slog.Logger
	// UserPrefix names the users whose tokens the stack creates,
	// "<prefix>-<role>" (default "test").
	UserPrefix string
	// OIDC and HTTPClient configure the dashboard's sign-in, as the
	// config's auth.oidc does for serve.
	OIDC       *config.OIDC
	HTTPClient *http.Client
	// Config adjusts serve's default config (limits, timeouts) before the
	// stack is built from it.
	Config func(*config.Config)
	// API adjusts the API options last, for a test of one of them.
	API func(*httpapi.Options)
}

// Stack is the whole control plane on a loopback httptest server.
type Stack struct {
	URL     string
	API     *httpapi.Server
	Runtime *control.Runtime
	Ledger  ledger.Ledger
	// Memory is the default "local" target's provider (see Options.Targets).
	Memory  *providertest.Memory
	Metrics *httpapi.Metrics
	// Store is the hashed token store; Tokens and Users hold a bearer
	// token and its user's name for every role (auth.Roles), by role.
	Store  *auth.TokenStore
	Tokens map[string]string
	Users  map[string]string
	// Config is the configuration the stack was built from.
	Config config.Config
}

// NewStack assembles the control plane the way internal/cli's serve does:
// an SQLite ledger opened through ledger.Open, the hashed token store and
// its Authenticator, the Prometheus metrics observing the runtime,
// control.New with the config's action timeouts, and httpapi.New with the
// token policy, the config's limits and the dashboard's routes, served on
// loopback. What serve adds around that (signed ledger checkpoints, TLS,
// the listener, OIDC issuers, the automatic docker target) is left out.
// Everything is closed, API drained first, when the test ends.
func NewStack(t testing.TB, o Options) *Stack {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default(dir)
	cfg.NoLocalTarget = true
	if o.Config != nil {
		o.Config(&cfg)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds := o.Credentials
	if creds == nil {
		creds = credentials.FromMap(nil)
	}
	prefix := o.UserPrefix
	if prefix == "" {
		prefix = "test"
	}
	s := &Stack{Tokens: map[string]string{}, Users: map[string]string{}, Config: cfg, Memory: o.Memory}
	targets := o.Targets
	if len(targets) == 0 {
		s.Memory = providertest.NewMemory("local")
		s.Memory.MetricsInterval = o.MetricsInterval
		if s.Memory.MetricsInterval == 0 {
			s.Memory.MetricsInterval = 50 * time.Millisecond
		}
		targets = []control.Target{{Name: "local", Provider: s.Memory}}
	}

	led, err := ledger.Open(context.Background(), cfg.Ledger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	s.Ledger = led

	s.Store, err = auth.OpenTokenStore(cfg.Auth.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range auth.Roles {
		user := prefix + "-" + string(role)
		tok, _, err := s.Store.Create(user, role, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.Tokens[string(role)], s.Users[string(role)] = tok, user
	}
	authn := &auth.Authenticator{Tokens: s.Store, AllowQueryToken: cfg.Auth.QueryToken}
	t.Cleanup(authn.Close)

	s.Metrics = httpapi.NewMetrics()
	revKey, err := control.LoadRevisionKey(cfg.RevisionKeyFile, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Runtime, err = control.New(context.Background(), control.Options{Ledger: led, Targets: targets, Credentials: creds,
		Logger: log, Timeouts: cfg.ActionTimeouts(), Observer: s.Metrics, RevisionKey: revKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Runtime.Close() })

	s.Metrics.Registry().MustRegister(authn.Collector())
	opts := httpapi.Options{Runtime: s.Runtime, Auth: authn, Tokens: auth.TokenPolicy{TokenStore: s.Store, MaxTTL: cfg.Auth.TokenMaxTTL.D()},
		Logger: log, Metrics: s.Metrics, AuthStatus: authn.Statuses,
		MaxBodyBytes: cfg.MaxBodyBytes, ReadTimeout: cfg.ReadTimeout.D(), MaxStreamsPerPrincipal: cfg.MaxStreamsPerUser,
		Extra: dashboard.Routes(dashboard.Options{OIDC: o.OIDC, HTTPClient: o.HTTPClient, Logger: log})}
	if o.API != nil {
		o.API(&opts)
	}
	s.API = httpapi.New(opts)
	srv := httptest.NewServer(s.API.Handler())
	s.URL = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.API.Drain(ctx)
		srv.CloseClientConnections()
		srv.Close()
	})
	return s
}
