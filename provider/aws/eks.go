package aws

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"
)

// Interface guard: in mode eks the target has every capability of the
// kubernetes provider it delegates to.
var _ kubernetes.Capabilities = (*EKSProvider)(nil)

// The EKS token, as aws-iam-authenticator and `aws eks get-token` make it.
const (
	// tokenPrefix starts every token; the rest is the base64url (no
	// padding) of a presigned STS GetCallerIdentity URL.
	tokenPrefix = "k8s-aws-v1."
	// clusterIDHeader is signed into the presigned URL with the cluster's
	// name, so that a token made for one cluster is refused by another.
	clusterIDHeader = "x-k8s-aws-id"
	// presignExpires is the X-Amz-Expires of the URL, in seconds. EKS
	// ignores it and accepts a token for 15 minutes from its X-Amz-Date.
	presignExpires = "60"
	// tokenLifetime is how long EKS accepts a token; tokenRefresh is
	// how long one is used before a new one is made, a minute early.
	tokenLifetime = 15 * time.Minute
	tokenRefresh  = tokenLifetime - time.Minute
)

// The target options of each mode; the others are refused, so that an
// option that would be silently ignored is an error at open. Every field
// of Options is in one of the three lists (a test checks).
var (
	commonOptions  = []string{"mode", "region", "cluster", "metricsPeriod", "maxAttempts", "baseEndpoint"}
	ecsOnlyOptions = []string{"launchType", "subnets", "securityGroups", "executionRoleArn", "assignPublicIp",
		"taskRoleArn", "enableExecuteCommand", "logGroup", "pollInterval", "liveTail", "checkPermissions"}
	eksOnlyOptions = []string{"namespace", "deleteOnStop", "rolloutTimeout", "progressDeadline", "configDir"}
)

// checkModeOptions refuses the options of the other mode.
func checkModeOptions(cfg provider.TargetConfig, mode string) error {
	other, otherMode := eksOnlyOptions, "eks"
	if mode == "eks" {
		other, otherMode = ecsOnlyOptions, "ecs"
	}
	var errs []workload.FieldError
	for _, k := range other {
		if _, set := cfg.Options[k]; set {
			errs = append(errs, workload.FieldError{Path: "targets." + cfg.Name + ".options." + k,
				Message: fmt.Sprintf("applies to mode %s only, and this target's mode is %s", otherMode, mode)})
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b workload.FieldError) int { return strings.Compare(a.Path, b.Path) })
		return workload.Invalid(errs...)
	}
	return nil
}

// eksAPI is the one EKS call the provider makes.
type eksAPI interface {
	DescribeCluster(ctx context.Context, in *eks.DescribeClusterInput, optFns ...func(*eks.Options)) (*eks.DescribeClusterOutput, error)
}

// EKSProvider is the aws provider in mode eks: every operation is the
// kubernetes provider's, on the EKS cluster's API server, authenticated
// with an EKS token made from the target's AWS credentials. See "EKS mode"
// in docs/providers/aws.md.
//
// The cluster is resolved (DescribeCluster) by the first operation that
// needs it, not at open; a failed resolution is retried by the next
// operation, a successful one is kept for the provider's lifetime: see
// kubernetes.Managed, whose methods it has. Close stops the kubernetes
// provider's informers.
type EKSProvider struct {
	*kubernetes.Managed
	target  string
	cluster string
	region  string
	kopts   kubernetes.Options
	eks     eksAPI
	tokens  *tokenSource
}

