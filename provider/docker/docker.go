package docker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/telemetry"
	"github.com/alphaswarm/controller/workload"
)

// Name is the provider's registered name.
const Name = "docker"

func init() {
	provider.Register(Name, Open)
}

// Interface guards: the optional interfaces this provider implements.
var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Restarter = (*Provider)(nil)
	_ provider.Pinger    = (*Provider)(nil)
	_ provider.LogTailer = (*Provider)(nil)
	_ provider.Execer    = (*Provider)(nil)
	_ provider.Lister    = (*Provider)(nil)
	_ provider.Watcher   = (*Provider)(nil)
	_ provider.Named     = (*Provider)(nil)
	_ io.Closer          = (*Provider)(nil)
)

// Options are the target options (targets.<name>.options) of a docker
// target. None of them is a secret: the Engine's address and TLS material
// come from DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and
// DOCKER_API_VERSION through the credentials resolver.
type Options struct {
	// StopTimeout is how long a replica gets between SIGTERM and SIGKILL
	// when it is stopped or replaced. Default 10s.
	StopTimeout workload.Duration `json:"stopTimeout,omitzero"`
	// Instance scopes the target to one controller: everything the
	// provider creates is labelled alphaswarm.instance=<Instance>, and it
	// sees, lists, watches and changes only containers with that label.
	// Default: the controller's own instance id (serve keeps it in
	// <dataDir>/instance), so two controllers on one Engine never see each
	// other's services. Controllers that set the same Instance share the
	// target's services deliberately (and should share a ledger, whose
	// locks serialise them). Lower-case letters, digits and '-', at most
	// 32.
	Instance string `json:"instance,omitempty"`
	// NamePrefix starts every container name, network name and Compose
	// project name. Default "as-<target>-", or "as-<instance>-<target>-"
	// when the target is scoped to an instance.
	NamePrefix string `json:"namePrefix,omitempty"`
	// NetworkPrefix starts the name of each service's network. Default
	// NamePrefix.
	NetworkPrefix string `json:"networkPrefix,omitempty"`
	// Pull says when Start pulls the image: "missing" (default), "never"
	// or "always".
	Pull string `json:"pull,omitempty"`
	// RestartPolicy is the Docker restart policy of replicas: "no"
	// (default: a crashed or killed replica shows as Degraded/Failed until
	// Restart or Start heals it), "on-failure" or "unless-stopped".
	RestartPolicy string `json:"restartPolicy,omitempty"`
	// ConfigDir is where ApplyConfig's files appear inside each replica.
	// Default /etc/alphaswarm/config.
	ConfigDir string `json:"configDir,omitempty"`
	// ComposeCommand runs Compose. Default ["docker-compose"]; use
	// ["docker", "compose"] for Compose v2.
	ComposeCommand []string `json:"composeCommand,omitempty"`
	// Init runs each replica under the Engine's init process (docker run
	// --init), so the workload is not PID 1: a SIGTERM that arrives before
	// the workload installs its handler still ends it, instead of being
	// ignored until the stop timeout's SIGKILL. Default true.
	Init *bool `json:"init,omitempty"`
	// Parallel bounds concurrent container creations and removals within
	// one operation. Default 4.
	Parallel int `json:"parallel,omitempty"`
	// MinReady is how long a replica of a new spec without a health check
	// must keep running before Start (or ApplyConfig) counts it ready, so
	// a workload that exits at once is reported Failed, not Running.
	// Restart and Scale reuse a spec that already ran and do not wait.
	// Default 500ms; "0s" turns it off.
	MinReady *workload.Duration `json:"minReady,omitempty"`
}

var (
	namePrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	instanceRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
)

