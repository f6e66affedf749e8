package fakeaws

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
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

// TestSDKValidationCBORAndEKS: CloudWatch's RPC v2 CBOR requests and EKS's
// REST requests go through the SDK's validators too.
func TestSDKValidationCBORAndEKS(t *testing.T) {
	f := New(Options{})
	t.Cleanup(f.Close)
	now := float64(time.Now().Unix())
	ts := func(s float64) cbor.Value { return &cbor.Tag{ID: 1, Value: cbor.Float64(s)} }
	query := cbor.Map{"Id": cbor.String("cpu"), "MetricStat": cbor.Map{"Period": cbor.Uint(60), "Stat": cbor.String("Average"),
		"Metric": cbor.Map{"Namespace": cbor.String("AWS/ECS"), "MetricName": cbor.String("CPUUtilization")}}}
	for _, c := range []struct {
		name string
		body cbor.Map
		want string // "" = passes
	}{
		{"valid", cbor.Map{"StartTime": ts(now - 300), "EndTime": ts(now), "MetricDataQueries": cbor.List{query}}, ""},
		{"no queries", cbor.Map{"StartTime": ts(now - 300), "EndTime": ts(now)}, "MetricDataQueries"},
		{"query without id", cbor.Map{"StartTime": ts(now - 300), "EndTime": ts(now), "MetricDataQueries": cbor.List{cbor.Map{"Expression": cbor.String("1")}}}, "Id"},
		{"no end", cbor.Map{"StartTime": ts(now - 300), "MetricDataQueries": cbor.List{query}}, "EndTime"},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/service/GraniteServiceVersion20100801/operation/GetMetricData", bytes.NewReader(cbor.Encode(c.body)))
		req.Header.Set("Content-Type", "application/cbor")
		req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		req.Header.Set("Authorization", testAuth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		refused := strings.Contains(string(b), "ValidationException")
		if refused != (c.want != "") || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %q, want refused naming %q: %v", c.name, resp.StatusCode, b, c.want, c.want != "")
		}
	}
	if n := len(f.Violations()); n != 3 {
		t.Errorf("%d violations recorded, want 3: %q", n, f.Violations())
	}
	// EKS: DescribeCluster's one input is the path's name; the SDK's
	// validator is the one that judges it.
	if st, _, b := get(t, f.URL()+"/clusters/prod", testAuth); st != http.StatusNotFound || strings.Contains(string(b), "ValidationException") {
		t.Errorf("DescribeCluster prod: %d %s", st, b)
	}
	if aerr := f.sdkValidate("eks", "DescribeCluster", []byte(`{}`)); aerr == nil || !strings.Contains(aerr.message, "Name") {
		t.Errorf("DescribeCluster without a name passed the SDK's validation: %v", aerr)
	}
}
