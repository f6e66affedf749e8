package gcp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	gauthcreds "cloud.google.com/go/auth/credentials"
	container "cloud.google.com/go/container/apiv1"
	"cloud.google.com/go/container/apiv1/containerpb"
	"google.golang.org/api/option"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"
)

// Interface guard: in GKE mode the provider offers exactly what the
// kubernetes provider offers.
var _ kubernetes.Capabilities = (*GKEProvider)(nil)

// GKEScopes are the OAuth 2.0 scopes of the access token the provider
// presents to the cluster (and to the GKE API), those
// gke-gcloud-auth-plugin asks for: cloud-platform for the API, and
// userinfo.email so that GKE can map the token to the account's email for
// Kubernetes RBAC.
var GKEScopes = []string{
	"https://www.googleapis.com/auth/cloud-platform",
	"https://www.googleapis.com/auth/userinfo.email",
}

// GKETokenEarlyRefresh is how long before its expiry the cluster access
// token is replaced: a request that finds less than this left waits for a
// new token (once an hour with Google's one-hour tokens).
const GKETokenEarlyRefresh = 5 * time.Minute

// resolveTimeout bounds one attempt at reading the cluster from the GKE
// API.
const resolveTimeout = 30 * time.Second

// GKEOptions are the target options (targets.<name>.options) in GKE mode.
// None of them is a secret: the credentials come from
// GOOGLE_APPLICATION_CREDENTIALS.
type GKEOptions struct {
	// Mode is "gke".
	Mode string `json:"mode"`
	// Project is the cluster's project. Default: GOOGLE_CLOUD_PROJECT,
	// else CLOUDSDK_CORE_PROJECT.
	Project string `json:"project,omitempty"`
	// Location is the cluster's region (regional cluster,
	// "europe-west1") or zone (zonal cluster, "europe-west1-b").
	// Required.
	Location string `json:"location,omitempty"`
	// Cluster is the cluster's name. Required.
	Cluster string `json:"cluster,omitempty"`
	// Endpoint picks the control-plane endpoint: "" or "default" (the
	// cluster's endpoint field, as gcloud container clusters
	// get-credentials uses it), "private" (the private IP endpoint, as
	// with --internal-ip) or "dns" (the DNS-based endpoint, as with
	// --dns-endpoint).
	Endpoint string `json:"endpoint,omitempty"`

	// The kubernetes provider's options (see kubernetes.Options).
	Namespace        string            `json:"namespace,omitempty"`
	DeleteOnStop     bool              `json:"deleteOnStop,omitempty"`
	RolloutTimeout   workload.Duration `json:"rolloutTimeout,omitzero"`
	ProgressDeadline workload.Duration `json:"progressDeadline,omitzero"`
	ConfigDir        string            `json:"configDir,omitempty"`
	MetricsInterval  workload.Duration `json:"metricsInterval,omitzero"`
	QPS              float32           `json:"qps,omitempty"`
	Burst            int               `json:"burst,omitempty"`
}

var (
	locationRE = regexp.MustCompile(`^[a-z]+(-[a-z]+)+[0-9]+(-[a-z])?$`)
	clusterRE  = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$`)
	projectRE  = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$`)
)

// validate checks the options after the project defaults were applied.
func (o *GKEOptions) validate(target string) error {
	path := "targets." + target + ".options."
	var errs []workload.FieldError
	add := func(field, msg string) { errs = append(errs, workload.FieldError{Path: path + field, Message: msg}) }
	switch {
	case o.Project == "":
		add("project", "required in gke mode: set options.project or GOOGLE_CLOUD_PROJECT")
	case !projectRE.MatchString(o.Project):
		add("project", fmt.Sprintf("%q is not a Google Cloud project id", o.Project))
	}
	switch {
	case o.Location == "":
		add("location", "required in gke mode: the cluster's region (\"europe-west1\") or zone (\"europe-west1-b\")")
	case !locationRE.MatchString(o.Location):
		add("location", fmt.Sprintf("%q is not a Google Cloud region or zone", o.Location))
	}
	switch {
	case o.Cluster == "":
		add("cluster", "required in gke mode: the GKE cluster's name")
	case !clusterRE.MatchString(o.Cluster):
		add("cluster", fmt.Sprintf("%q is not a GKE cluster name (lowercase letters, digits and hyphens, at most 40)", o.Cluster))
	}
	switch o.Endpoint {
	case "", "default", "private", "dns":
	default:
		add("endpoint", fmt.Sprintf("%q is not one of default, private, dns", o.Endpoint))
	}
	if o.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
			add("namespace", "must be a namespace name: "+strings.Join(msgs, "; "))
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...).WithProvider(Name)
	}
	return nil
}