// openEKS is Open for mode eks. It does not contact AWS.
func openEKS(ctx context.Context, cfg provider.TargetConfig, o Options, creds *ascreds.Resolver) (*EKSProvider, error) {
	if err := checkModeOptions(cfg, "eks"); err != nil {
		return nil, err
	}
	pre := "targets." + cfg.Name + ".options."
	var errs []workload.FieldError
	if o.Cluster == "" {
		errs = append(errs, workload.FieldError{Path: pre + "cluster", Message: "is required in mode eks: the EKS cluster's name"})
	}
	ko := kubernetes.Options{
		Namespace:        o.Namespace,
		DeleteOnStop:     o.DeleteOnStop,
		RolloutTimeout:   o.RolloutTimeout,
		ProgressDeadline: o.ProgressDeadline,
		ConfigDir:        o.ConfigDir,
		MetricsInterval:  o.MetricsPeriod,
	}
	if ko.Namespace == "" {
		ko.Namespace = "default"
	}
	// kubernetes.New checks these too, but only at the first operation.
	if msgs := validation.IsDNS1123Label(ko.Namespace); len(msgs) > 0 {
		errs = append(errs, workload.FieldError{Path: pre + "namespace", Message: "must be a namespace name: " + strings.Join(msgs, "; ")})
	}
	if o.RolloutTimeout < 0 {
		errs = append(errs, workload.FieldError{Path: pre + "rolloutTimeout", Message: "must be > 0"})
	}
	if o.ProgressDeadline < 0 {
		errs = append(errs, workload.FieldError{Path: pre + "progressDeadline", Message: "must be > 0"})
	}
	if d := o.ConfigDir; d != "" && (!path.IsAbs(d) || path.Clean(d) == "/") {
		errs = append(errs, workload.FieldError{Path: pre + "configDir", Message: "must be an absolute path other than /"})
	}
	if o.MetricsPeriod != 0 && o.MetricsPeriod < workload.Duration(100*time.Millisecond) {
		errs = append(errs, workload.FieldError{Path: pre + "metricsPeriod", Message: "must be at least 100ms"})
	}
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	if creds == nil {
		creds = ascreds.FromEnv()
	}
	awsCfg, err := loadConfig(ctx, o, creds)
	if err != nil {
		return nil, err
	}
	ec := eks.NewFromConfig(awsCfg, func(c *eks.Options) {
		if o.BaseEndpoint != "" {
			c.BaseEndpoint = sdkaws.String(o.BaseEndpoint)
		}
	})
	sc := sts.NewFromConfig(awsCfg, func(c *sts.Options) {
		if o.BaseEndpoint != "" {
			c.BaseEndpoint = sdkaws.String(o.BaseEndpoint)
		}
	})
	p := &EKSProvider{
		target:  cfg.Name,
		cluster: o.Cluster,
		region:  awsCfg.Region,
		kopts:   ko,
		eks:     ec,
		tokens:  newTokenSource(o.Cluster, sts.NewPresignClient(sc), awsCfg.Credentials),
	}
	p.Managed, err = kubernetes.NewManaged(kubernetes.ManagedConfig{
		Provider: Name, Target: cfg.Name, Cluster: fmt.Sprintf("EKS cluster %s", o.Cluster), Options: ko,
		Resolve: p.restConfig,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Cluster returns the EKS cluster's name.
func (p *EKSProvider) Cluster() string { return p.cluster }

// restConfig describes the cluster and returns the client configuration
// of its API server, authenticated by EKS tokens.
func (p *EKSProvider) restConfig(ctx context.Context) (*rest.Config, error) {
	what := fmt.Sprintf("EKS cluster %q in %s (targets.%s.options.cluster)", p.cluster, p.region, p.target)
	out, err := p.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: sdkaws.String(p.cluster)})
	if err != nil {
		return nil, mapErr("DescribeCluster: "+what, err)
	}
	c := out.Cluster
	if c == nil {
		return nil, provider.Errorf(Name, workload.ProviderError, "DescribeCluster: %s: the answer holds no cluster", what)
	}
	switch c.Status {
	case ekstypes.ClusterStatusCreating, ekstypes.ClusterStatusPending, ekstypes.ClusterStatusDeleting, ekstypes.ClusterStatusFailed:
		return nil, provider.Errorf(Name, workload.Unavailable, "%s: the cluster is %s: its API server is not available", what, c.Status)
	}
	endpoint := sdkaws.ToString(c.Endpoint)
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		e := provider.Errorf(Name, workload.ProviderError, "%s: the cluster's endpoint %q is not an https URL", what, endpoint)
		e.Err = err
		return nil, e
	}
	var caData string
	if c.CertificateAuthority != nil {
		caData = sdkaws.ToString(c.CertificateAuthority.Data)
	}
	ca, err := base64.StdEncoding.DecodeString(caData)
	if err == nil && !x509.NewCertPool().AppendCertsFromPEM(ca) {
		err = errors.New("no PEM certificate in it")
	}
	if caData == "" || err != nil {
		e := provider.Errorf(Name, workload.ProviderError, "%s: the cluster's certificateAuthority.data is not a base64 PEM certificate: %v", what, err)
		e.Err = err
		return nil, e
	}
	rc := &rest.Config{Host: endpoint, TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	rc.Wrap(func(next http.RoundTripper) http.RoundTripper { return &tokenRoundTripper{src: p.tokens, next: next} })
	return rc, nil
}

// tokenSource makes the cluster's bearer tokens and keeps each for
// tokenRefresh. Its methods may be called concurrently.
type tokenSource struct {
	cluster string
	// presign returns a presigned STS GetCallerIdentity URL with the
	// cluster's name signed in.
	presign func(ctx context.Context) (string, error)
	creds   sdkaws.CredentialsProvider // may be nil
	now     func() time.Time           // replaceable in tests

	mu      sync.Mutex
	token   string
	refresh time.Time     // when token is to be replaced
	sem     chan struct{} // held by the one caller making a new token
}

func newTokenSource(cluster string, pc *sts.PresignClient, creds sdkaws.CredentialsProvider) *tokenSource {
	return &tokenSource{
		cluster: cluster,
		creds:   creds,
		now:     time.Now,
		presign: func(ctx context.Context) (string, error) {
			req, err := pc.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(po *sts.PresignOptions) {
				po.ClientOptions = append(po.ClientOptions, sts.WithAPIOptions(
					smithyhttp.SetHeaderValue(clusterIDHeader, cluster),
					// A header named X-Amz-* is moved into the presigned
					// query string, which is where EKS expects it.
					smithyhttp.SetHeaderValue("X-Amz-Expires", presignExpires),
				))
			})
			if err != nil {
				return "", err
			}
			return req.URL, nil
		},
	}
}

