package azure

import (
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

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
