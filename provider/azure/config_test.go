package azure

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// An identical Start or ApplyConfig with a secret key writes nothing: no
// new Key Vault version, no new group. A removed secret key disables its
// Key Vault secret; adding it back works.
func TestSecretConfigIsIdempotent(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	sp := spec("idem", 2)
	sp.Config = map[string]string{"secret.TOKEN": "tok-abcdef", "mode": "x"}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	name := p.secretName("idem", "secret.TOKEN")
	versions, _ := f.SecretVersions(name)
	creates := f.Calls("BeginCreateOrUpdate")
	if !p.creds.Contains("tok-abcdef") {
		t.Errorf("the resolved Key Vault value is not registered for redaction")
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"second Start", func() error { _, err := p.Start(ctx, sp); return err }},
		{"identical ApplyConfig", func() error { return p.ApplyConfig(ctx, "idem", sp.Config) }},
		{"third Start", func() error { _, err := p.Start(ctx, sp); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n, _ := f.SecretVersions(name); n != versions {
			t.Errorf("%s: %d Key Vault versions, want %d", s.name, n, versions)
		}
		if n := f.Calls("BeginCreateOrUpdate"); n != creates {
			t.Errorf("%s: %d create-or-updates, want %d (no group recreated)", s.name, n, creates)
		}
	}
	// A changed value makes a new version.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"secret.TOKEN": "tok-changed", "mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if n, on := f.SecretVersions(name); n != versions+1 || !on {
		t.Errorf("changed value: %d versions (enabled %v), want %d", n, on, versions+1)
	}
	if env := f.Env(testTarget, "idem"); env["TOKEN"] != "tok-changed" {
		t.Errorf("env TOKEN = %q", env["TOKEN"])
	}
	// Removing the key disables the secret.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if _, on := f.SecretVersions(name); on {
		t.Errorf("removed secret key: the Key Vault secret is still enabled")
	}
	if _, ok := f.Env(testTarget, "idem")["TOKEN"]; ok {
		t.Errorf("removed secret key still in the environment")
	}
	// Adding it back with the old value sets a new, enabled version.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"secret.TOKEN": "tok-changed", "mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if _, on := f.SecretVersions(name); !on {
		t.Errorf("secret key added back: the latest version is disabled")
	}
	if env := f.Env(testTarget, "idem"); env["TOKEN"] != "tok-changed" {
		t.Errorf("env TOKEN after adding back = %q", env["TOKEN"])
	}
}

// keyvault: secret references are registered for redaction.
func TestKeyVaultSecretRegisteredForRedaction(t *testing.T) {
	p, _ := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("kv-value-9f8e7d")}, nil); err != nil {
		t.Fatal(err)
	}
	sp := spec("kvref", 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "keyvault:db-password"}}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if !p.creds.Contains("kv-value-9f8e7d") {
		t.Errorf("the keyvault: value is not registered for redaction")
	}
}

