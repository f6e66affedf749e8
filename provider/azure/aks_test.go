package azure

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

// scopedCredential issues a token naming the scope it was asked for, so
// that the API server's token authenticator can check the audience, and a
// nonce of its own, so that the API server's 10-second cache of accepted
// tokens never answers for an earlier test's token.
type scopedCredential struct {
	nonce string
	calls atomic.Int64
}

var credentialNonce atomic.Int64

func newScopedCredential() *scopedCredential {
	return &scopedCredential{nonce: fmt.Sprintf("%d-%d", time.Now().UnixNano(), credentialNonce.Add(1))}
}

func (c *scopedCredential) token(scope string) string { return "entra:" + scope + ":" + c.nonce }

func (c *scopedCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	return azcore.AccessToken{Token: c.token(strings.Join(o.Scopes, " ")), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// entraKubeconfig is what ListClusterUserCredentials (format exec)
// returns for a cluster with Entra ID: a kubelogin exec user.
func entraKubeconfig(c *k8stest.Cluster) []byte {
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: prod-aks
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: prod-aks
  context:
    cluster: prod-aks
    user: clusterUser_alphaswarm-rg_prod-aks
current-context: prod-aks
users:
- name: clusterUser_alphaswarm-rg_prod-aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - %s
      - --client-id
      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a
      - --tenant-id
      - 72f988bf-86f1-41af-91ab-2d7cd011db47
      - --login
      - devicecode
      interactiveMode: IfAvailable
      provideClusterInfo: false
`, c.Server, base64.StdEncoding.EncodeToString(c.CAData), AKSServerAppID)
}

func openAKSFake(t testing.TB, c *k8stest.Cluster, cred *scopedCredential, admin bool) (provider.Provider, *fakeazure.Fake, string) {
	t.Helper()
	f := fakeazure.New(fakeazure.Options{SubscriptionID: testSub, ResourceGroup: testRG})
	t.Cleanup(f.Close)
	adminKC, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	f.AddAKSCluster("prod-aks", entraKubeconfig(c), adminKC)
	ns := c.Namespace(t)
	p, err := open(context.Background(), provider.TargetConfig{Name: "prod-aks", Provider: Name, Options: rawOptions(map[string]any{
		"mode": "aks", "resourceGroup": testRG, "cluster": "prod-aks", "namespace": ns, "admin": admin,
	})}, testCreds(), deps{cred: cred, aks: f.AKSTransport()})
	if err != nil {
		t.Fatalf("open aks: %v", err)
	}
	t.Cleanup(func() { _ = p.(io.Closer).Close() })
	return p, f, ns
}

// TestAKSConformance runs the kubernetes scenarios through the azure
// provider in aks mode: user credentials from the fake's
// ListClusterUserCredentials (a kubelogin kubeconfig), Entra ID tokens
// for the AKS server application from the target's credential, accepted
// by the real API server's token webhook.
func TestAKSConformance(t *testing.T) {
	c := k8stest.Start(t)
	cred := newScopedCredential()
	var accepted atomic.Int64
	c.AddTokenAuthenticator(t, func(_ context.Context, token string) (string, []string, bool) {
		if token == cred.token(AKSServerAppID+"/.default") {
			accepted.Add(1)
			return "aks-user@example.com", []string{"system:masters"}, true
		}
		return "", nil, false
	})
	p, f, ns := openAKSFake(t, c, cred, false)
	if provider.NameOf(p) != Name {
		t.Fatalf("provider name %q, want %q", provider.NameOf(p), Name)
	}
	if err := p.(provider.Pinger).Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := f.LastCredentialFormat(); got != "exec" {
		t.Errorf("user credentials asked in format %q, want exec", got)
	}
	// Statuses and errors of the kubernetes provider are the azure
	// provider's.
	_, err := p.Status(ctxT(t), "absent-svc")
	if workload.CodeOf(err) != workload.NotFound || workload.AsError(err).Provider != Name {
		t.Fatalf("Status of an unknown service = %v (provider %q), want not_found from azure", err, workload.AsError(err).Provider)
	}
	settleCapabilities(t, p)
	providertest.Run(t, kubetest.Harness(c, ns, "prod-aks", p))
	if accepted.Load() == 0 {
		t.Error("the API server never saw the Entra ID token")
	}
}

func TestAKSAdminAndErrors(t *testing.T) {
	c := k8stest.Start(t)
	p, f, _ := openAKSFake(t, c, newScopedCredential(), true)
	if _, err := p.Status(ctxT(t), "absent-svc"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status with admin credentials = %v, want not_found from the cluster", err)
	}
	if f.Calls("ListClusterAdminCredentials") != 1 || f.Calls("ListClusterUserCredentials") != 0 {
		t.Fatalf("admin: %d admin and %d user credential calls", f.Calls("ListClusterAdminCredentials"), f.Calls("ListClusterUserCredentials"))
	}
	f.AddAKSCluster("local-accounts-off", entraKubeconfig(c), nil)
	// Open never waits for Azure: a missing cluster is the operations'
	// error, under the azure provider's name.
	cases := []struct {
		name string
		opts map[string]any
		code workload.Code
	}{
		{"no such cluster", map[string]any{"mode": "aks", "resourceGroup": testRG, "cluster": "nope"}, workload.NotFound},
		{"no such resource group", map[string]any{"mode": "aks", "resourceGroup": "other", "cluster": "prod-aks"}, workload.NotFound},
		{"admin with local accounts disabled", map[string]any{"mode": "aks", "resourceGroup": testRG, "cluster": "local-accounts-off", "admin": true}, workload.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := open(context.Background(), provider.TargetConfig{Name: "prod-aks", Provider: Name, Options: rawOptions(tc.opts)},
				testCreds(), deps{cred: newScopedCredential(), aks: f.AKSTransport()})
			if err != nil {
				t.Fatalf("open: %v (Open must not depend on Azure answering)", err)
			}
			t.Cleanup(func() { _ = q.(io.Closer).Close() })
			_, err = q.Status(ctxT(t), "web")
			if workload.CodeOf(err) != tc.code || workload.AsError(err).Provider != Name {
				t.Fatalf("Status = %v (provider %q), want %s from azure", err, workload.AsError(err).Provider, tc.code)
			}
		})
	}
	_, err := open(context.Background(), provider.TargetConfig{Name: "prod-aks", Provider: Name,
		Options: rawOptions(map[string]any{"mode": "aks", "resourceGroup": testRG})}, testCreds(), deps{cred: newScopedCredential(), aks: f.AKSTransport()})
	if workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("aks without a cluster = %v", err)
	}
}

// settleCapabilities waits until the kubernetes provider has checked for
// metrics.k8s.io (this control plane has no Metrics Server), so that the
// suite reads settled capabilities.
func settleCapabilities(t *testing.T, p provider.Provider) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, c := range provider.Capabilities(p) {
			if c.Op == provider.OpStreamMetrics && !c.Supported {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("stream_metrics still declared supported after 30s on a cluster without Metrics Server")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkAKSScale: scale and status through the azure provider in mode
// aks (ListClusterUserCredentials once, then Entra ID tokens for the AKS
// server application checked by the API server's webhook) against the
// kubernetes provider on the same cluster, in the same run.
func BenchmarkAKSScale(b *testing.B) {
	c := k8stest.Start(b)
	cred := newScopedCredential()
	c.AddTokenAuthenticator(b, func(_ context.Context, token string) (string, []string, bool) {
		return "aks-user@example.com", []string{"system:masters"}, token == cred.token(AKSServerAppID+"/.default")
	})
	p, _, ns := openAKSFake(b, c, cred, false)
	kubetest.CompareScale(b, c, ns, p)
}
