package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Name is the provider's registered name.
const Name = "kubernetes"

func init() {
	provider.Register(Name, Open)
}

// Capabilities is every interface the kubernetes provider implements. A
// provider that delegates every operation to it (Managed, and the EKS, AKS
// and GKE providers that embed one) offers all of them too, and guards
// that with one line: var _ kubernetes.Capabilities = (*T)(nil).
type Capabilities interface {
	provider.Provider
	provider.Restarter
	provider.LogTailer
	provider.Execer
	provider.Lister
	provider.Watcher
	provider.Pinger
	provider.Explainer
	provider.PermissionExplainer
	provider.Differ
	provider.RefChecker
	provider.Named
	io.Closer
}

// Interface guard: the provider has every capability it declares.
var _ Capabilities = (*Provider)(nil)

// In-cluster service-account files, as rest.InClusterConfig reads them.
const (
	saDir       = "/var/run/secrets/kubernetes.io/serviceaccount"
	saTokenFile = saDir + "/token"
	saCAFile    = saDir + "/ca.crt"
	saNSFile    = saDir + "/namespace"
)

// Options are the target options (targets.<name>.options) of a kubernetes
// target. None of them is a secret: tokens and certificates live in the
// kubeconfig file or the pod's service-account files.
type Options struct {
	// Kubeconfig is the path of a kubeconfig file. Default: the
	// KUBECONFIG variable handed out by the credentials resolver (a
	// list, as kubectl reads it); without either, the in-cluster
	// service account (KUBERNETES_SERVICE_HOST/PORT from the resolver).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Context picks a kubeconfig context. Default: the current context.
	Context string `json:"context,omitempty"`
	// Namespace holds the target's services. Default: the context's
	// namespace, the pod's own namespace in a cluster, or "default".
	Namespace string `json:"namespace,omitempty"`
	// DeleteOnStop makes Stop delete the Deployment, its Service and its
	// ConfigMap instead of scaling to 0. Default false: Stop scales to 0
	// and keeps everything, so the service stays known and Scale brings
	// it back.
	DeleteOnStop bool `json:"deleteOnStop,omitempty"`
	// RolloutTimeout bounds how long Start, Stop, Scale, Restart and
	// ApplyConfig wait for the rollout when the caller's context allows
	// longer. Default 5m.
	RolloutTimeout workload.Duration `json:"rolloutTimeout,omitzero"`
	// ProgressDeadline is the Deployments' progressDeadlineSeconds: how
	// long a rollout may make no progress before Kubernetes (and so
	// Status) calls it failed. Default 10m, Kubernetes' own default.
	ProgressDeadline workload.Duration `json:"progressDeadline,omitzero"`
	// ConfigDir is where the service's config appears inside its pods,
	// one file per key. Default /etc/alphaswarm/config.
	ConfigDir string `json:"configDir,omitempty"`
	// MetricsInterval is how often StreamMetrics asks metrics.k8s.io;
	// a sample is yielded whenever Metrics Server has a newer window.
	// Default 5s.
	MetricsInterval workload.Duration `json:"metricsInterval,omitzero"`
	// QPS and Burst bound the client's request rate. Defaults 50 and 100
	// (client-go's own 5 and 10 would throttle a busy controller).
	QPS   float32 `json:"qps,omitempty"`
	Burst int     `json:"burst,omitempty"`
}

