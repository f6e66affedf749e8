package fakegcp_test

import (
	"context"
	"fmt"
	"testing"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
)

// TestServiceIDAndLabelLimits: service ids begin with a letter and have
// fewer than 50 characters (CreateServiceRequest.service_id); a resource
// holds at most 64 labels (labels-overview).
func TestServiceIDAndLabelLimits(t *testing.T) {
	ctx := context.Background()
	f := fakegcp.New()
	t.Cleanup(f.Close)
	c, err := run.NewServicesClient(ctx, f.GRPCOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	create := func(id string, labels map[string]string) error {
		_, err := c.CreateService(ctx, &runpb.CreateServiceRequest{Parent: "projects/demo-project/locations/europe-west1", ServiceId: id,
			Service: &runpb.Service{Labels: labels, Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "europe-docker.pkg.dev/demo-project/app/web:1"}}}}})
		return err
	}
	labels := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%02d", i)] = "v"
		}
		return m
	}
	for _, id := range []string{"1web", "web-", "w" + fmt.Sprintf("%049d", 0)} {
		if err := create(id, nil); status.Code(err) != codes.InvalidArgument {
			t.Errorf("service id %q: %v, want INVALID_ARGUMENT", id, err)
		}
	}
	if err := create("web", labels(65)); status.Code(err) != codes.InvalidArgument {
		t.Errorf("65 labels: %v, want INVALID_ARGUMENT", err)
	}
	if err := create("web", labels(64)); err != nil {
		t.Errorf("64 labels: %v", err)
	}
}