// gkeDecodeHint says, for each option DecodeOptions found unknown, that
// it is unknown in gke mode, and what to use instead of the usual
// mistakes.
func gkeDecodeHint(err error) error {
	we, ok := err.(*workload.Error)
	if !ok || len(we.Fields) == 0 {
		return err
	}
	fields := make([]workload.FieldError, len(we.Fields))
	for i, f := range we.Fields {
		if !strings.HasPrefix(f.Message, "unknown field") {
			fields[i] = f // a wrongly typed or repeated option: nothing mode-specific to say
			continue
		}
		f.Message += " in gke mode"
		switch f.Path[strings.LastIndex(f.Path, ".")+1:] {
		case "region":
			f.Message += ": the cluster's region or zone is options.location"
		case "metricsPeriod", "pollInterval":
			f.Message += ": it is a Cloud Run option"
		case "kubeconfig", "context":
			f.Message += ": the cluster's endpoint and credentials come from the GKE API"
		}
		fields[i] = f
	}
	return workload.Invalid(fields...).WithProvider(Name)
}

func (o *GKEOptions) kubeOptions() kubernetes.Options {
	return kubernetes.Options{Namespace: o.Namespace, DeleteOnStop: o.DeleteOnStop, RolloutTimeout: o.RolloutTimeout,
		ProgressDeadline: o.ProgressDeadline, ConfigDir: o.ConfigDir, MetricsInterval: o.MetricsInterval, QPS: o.QPS, Burst: o.Burst}
}

// GKEProvider is the gcp provider in GKE mode: it reads the cluster's
// endpoint and CA from the GKE API (GetCluster) and delegates every
// operation to a kubernetes provider for that cluster, authenticating with
// OAuth 2.0 access tokens of the target's Google credentials. It reports
// itself (ProviderName, statuses, errors) as "gcp".
//
// The cluster is read in the background from Open on, and again by the
// next operation whenever an attempt failed; operations wait for it (or
// their context): see kubernetes.Managed, whose methods it has. Close
// stops the kubernetes provider and closes the GKE API client.
type GKEProvider struct {
	*kubernetes.Managed
	target string
	opts   GKEOptions
	name   string // projects/<p>/locations/<l>/clusters/<c>
	client *container.ClusterManagerClient
	tokens auth.TokenProvider
}

func openGKE(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver, oc openConfig) (*GKEProvider, error) {
	var o GKEOptions
	if err := cfg.DecodeOptions(&o); err != nil {
		return nil, gkeDecodeHint(err)
	}
	if o.Mode != "gke" {
		return nil, provider.Errorf(Name, workload.InvalidArgument, "targets.%s.options.mode: %q, want gke", cfg.Name, o.Mode)
	}
	if creds == nil {
		creds = ascreds.FromEnv()
	}
	gc := creds.Provider("gcp")
	if o.Project == "" {
		o.Project = gc["GOOGLE_CLOUD_PROJECT"]
	}
	if o.Project == "" {
		o.Project = gc["CLOUDSDK_CORE_PROJECT"]
	}
	if err := o.validate(cfg.Name); err != nil {
		return nil, err
	}
	file := gc["GOOGLE_APPLICATION_CREDENTIALS"]
	if file == "" {
		return nil, provider.Errorf(Name, workload.Unauthenticated, "open: %s", credentialsUnset)
	}
	ac, err := gkeCredentials(file)
	if err != nil {
		return nil, err
	}
	clientOpts := oc.clientOpts
	if len(clientOpts) == 0 {
		clientOpts = []option.ClientOption{option.WithAuthCredentials(ac)}
	}
	client, err := container.NewClusterManagerClient(ctx, clientOpts...)
	if err != nil {
		return nil, mapErr("GKE cluster manager client", err)
	}
	g := &GKEProvider{target: cfg.Name, opts: o, name: "projects/" + o.Project + "/locations/" + o.Location + "/clusters/" + o.Cluster,
		client: client, tokens: ac}
	g.Managed, err = kubernetes.NewManaged(kubernetes.ManagedConfig{
		Provider: Name, Target: cfg.Name, Cluster: "GKE cluster " + g.name, Options: o.kubeOptions(),
		Resolve: g.resolve, ResolveTimeout: resolveTimeout, Eager: true, OnClose: client.Close,
	})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return g, nil
}