func (o *Options) defaults(target string) error {
	var errs []workload.FieldError
	path := "targets." + target + ".options."
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, workload.FieldError{Path: path + "namespace", Message: "must be a namespace name: " + strings.Join(msgs, "; ")})
	}
	if o.RolloutTimeout == 0 {
		o.RolloutTimeout = workload.Duration(5 * time.Minute)
	}
	if o.RolloutTimeout < 0 {
		errs = append(errs, workload.FieldError{Path: path + "rolloutTimeout", Message: "must be > 0"})
	}
	if o.ProgressDeadline == 0 {
		o.ProgressDeadline = workload.Duration(10 * time.Minute)
	}
	if o.ProgressDeadline < 0 {
		errs = append(errs, workload.FieldError{Path: path + "progressDeadline", Message: "must be > 0"})
	}
	if o.ConfigDir == "" {
		o.ConfigDir = "/etc/alphaswarm/config"
	}
	if !filepath.IsAbs(o.ConfigDir) || filepath.Clean(o.ConfigDir) == "/" {
		errs = append(errs, workload.FieldError{Path: path + "configDir", Message: "must be an absolute path other than /"})
	}
	o.ConfigDir = filepath.ToSlash(filepath.Clean(o.ConfigDir))
	if o.MetricsInterval == 0 {
		o.MetricsInterval = workload.Duration(5 * time.Second)
	}
	if o.MetricsInterval < workload.Duration(100*time.Millisecond) {
		errs = append(errs, workload.FieldError{Path: path + "metricsInterval", Message: "must be at least 100ms"})
	}
	if o.QPS == 0 {
		o.QPS = 50
	}
	if o.Burst == 0 {
		o.Burst = 100
	}
	if o.QPS < 0 || o.Burst < 0 {
		errs = append(errs, workload.FieldError{Path: path + "qps", Message: "qps and burst must be > 0"})
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// Provider runs services as Deployments of one namespace of one cluster.
// See the package documentation. Its methods may be called concurrently.
type Provider struct {
	target  string
	opts    Options
	host    string   // the API server, for messages
	baseURL *url.URL // the API server's base URL, for exec

	// The seam: what the provider calls. New fills them from a
	// rest.Config; unit tests use the client-go fakes.
	kube        kubernetes.Interface
	metrics     metricsclient.Interface
	newExecutor func(u *url.URL) (remotecommand.Executor, error)

	ctx    context.Context // the provider's lifetime; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	cache *cache

	metricsMu     sync.Mutex
	metricsAbsent string // why metrics.k8s.io is not served; "" if it is or is unknown

	accessMu    sync.Mutex
	access      accessState   // what checkAccess found (access.go)
	accessFirst chan struct{} // closed when the first check has ended
}

// Open builds a kubernetes provider for cfg. The rest.Config comes from
// options.kubeconfig, else KUBECONFIG (through creds), else the in-cluster
// service account. It does not wait for the API server: a target whose
// cluster does not answer is built anyway and its operations report
// Unavailable.
func Open(ctx context.Context, cfg provider.TargetConfig, creds *credentials.Resolver) (provider.Provider, error) {
	var opts Options
	if err := cfg.DecodeOptions(&opts); err != nil {
		return nil, err
	}
	if creds == nil {
		creds = credentials.FromEnv()
	}
	rc, ns, err := restConfig(cfg.Name, opts, creds.Provider(Name))
	if err != nil {
		return nil, err
	}
	if opts.Namespace == "" {
		opts.Namespace = ns
	}
	return New(ctx, cfg.Name, rc, opts)
}

// restConfig loads the client configuration for a target, and the
// namespace its kubeconfig context (or service account) names. env holds
// the resolver's kubernetes variables: nothing here reads the process
// environment.
func restConfig(target string, opts Options, env map[string]string) (*rest.Config, string, error) {
	path := "targets." + target + ".options."
	var paths []string
	switch {
	case opts.Kubeconfig != "":
		paths = []string{opts.Kubeconfig}
	case env["KUBECONFIG"] != "":
		paths = filepath.SplitList(env["KUBECONFIG"])
	}
	if len(paths) == 0 {
		return inClusterConfig(target, opts, env)
	}
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: paths}
	if opts.Kubeconfig != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}
	}
	raw, err := rules.Load()
	if err != nil {
		return nil, "", workload.Invalid(workload.FieldError{Path: path + "kubeconfig", Message: err.Error()})
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, opts.Context, &clientcmd.ConfigOverrides{}, rules)
	rc, err := cc.ClientConfig()
	if err != nil {
		field := "kubeconfig"
		if opts.Context != "" {
			field = "context"
		}
		return nil, "", workload.Invalid(workload.FieldError{Path: path + field,
			Message: fmt.Sprintf("kubeconfig %s: %v", strings.Join(paths, string(filepath.ListSeparator)), err)})
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return rc, ns, nil
}

// inClusterConfig is rest.InClusterConfig, with the service host and port
// taken from the resolver rather than the process environment.
func inClusterConfig(target string, opts Options, env map[string]string) (*rest.Config, string, error) {
	host, port := env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
	if host == "" || port == "" {
		return nil, "", workload.Invalid(workload.FieldError{Path: "targets." + target + ".options.kubeconfig",
			Message: "no kubeconfig: set options.kubeconfig or KUBECONFIG, or run the controller in a cluster (KUBERNETES_SERVICE_HOST/PORT are not set)"})
	}
	if _, err := os.Stat(saTokenFile); err != nil {
		return nil, "", workload.Invalid(workload.FieldError{Path: "targets." + target + ".options.kubeconfig",
			Message: "running in a cluster but the service-account token is missing: " + err.Error()})
	}
	rc := &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: rest.TLSClientConfig{CAFile: saCAFile},
		BearerTokenFile: saTokenFile,
	}
	ns := "default"
	if b, err := os.ReadFile(saNSFile); err == nil && strings.TrimSpace(string(b)) != "" {
		ns = strings.TrimSpace(string(b))
	}
	return rc, ns, nil
}

