package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/cli"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/internal/dashboard"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
)

type serveFlags struct {
	config, ledger, listen, logFormat string
	acceptBroken                      bool
}

func loadConfig(f serveFlags) (config.Config, error) {
	var cfg config.Config
	var err error
	if f.config != "" {
		cfg, err = config.Load(f.config, cli.DataDir())
		if err != nil {
			return cfg, err
		}
	} else {
		cfg = config.Default(cli.DataDir())
	}
	if f.ledger != "" {
		cfg.Ledger = f.ledger
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, out, errOut io.Writer, f serveFlags) error {
	if err := cli.OneOf("log-format", f.logFormat, []string{"text", "json"}); err != nil {
		return err
	}
	cfg, err := loadConfig(f)
	if err != nil {
		return err
	}
	creds := credentials.FromEnv()
	var h slog.Handler = slog.NewTextHandler(errOut, nil)
	if f.logFormat == "json" {
		h = slog.NewJSONHandler(errOut, nil)
	}
	log := slog.New(credentials.NewHandler(h, creds))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	backend, err := ledger.Open(ctx, cfg.Ledger)
	if err != nil {
		return fmt.Errorf("opening ledger: %w", err)
	}
	led, cpl, err := openCheckpoints(ctx, out, log, cfg, backend, f.acceptBroken)
	if err != nil {
		backend.Close()
		return err
	}
	defer led.Close()
	cli.WarnPrivileges(ctx, out, log, led)
	fmt.Fprintf(out, "providers registered: %s\n", strings.Join(provider.Providers(), ", "))

	tokens, err := auth.OpenTokenStore(cfg.Auth.TokenFile)
	if err != nil {
		return err
	}
	if _, created, err := tokens.EnsureAdmin(); err != nil {
		return err
	} else if created {
		fmt.Fprintf(out, "first start: admin token written to %s (mode 0600)\n", auth.AdminTokenFile(cfg.Auth.TokenFile))
	}
	if err := checkAdminTokenFile(auth.AdminTokenFile(cfg.Auth.TokenFile)); err != nil {
		return err
	}
	authn := &auth.Authenticator{Tokens: tokens, AllowQueryToken: cfg.Auth.QueryToken}
	if err := openIssuers(ctx, authn, cfg.Auth, log); err != nil {
		return err
	}
	defer authn.Close()

	instance, err := instanceID(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("controller instance id: %w", err)
	}
	fmt.Fprintf(out, "instance: %s\n", instance)
	targets, closers, err := openTargets(ctx, cfg, creds, out, instance)
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	metrics := httpapi.NewMetrics()
	registerLedgerMetrics(metrics.Registry(), led, cpl)
	pol, err := openPolicy(ctx, cfg.Policy, log, metrics.Registry())
	if err != nil {
		return err
	}
	revKey, err := control.LoadRevisionKey(cfg.RevisionKeyFile, true)
	if err != nil {
		return err
	}
	rt, err := control.New(ctx, control.Options{Ledger: led, Targets: targets, Credentials: creds, Logger: log,
		Timeouts: cfg.ActionTimeouts(), Observer: metrics, Policy: pol, RoleOn: roleOn, RevisionKey: revKey})
	if err != nil {
		return err
	}
	defer rt.Close()
	// Recovery passes after the one control.New made: an intent whose
	// controller died is closed by any live replica (control.RecoverEvery).
	rctx, stopRecovery := context.WithCancel(ctx)
	recovering := make(chan struct{})
	go func() {
		defer close(recovering)
		rt.RecoverEvery(rctx, cfg.RecoveryInterval.D())
	}()
	defer func() { stopRecovery(); <-recovering }()

	extra := dashboard.Routes(dashboard.Options{OIDC: cfg.Auth.OIDC, Logger: log})
	if cpl != nil {
		extra["GET /v1/ledger/checkpoint-key"] = checkpointKeyHandler(cpl)
	}
	ping := pingTargets(targets)
	metrics.Registry().MustRegister(authn.Collector())
	api := httpapi.New(httpapi.Options{Runtime: rt, Auth: authn, Tokens: auth.TokenPolicy{TokenStore: tokens, MaxTTL: cfg.Auth.TokenMaxTTL.D()},
		Logger: log, Metrics: metrics, AuthStatus: authn.Statuses,
		MaxBodyBytes: cfg.MaxBodyBytes, Ready: func(ctx context.Context) []string { return append(ledgerReady(led)(ctx), ping(ctx)...) },
		ReadTimeout: cfg.ReadTimeout.D(), MaxStreamsPerPrincipal: cfg.MaxStreamsPerUser,
		Extra: extra})
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	scheme := "http"
	if cfg.TLS != nil {
		certs, err := newCertReloader(cfg.TLS.Cert, cfg.TLS.Key, log)
		if err != nil {
			return err
		}
		srv.TLSConfig, scheme = certs.tlsConfig(), "https"
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); scheme == "http" && !cli.IsLoopback(host) {
		log.Warn("serving plain HTTP on a non-loopback address: bearer tokens cross the network in clear; configure tls, or put a TLS-terminating proxy in front and listen on loopback", "listen", ln.Addr().String())
	}
	fmt.Fprintf(out, "listening on %s://%s\n", scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" {
			// net/http's own 431 answer stays plain text over TLS: the
			// connection it writes to is the TLS one (see EnvelopeListener).
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(httpapi.EnvelopeListener(ln))
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(out, "shutting down: draining in-flight operations")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace.D())
	defer cancel()
	if err := api.Drain(sctx); err != nil {
		log.Warn("shutdown grace ended with operations in flight; their intents are closed on the next start", "err", err)
	}
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		srv.Close()
	}
	return nil
}

