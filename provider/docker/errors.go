package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// classify maps an Engine (or transport) error onto a workload code. The
// table test in errors_test.go lists every case.
//
//	connection refused / no socket / dial failure  -> unavailable
//	Engine 503                                     -> unavailable
//	context deadline / net timeout / 504           -> timeout
//	caller cancelled                               -> unavailable
//	404 no such container / image / network        -> not_found
//	409 name "..." is already in use               -> already_exists
//	409 other conflicts (removal in progress...)   -> conflict
//	400 bad parameter                              -> invalid_argument
//	401                                            -> unauthenticated
//	403                                            -> permission_denied
//	429                                            -> rate_limited
//	501                                            -> unsupported
//	500 and anything else the Engine says          -> provider_error
func classify(err error) workload.Code {
	var we *workload.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &we):
		return we.Code
	case errors.Is(err, errClosed):
		return workload.Unavailable
	case client.IsErrConnectionFailed(err), isDialError(err):
		return workload.Unavailable
	case errors.Is(err, context.DeadlineExceeded), cerrdefs.IsDeadlineExceeded(err), provider.IsNetTimeout(err):
		return workload.Timeout
	case errors.Is(err, context.Canceled), cerrdefs.IsCanceled(err):
		return workload.Unavailable
	case cerrdefs.IsNotFound(err):
		return workload.NotFound
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err):
		if strings.Contains(err.Error(), "already in use") || cerrdefs.IsAlreadyExists(err) {
			return workload.AlreadyExists
		}
		return workload.Conflict
	case cerrdefs.IsInvalidArgument(err):
		return workload.InvalidArgument
	case cerrdefs.IsUnauthorized(err):
		return workload.Unauthenticated
	case cerrdefs.IsPermissionDenied(err):
		return workload.PermissionDenied
	case cerrdefs.IsResourceExhausted(err):
		return workload.RateLimited
	case cerrdefs.IsNotImplemented(err):
		return workload.Unsupported
	case cerrdefs.IsUnavailable(err):
		return workload.Unavailable
	}
	return workload.ProviderError
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) && strings.Contains(err.Error(), "dial")
}

// classifier is the provider.Classifier of the Engine: classify's code,
// and an unreachable Engine named by its address.
func (p *Provider) classifier(err error) (workload.Code, string) {
	code := classify(err)
	if code == workload.Unavailable && !errors.Is(err, context.Canceled) {
		return code, fmt.Sprintf("docker engine at %s unreachable: %v", p.host, err)
	}
	return code, ""
}
