package azure

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v6"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"
)

// AKSServerAppID is the application id of the Azure Kubernetes Service
// AAD server, the audience of Entra ID tokens for AKS clusters with
// Entra ID (AAD) integration.
const AKSServerAppID = "6dae42f8-4368-4678-94ff-3960e28e3630"

// Interface guard: in AKS mode the provider offers exactly what the
// kubernetes provider offers.
var _ kubernetes.Capabilities = (*AKSProvider)(nil)

// AKSProvider is the azure provider in AKS mode: it fetches the cluster's
// kubeconfig from the Container Service API (ListClusterUserCredentials,
// or ListClusterAdminCredentials with options.admin) and delegates every
// operation to a kubernetes provider for that cluster. It reports itself
// (ProviderName, statuses, errors) as "azure".
//
// The credentials are fetched in the background from Open on, and again
// by the next operation whenever an attempt failed; operations wait for
// them (or their context): see kubernetes.Managed, whose methods it has.
// Close stops the kubernetes provider.
type AKSProvider struct {
	*kubernetes.Managed
	target   string
	opts     Options
	cred     azcore.TokenCredential
	clusters *armcontainerservice.ManagedClustersClient
}

// openAKS builds the AKS-mode provider; it does not wait for Azure.
func openAKS(target string, o Options, sub string, cred azcore.TokenCredential, opts *arm.ClientOptions) (*AKSProvider, error) {
	mc, err := armcontainerservice.NewManagedClustersClient(sub, cred, opts)
	if err != nil {
		return nil, mapErr("managed clusters client", err)
	}
	a := &AKSProvider{target: target, opts: o, cred: cred, clusters: mc}
	a.Managed, err = kubernetes.NewManaged(kubernetes.ManagedConfig{
		Provider: Name, Target: target,
		Cluster: fmt.Sprintf("AKS cluster %q in resource group %q", o.Cluster, o.ResourceGroup),
		Options: kubernetes.Options{Namespace: o.Namespace},
		Resolve: a.resolve, Eager: true,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// resolve fetches the cluster's kubeconfig and returns the client
// configuration of its API server (kubernetes.ManagedConfig.Resolve). For
// clusters with Entra ID the kubeconfig's kubelogin exec plugin (or
// legacy azure auth-provider) is replaced by tokens for the AKS server
// application from the target's own credential, which caches and
// refreshes them.
func (a *AKSProvider) resolve(ctx context.Context) (*rest.Config, error) {
	var kubeconfigs []*armcontainerservice.CredentialResult
	what := "list user credentials of AKS cluster " + a.opts.Cluster
	if a.opts.Admin {
		what = "list admin credentials of AKS cluster " + a.opts.Cluster
		r, err := a.clusters.ListClusterAdminCredentials(ctx, a.opts.ResourceGroup, a.opts.Cluster, nil)
		if err != nil {
			return nil, mapErr(what, err)
		}
		kubeconfigs = r.Kubeconfigs
	} else {
		r, err := a.clusters.ListClusterUserCredentials(ctx, a.opts.ResourceGroup, a.opts.Cluster,
			&armcontainerservice.ManagedClustersClientListClusterUserCredentialsOptions{Format: to.Ptr(armcontainerservice.FormatExec)})
		if err != nil {
			return nil, mapErr(what, err)
		}
		kubeconfigs = r.Kubeconfigs
	}
	if len(kubeconfigs) == 0 || len(kubeconfigs[0].Value) == 0 {
		return nil, provider.Errorf(Name, workload.ProviderError, "%s: %s", what, "no kubeconfig in the response")
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(kubeconfigs[0].Value)
	if err != nil {
		return nil, provider.Wrap(Name, as(workload.ProviderError, "unusable kubeconfig: "+err.Error()), err, what)
	}
	if rc.ExecProvider != nil || rc.AuthProvider != nil {
		scope := entraServerID(rc) + "/.default"
		rc.ExecProvider, rc.AuthProvider = nil, nil
		cred := a.cred
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return &entraTransport{next: rt, cred: cred, scope: scope}
		}
	}
	return rc, nil
}

// entraServerID reads the server application id from the kubelogin
// arguments (--server-id) or the legacy azure auth-provider config
// (apiserver-id); AKSServerAppID when neither names one.
func entraServerID(rc *rest.Config) string {
	if ep := rc.ExecProvider; ep != nil {
		for i, a := range ep.Args {
			if v, ok := strings.CutPrefix(a, "--server-id="); ok {
				return v
			}
			if a == "--server-id" && i+1 < len(ep.Args) {
				return ep.Args[i+1]
			}
		}
	}
	if ap := rc.AuthProvider; ap != nil && ap.Config["apiserver-id"] != "" {
		return ap.Config["apiserver-id"]
	}
	return AKSServerAppID
}

// entraTransport adds an Entra ID bearer token for the AKS server
// application to every request. GetToken returns the credential's cached
// token until it nears expiry, so long watches and streams keep working
// across token lifetimes.
type entraTransport struct {
	next  http.RoundTripper
	cred  azcore.TokenCredential
	scope string
}

func (t *entraTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.cred.GetToken(req.Context(), policy.TokenRequestOptions{Scopes: []string{t.scope}})
	if err != nil {
		return nil, mapErr("Entra ID token for AKS", err)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.Token)
	return t.next.RoundTrip(r)
}
