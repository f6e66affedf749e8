package gcp

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	monitoring "cloud.google.com/go/monitoring/apiv3/v2"
	run "cloud.google.com/go/run/apiv2"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"golang.org/x/time/rate"
	"google.golang.org/api/cloudresourcemanager/v3"
	iam "google.golang.org/api/iam/v1"
	"google.golang.org/api/option"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Name is the provider's registered name.
const Name = "gcp"

func init() {
	provider.Register(Name, Open)
}

// Options are the target options (targets.<name>.options) in Cloud Run
// mode.
type Options struct {
	// Mode is "run" (Cloud Run, default). Mode "gke" takes GKEOptions
	// instead, and Open returns a *GKEProvider.
	Mode string `json:"mode,omitempty"`
	// Project overrides GOOGLE_CLOUD_PROJECT.
	Project string `json:"project,omitempty"`
	// Region is the Cloud Run region (required), e.g. "europe-west1".
	Region string `json:"region,omitempty"`
	// MetricsPeriod is the Cloud Monitoring alignment period and the poll
	// interval of StreamMetrics (default 60s).
	MetricsPeriod workload.Duration `json:"metricsPeriod,omitzero"`
	// PollInterval is how often Start/Scale/Stop/Restart poll the service
	// while waiting, how often Logs polls when following without
	// TailLogEntries, and the first delay before Logs reopens a broken
	// TailLogEntries stream (default 2s).
	PollInterval workload.Duration `json:"pollInterval,omitzero"`
	// ServiceAccount is the email of the service account revisions run
	// as (template.serviceAccount). When set, the provider grants it
	// roles/secretmanager.secretAccessor on every config secret it
	// writes, which Cloud Run needs to resolve the secret env vars. When
	// empty, revisions run as the project's default compute service
	// account and the provider grants nothing: that account must already
	// be able to read the secrets (see docs/providers/gcp.md).
	ServiceAccount string `json:"serviceAccount,omitempty"`
	// LogReadsPerMinute caps this target's Cloud Logging reads
	// (ListLogEntries pages) across all Logs calls (default 60, the
	// project's default "Read requests per minute" quota, which every
	// reader of the project shares): reads wait for their turn instead of
	// running into RESOURCE_EXHAUSTED.
	LogReadsPerMinute int `json:"logReadsPerMinute,omitempty"`
	// MaxTailSessions caps the TailLogEntries streams this target keeps
	// open (default 10, the project's "Number of open live-tailing
	// sessions"); a follow beyond it is rate_limited.
	MaxTailSessions int `json:"maxTailSessions,omitempty"`
}

// Provider is the Cloud Run-mode gcp provider for one target.
type Provider struct {
	target  string
	opts    Options
	project string
	parent  string // projects/<p>/locations/<r>

	services  *run.ServicesClient
	revisions *run.RevisionsClient
	secrets   *secretmanager.Client
	metrics   *monitoring.MetricClient
	logs      *logging.Client

	// logReads paces Cloud Logging reads (Options.LogReadsPerMinute);
	// tailSlots holds one token per open TailLogEntries stream
	// (Options.MaxTailSessions).
	logReads  *rate.Limiter
	tailSlots chan struct{}

	// rm and iam answer the permission checks (access.go), REST clients
	// of Resource Manager v3 and IAM v1.
	rm  *cloudresourcemanager.Service
	iam *iam.Service
	// access is what the last permission check found; accessFirst is
	// closed once the first check ended, accessDone when the checks
	// stop (stopAccess, from Close).
	accessMu    sync.Mutex
	access      accessState
	accessFirst chan struct{}
	accessDone  chan struct{}
	stopAccess  context.CancelFunc

	now func() time.Time
}

// Interface guards: a Cloud Run target restarts and tails logs, explains
// what it cannot do and which permissions it lacks.
var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Restarter = (*Provider)(nil)
	_ provider.LogTailer = (*Provider)(nil)
	_ provider.Explainer = (*Provider)(nil)
	_ provider.Named     = (*Provider)(nil)
	_ provider.Pinger    = (*Provider)(nil)
	_ io.Closer          = (*Provider)(nil)

	_ provider.PermissionExplainer = (*Provider)(nil)
)

// ProviderName implements provider.Named.
func (p *Provider) ProviderName() string { return Name }

// openConfig carries the test seam: clientOpts, when set (tests only,
// through OpenWithClientOptions in export_test.go), replaces the
// credential options.
type openConfig struct {
	clientOpts []option.ClientOption
	// restOpts, when set (tests only), are the REST clients' options
	// (Resource Manager, IAM); otherwise they use the credential options.
	restOpts []option.ClientOption
}

// Open is the provider.Factory. It reads GOOGLE_APPLICATION_CREDENTIALS and
// GOOGLE_CLOUD_PROJECT through creds and builds the clients; it does not
// call Google Cloud. In Cloud Run mode it returns a *Provider; in GKE mode
// (options.mode "gke") a *GKEProvider, which starts reading the cluster in
// the background (see docs/providers/gcp.md).
func Open(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver) (provider.Provider, error) {
	return open(ctx, cfg, creds, openConfig{})
}