// New builds a provider for target over a ready rest.Config: the cloud
// providers (EKS, AKS, GKE) hand over a cluster endpoint, CA and token this
// way. opts.Kubeconfig and opts.Context are ignored; an empty namespace is
// "default". rc is copied, never modified. New starts the provider's
// informers in the background and returns without waiting for the API
// server; Close stops them.
func New(ctx context.Context, target string, rc *rest.Config, opts Options) (*Provider, error) {
	if m := workload.ValidateName(target); m != "" {
		return nil, workload.Invalid(workload.FieldError{Path: "targets.name", Message: m})
	}
	if rc == nil {
		return nil, workload.Invalid(workload.FieldError{Path: "targets." + target, Message: "no rest.Config given"})
	}
	if err := opts.defaults(target); err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	if rc.QPS == 0 {
		rc.QPS = opts.QPS
	}
	if rc.Burst == 0 {
		rc.Burst = opts.Burst
	}
	if rc.UserAgent == "" {
		rc.UserAgent = "alphaswarm-controller (" + rest.DefaultKubernetesUserAgent() + ")"
	}
	// Built-in types speak protobuf; the metrics client keeps JSON
	// (aggregated APIs need not speak protobuf).
	kc := rest.CopyConfig(rc)
	kc.ContentType = "application/vnd.kubernetes.protobuf"
	kc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	kube, err := kubernetes.NewForConfig(kc)
	if err != nil {
		return nil, workload.Errorf(workload.InvalidArgument, "targets.%s: kubernetes client: %v", target, err)
	}
	mc, err := metricsclient.NewForConfig(rc)
	if err != nil {
		return nil, workload.Errorf(workload.InvalidArgument, "targets.%s: metrics client: %v", target, err)
	}
	p := newProvider(target, opts, kube, mc, rc.Host)
	if base, _, err := rest.DefaultServerUrlFor(rc); err == nil {
		p.baseURL = base
	}
	p.newExecutor = func(u *url.URL) (remotecommand.Executor, error) { return newExecutor(rc, u) }
	p.start()
	return p, nil
}

// newProvider wires a provider over its clients without starting it.
// opts must have had its defaults applied.
func newProvider(target string, opts Options, kube kubernetes.Interface, mc metricsclient.Interface, host string) *Provider {
	p := &Provider{target: target, opts: opts, host: host, baseURL: parseBaseURL(host), kube: kube, metrics: mc,
		accessFirst: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.cache = newCache(p)
	return p
}

// start runs the informers and the metrics API check in the background.
func (p *Provider) start() {
	p.cache.start(p.ctx)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.watchMetricsAPI(p.ctx)
	}()
	go func() {
		defer p.wg.Done()
		// RBAC may change while the controller runs.
		provider.Recheck(p.ctx, 5*time.Minute, p.checkAccess, p.accessFirst, nil)
	}()
}

// newExecutor is kubectl's: WebSocket (the API server's RemoteCommand v5
// protocol) first, SPDY when the upgrade fails or a proxy is in between.
func newExecutor(rc *rest.Config, u *url.URL) (remotecommand.Executor, error) {
	spdy, err := remotecommand.NewSPDYExecutor(rc, "POST", u)
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(rc, "GET", u.String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// Close stops the informers and every background goroutine. Operations
// after Close return Unavailable.
func (p *Provider) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.cancel()
	p.cache.shutdown()
	p.wg.Wait()
	return nil
}

// ProviderName implements provider.Named.
func (p *Provider) ProviderName() string { return Name }

// Namespace returns the namespace the target's services live in.
func (p *Provider) Namespace() string { return p.opts.Namespace }

// Ping implements provider.Pinger: it asks the API server for its version.
func (p *Provider) Ping(ctx context.Context) error {
	if err := p.alive(); err != nil {
		return err
	}
	if _, err := p.serverVersion(ctx); err != nil {
		return err
	}
	return p.accessProblem()
}

func (p *Provider) serverVersion(ctx context.Context) (string, error) {
	rc := p.kube.Discovery().RESTClient()
	if rc == nil { // the client-go fake
		v, err := p.kube.Discovery().ServerVersion()
		if err != nil {
			return "", provider.Wrap(Name, p.classified, err, "ping")
		}
		return v.GitVersion, nil
	}
	body, err := rc.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", provider.Wrap(Name, p.classified, err, "ping")
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", provider.Wrap(Name, p.classified, err, "ping: read /version")
	}
	return v.GitVersion, nil
}

// UnsupportedReason implements provider.Explainer. The one operation a
// cluster can lack is stream_metrics: it needs the metrics.k8s.io API
// (Metrics Server). The answer comes from a discovery check the provider
// repeats every 30 seconds in the background, so it costs nothing here.
func (p *Provider) UnsupportedReason(op provider.Operation) string {
	if op != provider.OpStreamMetrics {
		return ""
	}
	p.metricsMu.Lock()
	defer p.metricsMu.Unlock()
	return p.metricsAbsent
}

func (p *Provider) alive() error {
	if p.closed.Load() {
		return provider.Wrap(Name, p.classified, errClosed, "")
	}
	return nil
}

// errNoMetricsAPI is the cause of an unavailable metrics stream.
var errNoMetricsAPI = errors.New("metrics.k8s.io is not served")
