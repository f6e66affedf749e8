package aws_test

import (
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

const ecrRepo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/web"

// TestCheckRefs: each kind of reference present and missing, through the
// SDK clients against the fake's SSM, Secrets Manager and ECR; the error
// names the spec path and the reference, never a value, and no value is
// ever read (no GetParameter, no GetSecretValue).
func TestCheckRefs(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	const planted = "planted-secret-value-91c2"
	f.SetParameter("/db/password", "SecureString", planted)
	f.SetParameter("plain", "String", planted)
	f.SetParameter("/top", "String", planted)
	live := f.CreateSecret("prod/db")
	f.CreateSecret("prod/old")
	f.DeleteSecret("prod/old", false)
	gone := f.CreateSecret("prod/gone")
	f.DeleteSecret("prod/gone", true)
	digest := f.PushImage("team/web", "v1")

	ssmARN := func(rest string) string { return "arn:aws:ssm:us-east-1:123456789012:parameter/" + rest }
	cases := []struct {
		name   string
		image  string
		from   string
		code   workload.Code
		field  string
		names  string // the message names this
		calls  string // the fake counted at least one of this operation
		nocall string // and none of this
	}{
		{name: "parameter present", from: ssmARN("db/password"), calls: "ssm.DescribeParameters"},
		{name: "one-level parameter", from: ssmARN("plain"), calls: "ssm.DescribeParameters"},
		{name: "one-level parameter with slash", from: ssmARN("top"), calls: "ssm.DescribeParameters"},
		{name: "parameter missing", from: ssmARN("db/missing"), code: workload.NotFound, field: "secrets[0].from",
			names: ssmARN("db/missing"), calls: "ssm.DescribeParameters"},
		{name: "parameter of another account is not checked", from: "arn:aws:ssm:us-east-1:210987654321:parameter/shared/x",
			nocall: "ssm.DescribeParameters"},
		{name: "secret present", from: live, calls: "secretsmanager.DescribeSecret"},
		{name: "secret json key and current stage", from: live + ":password:AWSCURRENT:", calls: "secretsmanager.DescribeSecret"},
		{name: "secret stage missing", from: live + ":password:AWSPREVIOUS:", code: workload.NotFound, field: "secrets[0].from",
			names: "no version labelled AWSPREVIOUS"},
		{name: "secret scheduled for deletion", from: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/old",
			code: workload.NotFound, field: "secrets[0].from", names: "scheduled for deletion"},
		{name: "secret deleted", from: gone, code: workload.NotFound, field: "secrets[0].from", names: gone},
		{name: "ECR image by tag", image: ecrRepo + ":v1", calls: "ecr.DescribeImages"},
		{name: "ECR image by digest", image: ecrRepo + "@" + digest, calls: "ecr.DescribeImages"},
		{name: "ECR tag missing", image: ecrRepo + ":v2", code: workload.NotFound, field: "image", names: ecrRepo + ":v2"},
		{name: "ECR latest missing", image: ecrRepo, code: workload.NotFound, field: "image", names: "imageTag:'latest'"},
		{name: "ECR repository missing", image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/none:v1",
			code: workload.NotFound, field: "image", names: "team/none"},
		{name: "another registry cannot be told", image: "ghcr.io/acme/web:v1", nocall: "ecr.DescribeImages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := spec("web", 1)
			if c.image != "" {
				sp.Image = c.image
			}
			if c.from != "" {
				sp.Secrets = []workload.SecretRef{{Env: "DB_PASS", From: c.from}}
			}
			before := map[string]int{c.calls: f.Requests(c.calls), c.nocall: f.Requests(c.nocall)}
			err := provider.CheckRefs(ctx(t), p, sp)
			if workload.CodeOf(err) != c.code {
				t.Fatalf("CheckRefs = %v, want code %q", err, c.code)
			}
			if err != nil {
				we := workload.AsError(err)
				if len(we.Fields) != 1 || we.Fields[0].Path != c.field {
					t.Errorf("fields = %+v, want %s", we.Fields, c.field)
				}
				if !strings.Contains(we.Message, c.names) {
					t.Errorf("message %q does not name %q", we.Message, c.names)
				}
				if strings.Contains(err.Error(), planted) {
					t.Errorf("the error carries a secret value: %v", err)
				}
			}
			if c.calls != "" && f.Requests(c.calls) == before[c.calls] {
				t.Errorf("no %s request", c.calls)
			}
			if c.nocall != "" && f.Requests(c.nocall) != before[c.nocall] {
				t.Errorf("%s was called", c.nocall)
			}
		})
	}
	for _, op := range []string{"ssm.GetParameter", "ssm.GetParameters", "ssm.GetParametersByPath", "secretsmanager.GetSecretValue", "ecs.RegisterTaskDefinition"} {
		if n := f.Requests(op); n != 0 {
			t.Errorf("CheckRefs sent %d %s", n, op)
		}
	}
}

// TestCheckRefsDenied: a reference the controller's identity may not
// describe is PermissionDenied on its field, naming the action.
func TestCheckRefsDenied(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{StartupLine: startupLine, Policies: map[string][]fakeaws.Statement{
		"arn:aws:iam::123456789012:user/alphaswarm": {{Effect: "Allow", Action: []string{"ssm:*", "sts:*", "ecs:*"}}},
	}})
	t.Cleanup(f.Close)
	p := openOn(t, f, map[string]any{"checkPermissions": false})
	f.PushImage("team/web", "v1")
	sp := spec("web", 1)
	sp.Image = ecrRepo + ":v1"
	err := provider.CheckRefs(ctx(t), p, sp)
	we := workload.AsError(err)
	if workload.CodeOf(err) != workload.PermissionDenied || len(we.Fields) != 1 || we.Fields[0].Path != "image" ||
		!strings.Contains(we.Message, "ecr:DescribeImages") {
		t.Fatalf("CheckRefs = %v (fields %+v), want permission_denied on image naming ecr:DescribeImages", err, we.Fields)
	}
}
