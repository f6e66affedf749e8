package azure

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azappconfig"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	ascreds "github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Name is the provider's registered name.
const Name = "azure"

func init() {
	provider.Register(Name, Open)
}

// Options are the target options (targets.<name>.options).
type Options struct {
	// Mode is "aci" (Azure Container Instances, default) or "aks" (the
	// kubernetes provider over an AKS cluster).
	Mode string `json:"mode,omitempty"`
	// SubscriptionID overrides AZURE_SUBSCRIPTION_ID.
	SubscriptionID string `json:"subscriptionId,omitempty"`
	// ResourceGroup holds the target's container groups, or the AKS
	// cluster (required).
	ResourceGroup string `json:"resourceGroup,omitempty"`
	// Cluster is the AKS cluster's name (aks mode, required).
	Cluster string `json:"cluster,omitempty"`
	// Admin makes aks mode use the cluster's admin credentials
	// (ListClusterAdminCredentials) instead of the user ones.
	Admin bool `json:"admin,omitempty"`
	// Namespace holds the services in aks mode (default "default").
	Namespace string `json:"namespace,omitempty"`
	// Location is the Azure region of new container groups (aci mode,
	// required), e.g. "westeurope".
	Location string `json:"location,omitempty"`
	// Subnet is the resource id of a delegated subnet; when set, groups
	// get private IPs in it instead of a public IP.
	Subnet string `json:"subnet,omitempty"`
	// AppConfigEndpoint is the App Configuration store holding the
	// services' config ("https://<store>.azconfig.io"). Without it,
	// ApplyConfig is unsupported.
	AppConfigEndpoint string `json:"appConfigEndpoint,omitempty"`
	// KeyVaultURL is the vault holding secret config keys and keyvault:
	// secret references ("https://<vault>.vault.azure.net").
	KeyVaultURL string `json:"keyVaultURL,omitempty"`
	// MetricsInterval is the Azure Monitor metric granularity and the
	// poll interval of StreamMetrics (default 1m, Azure Monitor's finest).
	MetricsInterval workload.Duration `json:"metricsInterval,omitzero"`
	// PollInterval is how often long-running operations and waits for
	// Running are polled, and how often Logs polls when following
	// (default 2s).
	PollInterval workload.Duration `json:"pollInterval,omitzero"`
	// MaxRetries bounds the SDK's retries of throttled and transient
	// failures (default: the SDK's, 3).
	MaxRetries int `json:"maxRetries,omitempty"`
}

// Provider is the ACI-mode azure provider for one target. Its methods may
// be called concurrently.
type Provider struct {
	target string
	opts   Options
	sub    string
	creds  *ascreds.Resolver

	groups     *armcontainerinstance.ContainerGroupsClient
	containers *armcontainerinstance.ContainersClient
	metrics    *armmonitor.MetricsClient
	appconfig  *azappconfig.Client // nil without AppConfigEndpoint
	secrets    *azsecrets.Client   // nil without KeyVaultURL

	// execClient and attachClient dial the exec and attach WebSockets
	// (nil: http.DefaultClient).
	execClient, attachClient *http.Client

	// arm sends the requests the SDK has no client for here (the
	// permissions API).
	arm *arm.Client
	// clientID names the credentials in permission messages.
	clientID string

	// acc holds what the permission check found (access.go).
	acc *accessCheck

	now func() time.Time
}

// ProviderName implements provider.Named.
func (p *Provider) ProviderName() string { return Name }

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.Restarter = (*Provider)(nil)
	_ provider.Lister    = (*Provider)(nil)
	_ provider.LogTailer = (*Provider)(nil)
	_ provider.Execer    = (*Provider)(nil)
	_ provider.Explainer = (*Provider)(nil)
	_ provider.Named     = (*Provider)(nil)

	_ provider.PermissionExplainer = (*Provider)(nil)
	_ provider.Pinger              = (*Provider)(nil)
	_ io.Closer                    = (*Provider)(nil)
)

// deps is the test seam: the credential and the transports of each
// client. The zero value means "credentials from the environment, real
// HTTP".
type deps struct {
	cred azcore.TokenCredential
	// aci, monitor, keyVault and appConfig replace the clients'
	// transports when set.
	aci, aks, monitor, keyVault, appConfig policy.Transporter
	// exec dials the exec WebSockets, attach the attach ones.
	exec, attach *http.Client
	// anyMetricsInterval lets tests use sub-minute metric intervals
	// (the fake Azure Monitor takes any); real targets are held to
	// metricsIntervals.
	anyMetricsInterval bool
}

// metricsIntervals are the time grains Azure Monitor supports for
// Microsoft.ContainerInstance/containerGroups metrics: PT1M, PT5M, PT15M,
// PT30M, PT1H, PT6H, PT12H ("Supported metrics for
// Microsoft.ContainerInstance/containerGroups", learn.microsoft.com; P1D,
// which other resource types have, is not among them).
var metricsIntervals = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 6 * time.Hour, 12 * time.Hour}

