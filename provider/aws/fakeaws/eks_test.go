package fakeaws

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/smithy-go"
)

// eksExample is testdata/eks_describe_cluster.json.
type eksExample struct {
	Request struct {
		Method, Path string
	} `json:"request"`
	Status   int            `json:"status"`
	Response map[string]any `json:"response"`
	NotFound struct {
		Path      string         `json:"path"`
		Status    int            `json:"status"`
		ErrorType string         `json:"errorType"`
		Response  map[string]any `json:"response"`
	} `json:"notFound"`
}

func readEKSExample(t *testing.T) eksExample {
	t.Helper()
	b, err := os.ReadFile("testdata/eks_describe_cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	var ex eksExample
	if err := json.Unmarshal(b, &ex); err != nil {
		t.Fatal(err)
	}
	return ex
}

func eksClient(url string) *eks.Client {
	return eks.New(eks.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: sdkaws.String(url),
	})
}

func get(t *testing.T, url, auth string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
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

// sameShape reports where got departs from the shape of want: every key of
// want is in got with a value of the same JSON type, recursively; arrays
// are compared through their first elements.
func sameShape(path string, want, got any) error {
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
			if err := sameShape(path+"."+k, wv, gv); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: got %T, want an array", path, got)
		}
		if len(w) > 0 && len(g) > 0 {
			return sameShape(path+"[0]", w[0], g[0])
		}
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			return fmt.Errorf("%s: got %T (%v), want %T", path, got, got, want)
		}
	}
	return nil
}

