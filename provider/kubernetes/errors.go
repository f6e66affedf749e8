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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// errClosed is returned by operations on a closed provider.
var errClosed = errors.New("the kubernetes provider is closed")

// classify maps an error from the API server (or from the way to it) onto
// a workload code. The table test in errors_test.go lists every case; the
// package documentation shows the same table.
func classify(err error) workload.Code {
	var we *workload.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &we):
		return we.Code
	case errors.Is(err, errClosed):
		return workload.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return workload.Timeout
	case errors.Is(err, context.Canceled):
		return workload.Unavailable
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return classifyStatus(err)
	}
	// An exec or attach refused before the stream opened: the WebSocket
	// executor keeps the API server's Status as the cause (without an
	// Unwrap), the SPDY one only its text ("pods "x" is forbidden: …").
	var upgrade *httpstream.UpgradeFailureError
	if errors.As(err, &upgrade) && upgrade.Cause != nil {
		if c := classify(upgrade.Cause); c != workload.ProviderError {
			return c
		}
	}
	if msg := err.Error(); strings.Contains(msg, "unable to upgrade") && strings.Contains(msg, " is forbidden: ") {
		return workload.PermissionDenied
	}
	switch {
	case provider.IsNetTimeout(err):
		return workload.Timeout
	case isDialError(err), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), isCertError(err):
		return workload.Unavailable
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Anything else that went wrong on the way to the API server.
		return workload.Unavailable
	}
	return workload.ProviderError
}

// classifyStatus maps a Status error of the API server.
func classifyStatus(err error) workload.Code {
	switch {
	case apierrors.IsNotFound(err):
		return workload.NotFound
	case apierrors.IsAlreadyExists(err):
		return workload.AlreadyExists
	case apierrors.IsConflict(err):
		return workload.Conflict
	case apierrors.IsGone(err), apierrors.IsResourceExpired(err):
		return workload.Conflict
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsRequestEntityTooLargeError(err):
		return workload.InvalidArgument
	case apierrors.IsUnauthorized(err):
		return workload.Unauthenticated
	case apierrors.IsForbidden(err):
		return workload.PermissionDenied
	case apierrors.IsTooManyRequests(err):
		return workload.RateLimited
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err):
		return workload.Timeout
	case apierrors.IsServiceUnavailable(err):
		return workload.Unavailable
	case apierrors.IsMethodNotSupported(err), apierrors.IsNotAcceptable(err), apierrors.IsUnsupportedMediaType(err):
		return workload.Unsupported
	}
	return workload.ProviderError
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED)
}

func isCertError(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// classified is the provider's provider.Classifier: classify's code, and
// the API server's own message (its Status) when it has one; an
// unreachable API server is named.
func (p *Provider) classified(err error) (workload.Code, string) {
	code := classify(err)
	msg := err.Error()
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		msg = status.Status().Message
	}
	if code == workload.Unavailable && !errors.Is(err, context.Canceled) {
		msg = fmt.Sprintf("kubernetes API at %s unreachable: %v", p.host, msg)
	}
	return code, msg
}

func notFound(name string) error {
	return provider.NotFound(Name, "service %s is unknown to this target (no Deployment %s labelled for it)", name, name)
}
