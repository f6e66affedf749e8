package azure

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

func TestOpenOptions(t *testing.T) {
	base := map[string]any{"resourceGroup": "rg", "location": "westeurope"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name  string
		opts  map[string]any
		env   map[string]string
		code  workload.Code
		field string // a substring of the error
	}{
		{"ok", with(), nil, "", ""},
		{"aci explicit", with("mode", "aci"), nil, "", ""},
		{"aks needs a cluster", with("mode", "aks", "location", nil), nil, workload.InvalidArgument, "cluster"},
		{"bad mode", with("mode", "batch"), nil, workload.InvalidArgument, "must be aci or aks"},
		{"unknown option", with("region", "westeurope"), nil, workload.InvalidArgument, "region"},
		{"no resource group", with("resourceGroup", nil), nil, workload.InvalidArgument, "resourceGroup"},
		{"no location", with("location", nil), nil, workload.InvalidArgument, "location"},
		{"plain http app config", with("appConfigEndpoint", "http://store.azconfig.io"), nil, workload.InvalidArgument, "appConfigEndpoint"},
		{"no subscription", with(), map[string]string{"AZURE_SUBSCRIPTION_ID": ""}, workload.InvalidArgument, "AZURE_SUBSCRIPTION_ID"},
		{"subscription option", with("subscriptionId", "11111111-2222-3333-4444-555555555555"), map[string]string{"AZURE_SUBSCRIPTION_ID": ""}, "", ""},
		{"no credentials", with(), map[string]string{"AZURE_CLIENT_SECRET": ""}, workload.Unauthenticated, "AZURE_FEDERATED_TOKEN_FILE"},
		{"no tenant", with(), map[string]string{"AZURE_TENANT_ID": ""}, workload.Unauthenticated, "AZURE_TENANT_ID"},
		{"certificate missing", with(), map[string]string{"AZURE_CLIENT_SECRET": "", "AZURE_CLIENT_CERTIFICATE_PATH": "/nonexistent/cert.pem"}, workload.Unauthenticated, "AZURE_CLIENT_CERTIFICATE_PATH"},
		{"aks option in aci mode", with("cluster", "prod"), nil, workload.InvalidArgument, "cluster: does not apply to mode aci"},
		{"aci option in aks mode", with("mode", "aks", "cluster", "prod", "appConfigEndpoint", "https://s.azconfig.io"), nil, workload.InvalidArgument, "appConfigEndpoint: does not apply to mode aks"},
		{"metrics interval 5m", with("metricsInterval", "5m"), nil, "", ""},
		// ACI metrics have no P1D grain (review Z5).
		{"metrics interval 1d", with("metricsInterval", "24h"), nil, workload.InvalidArgument, "options.metricsInterval: must be one of"},
		{"metrics interval 2m", with("metricsInterval", "2m"), nil, workload.InvalidArgument, "options.metricsInterval: must be one of"},
		{"metrics interval sub-minute", with("metricsInterval", "50ms"), nil, workload.InvalidArgument, "options.metricsInterval: must be one of"},
		{"bad poll interval", with("pollInterval", "-1s"), nil, workload.InvalidArgument, "options.pollInterval: must be positive"},
		{"workload identity", with(), map[string]string{"AZURE_CLIENT_SECRET": "", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{
				"AZURE_SUBSCRIPTION_ID": testSub, "AZURE_TENANT_ID": "tenant", "AZURE_CLIENT_ID": "client",
				"AZURE_CLIENT_SECRET": "a-client-secret-value",
			}
			for k, v := range c.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "edge", Provider: Name, Options: rawOptions(c.opts)}, credentials.FromMap(env))
			if c.code == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if provider.NameOf(p) != Name {
					t.Errorf("provider name %q", provider.NameOf(p))
				}
				return
			}
			if workload.CodeOf(err) != c.code || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Open = %v (code %s), want %s mentioning %q", err, workload.CodeOf(err), c.code, c.field)
			}
			if strings.Contains(err.Error(), "a-client-secret-value") {
				t.Errorf("error %q carries the client secret", err)
			}
		})
	}
}

