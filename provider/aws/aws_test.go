package aws_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

func ctx(t *testing.T) context.Context { return testkit.Context(t, 15*time.Second) }

func TestOpenErrors(t *testing.T) {
	raw := func(m map[string]any) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for k, v := range m {
			out[k], _ = json.Marshal(v)
		}
		return out
	}
	_, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"mode": "eks"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "targets.x.options.cluster") {
		t.Errorf("mode eks without a cluster: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"clustr": "a"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "clustr") {
		t.Errorf("unknown option: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"cluster": "a"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "subnets") {
		t.Errorf("no subnets: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"subnets": []string{"subnet-1"}})}, credentials.FromMap(nil))
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: %v", err)
	}
	// No credentials: the provider opens, operations are unauthenticated.
	f := fakeaws.New(fakeaws.Options{})
	defer f.Close()
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"baseEndpoint": f.URL(), "region": "us-east-1", "subnets": []string{"subnet-1"}})}, credentials.FromMap(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.(io.Closer).Close()
	if _, err := p.Status(ctx(t), "web"); workload.CodeOf(err) != workload.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
}

func TestWebIdentityCredentials(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	defer f.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("eyJhbGciOiJSUzI1NiJ9.fake.jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := credentials.FromMap(map[string]string{"AWS_REGION": "eu-west-1",
		"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/deployer", "AWS_WEB_IDENTITY_TOKEN_FILE": tok})
	opts := map[string]json.RawMessage{"baseEndpoint": json.RawMessage(`"` + f.URL() + `"`), "subnets": json.RawMessage(`["subnet-1"]`)}
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws", Options: opts}, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer p.(io.Closer).Close()
	if _, err := p.Status(ctx(t), "web"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status = %v, want not_found", err)
	}
	role, token, session := f.WebIdentity()
	if role != "arn:aws:iam::123456789012:role/deployer" || token != "eyJhbGciOiJSUzI1NiJ9.fake.jwt" || session != "alphaswarm" {
		t.Errorf("AssumeRoleWithWebIdentity got role %q token %q session %q", role, token, session)
	}
	if f.SignedWith(fakeaws.AssumedAccessKey) == 0 {
		t.Error("ECS requests were not signed with the assumed role's credentials")
	}
}

func TestCapabilities(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{}, nil)
	for _, c := range provider.Capabilities(p) {
		if c.Op == provider.OpExec {
			if c.Supported {
				t.Error("exec reported as supported")
			}
			continue
		}
		if !c.Supported {
			t.Errorf("%s unsupported: %s", c.Op, c.Reason)
		}
	}
}