// TestEKSDescribeClusterExample checks the example against the SDK (it is
// what DescribeCluster reads) and the fake against the example.
func TestEKSDescribeClusterExample(t *testing.T) {
	ex := readEKSExample(t)
	cluster := ex.Response["cluster"].(map[string]any)
	name := cluster["name"].(string)
	caData := cluster["certificateAuthority"].(map[string]any)["data"].(string)
	caPEM, err := base64.StdEncoding.DecodeString(caData)
	if err != nil || !strings.HasPrefix(string(caPEM), "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("the example's certificateAuthority.data is not a base64 PEM certificate: %v", err)
	}

	t.Run("sdk reads the example", func(t *testing.T) {
		var method, path string
		stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method, path = r.Method, r.URL.Path
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ex.Status)
			_ = json.NewEncoder(w).Encode(ex.Response)
		}))
		t.Cleanup(stub.Close)
		out, err := eksClient(stub.URL).DescribeCluster(context.Background(), &eks.DescribeClusterInput{Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		if method != ex.Request.Method || path != ex.Request.Path {
			t.Errorf("the SDK sent %s %s, the reference says %s %s", method, path, ex.Request.Method, ex.Request.Path)
		}
		c := out.Cluster
		for _, f := range []struct{ field, got, want string }{
			{"name", sdkaws.ToString(c.Name), name},
			{"endpoint", sdkaws.ToString(c.Endpoint), cluster["endpoint"].(string)},
			{"certificateAuthority.data", sdkaws.ToString(c.CertificateAuthority.Data), caData},
			{"status", string(c.Status), "ACTIVE"},
			{"createdAt", c.CreatedAt.UTC().Format(time.RFC3339Nano), "2024-03-14T15:31:44.348Z"},
		} {
			if f.got != f.want {
				t.Errorf("%s: the SDK read %q, want %q", f.field, f.got, f.want)
			}
		}
	})

	t.Run("fake answers like the example", func(t *testing.T) {
		f := New(Options{})
		t.Cleanup(f.Close)
		tags := map[string]string{}
		for k, v := range cluster["tags"].(map[string]any) {
			tags[k] = v.(string)
		}
		f.AddEKSCluster(EKSCluster{Name: name, Endpoint: cluster["endpoint"].(string), CAPEM: caPEM, Tags: tags})
		status, hdr, body := get(t, f.URL()+ex.Request.Path, testAuth)
		if status != ex.Status {
			t.Fatalf("status %d, want %d: %s", status, ex.Status, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if err := sameShape("response", ex.Response, got); err != nil {
			t.Fatalf("%v\nbody: %s", err, body)
		}
		gc := got["cluster"].(map[string]any)
		for _, k := range []string{"name", "endpoint", "status"} {
			if gc[k] != cluster[k] {
				t.Errorf("cluster.%s = %v, want %v", k, gc[k], cluster[k])
			}
		}
		if d := gc["certificateAuthority"].(map[string]any)["data"]; d != caData {
			t.Errorf("certificateAuthority.data = %v, want the registered PEM in base64", d)
		}
		if arn := gc["arn"].(string); !strings.HasPrefix(arn, "arn:aws:eks:us-east-1:123456789012:cluster/") {
			t.Errorf("arn %q", arn)
		}
	})

	t.Run("fake's not-found error is the reference's", func(t *testing.T) {
		f := New(Options{})
		t.Cleanup(f.Close)
		status, hdr, body := get(t, f.URL()+ex.NotFound.Path, testAuth)
		if status != ex.NotFound.Status {
			t.Fatalf("status %d, want %d: %s", status, ex.NotFound.Status, body)
		}
		if et := hdr.Get("X-Amzn-ErrorType"); et != ex.NotFound.ErrorType {
			t.Errorf("x-amzn-ErrorType %q, want %q", et, ex.NotFound.ErrorType)
		}
		var got any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if err := match("error", any(ex.NotFound.Response), got); err != nil {
			t.Fatalf("%v\nbody: %s", err, body)
		}
	})
}

// TestEKSDescribeClusterSDK runs the real SDK client against the fake.
func TestEKSDescribeClusterSDK(t *testing.T) {
	f := New(Options{})
	t.Cleanup(f.Close)
	pem := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	f.AddEKSCluster(EKSCluster{Name: "prod-eks", Endpoint: "https://prod.example", CAPEM: pem})
	f.AddEKSCluster(EKSCluster{Name: "new-eks", Endpoint: "https://new.example", CAPEM: pem, Status: "CREATING"})
	f.AddEKSCluster(EKSCluster{Name: "busy-eks", Endpoint: "https://busy.example", CAPEM: pem, Status: "UPDATING"})
	c := eksClient(f.URL())
	cases := []struct {
		name       string
		status     ekstypes.ClusterStatus
		endpoint   string
		ca         bool
		notFound   bool
		wantErrMsg string
	}{
		{name: "prod-eks", status: ekstypes.ClusterStatusActive, endpoint: "https://prod.example", ca: true},
		{name: "busy-eks", status: ekstypes.ClusterStatusUpdating, endpoint: "https://busy.example", ca: true},
		{name: "new-eks", status: ekstypes.ClusterStatusCreating},
		{name: "absent", notFound: true, wantErrMsg: "No cluster found for name: absent."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.DescribeCluster(context.Background(), &eks.DescribeClusterInput{Name: sdkaws.String(tc.name)})
			if tc.notFound {
				var rnf *ekstypes.ResourceNotFoundException
				if !errors.As(err, &rnf) {
					t.Fatalf("err = %v (%T), want *types.ResourceNotFoundException", err, err)
				}
				if rnf.ErrorMessage() != tc.wantErrMsg || sdkaws.ToString(rnf.ClusterName) != tc.name {
					t.Errorf("message %q, clusterName %q", rnf.ErrorMessage(), sdkaws.ToString(rnf.ClusterName))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cl := out.Cluster
			if cl.Status != tc.status || sdkaws.ToString(cl.Endpoint) != tc.endpoint || sdkaws.ToString(cl.Name) != tc.name {
				t.Errorf("got status %s endpoint %q name %q", cl.Status, sdkaws.ToString(cl.Endpoint), sdkaws.ToString(cl.Name))
			}
			if tc.ca {
				b, err := base64.StdEncoding.DecodeString(sdkaws.ToString(cl.CertificateAuthority.Data))
				if err != nil || string(b) != string(pem) {
					t.Errorf("certificate authority %q (%v), want the registered PEM", b, err)
				}
			} else if cl.CertificateAuthority != nil {
				t.Errorf("a %s cluster has a certificate authority", tc.status)
			}
		})
	}
	if n := f.Requests("eks.DescribeCluster"); n != len(cases) {
		t.Errorf("%d DescribeCluster requests, want %d", n, len(cases))
	}
}

func TestEKSEdges(t *testing.T) {
	t.Run("throttled, then retried by the SDK", func(t *testing.T) {
		f := New(Options{Throttle: 1})
		t.Cleanup(f.Close)
		f.AddEKSCluster(EKSCluster{Name: "x", Endpoint: "https://x.example", CAPEM: []byte("pem")})
		if _, err := eksClient(f.URL()).DescribeCluster(context.Background(), &eks.DescribeClusterInput{Name: sdkaws.String("x")}); err != nil {
			t.Fatal(err)
		}
		if n := f.Requests("eks.DescribeCluster"); n != 2 {
			t.Errorf("%d requests, want 2 (one throttled, one retried)", n)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		f := New(Options{})
		t.Cleanup(f.Close)
		f.AddEKSCluster(EKSCluster{Name: "x", Endpoint: "https://x.example", CAPEM: []byte("pem")})
		if status, _, body := get(t, f.URL()+"/clusters/x", ""); status != http.StatusForbidden {
			t.Errorf("status %d, want 403: %s", status, body)
		}
	})
	t.Run("other EKS operations", func(t *testing.T) {
		f := New(Options{})
		t.Cleanup(f.Close)
		status, hdr, _ := get(t, f.URL()+"/clusters/x/node-groups", testAuth)
		if status != http.StatusNotFound || hdr.Get("X-Amzn-ErrorType") != "UnknownOperationException" {
			t.Errorf("status %d, error type %q", status, hdr.Get("X-Amzn-ErrorType"))
		}
		var ae smithy.APIError
		_, err := eksClient(f.URL()).ListClusters(context.Background(), &eks.ListClustersInput{})
		if !errors.As(err, &ae) || ae.ErrorCode() != "UnknownOperationException" {
			t.Errorf("ListClusters: %v", err)
		}
	})
}
