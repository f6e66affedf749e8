package credentials

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestSecretResolvesEnvReferences(t *testing.T) {
	r := FromMap(map[string]string{"ALPHASWARM_SECRET_DB": "hunter2-long"})
	v, err := r.Secret("env:ALPHASWARM_SECRET_DB")
	if err != nil || v != "hunter2-long" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	if got := r.Redact("password is hunter2-long!"); got != "password is [REDACTED]!" {
		t.Fatalf("Redact = %q", got)
	}
	for _, ref := range []string{"env:ALPHASWARM_SECRET_MISSING", "arn:aws:ssm:eu-west-1:1:parameter/x", "hunter2-long"} {
		_, err := r.Secret(ref)
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Errorf("Secret(%q) = %v, want invalid_argument", ref, err)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2-long") {
			t.Errorf("error repeats the value: %v", err)
		}
	}
}

// TestSecretRefusesTheControllersOwnVariables: a spec cannot copy the
// controller's credentials or configuration into a workload.
func TestSecretRefusesTheControllersOwnVariables(t *testing.T) {
	r := FromMap(map[string]string{"AWS_SECRET_ACCESS_KEY": "abcd1234efgh", "AZURE_CLIENT_SECRET": "azsecret-1234",
		"KUBECONFIG": "/root/.kube/config", "ALPHASWARM_SECRET_": "empty-suffix-1234"})
	for _, ref := range []string{"env:AWS_SECRET_ACCESS_KEY", "env:AZURE_CLIENT_SECRET", "env:KUBECONFIG", "env:ALPHASWARM_SECRET_"} {
		v, err := r.Secret(ref)
		we := workload.AsError(err)
		if we == nil || we.Code != workload.InvalidArgument || len(we.Fields) != 1 || we.Fields[0].Path != "secrets.from" || v != "" {
			t.Errorf("Secret(%q) = %q, %v; want invalid_argument at secrets.from", ref, v, err)
			continue
		}
		if !strings.Contains(err.Error(), "ALPHASWARM_SECRET_") {
			t.Errorf("Secret(%q): the error does not say what may be referenced: %v", ref, err)
		}
	}
}

func TestLookupRegistersSecretLookingNames(t *testing.T) {
	r := FromMap(map[string]string{"AWS_SECRET_ACCESS_KEY": "abcd1234efgh", "AWS_REGION": "eu-west-1", "GITHUB_TOKEN": "ghp_x1y2z3"})
	r.Lookup("AWS_REGION")
	r.Lookup("AWS_SECRET_ACCESS_KEY")
	r.Get("GITHUB_TOKEN")
	got := r.Redact("region eu-west-1 key abcd1234efgh token ghp_x1y2z3")
	if got != "region eu-west-1 key [REDACTED] token [REDACTED]" {
		t.Fatalf("Redact = %q", got)
	}
}

func TestProviderLookups(t *testing.T) {
	r := FromMap(map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secretkey123", "AWS_REGION": "us-east-1",
		"ALPHASWARM_AWS_ROLE": "deployer", "DOCKER_HOST": "unix:///x.sock", "UNRELATED": "1",
	})
	aws := r.Provider("aws")
	if len(aws) != 4 || aws["ALPHASWARM_AWS_ROLE"] != "deployer" || aws["AWS_REGION"] != "us-east-1" {
		t.Fatalf("aws = %v", aws)
	}
	if d := r.Provider("docker"); len(d) != 1 || d["DOCKER_HOST"] == "" {
		t.Fatalf("docker = %v", d)
	}
	if !r.Contains("secretkey123") {
		t.Fatal("provider look-up did not register the secret key")
	}
}

func TestShortValuesNotRedacted(t *testing.T) {
	r := FromMap(nil)
	r.Register("on")
	if r.Redact("turn it on") != "turn it on" {
		t.Fatal("short value redacted")
	}
}

func TestRedactLongestFirst(t *testing.T) {
	r := FromMap(nil)
	r.Register("abcd")
	r.Register("abcdefgh")
	if got := r.Redact("x abcdefgh y"); got != "x [REDACTED] y" {
		t.Fatalf("got %q", got)
	}
}

func TestHandlerRedactsEverything(t *testing.T) {
	r := FromMap(nil)
	r.Register("topsecretvalue")
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), r))
	log = log.With("pre", "with topsecretvalue")
	log.WithGroup("g").Info("message topsecretvalue",
		"s", "topsecretvalue", "err", errors.New("failed: topsecretvalue"),
		slog.Group("grp", "inner", "topsecretvalue"), "n", 3, "any", struct{ V string }{"topsecretvalue"})
	out := buf.String()
	if strings.Contains(out, "topsecretvalue") {
		t.Fatalf("log leaks: %s", out)
	}
	if strings.Count(out, Redacted) < 6 {
		t.Fatalf("expected 6 redactions: %s", out)
	}
}

func TestIsSecretName(t *testing.T) {
	for name, want := range map[string]bool{"DB_PASSWORD": true, "API_KEY": true, "ALPHASWARM_SECRET_X": true,
		"AZURE_CLIENT_SECRET": true, "HOME": false, "AWS_REGION": false, "KUBECONFIG": false} {
		if IsSecretName(name) != want {
			t.Errorf("%s: %v", name, !want)
		}
	}
}