// openTargets opens the configured targets and, unless turned off, a
// `local` docker target when a Docker Engine answers.
// Each target is opened with the controller's instance id and gets its
// policy from the config (the defaults for the automatic `local`).
func openTargets(ctx context.Context, cfg config.Config, creds *credentials.Resolver, out io.Writer, instance string) ([]control.Target, []io.Closer, error) {
	var targets []control.Target
	var closers []io.Closer
	add := func(name string, p provider.Provider, pol provider.Policy) {
		targets = append(targets, control.Target{Name: name, Provider: p, Policy: pol})
		if c, ok := p.(io.Closer); ok {
			closers = append(closers, c)
		}
	}
	for _, tc := range cfg.TargetConfigs() {
		tc.Instance = instance
		p, err := provider.Open(ctx, tc, creds)
		if err != nil {
			return targets, closers, fmt.Errorf("target %s: %w", tc.Name, err)
		}
		add(tc.Name, p, tc.Policy)
		fmt.Fprintf(out, "target %s: %s\n", tc.Name, tc.Provider)
	}
	if _, configured := cfg.Targets["local"]; !configured && !cfg.NoLocalTarget {
		p, err := provider.Open(ctx, provider.TargetConfig{Name: "local", Provider: "docker", Instance: instance}, creds)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if pg, ok := p.(provider.Pinger); ok {
				err = pg.Ping(pctx)
			}
			cancel()
			if err != nil {
				if c, ok := p.(io.Closer); ok {
					c.Close()
				}
			}
		}
		if err != nil {
			fmt.Fprintf(out, "no local docker target: %v\n", err)
		} else {
			add("local", p, provider.Policy{})
			fmt.Fprintln(out, "target local: docker (embedded default)")
		}
	}
	return targets, closers, nil
}

func pingTargets(targets []control.Target) func(ctx context.Context) []string {
	return func(ctx context.Context) []string {
		var problems []string
		for _, t := range targets {
			if pg, ok := t.Provider.(provider.Pinger); ok {
				if err := pg.Ping(ctx); err != nil {
					problems = append(problems, fmt.Sprintf("target %s: %v", t.Name, err))
				}
			}
		}
		return problems
	}
}

// checkAdminTokenFile refuses to start when the admin token file exists
// and group or others may read it.
func checkAdminTokenFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := auth.CheckAdminTokenFile(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