func (o *Options) defaults(target string) error {
	var errs []workload.FieldError
	path := "targets." + target + ".options."
	if o.StopTimeout == 0 {
		o.StopTimeout = workload.Duration(10 * time.Second)
	}
	if o.StopTimeout < 0 {
		errs = append(errs, workload.FieldError{Path: path + "stopTimeout", Message: "must be >= 0"})
	}
	if o.Instance != "" && (len(o.Instance) > 32 || !instanceRE.MatchString(o.Instance)) {
		errs = append(errs, workload.FieldError{Path: path + "instance", Message: "must be lower-case letters, digits or '-' (at most 32), starting with a letter or digit"})
	}
	if o.NamePrefix == "" {
		o.NamePrefix = "as-" + target + "-"
		if o.Instance != "" {
			o.NamePrefix = "as-" + o.Instance + "-" + target + "-"
		}
	}
	if !namePrefixRE.MatchString(o.NamePrefix) {
		errs = append(errs, workload.FieldError{Path: path + "namePrefix", Message: "must be lower-case letters, digits, '_' or '-', starting with a letter or digit"})
	}
	if o.NetworkPrefix == "" {
		o.NetworkPrefix = o.NamePrefix
	}
	if !namePrefixRE.MatchString(o.NetworkPrefix) {
		errs = append(errs, workload.FieldError{Path: path + "networkPrefix", Message: "must be lower-case letters, digits, '_' or '-', starting with a letter or digit"})
	}
	switch o.Pull {
	case "":
		o.Pull = "missing"
	case "missing", "never", "always":
	default:
		errs = append(errs, workload.FieldError{Path: path + "pull", Message: `must be "missing", "never" or "always"`})
	}
	switch o.RestartPolicy {
	case "":
		o.RestartPolicy = "no"
	case "no", "on-failure", "unless-stopped", "always":
	default:
		errs = append(errs, workload.FieldError{Path: path + "restartPolicy", Message: `must be "no", "on-failure", "unless-stopped" or "always"`})
	}
	if o.ConfigDir == "" {
		o.ConfigDir = "/etc/alphaswarm/config"
	}
	if !filepath.IsAbs(o.ConfigDir) || filepath.Clean(o.ConfigDir) == "/" {
		errs = append(errs, workload.FieldError{Path: path + "configDir", Message: "must be an absolute path other than /"})
	}
	o.ConfigDir = filepath.ToSlash(filepath.Clean(o.ConfigDir))
	if len(o.ComposeCommand) == 0 {
		o.ComposeCommand = []string{"docker-compose"}
	}
	if o.MinReady == nil {
		d := workload.Duration(500 * time.Millisecond)
		o.MinReady = &d
	}
	if *o.MinReady < 0 {
		errs = append(errs, workload.FieldError{Path: path + "minReady", Message: "must be >= 0"})
	}
	if o.Init == nil {
		t := true
		o.Init = &t
	}
	if o.Parallel == 0 {
		o.Parallel = 4
	}
	if o.Parallel < 1 {
		errs = append(errs, workload.FieldError{Path: path + "parallel", Message: "must be >= 1"})
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// Provider runs services as containers of one Docker Engine. See the
// package documentation.
type Provider struct {
	target   string
	instance string // opts.Instance: "" for an unscoped provider
	opts     Options
	policy   provider.Policy // the target's admission policy: Compose directory and escapes, images, ports
	creds    *credentials.Resolver
	eng      engine
	host     string            // the Engine address, for messages
	cenv     map[string]string // the resolver's docker variables, for Compose

	ctx    context.Context // the provider's lifetime; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the cache's goroutines
	drains sync.WaitGroup // background removals of replaced replicas

	rollCtx    context.Context // parent of background rollouts; cancelled first by Close
	rollCancel context.CancelFunc
	rolls      sync.WaitGroup // background rollouts (rollBehind)

	cache *cache
	stats *telemetry.Hub[string, containerSample]

	locksMu sync.Mutex
	locks   map[string]*serviceLock

	unscopedOnce sync.Once // warnUnscoped
}

// Open builds a docker provider for cfg. It does not contact the Engine:
// a target whose Engine does not answer is built anyway and its operations
// report Unavailable.
func Open(ctx context.Context, cfg provider.TargetConfig, creds *credentials.Resolver) (provider.Provider, error) {
	var opts Options
	if err := cfg.DecodeOptions(&opts); err != nil {
		return nil, err
	}
	if opts.Instance == "" {
		opts.Instance = cfg.Instance
	}
	if err := opts.defaults(cfg.Name); err != nil {
		return nil, err
	}
	if creds == nil {
		creds = credentials.FromEnv()
	}
	env := creds.Provider(Name)
	cli, host, err := newClient(env)
	if err != nil {
		return nil, err
	}
	p := newProvider(cfg.Name, opts, creds, cli, host, env)
	p.policy = cfg.Policy
	return p, nil
}

func newProvider(target string, opts Options, creds *credentials.Resolver, eng engine, host string, env map[string]string) *Provider {
	p := &Provider{
		target:   target,
		instance: opts.Instance,
		opts:     opts,
		creds:    creds,
		eng:      eng,
		host:     host,
		cenv:     env,
		locks:    map[string]*serviceLock{},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.rollCtx, p.rollCancel = context.WithCancel(context.Background())
	p.cache = newCache(p)
	p.stats = telemetry.NewHub(p.openStats, telemetry.WithBuffer[containerSample](4))
	return p
}

// newClient builds an Engine client from the resolver's docker variables,
// never from the process environment. The API version is negotiated with
// the Engine on the first request (down to API 1.41 for Docker 20.10)
// unless DOCKER_API_VERSION pins it.
func newClient(env map[string]string) (*client.Client, string, error) {
	var opts []client.Opt
	host := env["DOCKER_HOST"]
	if host == "" {
		host = client.DefaultDockerHost
	}
	if certPath := env["DOCKER_CERT_PATH"]; certPath != "" {
		tlsOpts := tlsconfig.Options{
			CAFile:             filepath.Join(certPath, "ca.pem"),
			CertFile:           filepath.Join(certPath, "cert.pem"),
			KeyFile:            filepath.Join(certPath, "key.pem"),
			InsecureSkipVerify: env["DOCKER_TLS_VERIFY"] == "",
			MinVersion:         tls.VersionTLS12,
		}
		tc, err := tlsconfig.Client(tlsOpts)
		if err != nil {
			return nil, host, workload.Errorf(workload.InvalidArgument, "DOCKER_CERT_PATH=%s: %v", certPath, err)
		}
		opts = append(opts, client.WithHTTPClient(&http.Client{
			Transport:     &http.Transport{TLSClientConfig: tc, MaxIdleConns: 6, IdleConnTimeout: 30 * time.Second},
			CheckRedirect: client.CheckRedirect,
		}))
	}
	opts = append(opts, client.WithHost(host))
	if v := env["DOCKER_API_VERSION"]; v != "" {
		opts = append(opts, client.WithAPIVersion(v))
	}
	opts = append(opts, client.WithUserAgent("alphaswarm-controller"))
	cli, err := client.New(opts...)
	if err != nil {
		return nil, host, workload.Errorf(workload.InvalidArgument, "docker client for DOCKER_HOST=%s: %v", host, err)
	}
	return cli, host, nil
}

// ProviderName implements provider.Named.
func (p *Provider) ProviderName() string { return Name }

// PublishesHostPorts tells the runtime's admission that ports[].host is a
// port of the Engine's host, so the target policy's host ports and bind
// addresses apply.
func (p *Provider) PublishesHostPorts() bool { return true }

// Close stops background rollouts (each leaves its old replicas serving,
// see rollOn), waits for replaced replicas to finish draining, stops the
// event watcher and the metric streams and closes the Engine client. The
// provider is unusable afterwards.
func (p *Provider) Close() error {
	p.rollCancel()
	p.rolls.Wait()
	p.drains.Wait()
	p.cancel()
	p.stats.Close()
	p.wg.Wait()
	return p.eng.Close()
}

// serviceLock serialises the mutations of one service.
type serviceLock struct {
	mu sync.Mutex
	// Guarded by Provider.locksMu:
	roll     *rollout        // a background rollout of the service, if any
	unrolled map[string]bool // replicas a superseded background restart did not reach
}

// lock serialises mutations of one service. The runtime already does; this
// keeps the provider correct when used on its own (tests, benchmarks). A
// background rollout (rollBehind) of the service is superseded: lock
// cancels it and returns once it has stopped.
func (p *Provider) lock(name string) func() {
	p.locksMu.Lock()
	l := p.locks[name]
	if l == nil {
		l = &serviceLock{}
		p.locks[name] = l
	}
	p.locksMu.Unlock()
	l.mu.Lock()
	p.locksMu.Lock()
	ro := l.roll
	p.locksMu.Unlock()
	if ro != nil {
		ro.cancel()
		<-ro.done
	}
	return l.mu.Unlock
}

func (p *Provider) serviceID(name string) string { return workload.ServiceID(p.target, name) }

func (p *Provider) networkName(service string) string { return p.opts.NetworkPrefix + service }

func (p *Provider) projectName(service string) string { return p.opts.NamePrefix + service }

func (p *Provider) stopTimeoutSeconds() int {
	return int((p.opts.StopTimeout.D() + time.Second - 1) / time.Second)
}

// errClosed is returned by operations on a closed provider.
var errClosed = errors.New("docker provider closed")

func (p *Provider) alive() error {
	if p.ctx.Err() != nil {
		return provider.Wrap(Name, p.classifier, errClosed, "")
	}
	return nil
}

// Ping reports whether the Engine answers, negotiating the API version on
// the way (provider.Pinger).
func (p *Provider) Ping(ctx context.Context) error {
	if err := p.alive(); err != nil {
		return err
	}
	_, err := p.eng.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	return provider.Wrap(Name, p.classifier, err, "ping")
}
