package gcp

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
	err := afterChange(mapErr("UpdateService", status.Error(codes.PermissionDenied, "denied")))
	if workload.CodeOf(err) != workload.ProviderError || provider.NothingChanged(err) {
		t.Fatalf("afterChange = %v (%s), want provider_error that does not promise nothing changed", err, workload.CodeOf(err))
	}
	err = afterChange(mapErr("UpdateService", status.Error(codes.Unavailable, "down")))
	if workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("afterChange kept code %s, want unavailable", workload.CodeOf(err))
	}
}