// Token returns a token EKS accepts for at least another minute. One
// caller at a time makes a new token (retrieving credentials may be a
// network call); the others wait for it, or for their own ctx, without
// holding up callers that find a valid token.
func (s *tokenSource) Token(ctx context.Context) (string, error) {
	current := func() (string, chan struct{}) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sem == nil {
			s.sem = make(chan struct{}, 1)
		}
		if s.token != "" && s.now().Before(s.refresh) {
			return s.token, nil
		}
		return "", s.sem
	}
	what := "make the EKS token of cluster " + s.cluster
	tok, sem := current()
	if tok != "" {
		return tok, nil
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return "", mapErr(what, ctx.Err())
	}
	defer func() { <-sem }()
	if tok, _ := current(); tok != "" {
		return tok, nil // made by the caller before us
	}
	refresh := s.now().Add(tokenRefresh)
	if s.creds != nil {
		// Short-lived credentials (web identity) bound the token: STS
		// refuses a URL signed with credentials that have expired.
		c, err := s.creds.Retrieve(ctx)
		if err != nil {
			return "", mapErr(what, err)
		}
		if c.CanExpire && c.Expires.Add(-time.Minute).Before(refresh) {
			refresh = c.Expires.Add(-time.Minute)
		}
	}
	u, err := s.presign(ctx)
	if err != nil {
		return "", mapErr(what+": presign STS GetCallerIdentity", err)
	}
	tok = tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(u))
	s.mu.Lock()
	s.token, s.refresh = tok, refresh
	s.mu.Unlock()
	return tok, nil
}

// forget drops token if it is the current one, so that the next request
// gets a new one: the API server refused it.
func (s *tokenSource) forget(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// tokenRoundTripper authenticates each request with the current token.
type tokenRoundTripper struct {
	src  *tokenSource
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (rt *tokenRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := rt.src.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := rt.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		rt.src.forget(tok)
	}
	return resp, err
}

// WrappedRoundTripper lets client-go see through the wrapper.
func (rt *tokenRoundTripper) WrappedRoundTripper() http.RoundTripper { return rt.next }
