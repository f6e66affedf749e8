package fakegcp_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"testing"
	"time"

	container "cloud.google.com/go/container/apiv1"
	"cloud.google.com/go/container/apiv1/containerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
)

// documentedCluster is testdata/container_get_cluster.json.
type documentedCluster struct {
	Project           string          `json:"project"`
	Name              string          `json:"name"`
	DeprecatedRequest json.RawMessage `json:"deprecated_request"`
	Cluster           json.RawMessage `json:"cluster"`
}

// loadCluster reads the fixture, adds its cluster to a fresh fake and
// returns a real GKE API client connected to it.
func loadCluster(t *testing.T) (documentedCluster, *containerpb.Cluster, *fakegcp.Server, *container.ClusterManagerClient) {
	t.Helper()
	b, err := os.ReadFile("testdata/container_get_cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	var d documentedCluster
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	want := &containerpb.Cluster{}
	// REST field names, strictly: a misspelt field in the fixture fails.
	if err := protojson.Unmarshal(d.Cluster, want); err != nil {
		t.Fatalf("fixture cluster is not a google.container.v1.Cluster: %v", err)
	}
	f := fakegcp.New()
	t.Cleanup(f.Close)
	f.AddCluster(d.Project, want)
	c, err := container.NewClusterManagerClient(context.Background(), option.WithGRPCConn(f.Conn()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return d, want, f, c
}

func getCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGetClusterDocumented pins GetCluster to the GKE reference: the
// cluster comes back by its resource name with the output-only fields the
// gcp provider's GKE mode reads, in the documented shapes.
func TestGetClusterDocumented(t *testing.T) {
	d, want, _, c := loadCluster(t)
	got, err := c.GetCluster(getCtx(t), &containerpb.GetClusterRequest{Name: d.Name})
	if err != nil {
		t.Fatalf("GetCluster(%s): %v", d.Name, err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("GetCluster returned\n%v\nwant the documented cluster\n%v", got, want)
	}
	if fakegcp.ClusterName(d.Project, got.GetLocation(), got.GetName()) != d.Name {
		t.Errorf("name %q and location %q do not compose %s", got.GetName(), got.GetLocation(), d.Name)
	}
	// endpoint: an IP address, no scheme, no port.
	if net.ParseIP(got.GetEndpoint()) == nil {
		t.Errorf("endpoint %q is not a bare IP address", got.GetEndpoint())
	}
	if ip := got.GetControlPlaneEndpointsConfig().GetIpEndpointsConfig(); ip.GetPublicEndpoint() != got.GetEndpoint() || net.ParseIP(ip.GetPrivateEndpoint()) == nil {
		t.Errorf("ipEndpointsConfig = %v, want the public endpoint equal to endpoint and a private IP", ip)
	}
	// masterAuth.clusterCaCertificate: base64 of a PEM CA certificate.
	raw, err := base64.StdEncoding.DecodeString(got.GetMasterAuth().GetClusterCaCertificate())
	if err != nil {
		t.Fatalf("clusterCaCertificate is not base64: %v", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("clusterCaCertificate does not decode to a PEM CERTIFICATE block: %q", raw)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("clusterCaCertificate: %v (CA %v), want a CA certificate", err, ca != nil && ca.IsCA)
	}
	if got.GetStatus() != containerpb.Cluster_RUNNING {
		t.Errorf("status %v, want RUNNING", got.GetStatus())
	}
	if dns := got.GetControlPlaneEndpointsConfig().GetDnsEndpointConfig().GetEndpoint(); net.ParseIP(dns) != nil || dns == "" {
		t.Errorf("dnsEndpointConfig.endpoint %q, want a DNS name", dns)
	}
}

// TestGetClusterRequests: the request forms and errors the reference
// documents, and an injected error, table-driven.
func TestGetClusterRequests(t *testing.T) {
	d, want, f, c := loadCluster(t)
	var deprecated containerpb.GetClusterRequest
	if err := protojson.Unmarshal(d.DeprecatedRequest, &deprecated); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		inject error
		req    *containerpb.GetClusterRequest
		want   codes.Code
	}{
		{"by name", nil, &containerpb.GetClusterRequest{Name: d.Name}, codes.OK},
		{"deprecated projectId zone clusterId", nil, &deprecated, codes.OK},
		{"unknown cluster", nil, &containerpb.GetClusterRequest{Name: fakegcp.ClusterName(d.Project, "europe-west1", "absent")}, codes.NotFound},
		{"same name, other location", nil, &containerpb.GetClusterRequest{Name: fakegcp.ClusterName(d.Project, "europe-west1-b", want.GetName())}, codes.NotFound},
		{"malformed name", nil, &containerpb.GetClusterRequest{Name: "prod-cluster"}, codes.InvalidArgument},
		{"empty request", nil, &containerpb.GetClusterRequest{}, codes.InvalidArgument},
		{"injected permission denied", status.Error(codes.PermissionDenied, "Required 'container.clusters.get' permission for 'projects/demo-project/locations/europe-west1/clusters/prod-cluster'."),
			&containerpb.GetClusterRequest{Name: d.Name}, codes.PermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.inject != nil {
				f.Fail("GetCluster", tc.inject)
			}
			got, err := c.GetCluster(getCtx(t), tc.req)
			if status.Code(err) != tc.want {
				t.Fatalf("GetCluster(%v) = %v, want %v", tc.req, err, tc.want)
			}
			if tc.want == codes.OK && !proto.Equal(got, want) {
				t.Fatalf("GetCluster(%v) returned another cluster: %v", tc.req, got)
			}
		})
	}
}

// TestGetClusterRetriesUnavailable: the client library's documented
// default for GetCluster retries UNAVAILABLE, so a transient failure of
// the fake is invisible to the caller but costs a second call.
func TestGetClusterRetriesUnavailable(t *testing.T) {
	d, want, f, c := loadCluster(t)
	f.Fail("GetCluster", status.Error(codes.Unavailable, "The service is currently unavailable."))
	before := f.Calls("GetCluster")
	got, err := c.GetCluster(getCtx(t), &containerpb.GetClusterRequest{Name: d.Name})
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("GetCluster after one UNAVAILABLE: %v", err)
	}
	if n := f.Calls("GetCluster") - before; n != 2 {
		t.Fatalf("%d calls, want 2 (one UNAVAILABLE, one retry)", n)
	}
	f.RemoveCluster(d.Project, want.GetLocation(), want.GetName())
	if _, err := c.GetCluster(getCtx(t), &containerpb.GetClusterRequest{Name: d.Name}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetCluster after RemoveCluster: %v, want NOT_FOUND", err)
	}
}
