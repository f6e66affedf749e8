package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Name is the provider's registered name.
const Name = "aws"

func init() {
	provider.Register(Name, Open)
}

// Options are the target options (targets.<name>.options).
type Options struct {
	// Mode is "ecs" (default) or "eks" (the kubernetes provider on an EKS
	// cluster; see EKSProvider).
	Mode string `json:"mode,omitempty"`
	// Region overrides AWS_REGION / AWS_DEFAULT_REGION.
	Region string `json:"region,omitempty"`
	// Cluster is the ECS cluster name or ARN (default "default"); in mode
	// eks, the EKS cluster's name (required).
	Cluster string `json:"cluster,omitempty"`
	// LaunchType is FARGATE (default), EC2 or EXTERNAL.
	LaunchType       string   `json:"launchType,omitempty"`
	Subnets          []string `json:"subnets,omitempty"`
	SecurityGroups   []string `json:"securityGroups,omitempty"`
	ExecutionRoleArn string   `json:"executionRoleArn,omitempty"`
	AssignPublicIP   bool     `json:"assignPublicIp,omitempty"`
	// TaskRoleArn is the task role: the workload's own AWS identity, set
	// in every task definition. ECS Exec needs one (allowing
	// ssmmessages:CreateControlChannel, CreateDataChannel,
	// OpenControlChannel and OpenDataChannel).
	TaskRoleArn string `json:"taskRoleArn,omitempty"`
	// EnableExecuteCommand turns ECS Exec on for the services Start and
	// Restart roll (default false; needs TaskRoleArn). See "Exec" in
	// docs/providers/aws.md.
	EnableExecuteCommand bool `json:"enableExecuteCommand,omitempty"`
	// LogGroup is the awslogs group (default /alphaswarm/<target>).
	LogGroup string `json:"logGroup,omitempty"`
	// MetricsPeriod is the CloudWatch period and poll interval (default
	// 60s); in mode eks, how often metrics.k8s.io is polled (default 5s).
	MetricsPeriod workload.Duration `json:"metricsPeriod,omitzero"`
	// PollInterval is how often Start/Scale/Stop/Restart poll the service
	// while waiting (default 5s) and how often Logs polls when following
	// (default 2s, or this value if set).
	PollInterval workload.Duration `json:"pollInterval,omitzero"`
	// LiveTail, true by default, follows logs through CloudWatch Logs
	// StartLiveTail sessions; false (or a session CloudWatch refuses or
	// samples) polls FilterLogEvents every pollInterval instead.
	LiveTail *bool `json:"liveTail,omitempty"`
	// CheckPermissions, true by default, simulates the IAM permissions
	// the provider needs (SimulatePrincipalPolicy) when the target opens
	// and every five minutes; false turns the check off (a policy that
	// grants per service name, which the check, asking for every service
	// of the cluster, would report as missing).
	CheckPermissions *bool `json:"checkPermissions,omitempty"`
	// MaxAttempts bounds the SDK's retries (default: the SDK's, 3).
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// BaseEndpoint points every client at one endpoint. For tests (the
	// in-process fake); never set it against real AWS.
	BaseEndpoint string `json:"baseEndpoint,omitempty"`

	// Mode eks only: the kubernetes provider's options of the same names
	// (see kubernetes.Options). Namespace defaults to "default".
	Namespace        string            `json:"namespace,omitempty"`
	DeleteOnStop     bool              `json:"deleteOnStop,omitempty"`
	RolloutTimeout   workload.Duration `json:"rolloutTimeout,omitzero"`
	ProgressDeadline workload.Duration `json:"progressDeadline,omitzero"`
	ConfigDir        string            `json:"configDir,omitempty"`
}

// Interface guards: in mode ecs the target restarts, tails logs and
// execs (ECS Exec), explains what a target's options leave out, previews
// a deploy (Diff) and checks a spec's references (CheckRefs).
var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Restarter = (*Provider)(nil)
	_ provider.LogTailer = (*Provider)(nil)
	_ provider.Execer    = (*Provider)(nil)
	_ provider.Explainer = (*Provider)(nil)
	_ provider.Named     = (*Provider)(nil)
	_ provider.Pinger    = (*Provider)(nil)
	_ io.Closer          = (*Provider)(nil)

	_ provider.PermissionExplainer = (*Provider)(nil)
	_ provider.Differ              = (*Provider)(nil) // diff.go
	_ provider.RefChecker          = (*Provider)(nil) // refs.go
)

