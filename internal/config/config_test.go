package config

import (
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yaml", "/ignored")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:8443" || c.DataDir != "/var/lib/alphaswarm" || c.Auth.TokenFile != "/var/lib/alphaswarm/tokens.json" {
		t.Fatalf("config = %+v", c)
	}
	tc := c.TargetConfigs()
	if len(tc) != 2 || tc[0].Name != "local" || tc[1].Provider != "aws" || string(tc[1].Options["cluster"]) != `"prod"` {
		t.Fatalf("targets = %+v", tc)
	}
	if c.ActionTimeouts()[workload.ActionStart] != 10*time.Minute {
		t.Fatalf("timeouts = %v", c.ActionTimeouts())
	}
}

func TestDefaults(t *testing.T) {
	c := Default("/data")
	if c.Listen != "127.0.0.1:7070" || c.Ledger != "sqlite:/data/ledger.db" || c.MaxBodyBytes != 1<<20 {
		t.Fatalf("defaults = %+v", c)
	}
	empty, err := Parse([]byte(""), "/data")
	if err != nil || empty.Ledger != c.Ledger {
		t.Fatalf("empty file: %+v %v", empty, err)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, in string
		paths    []string
	}{
		{"unknown top", "listne: x\n", []string{"listne"}},
		{"unknown nested", "auth:\n  oidc:\n    issuer: https://x\n    audience: a\n    audiance: b\n", []string{"auth.oidc.audiance"}},
		{"unknown target key", "targets:\n  local:\n    provider: docker\n    option: {}\n", []string{"targets.local.option"}},
		{"secret in options", "targets:\n  aws:\n    provider: aws\n    options:\n      secretAccessKey: abc\n", []string{"targets.aws.options.secretAccessKey"}},
		{"password", "targets:\n  db:\n    provider: x\n    options:\n      password: abc\n", []string{"targets.db.options.password"}},
		{"bad listen", "listen: nowhere\n", []string{"listen"}},
		{"bad ledger", "ledger: mysql://x\n", []string{"ledger"}},
		{"bad target name", "targets:\n  Prod_1:\n    provider: docker\n", []string{"targets.Prod_1"}},
		{"no provider", "targets:\n  a: {}\n", []string{"targets.a.provider"}},
		{"bad timeout action", "timeouts:\n  create_cluster: 1m\n", []string{"timeouts.create_cluster"}},
		{"bad timeout value", "timeouts:\n  start: soon\n", []string{"config"}},
		{"negative timeout", "timeouts:\n  start: -1s\n", []string{"timeouts.start"}},
		{"wrong type", "maxBodyBytes: lots\n", []string{"maxBodyBytes"}},
		{"http issuer", "auth:\n  oidc:\n    issuer: http://evil.example\n    audience: a\n", []string{"auth.oidc.issuer"}},
		{"not a mapping", "- a\n- b\n", []string{"config"}},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", []string{"config"}},
		{"case variant", "listen: 127.0.0.1:1\nListen: 0.0.0.0:2\n", []string{"Listen"}},
		{"case variant nested", "auth:\n  oidc:\n    Issuer: https://x\n    audience: a\n", []string{"auth.oidc.Issuer"}},
		{"duplicate in options", "targets:\n  k:\n    provider: kubernetes\n    options: {\"namespace\": \"a\", \"namespace\": \"b\"}\n", []string{"config"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "/data")
			e := workload.AsError(err)
			if e == nil || e.Code != workload.InvalidArgument {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Path)
			}
			if !slices.Equal(got, tc.paths) {
				t.Fatalf("paths %v, want %v (%v)", got, tc.paths, err)
			}
		})
	}
}
