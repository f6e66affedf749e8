package control

import (
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// BenchmarkAdmit measures the admission step alone on a start request that
// every rule of a full policy looks at; compare with the p50 of
// BenchmarkRuntimeOverhead (the whole pipeline) from the same run.
func BenchmarkAdmit(b *testing.B) {
	t := Target{Name: "local", Provider: hostPorts{providertest.NewMemory("local")}, Policy: provider.Policy{
		Images:      []string{"registry.example.com/team/", "example/app:"},
		MaxReplicas: 50,
		Ports:       provider.PortPolicy{HostPorts: []string{"8000-8999"}, BindAddresses: []string{"127.0.0.1", "0.0.0.0"}},
		Secrets:     []provider.SecretGrant{{Secret: "ALPHASWARM_SECRET_DB", Services: []string{"api-*", "web"}}},
	}}
	r := &Request{Action: workload.ActionStart, Target: "local", Service: "web", Spec: &workload.DeploymentSpec{
		Name: "web", Image: "example/app:1", Replicas: 3,
		Ports:   []workload.Port{{Container: 8080, Host: 8080}, {Container: 9090, Host: 8443, HostIP: "0.0.0.0"}},
		Secrets: []workload.SecretRef{{Env: "DB", From: "env:ALPHASWARM_SECRET_DB"}},
	}}
	for b.Loop() {
		if err := admit(t, r); err != nil {
			b.Fatal(err)
		}
	}
}

type hostPorts struct{ *providertest.Memory }

func (hostPorts) PublishesHostPorts() bool { return true }