// Provider is the ECS-mode aws provider for one target.
type Provider struct {
	target string
	opts   Options
	creds  *ascreds.Resolver
	ecs    *ecs.Client
	ssm    *ssm.Client
	cw     *cloudwatch.Client
	logs   *cloudwatchlogs.Client
	iam    *iam.Client
	sts    *sts.Client
	// ecr and sm serve CheckRefs only (refs.go), each call in the region
	// of the reference it checks.
	ecr *ecr.Client
	sm  *secretsmanager.Client
	// liveHTTP carries the StartLiveTail sessions (livetail.go).
	liveHTTP *awshttp.BuildableClient
	// The IAM permission check (access.go): what it found, closed when
	// the first check is done, its stop and its end. accessFirst is nil
	// with checkPermissions false.
	accessMu    sync.Mutex
	access      accessState
	accessFirst chan struct{}
	accessDone  chan struct{}
	stopAccess  context.CancelFunc
	// now is replaceable in tests.
	now func() time.Time
}

// ProviderName implements provider.Named.
func (p *Provider) ProviderName() string { return Name }

// Open is the provider.Factory. In mode eks it returns an *EKSProvider,
// which does not contact AWS until its first operation; otherwise a
// *Provider, which starts checking its IAM permissions in the background
// (access.go; Close stops that).
func Open(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver) (provider.Provider, error) {
	var o Options
	if err := cfg.DecodeOptions(&o); err != nil {
		return nil, err
	}
	path := "targets." + cfg.Name + ".options."
	switch strings.ToLower(o.Mode) {
	case "", "ecs":
		o.Mode = "ecs"
		if err := checkModeOptions(cfg, o.Mode); err != nil {
			return nil, err
		}
	case "eks":
		return openEKS(ctx, cfg, o, creds)
	default:
		return nil, workload.Invalid(workload.FieldError{Path: path + "mode", Message: fmt.Sprintf("must be ecs or eks, not %q", o.Mode)})
	}
	if o.Cluster == "" {
		o.Cluster = "default"
	}
	switch o.LaunchType = strings.ToUpper(o.LaunchType); o.LaunchType {
	case "":
		o.LaunchType = "FARGATE"
	case "FARGATE", "EC2", "EXTERNAL":
	default:
		return nil, workload.Invalid(workload.FieldError{Path: path + "launchType", Message: "must be FARGATE, EC2 or EXTERNAL"})
	}
	if len(o.Subnets) == 0 {
		return nil, workload.Invalid(workload.FieldError{Path: path + "subnets",
			Message: "is required: services run with awsvpc networking, which needs at least one subnet"})
	}
	if o.LogGroup == "" {
		o.LogGroup = "/alphaswarm/" + cfg.Name
	}
	if o.MetricsPeriod <= 0 {
		o.MetricsPeriod = workload.Duration(time.Minute)
	}
	if creds == nil {
		creds = ascreds.FromEnv()
	}
	awsCfg, err := loadConfig(ctx, o, creds)
	if err != nil {
		return nil, err
	}
	p := &Provider{target: cfg.Name, opts: o, creds: creds, now: time.Now, liveHTTP: newLiveHTTP()}
	// endpoint points a client at the baseEndpoint option, if set.
	endpoint := func(ep **string) {
		if o.BaseEndpoint != "" {
			*ep = sdkaws.String(o.BaseEndpoint)
		}
	}
	p.ecs = ecs.NewFromConfig(awsCfg, func(c *ecs.Options) { endpoint(&c.BaseEndpoint) })
	p.ssm = ssm.NewFromConfig(awsCfg, func(c *ssm.Options) { endpoint(&c.BaseEndpoint) })
	p.cw = cloudwatch.NewFromConfig(awsCfg, func(c *cloudwatch.Options) { endpoint(&c.BaseEndpoint) })
	p.logs = cloudwatchlogs.NewFromConfig(awsCfg, func(c *cloudwatchlogs.Options) { endpoint(&c.BaseEndpoint) })
	p.iam = iam.NewFromConfig(awsCfg, func(c *iam.Options) { endpoint(&c.BaseEndpoint) })
	p.sts = sts.NewFromConfig(awsCfg, func(c *sts.Options) { endpoint(&c.BaseEndpoint) })
	p.ecr = ecr.NewFromConfig(awsCfg, func(c *ecr.Options) { endpoint(&c.BaseEndpoint) })
	p.sm = secretsmanager.NewFromConfig(awsCfg, func(c *secretsmanager.Options) { endpoint(&c.BaseEndpoint) })
	if o.CheckPermissions == nil || *o.CheckPermissions {
		var actx context.Context
		actx, p.stopAccess = context.WithCancel(context.WithoutCancel(ctx))
		p.accessFirst, p.accessDone = make(chan struct{}), make(chan struct{})
		go provider.Recheck(actx, accessInterval, p.checkAccess, p.accessFirst, p.accessDone) // access.go
	}
	return p, nil
}

