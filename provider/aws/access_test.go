package aws

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

const testUser = "arn:aws:iam::123456789012:user/alphaswarm"

// allowAllBut is a policy allowing every action the provider uses, with
// deny statements for the actions given.
func allowAllBut(deny ...string) []fakeaws.Statement {
	p := []fakeaws.Statement{{Effect: "Allow", Action: []string{"ecs:*", "ssm:*", "logs:*", "cloudwatch:*", "iam:PassRole", "iam:SimulatePrincipalPolicy"}}}
	if len(deny) > 0 {
		p = append(p, fakeaws.Statement{Effect: "Deny", Action: deny})
	}
	return p
}

func capability(p provider.Provider, op provider.Operation) provider.Capability {
	for _, c := range provider.Capabilities(p) {
		if c.Op == op {
			return c
		}
	}
	return provider.Capability{}
}

// TestMissingPermissionsAreNamed (issue 22, D6 on ECS): what the target's
// identity (and the task role, for exec) lacks is found with IAM
// SimulatePrincipalPolicy when the target opens, shown in the capability
// matrix, and refused with permission_denied naming the action before any
// AWS call; the fake refuses the same call when the check is off.
func TestMissingPermissionsAreNamed(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	startWeb(t, openTarget(t, f, map[string]any{"checkPermissions": false}), f)
	f.SetPolicies(map[string][]fakeaws.Statement{
		testUser:     allowAllBut("ecs:UpdateService", "cloudwatch:GetMetricData"),
		testTaskRole: {{Effect: "Allow", Action: []string{"ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel"}}},
	})
	p := openTarget(t, f, nil)
	for _, c := range []struct {
		op   provider.Operation
		want []string // "" = supported
	}{
		{provider.OpStatus, nil},
		{provider.OpLogs, nil},
		{provider.OpScale, []string{"ecs:UpdateService on arn:aws:ecs:us-east-1:123456789012:service/default/*", testUser}},
		{provider.OpStart, []string{"ecs:UpdateService"}},
		{provider.OpStreamMetrics, []string{"cloudwatch:GetMetricData"}},
		{provider.OpExec, []string{"ssmmessages:OpenDataChannel", "the task role (" + testTaskRole + ")"}},
	} {
		got := capability(p, c.op)
		if got.Supported != (c.want == nil) {
			t.Errorf("%s: %+v", c.op, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got.Reason, w) {
				t.Errorf("%s: reason %q lacks %q", c.op, got.Reason, w)
			}
		}
	}
	if err := p.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v (status reads are allowed)", err)
	}
	describes := f.Requests("ecs.DescribeServices")
	_, err := p.Scale(execCtx(t), "web", 2)
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "ecs:UpdateService") {
		t.Errorf("Scale: %v", err)
	}
	for _, err := range p.StreamMetrics(execCtx(t), "web") {
		if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "cloudwatch:GetMetricData") {
			t.Errorf("StreamMetrics: %v", err)
		}
		break
	}
	_, err = p.Exec(execCtx(t), "web", provider.ExecRequest{Command: []string{"true"}})
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "ssmmessages:OpenDataChannel") {
		t.Errorf("Exec: %v", err)
	}
	if f.Requests("ecs.DescribeServices") != describes || f.Requests("ecs.UpdateService") != 0 ||
		f.Requests("cloudwatch.GetMetricData") != 0 || f.Requests("ecs.ExecuteCommand") != 0 {
		t.Error("a refused operation called AWS")
	}
	if _, err := p.Status(execCtx(t), "web"); err != nil {
		t.Errorf("Status (allowed): %v", err)
	}
	// Without the check the call reaches AWS, which refuses it the same way.
	off := openTarget(t, f, map[string]any{"checkPermissions": false})
	_, err = off.Scale(execCtx(t), "web", 2)
	if workload.CodeOf(err) != workload.PermissionDenied || f.Requests("ecs.UpdateService") != 1 {
		t.Errorf("Scale without the check: %v (%d UpdateService)", err, f.Requests("ecs.UpdateService"))
	}
}

