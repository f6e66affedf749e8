package fakeaws

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

const (
	testUser = "arn:aws:iam::123456789012:user/alphaswarm"
	testRole = "arn:aws:iam::123456789012:role/team/deployer"
)

func testPolicies() map[string][]Statement {
	return map[string][]Statement{
		testUser: {
			{Effect: "Allow", Action: []string{"ECS:Describe*", "ecs:UpdateService"}, Resource: []string{"arn:aws:ecs:us-east-1:123456789012:service/default/*"}},
			{Effect: "Deny", Action: []string{"ecs:UpdateService"}, Resource: []string{"arn:aws:ecs:us-east-1:123456789012:service/default/db"}},
			{Effect: "Allow", Action: []string{"iam:SimulatePrincipalPolicy"}, Resource: []string{"arn:aws:iam::123456789012:*"}},
		},
		testRole: {{Effect: "Allow", Action: []string{"ssmmessages:*"}}},
	}
}

func sdkCfg(url string) sdkaws.Config {
	return sdkaws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: sdkaws.String(url), Retryer: func() sdkaws.Retryer { return sdkaws.NopRetryer{} }}
}

// TestSimulatePrincipalPolicyWire posts the query-protocol request of the
// IAM API reference's SimulatePrincipalPolicy example and reads the XML
// answer: the element names are the reference's.
func TestSimulatePrincipalPolicyWire(t *testing.T) {
	f := New(Options{Policies: testPolicies()})
	defer f.Close()
	form := url.Values{"Action": {"SimulatePrincipalPolicy"}, "Version": {"2010-05-08"},
		"PolicySourceArn": {testUser}, "ActionNames.member.1": {"ecs:UpdateService"}, "ActionNames.member.2": {"ecs:CreateService"},
		"ResourceArns.member.1": {"arn:aws:ecs:us-east-1:123456789012:service/default/web"}}
	req, _ := http.NewRequest(http.MethodPost, f.URL()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set("Authorization", testAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var got struct {
		XMLName xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ SimulatePrincipalPolicyResponse"`
		Result  struct {
			IsTruncated bool `xml:"IsTruncated"`
			Results     []struct {
				Action, Resource, Decision string
			} `xml:"EvaluationResults>member"`
		} `xml:"SimulatePrincipalPolicyResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}
	if resp.StatusCode != 200 || xml.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, want := range []string{"<EvalActionName>ecs:UpdateService</EvalActionName>", "<EvalDecision>allowed</EvalDecision>",
		"<EvalActionName>ecs:CreateService</EvalActionName>", "<EvalDecision>implicitDeny</EvalDecision>",
		"<EvalResourceName>arn:aws:ecs:us-east-1:123456789012:service/default/web</EvalResourceName>", "<IsTruncated>false</IsTruncated>"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("answer lacks %s: %s", want, body)
		}
	}
	if got.RequestID == "" {
		t.Errorf("no RequestId: %s", body)
	}
	// Unsigned: refused before anything is read.
	req, _ = http.NewRequest(http.MethodPost, f.URL()+"/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned simulate: %d", resp2.StatusCode)
	}
}

// TestSimulateAndEnforce drives IAM, STS and ECS through the SDK clients:
// the policy evaluation rules of iam.go, paging, the caller's own
// permission to simulate, and the same policy enforced on ECS requests.
func TestSimulateAndEnforce(t *testing.T) {
	f := New(Options{Policies: testPolicies()})
	defer f.Close()
	ctx := context.Background()
	cfg := sdkCfg(f.URL())
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || sdkaws.ToString(id.Arn) != testUser || sdkaws.ToString(id.Account) != "123456789012" {
		t.Fatalf("GetCallerIdentity = %+v, %v", id, err)
	}
	ic := iam.NewFromConfig(cfg)
	decide := func(src, action, resource string) string {
		t.Helper()
		out, err := ic.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: sdkaws.String(src),
			ActionNames: []string{action}, ResourceArns: []string{resource}})
		if err != nil {
			t.Fatalf("simulate %s: %v", action, err)
		}
		return string(out.EvaluationResults[0].EvalDecision)
	}
	web := "arn:aws:ecs:us-east-1:123456789012:service/default/web"
	for _, c := range []struct{ src, action, resource, want string }{
		{testUser, "ecs:DescribeServices", web, "allowed"},                                                       // wildcard, case-insensitive action
		{testUser, "ecs:UpdateService", "arn:aws:ecs:us-east-1:123456789012:service/default/db", "explicitDeny"}, // deny wins
		{testUser, "ecs:UpdateService", "arn:aws:ecs:us-east-1:123456789012:service/other/web", "implicitDeny"},  // resource case and cluster
		{testUser, "ecs:DeleteService", web, "implicitDeny"},
		{testRole, "ssmmessages:OpenDataChannel", "*", "allowed"}, // no Resource: "*"
	} {
		if got := decide(c.src, c.action, c.resource); got != c.want {
			t.Errorf("%s %s on %s = %s, want %s", c.src, c.action, c.resource, got, c.want)
		}
	}
	// Paging: MaxItems 1 over three actions is three pages.
	pages := iam.NewSimulatePrincipalPolicyPaginator(ic, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: sdkaws.String(testUser),
		ActionNames: []string{"ecs:DescribeServices", "ecs:DescribeTasks", "ecs:ListTasks"}, MaxItems: sdkaws.Int32(1)})
	n, results := 0, 0
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n++
		results += len(out.EvaluationResults)
	}
	if n != 3 || results != 3 {
		t.Errorf("MaxItems 1: %d pages, %d results", n, results)
	}
	var ae smithy.APIError
	_, err = ic.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: sdkaws.String("arn:aws:iam::123456789012:role/nobody"),
		ActionNames: []string{"ecs:ListTasks"}})
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchEntity" {
		t.Errorf("unknown principal: %v", err)
	}
	// The caller may not simulate outside the account's IAM resources.
	f.SetPolicies(map[string][]Statement{testUser: {{Effect: "Allow", Action: []string{"ecs:*"}}}})
	_, err = ic.SimulatePrincipalPolicy(ctx, &iam.SimulatePrincipalPolicyInput{PolicySourceArn: sdkaws.String(testUser),
		ActionNames: []string{"ecs:ListTasks"}})
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" || !strings.Contains(ae.ErrorMessage(), "iam:SimulatePrincipalPolicy") {
		t.Errorf("simulate without iam:SimulatePrincipalPolicy: %v", err)
	}
	// Enforced on the service: the same policy refuses what it does not allow.
	f.SetPolicies(testPolicies())
	ec := ecs.NewFromConfig(cfg)
	_, err = ec.UpdateService(ctx, &ecs.UpdateServiceInput{Service: sdkaws.String("db"), DesiredCount: sdkaws.Int32(1)})
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" || !strings.Contains(ae.ErrorMessage(), "explicit deny") {
		t.Errorf("UpdateService db (denied): %v", err)
	}
	_, err = ec.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: sdkaws.String("web")})
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" ||
		!strings.Contains(ae.ErrorMessage(), "is not authorized to perform: ecs:CreateService on resource: "+web) {
		t.Errorf("CreateService (not allowed): %v", err)
	}
	if f.Requests("ecs.CreateService") != 1 || f.Service("default", "web").Exists {
		t.Errorf("a refused CreateService changed something: %+v", f.Service("default", "web"))
	}
}
