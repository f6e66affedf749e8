package azure

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

var _ control.SecretSource = (*Provider)(nil)

// A controller that starts again (a new provider, a resolver that never
// resolved anything) learns every Key Vault value its services use, so
// that the runtime can redact them from the first byte of output.
func TestManagedSecretsAfterRestart(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("kv-value-5a4b3c")}, nil); err != nil {
		t.Fatal(err)
	}
	sp := spec("kvsvc", 2)
	sp.Secrets = []workload.SecretRef{
		{Env: "DB", From: "keyvault:db-password"},
		{Env: "PLAIN", From: "env:ALPHASWARM_SECRET_DB"},
	}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyConfig(ctx, "kvsvc", map[string]string{"mode": "blue", "secret.API_TOKEN": "tok-7e6d5c"}); err != nil {
		t.Fatal(err)
	}

	restarted := openOn(t, f, nil, nil)
	if restarted.creds.Contains("kv-value-5a4b3c") || restarted.creds.Contains("tok-7e6d5c") {
		t.Fatal("a new resolver already holds the values; the test proves nothing")
	}
	got, err := restarted.ManagedSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"kv-value-5a4b3c": false, "tok-7e6d5c": false}
	for _, v := range got {
		if _, ok := want[v]; !ok {
			t.Errorf("ManagedSecrets returned %q, which is not a Key Vault value of the service", v)
		}
		want[v] = true
	}
	for v, seen := range want {
		if !seen {
			t.Errorf("ManagedSecrets did not return %q (got %d values)", v, len(got))
		}
		if !restarted.creds.Contains(v) {
			t.Errorf("%q is not registered with the provider's resolver", v)
		}
	}
}