func open(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver, oc openConfig) (provider.Provider, error) {
	// The mode decides which options exist: each mode decodes strictly
	// into its own struct.
	var mode string
	if raw, ok := cfg.Options["mode"]; ok {
		if err := json.Unmarshal(raw, &mode); err != nil {
			return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.mode: must be a string (run or gke)", cfg.Name)
		}
	}
	switch mode {
	case "", "run":
	case "gke":
		g, err := openGKE(ctx, cfg, creds, oc)
		if err != nil {
			return nil, err // not a nil *GKEProvider in a non-nil interface
		}
		return g, nil
	default:
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.mode: %q is not one of run, gke", cfg.Name, mode)
	}
	var o Options
	if err := cfg.DecodeOptions(&o); err != nil {
		return nil, err
	}
	o.Mode = "run"
	if o.MetricsPeriod <= 0 {
		o.MetricsPeriod = workload.Duration(60 * time.Second)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = workload.Duration(2 * time.Second)
	}
	if o.LogReadsPerMinute < 0 || o.MaxTailSessions < 0 {
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options: logReadsPerMinute and maxTailSessions must not be negative", cfg.Name)
	}
	if o.LogReadsPerMinute == 0 {
		o.LogReadsPerMinute = 60
	}
	if o.MaxTailSessions == 0 {
		o.MaxTailSessions = 10
	}
	gc := creds.Provider("gcp")
	project := o.Project
	if project == "" {
		project = gc["GOOGLE_CLOUD_PROJECT"]
	}
	if project == "" {
		project = gc["CLOUDSDK_CORE_PROJECT"]
	}
	if project == "" {
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s: no project: set options.project or GOOGLE_CLOUD_PROJECT", cfg.Name)
	}
	if o.Region == "" {
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.region: required for Cloud Run (e.g. \"europe-west1\")", cfg.Name)
	}
	if o.ServiceAccount != "" && !serviceAccountEmail.MatchString(o.ServiceAccount) {
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.serviceAccount: want a service account email (name@project.iam.gserviceaccount.com)", cfg.Name)
	}
	opts := oc.clientOpts
	if opts == nil {
		file := gc["GOOGLE_APPLICATION_CREDENTIALS"]
		if file == "" {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "open: %s", credentialsUnset)
		}
		// WithCredentialsFile accepts service_account and external_account
		// (workload identity federation) files alike.
		opts = []option.ClientOption{option.WithCredentialsFile(file)}
	}
	p := &Provider{target: cfg.Name, opts: o, project: project,
		parent: "projects/" + project + "/locations/" + o.Region, now: time.Now,
		// A sixth of the minute's reads may go at once; the rest at the
		// per-minute rate.
		logReads:  rate.NewLimiter(rate.Limit(float64(o.LogReadsPerMinute)/60), max(1, o.LogReadsPerMinute/6)),
		tailSlots: make(chan struct{}, o.MaxTailSessions)}
	var err error
	if p.services, err = run.NewServicesClient(ctx, opts...); err != nil {
		return nil, mapErr("run services client", err)
	}
	if p.revisions, err = run.NewRevisionsClient(ctx, opts...); err != nil {
		return nil, mapErr("run revisions client", err)
	}
	if p.secrets, err = secretmanager.NewClient(ctx, opts...); err != nil {
		return nil, mapErr("secret manager client", err)
	}
	if p.metrics, err = monitoring.NewMetricClient(ctx, opts...); err != nil {
		return nil, mapErr("monitoring client", err)
	}
	if p.logs, err = logging.NewClient(ctx, opts...); err != nil {
		return nil, mapErr("logging client", err)
	}
	restOpts := oc.restOpts
	if restOpts == nil {
		restOpts = opts
	}
	if p.rm, err = cloudresourcemanager.NewService(ctx, restOpts...); err != nil {
		return nil, mapErr("resource manager client", err)
	}
	if p.iam, err = iam.NewService(ctx, restOpts...); err != nil {
		return nil, mapErr("iam client", err)
	}
	// The permission checks run in the background: Open does not call
	// Google Cloud, and an operation waits for the first check at most
	// firstAccessWait.
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopAccess, p.accessFirst, p.accessDone = cancel, make(chan struct{}), make(chan struct{})
	go provider.Recheck(actx, accessInterval, p.checkAccess, p.accessFirst, p.accessDone)
	return p, nil
}

// Close releases the clients' connections.
func (p *Provider) Close() error {
	p.stopAccess()
	<-p.accessDone
	for _, c := range []interface{ Close() error }{p.services, p.revisions, p.secrets, p.metrics, p.logs} {
		_ = c.Close()
	}
	return nil
}

// UnsupportedReason implements provider.Explainer.
func (p *Provider) UnsupportedReason(op provider.Operation) string {
	if op == provider.OpExec {
		return execReason
	}
	return ""
}

func (p *Provider) serviceName(name string) string { return p.parent + "/services/" + name }

// execReason is why exec is unsupported.
const execReason = "Cloud Run has no exec: the Admin API offers no way to run a command inside a running instance"
