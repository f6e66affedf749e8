// Package provider defines the contract between the control plane and a
// backend (Docker, Kubernetes, AWS, Azure, GCP): a small required interface,
// optional interfaces for the operations not every backend has, and a
// registry that backends join from init, the database/sql way.
//
// A provider instance serves one target (a configured backend instance). It
// never writes to the ledger and never checks authorization: control.Runtime
// does both before calling it. Nothing outside control should call a
// provider's mutating methods.
//
// # Errors
//
// Providers return *workload.Error (possibly wrapped). The code tells the
// runtime whether the backend may have changed:
//
//   - InvalidArgument, NotFound, AlreadyExists, Unauthenticated,
//     PermissionDenied, Unsupported and RateLimited guarantee that nothing
//     was changed on the backend: the provider returns them only before its
//     first mutating backend call, or when the backend refused that call
//     outright. Repeating the request after fixing its cause is safe.
//   - Timeout, Unavailable, Conflict, ProviderError and Internal guarantee
//     nothing: the backend may have applied the change in part or whole.
//     Check Status before repeating.
//
// NothingChanged encodes this rule.
//
// # Concurrency
//
// All methods may be called concurrently, for the same and for different
// services; the runtime serialises mutations of one service, so a provider
// need not, but reads (Status, StreamMetrics, Logs) run beside mutations.
package provider

import (
	"context"
	"io"
	"iter"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// Provider is what every backend implements: the six operations of the
// decision record. name is the service's bare name within the target (a
// serviceID, elsewhere, is "<target>/<name>").
type Provider interface {
	// Start creates the service or, if it exists, rolls it to spec. It
	// waits until the replicas are ready or ctx ends, and returns the
	// status reached (Running, Progressing or Failed).
	Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error)
	// Stop stops every instance of the service. Stopping a stopped or
	// unknown service is not an error: it returns status Stopped.
	Stop(ctx context.Context, name string) (workload.DeploymentStatus, error)
	// Scale sets the desired replica count (0 allowed; the service stays
	// known and can be scaled up again). NotFound if never started.
	Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error)
	// Status reports the service as the backend sees it. NotFound if the
	// backend has no trace of it.
	Status(ctx context.Context, name string) (workload.DeploymentStatus, error)
	// ApplyConfig replaces the service's config and makes the workload see
	// it (which may mean rolling the instances). NotFound if unknown.
	ApplyConfig(ctx context.Context, name string, config map[string]string) error
	// StreamMetrics yields samples until ctx ends or the caller stops
	// iterating; an error ends the stream.
	StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error]
}

// Restarter replaces every instance of a service, one at a time where the
// backend allows. Without it, restart is Unsupported.
type Restarter interface {
	Restart(ctx context.Context, name string) (workload.DeploymentStatus, error)
}

// LogOptions selects log lines.
type LogOptions struct {
	Follow bool
	// Tail is how many lines per instance to start with; < 0 means all.
	Tail  int
	Since time.Time
}

// LogTailer streams a service's output across its instances, each line
// tagged with its instance.
type LogTailer interface {
	Logs(ctx context.Context, name string, opts LogOptions) iter.Seq2[workload.LogLine, error]
}

// TermSize is a terminal size in character cells.
type TermSize struct {
	Cols, Rows uint16
}

// ExecRequest runs a command in one instance of a service.
type ExecRequest struct {
	// Instance picks the instance by id; empty means any ready one.
	Instance string
	Command  []string
	TTY      bool
	Stdin    io.Reader // may be nil
	Stdout   io.Writer // may be nil
	Stderr   io.Writer // may be nil; with TTY, output goes to Stdout
	// Resize delivers terminal size changes; may be nil.
	Resize <-chan TermSize
}

// ExecResult is the outcome of a command.
type ExecResult struct {
	Instance string `json:"instance"`
	ExitCode int    `json:"exitCode"`
	// Orphan is set when the session ended before the command did (the
	// client went away or the exec timed out): what became of the process.
	Orphan *ExecOrphan `json:"orphan,omitempty"`
}

// ExecOrphan says whether a command whose session ended first was ended
// by the provider, and how, or why it was left running.
type ExecOrphan struct {
	Ended  bool   `json:"ended"`
	Detail string `json:"detail"`
}

// Execer runs commands inside a service's instances.
type Execer interface {
	Exec(ctx context.Context, name string, req ExecRequest) (ExecResult, error)
}

// Lister lists every service of the target that alphaswarm manages.
type Lister interface {
	List(ctx context.Context) ([]workload.DeploymentStatus, error)
}

// Watcher yields a status every time a service of the target changes,
// until ctx ends or the caller stops.
type Watcher interface {
	Watch(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error]
}

// Pinger is implemented by providers that can say cheaply whether their
// backend answers (used for readiness and to decide whether the embedded
// `local` docker target is offered).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Explainer says why an operation is unsupported on this target. A
// provider that implements an optional interface can decline it with a
// reason (an ECS cluster without exec enabled); for an interface it does
// not implement, a reason replaces the generic "does not implement" (so no
// stub method is needed to explain it). UnsupportedReason returns "" when
// op is supported, or when it has nothing to add.
type Explainer interface {
	UnsupportedReason(op Operation) string
}

// NothingChanged reports whether err guarantees that the backend was not
// changed by the failed call (see the package doc). A nil error is false:
// something may well have changed.
func NothingChanged(err error) bool {
	if err == nil {
		return false
	}
	switch workload.CodeOf(err) {
	case workload.InvalidArgument, workload.NotFound, workload.AlreadyExists,
		workload.Unauthenticated, workload.PermissionDenied, workload.Unsupported,
		workload.RateLimited:
		return true
	}
	return false
}
