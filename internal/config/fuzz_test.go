package config

import (
	"testing"

	"github.com/alphaswarm/controller/workload"
)

// FuzzParse checks that no config document makes Parse panic and that
// every failure is an InvalidArgument with field paths.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:7070\ntargets:\n  k:\n    provider: kubernetes\n    options: {namespace: a}\n"))
	f.Add([]byte("listen: a:1\nListen: b:2\n"))
	f.Add([]byte("targets:\n  k:\n    provider: x\n    options: {\"a\": 1, \"a\": 2}\n"))
	f.Add([]byte("auth:\n  oidc:\n    issuer: https://x\n    audience: a\n"))
	f.Add([]byte("- a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse(b, "/data")
		if err != nil {
			if e := workload.AsError(err); e.Code != workload.InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("error %v: want invalid_argument with fields", err)
			}
		}
	})
}
