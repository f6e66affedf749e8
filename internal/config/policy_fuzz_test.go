package config

import (
	"os"
	"testing"

	"github.com/alphaswarm/controller/workload"
)

// FuzzParsePolicy: no targets.<name>.policy block makes Parse panic, a
// failure is an InvalidArgument with field paths, and an accepted policy
// answers every admission question without panicking.
func FuzzParsePolicy(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("targets:\n  l:\n    provider: docker\n    policy:\n      maxReplicas: 3\n      ports: {hostPorts: ['80', 8000-9000], bindAddresses: ['::1', 0.0.0.0]}\n"))
	f.Add([]byte("targets:\n  l:\n    provider: docker\n    policy:\n      secrets: [{secret: 'ALPHASWARM_SECRET_*', services: ['a[b-c]*']}]\n      images: ['x/', 'y:1']\n"))
	f.Add([]byte("targets:\n  l:\n    provider: docker\n    policy:\n      compose: {dir: /srv/c, allow: [privileged], bindPaths: [/srv]}\n"))
	f.Add([]byte("targets:\n  l:\n    provider: docker\n    policy: {Images: [x], images: [y]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, "/data")
		if err != nil {
			if e := workload.AsError(err); e.Code != workload.InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("error %v: want invalid_argument with fields", err)
			}
			return
		}
		for _, tc := range c.TargetConfigs() {
			p := tc.Policy
			if p.Replicas() < 1 || p.Replicas() > workload.MaxReplicas {
				t.Fatalf("replicas limit %d", p.Replicas())
			}
			for _, img := range []string{"", "x", "registry.example.com/team/web:1", "y:10"} {
				p.AllowsImage(img)
			}
			for _, port := range []int{0, 1, 80, 1024, 8080, 65535} {
				for _, ip := range []string{"", "127.0.0.1", "0.0.0.0", "::1", "bad"} {
					p.CheckPort(ip, port)
				}
			}
			p.AllowsSecret("web", "env:ALPHASWARM_SECRET_DB")
			p.AllowsBindPath("/srv/data/x")
			p.ComposeAllows("privileged")
		}
	})
}
