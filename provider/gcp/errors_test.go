package gcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"cloud.google.com/go/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestMapErr(t *testing.T) {
	cases := []struct {
		err  error
		want workload.Code
	}{
		{status.Error(codes.NotFound, "Resource 'web' of kind 'SERVICE' does not exist."), workload.NotFound},
		// GKE GetCluster, as the GKE API answers it.
		{status.Error(codes.NotFound, "Not found: projects/demo-project/locations/europe-west1/clusters/prod-cluster."), workload.NotFound},
		{status.Error(codes.PermissionDenied, "Required \"container.clusters.get\" permission(s) for \"projects/demo-project/locations/europe-west1/clusters/prod-cluster\"."), workload.PermissionDenied},
		{status.Error(codes.AlreadyExists, "Resource 'web' already exists."), workload.AlreadyExists},
		{status.Error(codes.PermissionDenied, "Permission 'run.services.update' denied"), workload.PermissionDenied},
		{status.Error(codes.Unauthenticated, "Request had invalid authentication credentials."), workload.Unauthenticated},
		{status.Error(codes.ResourceExhausted, "Quota exceeded"), workload.RateLimited},
		{status.Error(codes.FailedPrecondition, "service is being modified"), workload.Conflict},
		{status.Error(codes.Aborted, "etag mismatch"), workload.Conflict},
		{status.Error(codes.Unavailable, "connection refused"), workload.Unavailable},
		{status.Error(codes.DeadlineExceeded, "deadline"), workload.Timeout},
		{status.Error(codes.InvalidArgument, "bad"), workload.InvalidArgument},
		{status.Error(codes.Unimplemented, "no"), workload.Unsupported},
		{status.Error(codes.Internal, "boom"), workload.ProviderError},
		{status.Error(codes.DataLoss, "lost"), workload.ProviderError},
		{context.DeadlineExceeded, workload.Timeout},
		{fmt.Errorf("wrapped: %w", context.Canceled), workload.Unavailable},
		{errors.New("plain"), workload.ProviderError},
		{workload.Errorf(workload.NotFound, "kept"), workload.NotFound},
	}
	for _, c := range cases {
		got := mapErr("op", c.err)
		if workload.CodeOf(got) != c.want {
			t.Errorf("mapErr(%v) = %v (%s), want %s", c.err, got, workload.CodeOf(got), c.want)
		}
		if we := workload.AsError(got); we.Provider == "" && c.want != workload.NotFound {
			t.Errorf("mapErr(%v): no provider name", c.err)
		}
	}
}

func TestAfterChange(t *testing.T) {
	err := provider.AfterChange(Name, mapErr("UpdateService", status.Error(codes.PermissionDenied, "denied")), earlierChanges)
	if workload.CodeOf(err) != workload.ProviderError || provider.NothingChanged(err) {
		t.Fatalf("afterChange = %v (%s), want provider_error that does not promise nothing changed", err, workload.CodeOf(err))
	}
	err = provider.AfterChange(Name, mapErr("UpdateService", status.Error(codes.Unavailable, "down")), earlierChanges)
	if workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("afterChange kept code %s, want unavailable", workload.CodeOf(err))
	}
}

func TestMapTokenErr(t *testing.T) {
	endpoint := func(code int, body string) error {
		return &auth.Error{Response: &http.Response{StatusCode: code}, Body: []byte(body)}
	}
	cases := []struct {
		name    string
		err     error
		want    workload.Code
		wantMsg string
	}{
		{"invalid_grant", endpoint(400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`), workload.Unauthenticated,
			"the token endpoint answered HTTP 400: invalid_grant: Invalid JWT Signature."},
		{"unauthorized_client", endpoint(401, `{"error":"unauthorized_client"}`), workload.Unauthenticated, "HTTP 401: unauthorized_client"},
		{"forbidden", endpoint(403, `{"error":"access_denied","error_description":"disabled"}`), workload.Unauthenticated, "access_denied: disabled"},
		{"rate limited", endpoint(429, `{"error":"rate_limit_exceeded"}`), workload.RateLimited, "HTTP 429"},
		{"endpoint down", endpoint(503, `<html>unavailable</html>`), workload.Unavailable, "HTTP 503"},
		{"endpoint 404", endpoint(404, ``), workload.ProviderError, "HTTP 404"},
		{"unreachable", fmt.Errorf("auth: cannot fetch token: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), workload.Unavailable, "unreachable"},
		{"deadline", fmt.Errorf("auth: %w", context.DeadlineExceeded), workload.Timeout, "deadline exceeded"},
		{"cancelled", context.Canceled, workload.Unavailable, "cancelled"},
		{"bad key", errors.New("auth: private key should be a PEM or plain PKCS1 or PKCS8"), workload.Unauthenticated, "private key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mapTokenErr(c.err)
			we := workload.AsError(got)
			if we.Code != c.want || we.Provider != Name || !strings.Contains(we.Message, c.wantMsg) {
				t.Fatalf("mapTokenErr = %v (%s, provider %q), want %s containing %q", got, we.Code, we.Provider, c.want, c.wantMsg)
			}
			if !errors.Is(got, c.err) {
				t.Fatal("the cause is not kept")
			}
		})
	}
}