// errNoCredentials is what the credentials provider returns when the
// environment holds none.
var errNoCredentials = errors.New("no AWS credentials in the controller's environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE")

// loadConfig builds the SDK config from the resolver's values only.
//
// It deliberately does not call config.LoadDefaultConfig: that function
// always runs the SDK's environment loader, which reads os.Environ behind
// our back (AWS_CA_BUNDLE, AWS_ENDPOINT_URL_*, AWS_MAX_ATTEMPTS,
// AWS_RETRY_MODE, AWS_PROFILE and the shared files...) whatever options
// are passed; on the machine this was written on an AWS_CA_BUNDLE in the
// process environment made it fail outright. The config is assembled
// instead from aws.NewConfig with the region, credentials, HTTP client and
// standard retryer set explicitly; no shared file, profile or IMDS is read.
func loadConfig(ctx context.Context, o Options, creds *ascreds.Resolver) (sdkaws.Config, error) {
	env := creds.Provider(Name)
	region := o.Region
	if region == "" {
		region = env["AWS_REGION"]
	}
	if region == "" {
		region = env["AWS_DEFAULT_REGION"]
	}
	if region == "" {
		return sdkaws.Config{}, workload.Invalid(workload.FieldError{Path: "options.region",
			Message: "no region: set the target's region option or AWS_REGION"})
	}
	base := func(cp sdkaws.CredentialsProvider) sdkaws.Config {
		cfg := sdkaws.NewConfig()
		cfg.Region = region
		cfg.Credentials = cp
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTimeout(2 * time.Minute)
		cfg.Retryer = func() sdkaws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				if o.MaxAttempts > 0 {
					so.MaxAttempts = o.MaxAttempts
				}
			})
		}
		return *cfg
	}
	var cp sdkaws.CredentialsProvider
	switch {
	case env["AWS_ROLE_ARN"] != "" && env["AWS_WEB_IDENTITY_TOKEN_FILE"] != "":
		// AssumeRoleWithWebIdentity is called without credentials.
		stsClient := sts.NewFromConfig(base(sdkaws.AnonymousCredentials{}), func(so *sts.Options) {
			if o.BaseEndpoint != "" {
				so.BaseEndpoint = sdkaws.String(o.BaseEndpoint)
			}
		})
		session := env["AWS_ROLE_SESSION_NAME"]
		if session == "" {
			session = "alphaswarm"
		}
		cp = sdkaws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsClient, env["AWS_ROLE_ARN"],
			stscreds.IdentityTokenFile(env["AWS_WEB_IDENTITY_TOKEN_FILE"]),
			func(wo *stscreds.WebIdentityRoleOptions) { wo.RoleSessionName = session }))
	case env["AWS_ACCESS_KEY_ID"] != "" && env["AWS_SECRET_ACCESS_KEY"] != "":
		cp = credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])
	default:
		cp = sdkaws.CredentialsProviderFunc(func(context.Context) (sdkaws.Credentials, error) {
			return sdkaws.Credentials{}, errNoCredentials
		})
	}
	_ = ctx
	return base(cp), nil
}

// UnsupportedReason implements provider.Explainer.
func (p *Provider) UnsupportedReason(op provider.Operation) string {
	if op == provider.OpExec {
		return p.execUnsupportedReason() // exec.go
	}
	return ""
}

func (p *Provider) region() string { return p.ecs.Options().Region }

func (p *Provider) pollInterval() time.Duration {
	if p.opts.PollInterval > 0 {
		return p.opts.PollInterval.D()
	}
	return 5 * time.Second
}