func TestSecretsAndConfig(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	sp := spec("shop", 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB_PASSWORD", From: "env:ALPHASWARM_SECRET_DB"}}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	err := p.ApplyConfig(ctx, "shop", map[string]string{"mode": "blue", "secret.API_TOKEN": "tok-123456"})
	if err != nil {
		t.Fatal(err)
	}
	// The store: plain key in App Configuration, secret in Key Vault
	// with a reference to it.
	if v, ct, ok := f.Setting("alphaswarm/shop/mode", testTarget); !ok || v != "blue" || ct != "" {
		t.Errorf("setting mode = %q %q %v", v, ct, ok)
	}
	kvName := "alphaswarm-" + testTarget + "-shop-API-TOKEN"
	if v, ok := f.Secret(kvName); !ok || v != "tok-123456" {
		t.Errorf("Key Vault secret %s = %q %v", kvName, v, ok)
	}
	ref, ct, ok := f.Setting("alphaswarm/shop/secret.API_TOKEN", testTarget)
	if !ok || !strings.HasPrefix(ct, "application/vnd.microsoft.appconfig.keyvaultref+json") || !strings.Contains(ref, fakeazure.VaultURL+"/secrets/"+kvName+"/") {
		t.Errorf("reference setting = %q %q %v", ref, ct, ok)
	}
	// The workload: all three as env; ARM returns no secure values.
	env := f.Env(testTarget, "shop")
	if env["mode"] != "blue" || env["API_TOKEN"] != "tok-123456" || env["DB_PASSWORD"] != "s3cr3t-db-password" {
		t.Fatalf("workload env = %v", env)
	}
	cg, err := p.get(ctx, "shop-0")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cg.Properties.Containers[0].Properties.EnvironmentVariables {
		if n := str(e.Name); (n == "API_TOKEN" || n == "DB_PASSWORD") && (e.Value != nil || e.SecureValue != nil) {
			t.Errorf("Get returned a value for secure env %s", n)
		}
	}
	// Scaling up rebuilds groups from shop-0, whose secure values ACI
	// does not return: they come back from the tags and Key Vault.
	if _, err := p.Scale(ctx, "shop", 2); err != nil {
		t.Fatal(err)
	}
	g1, _, _ := f.Group("shop-1")
	got := map[string]string{}
	for _, e := range g1.Properties.Containers[0].Properties.EnvironmentVariables {
		got[str(e.Name)] = str(e.Value) + str(e.SecureValue)
	}
	if got["mode"] != "blue" || got["API_TOKEN"] != "tok-123456" || got["DB_PASSWORD"] != "s3cr3t-db-password" {
		t.Fatalf("scaled-up group env = %v", got)
	}
	// Removing keys removes them from the store and the workload.
	if err := p.ApplyConfig(ctx, "shop", map[string]string{"mode": "green"}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Setting("alphaswarm/shop/secret.API_TOKEN", testTarget); ok {
		t.Error("the removed secret key is still in App Configuration")
	}
	for _, g := range []string{"shop-0", "shop-1"} {
		cg, _, _ := f.Group(g)
		env := map[string]string{}
		for _, e := range cg.Properties.Containers[0].Properties.EnvironmentVariables {
			env[str(e.Name)] = str(e.Value) + str(e.SecureValue)
		}
		if _, has := env["API_TOKEN"]; has || env["mode"] != "green" || env["DB_PASSWORD"] != "s3cr3t-db-password" {
			t.Errorf("%s env after removal = %v", g, env)
		}
	}
	st, err := p.Status(ctx, "shop")
	if err != nil || st.Phase != workload.Running || st.Replicas.Updated != 2 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestConfigValidation(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"keyVaultURL": nil})
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		config map[string]string
		want   string
	}{
		{"secret without vault", map[string]string{"secret.X": "v"}, "keyVaultURL"},
		{"bad key", map[string]string{"not a key": "v"}, "config.not a key"},
		{"same env twice", map[string]string{"X": "1", "secret.X": "2"}, "same environment variable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.ApplyConfig(ctx, "cfg", c.config)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ApplyConfig = %v, want invalid_argument mentioning %q", err, c.want)
			}
		})
	}
	if keys := f.Settings(testTarget); len(keys) != 0 {
		t.Errorf("refused config wrote %v", keys)
	}
	if err := p.ApplyConfig(ctx, "absent", map[string]string{"a": "b"}); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("ApplyConfig of an unknown service = %v", err)
	}
}

// TestConfigValueLimits (review #9, Azure): an App Configuration
// key-value over 10,000 characters or a Key Vault secret over 25k bytes is
// invalid_argument naming the key, before anything is written; the fake
// refuses both as the services do.
func TestConfigValueLimits(t *testing.T) {
	for _, c := range []struct {
		key   string
		value string
	}{
		{"BIG", strings.Repeat("x", fakeazure.MaxKeyValueChars)},
		{"secret.BIG", strings.Repeat("x", fakeazure.MaxSecretBytes+1)},
	} {
		t.Run(c.key, func(t *testing.T) {
			p, f := openFake(t, fakeazure.Options{}, nil)
			sp := spec("cfg", 1)
			sp.Config = map[string]string{"A": "small", c.key: c.value}
			_, err := p.Start(ctxT(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "config."+c.key) || !provider.NothingChanged(err) {
				t.Fatalf("Start = %v; want invalid_argument at config.%s", err, c.key)
			}
			if n := f.Calls("AppConfig PUT") + f.Calls("SetSecret") + f.Calls("BeginCreateOrUpdate"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
	// Just under both limits is written.
	p, _ := openFake(t, fakeazure.Options{}, nil)
	sp := spec("cfg", 1)
	sp.Config = map[string]string{"A": strings.Repeat("x", fakeazure.MaxKeyValueChars-len("alphaswarm/cfg/A")-len(testTarget)),
		"secret.B": strings.Repeat("x", fakeazure.MaxSecretBytes)}
	if _, err := p.Start(ctxT(t), sp); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}
