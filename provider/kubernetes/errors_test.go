package kubernetes

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

// TestClassify is the error table of the package documentation.
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want workload.Code
	}{
		{"NotFound", apierrors.NewNotFound(deployments, "web"), workload.NotFound},
		{"AlreadyExists", apierrors.NewAlreadyExists(deployments, "web"), workload.AlreadyExists},
		{"Conflict", apierrors.NewConflict(deployments, "web", errors.New("the object has been modified")), workload.Conflict},
		{"Apply conflict", apierrors.NewApplyConflict(nil, "conflict with kubectl"), workload.Conflict},
		{"Gone", apierrors.NewGone("too old resource version"), workload.Conflict},
		{"ResourceExpired", apierrors.NewResourceExpired("expired"), workload.Conflict},
		{"Invalid", apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web",
			field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), -1, "must be >= 0")}), workload.InvalidArgument},
		{"BadRequest", apierrors.NewBadRequest("container web is waiting to start"), workload.InvalidArgument},
		{"RequestEntityTooLarge", apierrors.NewRequestEntityTooLargeError("limit is 3145728"), workload.InvalidArgument},
		{"Unauthorized", apierrors.NewUnauthorized("token expired"), workload.Unauthenticated},
		{"Forbidden", apierrors.NewForbidden(deployments, "web", errors.New(`User "bob" cannot patch`)), workload.PermissionDenied},
		// D8: an exec refused by RBAC, as the WebSocket and SPDY executors report it.
		{"exec upgrade forbidden (websocket)", &httpstream.UpgradeFailureError{Cause: apierrors.NewForbidden(
			schema.GroupResource{Resource: "pods/exec"}, "web-1", errors.New(`User "bob" cannot create resource "pods/exec"`))}, workload.PermissionDenied},
		{"exec upgrade forbidden (spdy)", errors.New(`unable to upgrade connection: pods "web-1" is forbidden: User "bob" cannot get resource "pods/exec"`), workload.PermissionDenied},
		{"exec upgrade failed otherwise", &httpstream.UpgradeFailureError{Cause: errors.New("bad handshake")}, workload.ProviderError},
		{"TooManyRequests", apierrors.NewTooManyRequests("slow down", 1), workload.RateLimited},
		{"Timeout", apierrors.NewTimeoutError("request did not complete", 1), workload.Timeout},
		{"ServerTimeout", apierrors.NewServerTimeout(deployments, "update", 1), workload.Timeout},
		{"ServiceUnavailable", apierrors.NewServiceUnavailable("etcd is down"), workload.Unavailable},
		{"MethodNotSupported", apierrors.NewMethodNotSupported(deployments, "patch"), workload.Unsupported},
		{"InternalError", apierrors.NewInternalError(errors.New("boom")), workload.ProviderError},
		{"unexpected 418", apierrors.NewGenericServerResponse(418, "get", deployments, "web", "teapot", 0, false), workload.ProviderError},
		{"wrapped NotFound", fmt.Errorf("get: %w", apierrors.NewNotFound(deployments, "web")), workload.NotFound},
		{"deadline", context.DeadlineExceeded, workload.Timeout},
		{"wrapped deadline", &url.Error{Op: "Get", URL: "https://x", Err: context.DeadlineExceeded}, workload.Timeout},
		{"cancelled", context.Canceled, workload.Unavailable},
		{"connection refused", &url.Error{Op: "Get", URL: "https://127.0.0.1:1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}, workload.Unavailable},
		{"DNS", &url.Error{Op: "Get", URL: "https://nope.invalid", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid"}}, workload.Unavailable},
		{"net timeout", &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "read", Err: timeoutErr{}}}, workload.Timeout},
		{"reset", &url.Error{Op: "Get", URL: "https://x", Err: syscall.ECONNRESET}, workload.Unavailable},
		{"EOF", &url.Error{Op: "Get", URL: "https://x", Err: io.EOF}, workload.Unavailable},
		{"bad certificate", &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, workload.Unavailable},
		{"closed", errClosed, workload.Unavailable},
		{"workload error passes", workload.Errorf(workload.Halted, "halted"), workload.Halted},
		{"anything else", errors.New("something odd"), workload.ProviderError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.err); got != tt.want {
				t.Fatalf("classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
	if classify(nil) != "" {
		t.Fatal("classify(nil) is not empty")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestWrap(t *testing.T) {
	p := &Provider{host: "https://127.0.0.1:6443"}
	err := provider.Wrap(Name, p.classified, apierrors.NewForbidden(deployments, "web", errors.New(`User "bob" cannot patch`)), "apply deployment web")
	we := workload.AsError(err)
	if we.Code != workload.PermissionDenied || we.Provider != Name || !provider.NothingChanged(err) {
		t.Fatalf("wrap: %+v", we)
	}
	if want := `apply deployment web: deployments.apps "web" is forbidden: User "bob" cannot patch`; we.Message != want {
		t.Fatalf("message %q, want %q", we.Message, want)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatal("the API status is not kept as the cause")
	}

	err = provider.Wrap(Name, p.classified, &url.Error{Op: "Get", URL: "https://127.0.0.1:6443", Err: syscall.ECONNREFUSED}, "read deployment web")
	if we := workload.AsError(err); we.Code != workload.Unavailable || !strings.Contains(we.Message, "kubernetes API at https://127.0.0.1:6443 unreachable") {
		t.Fatalf("unreachable: %+v", we)
	}

	// After a successful write, a "nothing changed" code is not true any more.
	err = provider.AfterChange(Name, provider.Wrap(Name, p.classified, apierrors.NewForbidden(deployments, "web", errors.New("no")), "apply service web"), "the deployment was applied")
	if we := workload.AsError(err); we.Code != workload.ProviderError || provider.NothingChanged(err) || !strings.Contains(we.Message, "after the deployment was applied") {
		t.Fatalf("after change: %+v", we)
	}
	// Codes that promise nothing anyway pass unchanged.
	err = provider.AfterChange(Name, provider.Wrap(Name, p.classified, apierrors.NewConflict(deployments, "web", errors.New("modified")), "patch"), "x")
	if workload.CodeOf(err) != workload.Conflict {
		t.Fatalf("after change, conflict: %v", err)
	}
	if provider.Wrap(Name, p.classified, nil, "x") != nil || provider.AfterChange(Name, provider.Wrap(Name, p.classified, nil, "x"), "y") != nil {
		t.Fatal("wrap(nil) is not nil")
	}
}
