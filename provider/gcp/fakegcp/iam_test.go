package fakegcp_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/iam/apiv1/iampb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/cloudresourcemanager/v3"
	"google.golang.org/api/googleapi"
	iam "google.golang.org/api/iam/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
)

// TestIAM: the grant set is enforced on requests and answered by the
// testIamPermissions methods, over gRPC (Cloud Run) and REST (Resource
// Manager, IAM), through the real client libraries.
func TestIAM(t *testing.T) {
	ctx := context.Background()
	f := fakegcp.New()
	t.Cleanup(f.Close)
	runc, err := run.NewServicesClient(ctx, f.GRPCOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runc.Close() })
	rm, err := cloudresourcemanager.NewService(ctx, f.RESTOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	iamc, err := iam.NewService(ctx, f.RESTOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	const parent = "projects/demo-project/locations/europe-west1"
	const web = parent + "/services/web"
	create := func() error {
		op, err := runc.CreateService(ctx, &runpb.CreateServiceRequest{Parent: parent, ServiceId: "web", Service: &runpb.Service{
			Template: &runpb.RevisionTemplate{Containers: []*runpb.Container{{Image: "europe-docker.pkg.dev/demo-project/app/web:1"}}}}})
		if err == nil {
			_, err = op.Wait(ctx)
		}
		return err
	}
	project := func(perms ...string) []string {
		r, err := rm.Projects.TestIamPermissions("projects/demo-project", &cloudresourcemanager.TestIamPermissionsRequest{Permissions: perms}).Context(ctx).Do()
		if err != nil {
			t.Fatalf("projects.testIamPermissions: %v", err)
		}
		return r.Permissions
	}
	onService := func(perms ...string) []string {
		r, err := runc.TestIamPermissions(ctx, &iampb.TestIamPermissionsRequest{Resource: web, Permissions: perms})
		if err != nil {
			t.Fatalf("Services.TestIamPermissions: %v", err)
		}
		return r.Permissions
	}

	// The resource does not exist yet: the empty set, not NOT_FOUND.
	if got := onService("run.services.get"); len(got) != 0 {
		t.Errorf("on a service that does not exist: %v", got)
	}
	// actAs on the revisions' identity (the default compute account).
	f.Deny("iam.serviceAccounts.actAs")
	err = create()
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "Permission 'iam.serviceAccounts.actAs' denied on resource 'projects/-/serviceAccounts/"+f.DefaultServiceAccount+"'") {
		t.Fatalf("CreateService without actAs = %v", err)
	}
	f.GrantOn(f.DefaultServiceAccount, "iam.serviceAccounts.actAs")
	sa, err := iamc.Projects.ServiceAccounts.TestIamPermissions("projects/-/serviceAccounts/"+f.DefaultServiceAccount,
		&iam.TestIamPermissionsRequest{Permissions: []string{"iam.serviceAccounts.actAs"}}).Context(ctx).Do()
	if err != nil || !slices.Equal(sa.Permissions, []string{"iam.serviceAccounts.actAs"}) {
		t.Fatalf("serviceAccounts.testIamPermissions = %v, %v", sa, err)
	}
	if err := create(); err != nil {
		t.Fatalf("CreateService with actAs on the account: %v", err)
	}

	f.Deny("run.services.get", "run.services.update")
	if got := project("run.services.get", "run.services.create", "run.services.update"); !slices.Equal(got, []string{"run.services.create"}) {
		t.Errorf("project grants %v, want [run.services.create]", got)
	}
	_, err = runc.GetService(ctx, &runpb.GetServiceRequest{Name: web})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "Permission 'run.services.get' denied on resource '"+web+"'") {
		t.Errorf("GetService without run.services.get = %v", err)
	}
	f.GrantOn(web, "run.services.get")
	if got := onService("run.services.get", "run.services.update", "run.services.create"); !slices.Equal(got, []string{"run.services.get", "run.services.create"}) {
		t.Errorf("on the service: %v, want get (bound on it) and create (from the project)", got)
	}
	if _, err := runc.GetService(ctx, &runpb.GetServiceRequest{Name: web}); err != nil {
		t.Errorf("GetService with run.services.get on the service: %v", err)
	}

	// Wildcards are refused.
	_, err = rm.Projects.TestIamPermissions("projects/demo-project", &cloudresourcemanager.TestIamPermissionsRequest{Permissions: []string{"run.*"}}).Context(ctx).Do()
	var ge *googleapi.Error
	if !errors.As(err, &ge) || ge.Code != 400 {
		t.Errorf("a wildcard permission = %v, want HTTP 400", err)
	}
}
