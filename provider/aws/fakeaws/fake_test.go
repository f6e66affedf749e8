package fakeaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

const testAuth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150429/us-east-1/ecs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000000000000000000000000000000000000000000000000000000000000000"

type wireCase struct {
	Source    string `json:"source"`
	LogEvents []struct {
		Group, Stream, Message string
		Timestamp              int64
	} `json:"logEvents"`
	Steps []struct {
		Target   string          `json:"target"`
		Request  json.RawMessage `json:"request"`
		Status   int             `json:"status"`
		Response any             `json:"response"`
	} `json:"steps"`
}

func post(t *testing.T, url, target string, body []byte, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("X-Amz-Date", "20150429T000000Z")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// match reports where got departs from want: objects match key by key
// (got may have more keys), arrays element by element (got may be longer,
// except that an empty want requires an empty got), "*string" and
// "*number" match any value of that type, other values match exactly.
func match(path string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: got %T, want an object", path, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s.%s: missing", path, k)
			}
			if err := match(path+"."+k, wv, gv); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: got %T, want an array", path, got)
		}
		if len(w) == 0 && len(g) != 0 || len(g) < len(w) {
			return fmt.Errorf("%s: got %d elements, want %d", path, len(g), len(w))
		}
		for i := range w {
			if err := match(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
	case string:
		switch w {
		case "*string":
			if _, ok := got.(string); !ok {
				return fmt.Errorf("%s: got %v, want a string", path, got)
			}
		case "*number":
			if _, ok := got.(float64); !ok {
				return fmt.Errorf("%s: got %v, want a number", path, got)
			}
		default:
			if got != w {
				return fmt.Errorf("%s: got %v, want %q", path, got, w)
			}
		}
	default:
		if fmt.Sprint(got) != fmt.Sprint(w) {
			return fmt.Errorf("%s: got %v, want %v", path, got, w)
		}
	}
	return nil
}

// TestWireExamples replays the request/response examples in testdata,
// taken from the AWS API references, against a fresh fake each.
func TestWireExamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, file := range files {
		if strings.HasPrefix(filepath.Base(file), "eks_") {
			continue // REST-JSON examples, replayed by eks_test.go
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var c wireCase
			if err := json.Unmarshal(b, &c); err != nil {
				t.Fatal(err)
			}
			if len(c.Steps) == 0 {
				t.Fatal("no steps: not a wire example")
			}
			f := New(Options{})
			defer f.Close()
			for _, e := range c.LogEvents {
				f.PutLogEvent(e.Group, e.Stream, e.Timestamp, e.Message)
			}
			for i, s := range c.Steps {
				status, hdr, body := post(t, f.URL(), s.Target, s.Request, testAuth)
				if status != s.Status {
					t.Fatalf("step %d %s: status %d, want %d: %s", i, s.Target, status, s.Status, body)
				}
				if ct := hdr.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
					t.Errorf("step %d: Content-Type %q", i, ct)
				}
				var got any
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("step %d: body %q: %v", i, body, err)
				}
				if err := match("response", s.Response, got); err != nil {
					t.Fatalf("step %d %s: %v\nbody: %s", i, s.Target, err, body)
				}
			}
		})
	}
}

func TestRejectsUnsigned(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	for _, auth := range []string{"", "Bearer abc", "AWS4-HMAC-SHA256 Credential=AKID/x"} {
		status, _, body := post(t, f.URL(), "AmazonSSM.GetParameter", []byte(`{"Name":"x"}`), auth)
		if status != http.StatusForbidden || !strings.Contains(string(body), "MissingAuthenticationTokenException") {
			t.Errorf("auth %q: %d %s, want 403 MissingAuthenticationTokenException", auth, status, body)
		}
	}
}