func TestOpenRegistersSecretForRedaction(t *testing.T) {
	creds := credentials.FromMap(map[string]string{"AZURE_SUBSCRIPTION_ID": testSub, "AZURE_TENANT_ID": "tenant",
		"AZURE_CLIENT_ID": "client", "AZURE_CLIENT_SECRET": "planted-secret-4711"})
	_, err := provider.Open(context.Background(), provider.TargetConfig{Name: "edge", Provider: Name,
		Options: rawOptions(map[string]any{"resourceGroup": "rg", "location": "westeurope"})}, creds)
	if err != nil {
		t.Fatal(err)
	}
	if got := creds.Redact("token planted-secret-4711 leaked"); strings.Contains(got, "planted-secret-4711") {
		t.Errorf("the client secret is not registered for redaction: %q", got)
	}
}

func TestCertificateCredential(t *testing.T) {
	// A certificate file that is not a certificate is refused at Open.
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := credentialFromEnv(map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_CERTIFICATE_PATH": path})
	if workload.CodeOf(err) != workload.Unauthenticated {
		t.Fatalf("credentialFromEnv = %v, want unauthenticated", err)
	}
}

func TestApplyConfigUnsupportedWithoutStore(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"appConfigEndpoint": nil})
	for _, c := range provider.Capabilities(p) {
		if c.Op == provider.OpApplyConfig && (c.Supported || !strings.Contains(c.Reason, "appConfigEndpoint")) {
			t.Fatalf("apply_config capability = %+v, want unsupported naming appConfigEndpoint", c)
		}
	}
	ctx := context.Background()
	sp := spec("plain", 1)
	sp.Config = map[string]string{"greeting": "hello"}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if got := f.Env(testTarget, "plain")["greeting"]; got != "hello" {
		t.Errorf("without a store spec.config is plain env: greeting = %q", got)
	}
	// Groups made by Scale from plain-0 keep it.
	if _, err := p.Scale(ctx, "plain", 2); err != nil {
		t.Fatal(err)
	}
	g1, _, _ := f.Group("plain-1")
	found := false
	for _, e := range g1.Properties.Containers[0].Properties.EnvironmentVariables {
		found = found || (str(e.Name) == "greeting" && str(e.Value) == "hello")
	}
	if !found {
		t.Error("a group added by Scale lost the spec's config")
	}
	if st, err := p.Start(ctx, sp); err != nil || f.Calls("BeginCreateOrUpdate") != 2 || st.Replicas.Desired != 1 {
		t.Errorf("restarting the same spec: %v, %d creates, desired %d", err, f.Calls("BeginCreateOrUpdate"), st.Replicas.Desired)
	}
	sp.Config = map[string]string{"secret.K": "v"}
	if _, err := p.Start(ctx, sp); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("secret config without a store = %v, want invalid_argument", err)
	}
	err := p.ApplyConfig(ctx, "plain", map[string]string{"a": "b"})
	if workload.CodeOf(err) != workload.Unsupported || !provider.NothingChanged(err) {
		t.Fatalf("ApplyConfig = %v, want unsupported", err)
	}
}

// shortLivedCredential issues tokens that expire within the bearer-token
// policy's refresh window, as an hour-old service-principal token would.
type shortLivedCredential struct{ calls atomic.Int64 }

func (c *shortLivedCredential) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	n := c.calls.Add(1)
	return azcore.AccessToken{Token: "token-" + string(rune('a'+n%26)), ExpiresOn: time.Now().Add(2 * time.Minute)}, nil
}

// TestStreamOutlivesToken checks that a metrics stream keeps going while
// the credential's tokens expire: the pipeline asks for a new token and
// the stream never sees an error.
func TestStreamOutlivesToken(t *testing.T) {
	f := fakeazure.New(fakeazure.Options{SubscriptionID: testSub, ResourceGroup: testRG, StartupLine: startupLine})
	t.Cleanup(f.Close)
	cred := &shortLivedCredential{}
	pp, err := open(context.Background(), provider.TargetConfig{Name: testTarget, Provider: Name, Options: rawOptions(map[string]any{
		"resourceGroup": testRG, "location": "westeurope", "pollInterval": "5ms", "metricsInterval": "20ms"})},
		testCreds(), deps{cred: cred, aci: f.ACITransport(), monitor: f.MonitorTransport(), anyMetricsInterval: true})
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*Provider)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Start(ctx, spec("tokens", 1)); err != nil {
		t.Fatal(err)
	}
	before := cred.calls.Load()
	n := 0
	for _, err := range p.StreamMetrics(ctx, "tokens") {
		if err != nil {
			t.Fatalf("stream error after %d samples: %v", n, err)
		}
		if n++; n == 4 {
			break
		}
	}
	if cred.calls.Load() <= before {
		t.Errorf("no new token was requested during the stream (%d calls before, %d after)", before, cred.calls.Load())
	}
}
