package fakegcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"cloud.google.com/go/container/apiv1/containerpb"
	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// IAM. The caller holds every permission on the project unless Deny
// takes it away; GrantOn gives one back on a single resource (a service,
// a secret, a service account), as a role bound on that resource does.
// Every request needs the permission its method documents
// (cloud.google.com/run/docs/reference/iam/permissions,
// cloud.google.com/secret-manager/docs/access-control,
// cloud.google.com/monitoring/access-control,
// cloud.google.com/logging/docs/access-control,
// cloud.google.com/iam/docs/service-accounts-actas: deploying a Cloud Run
// revision that runs as a service account needs iam.serviceAccounts.actAs
// on it); without it the answer is PERMISSION_DENIED, worded as Google
// APIs word it ("Permission 'run.services.get' denied on resource '...'
// (or it may not exist).").
//
// The testIamPermissions methods answer which of the asked permissions
// the caller holds on a resource, on their real wire protocols:
//   - Cloud Run Admin v2 Services.TestIamPermissions and Secret Manager
//     TestIamPermissions over gRPC (google/iam/v1/iam_policy.proto: "If
//     the resource does not exist, this will return an empty set of
//     permissions, not a NOT_FOUND error"; "There are no permissions
//     required for making this API call");
//   - Resource Manager v3 POST /v3/projects/{project}:testIamPermissions
//     and IAM v1 POST /v1/projects/-/serviceAccounts/{email}:testIamPermissions
//     over REST (JSON {"permissions": [...]} both ways; "Permissions with
//     wildcards (such as `*` or `storage.*`) are not allowed",
//     google/iam/v1/iam_policy.proto TestIamPermissionsRequest.permissions).
//     The REST server is an httptest server: RESTOptions points the
//     REST clients at it.
//
// A resource-level answer is what the project grants plus what is bound
// on the resource itself (IAM policies are inherited down the resource
// hierarchy, cloud.google.com/iam/docs/resource-hierarchy-access-control).

// need is one permission a request needs on one resource.
type need struct{ perm, resource string }

// secretOf is the secret a secret version name belongs to.
func secretOf(name string) string {
	if i := strings.Index(name, "/versions/"); i >= 0 {
		return name[:i]
	}
	return name
}

// actAs is what deploying a template needs on its service account (the
// default compute account when the template names none).
func (f *Server) actAs(t *runpb.RevisionTemplate) need {
	sa := t.GetServiceAccount()
	if sa == "" {
		sa = f.DefaultServiceAccount
	}
	return need{"iam.serviceAccounts.actAs", serviceAccountResource(sa)}
}

func serviceAccountResource(email string) string { return "projects/-/serviceAccounts/" + email }

// needs lists what a request needs.
func (f *Server) needs(req proto.Message) []need {
	switch r := req.(type) {
	case *runpb.CreateServiceRequest:
		return []need{{"run.services.create", r.Parent}, f.actAs(r.GetService().GetTemplate())}
	case *runpb.GetServiceRequest:
		return []need{{"run.services.get", r.Name}}
	case *runpb.ListServicesRequest:
		return []need{{"run.services.list", r.Parent}}
	case *runpb.UpdateServiceRequest:
		return []need{{"run.services.update", r.GetService().GetName()}, f.actAs(r.GetService().GetTemplate())}
	case *runpb.DeleteServiceRequest:
		return []need{{"run.services.delete", r.Name}}
	case *runpb.GetRevisionRequest:
		return []need{{"run.revisions.get", r.Name}}
	case *runpb.ListRevisionsRequest:
		return []need{{"run.revisions.list", r.Parent}}
	case *longrunningpb.GetOperationRequest:
		return []need{{"run.operations.get", r.Name}}
	case *longrunningpb.WaitOperationRequest:
		return []need{{"run.operations.get", r.Name}}
	case *secretmanagerpb.CreateSecretRequest:
		return []need{{"secretmanager.secrets.create", r.Parent}}
	case *secretmanagerpb.GetSecretRequest:
		return []need{{"secretmanager.secrets.get", r.Name}}
	case *secretmanagerpb.AddSecretVersionRequest:
		return []need{{"secretmanager.versions.add", r.Parent}}
	case *secretmanagerpb.GetSecretVersionRequest:
		return []need{{"secretmanager.versions.get", secretOf(r.Name)}}
	case *secretmanagerpb.AccessSecretVersionRequest:
		return []need{{"secretmanager.versions.access", secretOf(r.Name)}}
	case *iampb.GetIamPolicyRequest:
		return []need{{"secretmanager.secrets.getIamPolicy", r.Resource}}
	case *iampb.SetIamPolicyRequest:
		return []need{{"secretmanager.secrets.setIamPolicy", r.Resource}}
	case *monitoringpb.ListTimeSeriesRequest:
		return []need{{"monitoring.timeSeries.list", r.Name}}
	case *loggingpb.ListLogEntriesRequest:
		return []need{{"logging.logEntries.list", strings.Join(r.ResourceNames, ",")}}
	case *loggingpb.TailLogEntriesRequest:
		return []need{{"logging.logEntries.list", strings.Join(r.ResourceNames, ",")}}
	case *loggingpb.WriteLogEntriesRequest:
		return []need{{"logging.logEntries.create", r.LogName}}
	case *containerpb.GetClusterRequest:
		return []need{{"container.clusters.get", r.Name}}
	}
	return nil // the TestIamPermissions methods need none
}

