package config

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
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
	want := provider.Policy{
		Images:      []string{"registry.example.com/team/", "alphaswarm-test-workload:"},
		MaxReplicas: 8,
		Ports:       provider.PortPolicy{HostPorts: []string{"8000-8999", "443"}, BindAddresses: []string{"127.0.0.1", "0.0.0.0"}},
		Secrets: []provider.SecretGrant{
			{Secret: "ALPHASWARM_SECRET_DB", Services: []string{"web", "api-*"}},
			{Secret: "ALPHASWARM_SECRET_SHARED_*"},
		},
		Compose: provider.ComposePolicy{Dir: "/srv/alphaswarm/compose", Allow: []string{"cap_add"}, BindPaths: []string{"/srv/data"}},
	}
	if !reflect.DeepEqual(tc[0].Policy, want) {
		t.Fatalf("local policy = %+v, want %+v", tc[0].Policy, want)
	}
	if !reflect.DeepEqual(tc[1].Policy, provider.Policy{}) {
		t.Fatalf("prod-eks policy = %+v, want the defaults", tc[1].Policy)
	}
	if c.TLS == nil || c.TLS.Key != "/etc/alphaswarm/tls.key" || c.MaxStreamsPerUser != 8 || c.ReadTimeout.D() != 10*time.Second {
		t.Fatalf("tls/limits = %+v %d %v", c.TLS, c.MaxStreamsPerUser, c.ReadTimeout)
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
		{"tls without key", "tls:\n  cert: /c.pem\n", []string{"tls.key"}},
		{"tls secret-looking key", "tls:\n  cert: /c.pem\n  key: /k.pem\n  password: x\n", []string{"tls.password", "tls.password"}},
		{"negative streams", "maxStreamsPerUser: -1\n", []string{"maxStreamsPerUser"}},
		{"case variant", "listen: 127.0.0.1:1\nListen: 0.0.0.0:2\n", []string{"Listen"}},
		{"case variant nested", "auth:\n  oidc:\n    Issuer: https://x\n    audience: a\n", []string{"auth.oidc.Issuer"}},
		{"duplicate in options", "targets:\n  k:\n    provider: kubernetes\n    options: {\"namespace\": \"a\", \"namespace\": \"b\"}\n", []string{"config"}},
		{"unknown policy key", "targets:\n  l:\n    provider: docker\n    policy:\n      imagez: [x]\n", []string{"targets.l.policy.imagez"}},
		{"unknown nested policy key", "targets:\n  l:\n    provider: docker\n    policy:\n      ports:\n        bindAddress: 0.0.0.0\n", []string{"targets.l.policy.ports.bindAddress"}},
		{"unknown grant key", "targets:\n  l:\n    provider: docker\n    policy:\n      secrets:\n        - secret: ALPHASWARM_SECRET_A\n          service: web\n", []string{"targets.l.policy.secrets[0].service"}},
		{"bad policy values", "targets:\n  l:\n    provider: docker\n    policy:\n      maxReplicas: -1\n      images: ['']\n      ports:\n        hostPorts: [80-70, '0', x]\n        bindAddresses: [everywhere]\n      secrets:\n        - secret: '*'\n          services: ['[']\n      compose:\n        dir: compose\n        allow: [everything]\n        bindPaths: [data, /srv/../etc]\n",
			[]string{"targets.l.policy.images[0]", "targets.l.policy.maxReplicas", "targets.l.policy.ports.hostPorts[0]", "targets.l.policy.ports.hostPorts[1]", "targets.l.policy.ports.hostPorts[2]",
				"targets.l.policy.ports.bindAddresses[0]", "targets.l.policy.secrets[0].secret", "targets.l.policy.secrets[0].services[0]", "targets.l.policy.compose.dir",
				"targets.l.policy.compose.allow[0]", "targets.l.policy.compose.bindPaths[0]", "targets.l.policy.compose.bindPaths[1]"}},
		{"a secret value is still refused", "targets:\n  l:\n    provider: docker\n    policy:\n      secrets:\n        - secret: ALPHASWARM_SECRET_A\n          password: x\n", []string{"targets.l.policy.secrets[0].password", "targets.l.policy.secrets[0].password"}},
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

// The config file names a mistake in the words the API and the spec
// decoder use for it (workload.DecodeDocument).
func TestParseSpeaksTheDecodersWords(t *testing.T) {
	cases := []struct{ in, want string }{
		{"maxBodyBytes: lots\n", "maxBodyBytes: must be an integer, not string"},
		{"listne: x\n", "listne: unknown field"},
		{"Listen: x\n", `Listen: unknown field (keys are case-sensitive: did you mean "listen"?)`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.in), "/data")
		if e := workload.AsError(err); e == nil || e.Message != tc.want {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
