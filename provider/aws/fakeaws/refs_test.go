package fakeaws

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReferenceMetadataWire drives the three metadata calls of a reference
// check on the wire, with the answers the API references document: found,
// not found (an empty list for DescribeParameters, an error code for the
// others), and what each refuses. No answer carries a value.
func TestReferenceMetadataWire(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	f.SetParameter("/db/password", "SecureString", "s3cr3t-planted")
	f.SetParameter("plain", "String", "v")
	live := f.CreateSecret("prod/db")
	gone := f.CreateSecret("prod/old")
	f.DeleteSecret("prod/old", false)
	digest := f.PushImage("team/web", "v1")

	cases := []struct {
		name, target, body string
		status             int
		want               []string // substrings of the body
	}{
		{"parameter found", "AmazonSSM.DescribeParameters",
			`{"ParameterFilters":[{"Key":"Name","Option":"Equals","Values":["/db/password"]}]}`, 200,
			[]string{`"Name":"/db/password"`, `"Type":"SecureString"`, `"ARN":"arn:aws:ssm:us-east-1:123456789012:parameter/db/password"`}},
		{"parameter default option Equals", "AmazonSSM.DescribeParameters",
			`{"ParameterFilters":[{"Key":"Name","Values":["plain","/plain"]}]}`, 200, []string{`"Name":"plain"`}},
		{"parameter missing: empty list", "AmazonSSM.DescribeParameters",
			`{"ParameterFilters":[{"Key":"Name","Option":"Equals","Values":["/db/gone"]}]}`, 200, []string{`"Parameters":[]`}},
		{"Label is not a DescribeParameters key", "AmazonSSM.DescribeParameters",
			`{"ParameterFilters":[{"Key":"Label","Values":["x"]}]}`, 400, []string{`"__type":"InvalidFilterKey"`}},
		{"Contains only on Name", "AmazonSSM.DescribeParameters",
			`{"ParameterFilters":[{"Key":"Type","Option":"Contains","Values":["String"]}]}`, 400, []string{`"__type":"InvalidFilterOption"`}},
		{"MaxResults above 50", "AmazonSSM.DescribeParameters", `{"MaxResults":51}`, 400, []string{`"__type":"ValidationException"`}},
		{"GetParameter missing", "AmazonSSM.GetParameter", `{"Name":"/db/gone"}`, 400, []string{`"__type":"ParameterNotFound"`}},

		{"secret by name", "secretsmanager.DescribeSecret", `{"SecretId":"prod/db"}`, 200,
			[]string{`"ARN":"` + live + `"`, `"AWSCURRENT"`}},
		{"secret by full ARN", "secretsmanager.DescribeSecret", `{"SecretId":"` + live + `"}`, 200, []string{`"Name":"prod/db"`}},
		{"secret by partial ARN", "secretsmanager.DescribeSecret",
			`{"SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"}`, 200, []string{`"Name":"prod/db"`}},
		{"secret scheduled for deletion", "secretsmanager.DescribeSecret", `{"SecretId":"` + gone + `"}`, 200, []string{`"DeletedDate":`}},
		{"secret missing", "secretsmanager.DescribeSecret", `{"SecretId":"prod/none"}`, 400,
			[]string{`"__type":"ResourceNotFoundException"`, `can't find the specified secret`}},

		{"image by tag", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"repositoryName":"team/web","imageIds":[{"imageTag":"v1"}]}`, 200, []string{`"imageDigest":"` + digest + `"`, `"imageTags":["v1"]`}},
		{"image by digest", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"registryId":"123456789012","repositoryName":"team/web","imageIds":[{"imageDigest":"` + digest + `"}]}`, 200, []string{`"repositoryName":"team/web"`}},
		{"image tag missing", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"repositoryName":"team/web","imageIds":[{"imageTag":"v2"}]}`, 400,
			[]string{`"__type":"ImageNotFoundException"`, `imageTag:'v2'`}},
		{"repository missing", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"repositoryName":"team/none","imageIds":[{"imageTag":"v1"}]}`, 400, []string{`"__type":"RepositoryNotFoundException"`}},
		{"another registry", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"registryId":"210987654321","repositoryName":"team/web","imageIds":[{"imageTag":"v1"}]}`, 400, []string{`"__type":"RepositoryNotFoundException"`}},
		{"maxResults with imageIds", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"repositoryName":"team/web","maxResults":5,"imageIds":[{"imageTag":"v1"}]}`, 400, []string{`"__type":"InvalidParameterException"`}},
		{"repositoryName is required (the SDK's validator)", "AmazonEC2ContainerRegistry_V20150921.DescribeImages",
			`{"imageIds":[{"imageTag":"v1"}]}`, 400, []string{`"__type":"ValidationException"`, "RepositoryName"}},
		{"SecretId is required (the SDK's validator)", "secretsmanager.DescribeSecret", `{}`, 400, []string{`"__type":"ValidationException"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := post(t, f.URL(), c.target, []byte(c.body), testAuth)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			for _, w := range c.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("body lacks %s: %s", w, body)
				}
			}
			if strings.Contains(string(body), "s3cr3t-planted") || strings.Contains(string(body), `"Value"`) {
				t.Errorf("a metadata answer carries a value: %s", body)
			}
			if !json.Valid(body) {
				t.Errorf("not JSON: %s", body)
			}
		})
	}
	// Validation refusals are recorded as violations; clear expectations.
	if v := f.Violations(); len(v) != 2 {
		t.Errorf("violations = %q, want the two SDK-refused requests", v)
	}
	f.DeleteSecret("prod/db", true)
	if status, _, body := post(t, f.URL(), "secretsmanager.DescribeSecret", []byte(`{"SecretId":"prod/db"}`), testAuth); status != 400 {
		t.Errorf("a force-deleted secret is still described: %d %s", status, body)
	}
}

// TestReferenceMetadataAuthorized: the new calls are authorised against
// the caller's policies with the resource types of the Service
// Authorization Reference.
func TestReferenceMetadataAuthorized(t *testing.T) {
	f := New(Options{Policies: map[string][]Statement{"arn:aws:iam::123456789012:user/alphaswarm": {
		{Effect: "Allow", Action: []string{"ecr:DescribeImages"}, Resource: []string{"arn:aws:ecr:us-east-1:123456789012:repository/team/*"}},
		{Effect: "Allow", Action: []string{"secretsmanager:DescribeSecret"}, Resource: []string{"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}},
	}}})
	defer f.Close()
	f.CreateSecret("prod/db")
	f.CreateSecret("other/db")
	f.PushImage("team/web", "v1")
	f.PushImage("ops/tool", "v1")
	for _, c := range []struct {
		target, body string
		status       int
	}{
		{"AmazonEC2ContainerRegistry_V20150921.DescribeImages", `{"repositoryName":"team/web","imageIds":[{"imageTag":"v1"}]}`, 200},
		{"AmazonEC2ContainerRegistry_V20150921.DescribeImages", `{"repositoryName":"ops/tool","imageIds":[{"imageTag":"v1"}]}`, 400},
		{"secretsmanager.DescribeSecret", `{"SecretId":"prod/db"}`, 200},
		{"secretsmanager.DescribeSecret", `{"SecretId":"other/db"}`, 400},
		{"AmazonSSM.DescribeParameters", `{}`, 400},
	} {
		status, _, body := post(t, f.URL(), c.target, []byte(c.body), testAuth)
		if status != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.target, c.body, status, c.status, body)
		}
		if c.status == 400 && !strings.Contains(string(body), "AccessDeniedException") {
			t.Errorf("%s %s: %s, want AccessDeniedException", c.target, c.body, body)
		}
	}
}