// gkeCredentials loads the credentials file (service_account or
// external_account) with GKEScopes and a blocking, caching token
// provider: a token is reused until GKETokenEarlyRefresh before its
// expiry, then the request that finds it so waits for a new one.
func gkeCredentials(file string) (*auth.Credentials, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, provider.Errorf(Name, workload.Unauthenticated, "open: read GOOGLE_APPLICATION_CREDENTIALS: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		e := provider.Errorf(Name, workload.Unauthenticated, "open: GOOGLE_APPLICATION_CREDENTIALS %s is not a JSON credentials file", file)
		e.Err = err
		return nil, e
	}
	var ct gauthcreds.CredType
	switch gauthcreds.CredType(head.Type) {
	case gauthcreds.ServiceAccount, gauthcreds.ExternalAccount:
		ct = gauthcreds.CredType(head.Type)
	default:
		return nil, provider.Errorf(Name, workload.Unauthenticated,
			"open: GOOGLE_APPLICATION_CREDENTIALS %s holds credentials of type %q; GKE mode takes service_account or external_account", file, head.Type)
	}
	ac, err := gauthcreds.NewCredentialsFromJSON(ct, b, &gauthcreds.DetectOptions{
		Scopes:              GKEScopes,
		EarlyTokenRefresh:   GKETokenEarlyRefresh,
		DisableAsyncRefresh: true,
	})
	if err != nil {
		return nil, provider.Errorf(Name, workload.Unauthenticated, "open: GOOGLE_APPLICATION_CREDENTIALS %s: %w", file, err)
	}
	return ac, nil
}

// resolve reads the cluster and returns the client configuration of its
// API server (kubernetes.ManagedConfig.Resolve).
func (g *GKEProvider) resolve(ctx context.Context) (*rest.Config, error) {
	cl, err := g.client.GetCluster(ctx, &containerpb.GetClusterRequest{Name: g.name})
	if err != nil {
		return nil, mapErr("GKE cluster "+g.name, err)
	}
	return g.restConfig(cl)
}

// restConfig is the client configuration for the cluster: the chosen
// endpoint over https, the cluster CA (except for the DNS endpoint) and
// an access token per request.
func (g *GKEProvider) restConfig(cl *containerpb.Cluster) (*rest.Config, error) {
	what := "GKE cluster " + g.name
	var endpoint string
	useCA := true
	switch g.opts.Endpoint {
	case "", "default":
		endpoint = cl.GetEndpoint()
	case "private":
		endpoint = cl.GetControlPlaneEndpointsConfig().GetIpEndpointsConfig().GetPrivateEndpoint()
		if endpoint == "" {
			endpoint = cl.GetPrivateClusterConfig().GetPrivateEndpoint()
		}
	case "dns":
		endpoint = cl.GetControlPlaneEndpointsConfig().GetDnsEndpointConfig().GetEndpoint()
		useCA = false
	}
	if endpoint == "" {
		if st := cl.GetStatus(); st != containerpb.Cluster_RUNNING && st != containerpb.Cluster_RECONCILING && st != containerpb.Cluster_DEGRADED {
			return nil, provider.Errorf(Name, workload.Unavailable, "%s: the cluster is %s and has no endpoint yet", what, st)
		}
		kind := "endpoint"
		if g.opts.Endpoint != "" && g.opts.Endpoint != "default" {
			kind = g.opts.Endpoint + " endpoint"
		}
		return nil, provider.Errorf(Name, workload.InvalidArgument, "%s: the cluster has no %s (targets.%s.options.endpoint)", what, kind, g.target)
	}
	host := endpoint
	if !strings.HasPrefix(host, "https://") {
		host = "https://" + host
	}
	rc := &rest.Config{Host: host}
	if useCA {
		ca, err := base64.StdEncoding.DecodeString(cl.GetMasterAuth().GetClusterCaCertificate())
		if err != nil || len(ca) == 0 {
			e := provider.Errorf(Name, workload.ProviderError, "%s: masterAuth.clusterCaCertificate is not a base64 PEM certificate", what)
			e.Err = err
			return nil, e
		}
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return nil, provider.Errorf(Name, workload.ProviderError, "%s: masterAuth.clusterCaCertificate holds no PEM certificate", what)
		}
		rc.TLSClientConfig.CAData = ca
	}
	tokens := g.tokens
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return &tokenTransport{base: rt, tokens: tokens} }
	return rc, nil
}

// tokenTransport sets each request's Authorization header from a
// refreshing token provider.
type tokenTransport struct {
	base   http.RoundTripper
	tokens auth.TokenProvider
}

// RoundTrip implements http.RoundTripper.
func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.tokens.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, mapTokenErr(err)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.Value)
	return t.base.RoundTrip(r)
}

// WrappedRoundTripper lets client-go reach the transport underneath.
func (t *tokenTransport) WrappedRoundTripper() http.RoundTripper { return t.base }

// Cluster returns the cluster's resource name,
// projects/<project>/locations/<location>/clusters/<cluster>.
func (g *GKEProvider) Cluster() string { return g.name }
