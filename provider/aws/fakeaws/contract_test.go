package fakeaws

import (
	"strings"
	"testing"
)

// TestSDKValidation: requests are judged by the SDK's own validators
// (generated from the Smithy models): a request missing a required member
// is ValidationException and recorded; a valid one reaches the handler.
func TestSDKValidation(t *testing.T) {
	f := New(Options{})
	t.Cleanup(f.Close)
	for _, c := range []struct {
		target, body string
		status       int
		want         string
	}{
		{"AmazonEC2ContainerServiceV20141113.DescribeServices", `{"cluster":"default"}`, 400, "Services"},
		{"AmazonEC2ContainerServiceV20141113.CreateService", `{"desiredCount":1}`, 400, "ServiceName"},
		{"AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition", `{"family":"f","containerDefinitions":[{"name":"c","image":"i","secrets":[{"name":"A"}]}]}`, 400, "ValueFrom"},
		{"AmazonSSM.PutParameter", `{"Name":"/a"}`, 400, "Value"},
		{"AmazonSSM.DeleteParameters", `{}`, 400, "Names"},
		{"Logs_20140328.FilterLogEvents", `{"startTime":1700000000000}`, 200, ""},
		{"Logs_20140328.StartLiveTail", `{}`, 400, "LogGroupIdentifiers"},
		{"AmazonEC2ContainerServiceV20141113.DescribeServices", `{"cluster":"default","services":["x"]}`, 200, ""},
	} {
		status, _, body := post(t, f.URL(), c.target, []byte(c.body), testAuth)
		if c.want == "" {
			if strings.Contains(string(body), "ValidationException") {
				t.Errorf("%s %s refused by the SDK's validation: %s", c.target, c.body, body)
			}
			continue
		}
		if status != c.status || !strings.Contains(string(body), "ValidationException") || !strings.Contains(string(body), c.want) {
			t.Errorf("%s %s = %d %s; want %d ValidationException naming %s", c.target, c.body, status, body, c.status, c.want)
		}
	}
	if n := len(f.Violations()); n != 6 {
		t.Errorf("%d violations recorded, want 6: %q", n, f.Violations())
	}
}