// Deny takes perms away from the caller on the project (and so on every
// resource in it, except where GrantOn gives them back).
func (f *Server) Deny(perms ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.denied == nil {
		f.denied = map[string]bool{}
	}
	for _, p := range perms {
		f.denied[p] = true
	}
}

// GrantOn gives the caller perms on one resource: a service
// (projects/p/locations/r/services/s), a secret (projects/p/secrets/s) or
// a service account (its email).
func (f *Server) GrantOn(resource string, perms ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(resource, "/") {
		resource = serviceAccountResource(resource)
	}
	if f.granted == nil {
		f.granted = map[string]map[string]bool{}
	}
	if f.granted[resource] == nil {
		f.granted[resource] = map[string]bool{}
	}
	for _, p := range perms {
		f.granted[resource][p] = true
	}
}

// allowedLocked reports whether the caller holds perm on resource.
func (f *Server) allowedLocked(perm, resource string) bool {
	return !f.denied[perm] || f.granted[resource][perm]
}

// iamInterceptor refuses a unary request whose permission the caller
// lacks, before its handler runs (nothing changes).
func (f *Server) iamInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := f.checkPermissions(m); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// checkPermissions is the IAM check of one request (also used by
// TailLogEntries for its first message).
func (f *Server) checkPermissions(m proto.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.needs(m) {
		if !f.allowedLocked(n.perm, n.resource) {
			f.calls["denied:"+n.perm]++
			return status.Errorf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", n.perm, n.resource)
		}
	}
	return nil
}

// effectiveLocked is the subset of perms the caller holds on resource;
// exists false answers the empty set (iam_policy.proto).
func (f *Server) effectiveLocked(resource string, perms []string, exists bool) []string {
	var out []string
	if !exists {
		return out
	}
	for _, p := range perms {
		if f.allowedLocked(p, resource) {
			out = append(out, p)
		}
	}
	return out
}

// TestIamPermissions implements Cloud Run Admin v2 Services.
func (r *runServices) TestIamPermissions(_ context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("run.TestIamPermissions"); err != nil {
		return nil, err
	}
	if err := noWildcards(req.Permissions); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	_, ok := f.services[req.Resource]
	return &iampb.TestIamPermissionsResponse{Permissions: f.effectiveLocked(req.Resource, req.Permissions, ok)}, nil
}

// TestIamPermissions implements Secret Manager.
func (m *secretManager) TestIamPermissions(_ context.Context, req *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("secretmanager.TestIamPermissions"); err != nil {
		return nil, err
	}
	if err := noWildcards(req.Permissions); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	_, ok := f.secrets[req.Resource]
	return &iampb.TestIamPermissionsResponse{Permissions: f.effectiveLocked(req.Resource, req.Permissions, ok)}, nil
}

func noWildcards(perms []string) error {
	for _, p := range perms {
		if strings.Contains(p, "*") {
			return fmt.Errorf("permission %q: permissions with wildcards (such as '*' or 'storage.*') are not allowed", p)
		}
	}
	return nil
}

// serveREST answers the REST testIamPermissions of Resource Manager v3
// and IAM v1.
func (f *Server) serveREST(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, st, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": st}})
	}
	path, ok := strings.CutSuffix(r.URL.Path, ":testIamPermissions")
	if r.Method != http.MethodPost || !ok {
		fail(http.StatusNotFound, "NOT_FOUND", "no such method "+r.Method+" "+r.URL.Path)
		return
	}
	var body struct {
		Permissions []string `json:"permissions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "invalid JSON payload: "+err.Error())
		return
	}
	if err := noWildcards(body.Permissions); err != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
		return
	}
	var resource, method string
	switch parts := strings.Split(strings.TrimPrefix(path, "/"), "/"); {
	case len(parts) == 3 && parts[0] == "v3" && parts[1] == "projects" && parts[2] != "":
		resource, method = "projects/"+parts[2], "projects.testIamPermissions"
	case len(parts) == 5 && parts[0] == "v1" && parts[1] == "projects" && parts[3] == "serviceAccounts" && strings.Contains(parts[4], "@"):
		resource, method = serviceAccountResource(parts[4]), "serviceAccounts.testIamPermissions"
	default:
		fail(http.StatusNotFound, "NOT_FOUND", "no such resource "+path)
		return
	}
	f.mu.Lock()
	err := f.enter(method)
	var granted []string
	if err == nil {
		granted = f.effectiveLocked(resource, body.Permissions, true)
	}
	f.mu.Unlock()
	if err != nil {
		st, _ := status.FromError(err)
		fail(http.StatusServiceUnavailable, st.Code().String(), st.Message())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	out := map[string]any{}
	if len(granted) > 0 {
		out["permissions"] = slices.Clip(granted)
	}
	_ = json.NewEncoder(w).Encode(out)
}

// GRPCOptions are the client options for the fake's gRPC services.
func (f *Server) GRPCOptions() []option.ClientOption {
	return []option.ClientOption{option.WithGRPCConn(f.conn), option.WithoutAuthentication()}
}

// RESTOptions are the client options for the fake's REST services
// (Resource Manager, IAM).
func (f *Server) RESTOptions() []option.ClientOption {
	return []option.ClientOption{option.WithEndpoint(f.rest.URL + "/"), option.WithoutAuthentication()}
}