// TestCloudWatchRPCv2CBOR pins the CloudWatch protocol the SDK (v1.75)
// speaks: POST /service/GraniteServiceVersion20100801/operation/<Op>,
// Smithy-Protocol: rpc-v2-cbor, CBOR bodies with timestamps as tag 1.
func TestCloudWatchRPCv2CBOR(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	// A service with one running task.
	for _, s := range []struct{ target, body string }{
		{"AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition", `{"family":"w","containerDefinitions":[{"name":"w","image":"nginx"}]}`},
		{"AmazonEC2ContainerServiceV20141113.CreateService", `{"serviceName":"w","taskDefinition":"w","desiredCount":1}`},
		{"AmazonEC2ContainerServiceV20141113.DescribeServices", `{"services":["w"]}`},
		{"AmazonEC2ContainerServiceV20141113.DescribeServices", `{"services":["w"]}`},
	} {
		if st, _, b := post(t, f.URL(), s.target, []byte(s.body), testAuth); st != 200 {
			t.Fatalf("%s: %d %s", s.target, st, b)
		}
	}
	now := time.Now()
	ts := func(t time.Time) cbor.Value { return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.Unix()))} }
	query := func(id, ns, name string) cbor.Value {
		return cbor.Map{"Id": cbor.String(id), "MetricStat": cbor.Map{"Period": cbor.Uint(60), "Stat": cbor.String("Average"),
			"Metric": cbor.Map{"Namespace": cbor.String(ns), "MetricName": cbor.String(name), "Dimensions": cbor.List{
				cbor.Map{"Name": cbor.String("ClusterName"), "Value": cbor.String("default")},
				cbor.Map{"Name": cbor.String("ServiceName"), "Value": cbor.String("w")}}}}}
	}
	body := cbor.Encode(cbor.Map{"StartTime": ts(now.Add(-5 * time.Minute)), "EndTime": ts(now),
		"MetricDataQueries": cbor.List{query("cpu", "AWS/ECS", "CPUUtilization"), query("n", "ECS/ContainerInsights", "RunningTaskCount")}})
	send := func(proto bool, auth string) (*http.Response, cbor.Value) {
		req, _ := http.NewRequest(http.MethodPost, f.URL()+"/service/GraniteServiceVersion20100801/operation/GetMetricData", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cbor")
		req.Header.Set("Accept", "application/cbor")
		if proto {
			req.Header.Set("Smithy-Protocol", "rpc-v2-cbor")
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		v, err := cbor.Decode(b)
		if err != nil {
			t.Fatalf("response is not CBOR: %v", err)
		}
		return resp, v
	}
	resp, v := send(true, testAuth)
	if resp.StatusCode != 200 || resp.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" || resp.Header.Get("Content-Type") != "application/cbor" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	res := v.(cbor.Map)["MetricDataResults"].(cbor.List)
	if len(res) != 2 {
		t.Fatalf("results = %v", res)
	}
	cpu := res[0].(cbor.Map)
	if cpu["Id"] != cbor.String("cpu") || cpu["StatusCode"] != cbor.String("Complete") {
		t.Errorf("cpu result = %v", cpu)
	}
	tsl := cpu["Timestamps"].(cbor.List)
	if tag, ok := tsl[0].(*cbor.Tag); !ok || tag.ID != 1 {
		t.Errorf("timestamp %v is not a tag-1 epoch time", tsl[0])
	}
	if n := res[1].(cbor.Map)["Values"].(cbor.List); len(n) != 1 || n[0] != cbor.Float64(1) {
		t.Errorf("RunningTaskCount values = %v, want [1]", n)
	}
	if resp, v := send(false, testAuth); resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(v), "SerializationException") {
		t.Errorf("without Smithy-Protocol: %d %v", resp.StatusCode, v)
	}
	if resp, v := send(true, ""); resp.StatusCode != 403 || !strings.Contains(fmt.Sprint(v), "MissingAuthenticationToken") {
		t.Errorf("unsigned: %d %v", resp.StatusCode, v)
	}
}

// TestDeploymentLifecycle checks the state machine: IN_PROGRESS, then
// COMPLETED; a forced deployment replaces every task; a bad image FAILS.
func TestDeploymentLifecycle(t *testing.T) {
	f := New(Options{BadImages: []string{"bad:1"}})
	defer f.Close()
	call := func(target, body string) map[string]any {
		st, _, b := post(t, f.URL(), "AmazonEC2ContainerServiceV20141113."+target, []byte(body), testAuth)
		if st != 200 {
			t.Fatalf("%s: %d %s", target, st, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
	rollout := func(name string) string {
		s := call("DescribeServices", `{"services":["`+name+`"]}`)["services"].([]any)[0].(map[string]any)
		return s["deployments"].([]any)[0].(map[string]any)["rolloutState"].(string)
	}
	call("RegisterTaskDefinition", `{"family":"ok","containerDefinitions":[{"name":"ok","image":"good:1"}]}`)
	call("RegisterTaskDefinition", `{"family":"bad","containerDefinitions":[{"name":"bad","image":"bad:1"}]}`)
	call("CreateService", `{"serviceName":"ok","taskDefinition":"ok","desiredCount":2}`)
	call("CreateService", `{"serviceName":"bad","taskDefinition":"bad","desiredCount":1}`)
	if r := rollout("ok"); r != "IN_PROGRESS" {
		t.Fatalf("first describe: %s", r)
	}
	if r := rollout("ok"); r != "COMPLETED" {
		t.Fatalf("second describe: %s", r)
	}
	before := f.Service("default", "ok").RunningTasks
	call("UpdateService", `{"service":"ok","forceNewDeployment":true}`)
	for i := 0; i < 5 && rollout("ok") != "COMPLETED"; i++ {
	}
	after := f.Service("default", "ok").RunningTasks
	if len(after) != 2 || after[0] == before[0] || after[1] == before[1] || after[0] == before[1] {
		t.Errorf("forced deployment: before %v after %v", before, after)
	}
	// The circuit breaker trips after 3 failed tasks (its minimum), each
	// taking two describes: IN_PROGRESS for 5, FAILED on the 6th.
	for i := 1; i < 6; i++ {
		if r := rollout("bad"); r != "IN_PROGRESS" {
			t.Fatalf("bad image, describe %d: %s; want IN_PROGRESS until 3 tasks failed", i, r)
		}
	}
	if r := rollout("bad"); r != "FAILED" {
		t.Fatalf("bad image: %s", r)
	}
}

func TestCircuitBreakerThreshold(t *testing.T) {
	for desired, want := range map[int]int{0: 3, 1: 3, 6: 3, 7: 4, 10: 5, 1000: 200} {
		if got := circuitBreakerThreshold(desired); got != want {
			t.Errorf("threshold(%d) = %d, want %d", desired, got, want)
		}
	}
}
