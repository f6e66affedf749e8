// Package providertest is the conformance suite every provider passes:
// Run(t, harness) drives a provider through the same scenarios (start,
// status, scale, restart, apply_config, metrics, logs, exec, bad input,
// stop) and checks the results through an independent view of the backend
// that the harness supplies, never through the provider alone.
//
// It also holds Memory, an in-memory provider for tests of the layers above
// providers. The alphaswarm binary never imports this package.
package providertest

import (
	"context"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Harness adapts one backend to the suite.
type Harness struct {
	// Provider is the provider under test, opened for Target.
	Provider provider.Provider
	// Target is the target name the provider was opened with.
	Target string
	// Spec returns a spec that runs on the backend, named name, with the
	// given replica count. The workload must keep running until stopped.
	Spec func(name string, replicas int) workload.DeploymentSpec
	// Observe reports what the backend runs for a service, asked of the
	// backend directly (the Docker CLI, kubectl, the fake's state), not
	// through Provider.
	Observe func(ctx context.Context, name string) (Observation, error)
	// ReadConfig returns the value of a config key as the workload sees
	// it (read from inside an instance). ok is false if the key is absent.
	ReadConfig func(ctx context.Context, name, key string) (value string, ok bool, err error)
	// EmitLog makes every instance of the workload print text as one line
	// of output. Optional: without it, the logs scenario only checks the
	// lines already written.
	EmitLog func(ctx context.Context, name, text string) error
	// StartupLine is a line every instance prints when it starts.
	StartupLine string
	// ExecCommand prints ExecOutput (and exits 0); ExecFail exits with
	// ExecFailCode. Needed only if the provider is an Execer.
	ExecCommand  []string
	ExecOutput   string
	ExecFail     []string
	ExecFailCode int
	// ExecFailUnobservable, when set, says why the backend under test
	// cannot report a failing command's exit code (a fake kubelet); the
	// suite then logs it and leaves ExecFail unchecked. Pin that behaviour
	// and the real path in the provider's own tests.
	ExecFailUnobservable string
	// Timeout bounds each operation; default 2 minutes.
	Timeout time.Duration
	// Cleanup removes whatever a service left on the backend; the suite
	// registers it with t.Cleanup for every service it creates.
	Cleanup func(ctx context.Context, name string)
}

// Observation is the backend's own account of a service.
type Observation struct {
	// Running is the number of instances actually running.
	Running int
	// InstanceIDs identify the running instances.
	InstanceIDs []string
}