// Open is the provider.Factory. It builds the credential from the
// resolver's AZURE_* variables and the clients; it does not call Azure.
func Open(ctx context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver) (provider.Provider, error) {
	return open(ctx, cfg, creds, deps{})
}

func open(_ context.Context, cfg provider.TargetConfig, creds *ascreds.Resolver, d deps) (provider.Provider, error) {
	var o Options
	if err := cfg.DecodeOptions(&o); err != nil {
		return nil, err
	}
	path := "targets." + cfg.Name + ".options."
	switch strings.ToLower(o.Mode) {
	case "", "aci":
		o.Mode = "aci"
	case "aks":
		o.Mode = "aks"
	default:
		return nil, workload.Invalid(workload.FieldError{Path: path + "mode", Message: fmt.Sprintf("must be aci or aks, not %q", o.Mode)})
	}
	if creds == nil {
		creds = ascreds.FromEnv()
	}
	env := creds.Provider(Name)
	var errs []workload.FieldError
	sub := o.SubscriptionID
	if sub == "" {
		sub = env["AZURE_SUBSCRIPTION_ID"]
	}
	if sub == "" {
		errs = append(errs, workload.FieldError{Path: path + "subscriptionId", Message: "no subscription: set AZURE_SUBSCRIPTION_ID or the subscriptionId option"})
	}
	if o.ResourceGroup == "" {
		errs = append(errs, workload.FieldError{Path: path + "resourceGroup", Message: "is required: the resource group that holds the container groups"})
	}
	// Options of the other mode are mistakes, not silently ignored.
	other := map[string]bool{}
	if o.Mode == "aci" {
		other["cluster"], other["admin"], other["namespace"] = o.Cluster != "", o.Admin, o.Namespace != ""
	} else {
		other["location"], other["subnet"] = o.Location != "", o.Subnet != ""
		other["appConfigEndpoint"], other["keyVaultURL"] = o.AppConfigEndpoint != "", o.KeyVaultURL != ""
		other["metricsInterval"], other["pollInterval"] = o.MetricsInterval != 0, o.PollInterval != 0
	}
	for _, k := range slices.Sorted(maps.Keys(other)) {
		if other[k] {
			errs = append(errs, workload.FieldError{Path: path + k, Message: "does not apply to mode " + o.Mode})
		}
	}
	if o.Mode == "aks" && o.Cluster == "" {
		errs = append(errs, workload.FieldError{Path: path + "cluster", Message: "is required in aks mode: the AKS cluster's name"})
	}
	if o.Mode == "aci" && o.Location == "" {
		errs = append(errs, workload.FieldError{Path: path + "location", Message: "is required: the region of new container groups (e.g. \"westeurope\")"})
	}
	for _, u := range []struct{ name, v string }{{"appConfigEndpoint", o.AppConfigEndpoint}, {"keyVaultURL", o.KeyVaultURL}} {
		if u.v != "" && !strings.HasPrefix(u.v, "https://") {
			errs = append(errs, workload.FieldError{Path: path + u.name, Message: "must be an https:// URL (the SDK sends bearer tokens over TLS only)"})
		}
	}
	if o.MetricsInterval == 0 {
		o.MetricsInterval = workload.Duration(time.Minute)
	}
	if o.PollInterval == 0 {
		o.PollInterval = workload.Duration(2 * time.Second)
	}
	if o.Mode == "aci" {
		if !slices.Contains(metricsIntervals, o.MetricsInterval.D()) && !(d.anyMetricsInterval && o.MetricsInterval > 0) {
			errs = append(errs, workload.FieldError{Path: path + "metricsInterval", Message: "must be one of Azure Monitor's granularities: 1m, 5m, 15m, 30m, 1h, 6h, 12h (ACI metrics have no 1-day grain)"})
		}
		if o.PollInterval < workload.Duration(time.Millisecond) {
			errs = append(errs, workload.FieldError{Path: path + "pollInterval", Message: "must be positive"})
		}
	}
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	cred := d.cred
	if cred == nil {
		var err error
		if cred, err = credentialFromEnv(env); err != nil {
			return nil, err
		}
	}
	clientOpts := func(t policy.Transporter) azcore.ClientOptions {
		co := azcore.ClientOptions{Transport: t}
		if o.MaxRetries > 0 {
			co.Retry.MaxRetries = int32(o.MaxRetries)
		}
		return co
	}
	armOpts := func(t policy.Transporter) *arm.ClientOptions {
		return &arm.ClientOptions{ClientOptions: clientOpts(t)}
	}
	if o.Mode == "aks" {
		return openAKS(cfg.Name, o, sub, cred, armOpts(d.aks))
	}
	p := &Provider{target: cfg.Name, opts: o, sub: sub, creds: creds, execClient: d.exec, attachClient: d.attach, now: time.Now, clientID: env["AZURE_CLIENT_ID"]}
	var err error
	if p.arm, err = arm.NewClient("alphaswarm/provider/azure", "v1.0.0", cred, armOpts(d.aci)); err != nil {
		return nil, mapErr("resource manager client", err)
	}
	if p.groups, err = armcontainerinstance.NewContainerGroupsClient(sub, cred, armOpts(d.aci)); err != nil {
		return nil, mapErr("container groups client", err)
	}
	if p.containers, err = armcontainerinstance.NewContainersClient(sub, cred, armOpts(d.aci)); err != nil {
		return nil, mapErr("containers client", err)
	}
	if p.metrics, err = armmonitor.NewMetricsClient(sub, cred, armOpts(d.monitor)); err != nil {
		return nil, mapErr("metrics client", err)
	}
	if o.AppConfigEndpoint != "" {
		if p.appconfig, err = azappconfig.NewClient(o.AppConfigEndpoint, cred, &azappconfig.ClientOptions{ClientOptions: clientOpts(d.appConfig)}); err != nil {
			return nil, mapErr("app configuration client", err)
		}
	}
	if o.KeyVaultURL != "" {
		if p.secrets, err = azsecrets.NewClient(o.KeyVaultURL, cred, &azsecrets.ClientOptions{ClientOptions: clientOpts(d.keyVault)}); err != nil {
			return nil, mapErr("key vault client", err)
		}
	}
	// The permissions the operations need are checked in the background
	// from now on (access.go).
	p.startAccessCheck()
	return p, nil
}

