package azure

import (
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

func TestInvalidSpecs(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"keyVaultURL": nil})
	cases := []struct {
		name   string
		mutate func(*workload.DeploymentSpec)
		want   string
	}{
		{"args without command", func(s *workload.DeploymentSpec) { s.Args = []string{"-v"} }, "args"},
		{"tcp probe", func(s *workload.DeploymentSpec) {
			s.HealthCheck = &workload.HealthCheck{TCP: &workload.TCPCheck{Port: 80}}
		}, "healthCheck.tcp"},
		{"host port differs", func(s *workload.DeploymentSpec) { s.Ports = []workload.Port{{Container: 80, Host: 8080}} }, "ports[0].host"},
		{"keyvault without vault", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "keyvault:db"}}
		}, "keyVaultURL"},
		{"unknown secret scheme", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "arn:aws:ssm:x"}}
		}, "secrets[0].from"},
		{"missing env secret", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "env:ALPHASWARM_SECRET_NOPE"}}
		}, "ALPHASWARM_SECRET_NOPE"},
		{"label not a tag name", func(s *workload.DeploymentSpec) { s.Labels = map[string]string{"example.com/team": "a"} }, "labels.example.com/team"},
		{"name too long for groups", func(s *workload.DeploymentSpec) { s.Name = strings.Repeat("a", 62); s.Replicas = 10 }, "63"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := spec("bad", 1)
			c.mutate(&sp)
			_, err := p.Start(ctxT(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !provider.NothingChanged(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start = %v, want invalid_argument mentioning %q", err, c.want)
			}
		})
	}
	if n := f.Calls("BeginCreateOrUpdate"); n != 0 {
		t.Errorf("invalid specs made %d create calls", n)
	}
}

func TestTranslation(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"subnet": "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"})
	sp := spec("tr", 1)
	sp.Command, sp.Args = []string{"/app/server"}, []string{"--port", "80"}
	sp.Env = map[string]string{"B": "2", "A": "1"}
	sp.Labels = map[string]string{"team": "payments"}
	sp.Resources = workload.Resources{CPU: "1500m", Memory: "700Mi"}
	sp.HealthCheck = &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 80}, Interval: workload.Duration(10 * time.Second), Retries: 3}
	if _, err := p.Start(ctxT(t), sp); err != nil {
		t.Fatal(err)
	}
	cg, _, _ := f.Group("tr-0")
	c := cg.Properties.Containers[0].Properties
	checks := []struct {
		what      string
		got, want any
	}{
		{"command", strings.Join(derefAll(c.Command), " "), "/app/server --port 80"},
		{"cpu", *c.Resources.Requests.CPU, 1.5},
		{"memory GB (rounded up)", *c.Resources.Requests.MemoryInGB, 0.7},
		{"env order", str(c.EnvironmentVariables[0].Name) + str(c.EnvironmentVariables[1].Name), "AB"},
		{"probe path", str(c.LivenessProbe.HTTPGet.Path), "/healthz"},
		{"probe period", deref(c.LivenessProbe.PeriodSeconds), int32(10)},
		{"probe failures", deref(c.ReadinessProbe.FailureThreshold), int32(3)},
		{"ip type", string(*cg.Properties.IPAddress.Type), "Private"},
		{"subnet", str(cg.Properties.SubnetIDs[0].ID), "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"},
		{"restart policy", string(*cg.Properties.RestartPolicy), "Always"},
		{"label tag", str(cg.Tags["team"]), "payments"},
		{"service tag", str(cg.Tags[tagService]), "tr"},
		{"target tag", str(cg.Tags[tagTarget]), testTarget},
		{"index tag", str(cg.Tags[tagIndex]), "0"},
		{"location", str(cg.Location), "westeurope"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func derefAll(ss []*string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, str(s))
	}
	return out
}