// TestPermissionCheckUnknown: when the simulation itself is denied the
// permissions are unknown, not all allowed: the reason is kept, nothing is
// refused up front, and AWS's own refusal is what an operation reports.
// An identity that cannot even read statuses fails Ping.
func TestPermissionCheckUnknown(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	startWeb(t, openTarget(t, f, map[string]any{"checkPermissions": false}), f)
	f.SetPolicies(map[string][]fakeaws.Statement{
		testUser: {{Effect: "Allow", Action: []string{"ecs:*", "ssm:*", "logs:*", "iam:PassRole"}}},
	})
	p := openTarget(t, f, nil)
	p.accessMu.Lock()
	st := p.access
	p.accessMu.Unlock()
	if !st.checked || len(st.missing) != 0 || !strings.Contains(st.unknown, "iam:SimulatePrincipalPolicy on "+testUser+" is denied") {
		t.Errorf("state %+v, want unknown: simulation denied", st)
	}
	if c := capability(p, provider.OpStreamMetrics); !c.Supported {
		t.Errorf("unknown permissions refuse stream_metrics: %+v", c)
	}
	for _, err := range p.StreamMetrics(execCtx(t), "web") {
		if workload.CodeOf(err) != workload.PermissionDenied || f.Requests("cloudwatch.GetMetricData") != 1 {
			t.Errorf("StreamMetrics: %v (%d GetMetricData), want AWS's AccessDenied", err, f.Requests("cloudwatch.GetMetricData"))
		}
		break
	}

	f.SetPolicies(map[string][]fakeaws.Statement{testUser: {{Effect: "Allow", Action: []string{"iam:SimulatePrincipalPolicy"}}}})
	p = openTarget(t, f, nil)
	err := p.Ping(context.Background())
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "ecs:DescribeServices") {
		t.Errorf("Ping without status reads: %v", err)
	}
}

// TestPermissionCheckAssumedRole: web-identity credentials are an STS
// assumed-role session; the role simulated is AWS_ROLE_ARN, path included.
func TestPermissionCheckAssumedRole(t *testing.T) {
	const role = "arn:aws:iam::123456789012:role/team/deployer"
	f := fakeaws.New(fakeaws.Options{Policies: map[string][]fakeaws.Statement{role: allowAllBut("logs:FilterLogEvents")}})
	t.Cleanup(f.Close)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("eyJhbGciOiJSUzI1NiJ9.fake.jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := map[string]json.RawMessage{"baseEndpoint": json.RawMessage(`"` + f.URL() + `"`), "subnets": json.RawMessage(`["subnet-1"]`)}
	pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "prod", Provider: Name, Options: raw},
		credentials.FromMap(map[string]string{"AWS_REGION": "us-east-1", "AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": tok}))
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*Provider)
	t.Cleanup(func() { p.Close() })
	for _, err := range p.Logs(execCtx(t), "web", provider.LogOptions{}) {
		if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "logs:FilterLogEvents") || !strings.Contains(err.Error(), role) {
			t.Errorf("Logs: %v", err)
		}
		break
	}
}

func TestPolicySource(t *testing.T) {
	for _, c := range []struct{ caller, env, src, why string }{
		{testUser, "", testUser, ""},
		{"arn:aws:iam::123456789012:user/ops/alice", "", "arn:aws:iam::123456789012:user/ops/alice", ""},
		{"arn:aws:sts::123456789012:assumed-role/deployer/s1", "", "arn:aws:iam::123456789012:role/deployer", ""},
		{"arn:aws:sts::123456789012:assumed-role/deployer/s1", "arn:aws:iam::123456789012:role/team/deployer", "arn:aws:iam::123456789012:role/team/deployer", ""},
		{"arn:aws:sts::123456789012:assumed-role/deployer/s1", "arn:aws:iam::123456789012:role/other", "arn:aws:iam::123456789012:role/deployer", ""},
		{"arn:aws-cn:sts::123456789012:assumed-role/r/s", "", "arn:aws-cn:iam::123456789012:role/r", ""},
		{"arn:aws:iam::123456789012:root", "", "", "root user"},
		{"arn:aws:sts::123456789012:federated-user/bob", "", "", "not an IAM user or role"},
		{"nonsense", "", "", "not an ARN"},
	} {
		src, why := policySource(c.caller, c.env)
		if src != c.src || (c.why == "") != (why == "") || !strings.Contains(why, c.why) {
			t.Errorf("policySource(%q, %q) = %q, %q; want %q, %q", c.caller, c.env, src, why, c.src, c.why)
		}
	}
}