// credentialFromEnv builds the credential from the resolver's variables
// only. azidentity.NewEnvironmentCredential is not used because it reads
// os.Getenv itself; the credentials built here are the same ones it would
// choose, in its order (client secret, certificate), plus workload
// identity. Each caches its token and refreshes it before it expires, so
// a long stream outlives a one-hour token.
func credentialFromEnv(env map[string]string) (azcore.TokenCredential, error) {
	tenant, client := env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"]
	// Setting the authority host explicitly also stops azidentity from
	// reading AZURE_AUTHORITY_HOST from the process environment.
	cl := cloud.AzurePublic
	if h := env["AZURE_AUTHORITY_HOST"]; h != "" {
		cl.ActiveDirectoryAuthorityHost = h
	}
	co := azcore.ClientOptions{Cloud: cl}
	if tenant == "" || client == "" {
		return nil, provider.Errorf(Name, workload.Unauthenticated, "no Azure credentials in the controller's environment: set AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE")
	}
	switch {
	case env["AZURE_CLIENT_SECRET"] != "":
		c, err := azidentity.NewClientSecretCredential(tenant, client, env["AZURE_CLIENT_SECRET"], &azidentity.ClientSecretCredentialOptions{ClientOptions: co})
		if err != nil {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "client secret credential: %s", err)
		}
		return c, nil
	case env["AZURE_CLIENT_CERTIFICATE_PATH"] != "":
		data, err := os.ReadFile(env["AZURE_CLIENT_CERTIFICATE_PATH"])
		if err != nil {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "AZURE_CLIENT_CERTIFICATE_PATH: %s", err)
		}
		var password []byte
		if pw := env["AZURE_CLIENT_CERTIFICATE_PASSWORD"]; pw != "" {
			password = []byte(pw)
		}
		certs, key, err := azidentity.ParseCertificates(data, password)
		if err != nil {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "AZURE_CLIENT_CERTIFICATE_PATH: %s", err)
		}
		c, err := newCertCredential(tenant, client, certs, key, co)
		if err != nil {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "client certificate credential: %s", err)
		}
		return c, nil
	case env["AZURE_FEDERATED_TOKEN_FILE"] != "":
		c, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, TenantID: tenant, ClientID: client, TokenFilePath: env["AZURE_FEDERATED_TOKEN_FILE"]})
		if err != nil {
			return nil, provider.Errorf(Name, workload.Unauthenticated, "workload identity credential: %s", err)
		}
		return c, nil
	}
	return nil, provider.Errorf(Name, workload.Unauthenticated, "AZURE_TENANT_ID and AZURE_CLIENT_ID are set but no secret: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE")
}

func newCertCredential(tenant, client string, certs []*x509.Certificate, key crypto.PrivateKey, co azcore.ClientOptions) (azcore.TokenCredential, error) {
	return azidentity.NewClientCertificateCredential(tenant, client, certs, key, &azidentity.ClientCertificateCredentialOptions{ClientOptions: co})
}

// UnsupportedReason implements provider.Explainer.
func (p *Provider) UnsupportedReason(op provider.Operation) string {
	if op == provider.OpApplyConfig && p.appconfig == nil {
		return "the target has no App Configuration store: set options.appConfigEndpoint"
	}
	return ""
}
