package kubernetes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// managedEnv is a Managed provider for the shared control plane whose
// Resolve fails while fail is set, and counts its calls.
type managedEnv struct {
	m        *Managed
	ns       string
	calls    atomic.Int64
	fail     atomic.Bool
	release  chan struct{} // when not nil, Resolve waits for it
	resolved *rest.Config
}

func newManagedEnv(t *testing.T, eager bool, release chan struct{}) *managedEnv {
	t.Helper()
	c := k8stest.Start(t)
	e := &managedEnv{ns: c.Namespace(t), release: release, resolved: c.RESTConfig}
	var err error
	e.m, err = NewManaged(ManagedConfig{
		Provider: "cloud", Target: "mt", Cluster: `test cluster "c1"`,
		Options: Options{Namespace: e.ns}, Eager: eager, ResolveTimeout: 5 * time.Second,
		Resolve: func(ctx context.Context) (*rest.Config, error) {
			e.calls.Add(1)
			if e.release != nil {
				select {
				case <-e.release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if e.fail.Load() {
				return nil, workload.Errorf(workload.Unavailable, "the cloud API does not answer")
			}
			return e.resolved, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.m.Close() })
	return e
}

// TestManagedRetriesAFailedResolution: a failed resolution is the
// operation's error, under the cloud provider's name; the next operation
// tries again; a success is kept.
func TestManagedRetriesAFailedResolution(t *testing.T) {
	e := newManagedEnv(t, false, nil)
	ctx := t.Context()
	if e.calls.Load() != 0 {
		t.Fatal("Resolve was called before any operation")
	}
	e.fail.Store(true)
	_, err := e.m.List(ctx)
	if we := workload.AsError(err); we.Code != workload.Unavailable || we.Provider != "cloud" {
		t.Fatalf("List while the cloud fails = %v, want unavailable (cloud)", err)
	}
	if e.m.UnsupportedReason(provider.OpStreamMetrics) != "" {
		t.Error("UnsupportedReason before resolution should know nothing")
	}
	e.fail.Store(false)
	for range 3 {
		if _, err := e.m.List(ctx); err != nil {
			t.Fatalf("List after the cloud recovered: %v", err)
		}
	}
	if n := e.calls.Load(); n != 2 {
		t.Errorf("Resolve called %d times, want 2 (one failure, one success kept)", n)
	}
	// Errors of the kubernetes provider say "cloud".
	_, err = e.m.Status(ctx, "absent")
	if we := workload.AsError(err); we.Code != workload.NotFound || we.Provider != "cloud" {
		t.Errorf("Status of an absent service = %v, want not_found (cloud)", err)
	}
	// A bad name is refused without the cluster.
	if _, err := e.m.Scale(ctx, "Bad_Name", 1); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("Scale of a bad name = %v, want invalid_argument", err)
	}
}

// TestManagedCallersShareOneAttempt: concurrent first operations wait for
// one resolution; a caller whose context ends stops waiting without
// failing the attempt for the others.
func TestManagedCallersShareOneAttempt(t *testing.T) {
	release := make(chan struct{})
	e := newManagedEnv(t, false, release)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := e.m.Ping(short); workload.CodeOf(err) != workload.Timeout {
		t.Fatalf("Ping with a context that ends first = %v, want timeout", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = e.m.List(t.Context()) })
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent first operations: %v", err)
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("Resolve called %d times by 9 callers, want 1", n)
	}
}

// TestManagedClose: Close during an attempt ends it; operations after
// Close are unavailable; Close twice is fine.
func TestManagedClose(t *testing.T) {
	release := make(chan struct{}) // never closed: the attempt blocks
	e := newManagedEnv(t, true, release)
	done := make(chan error, 1)
	go func() { _, err := e.m.List(t.Context()); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := e.m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "closed") {
			t.Errorf("List waiting for the attempt Close cancelled = %v, want unavailable: closed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("List still waits after Close")
	}
	if _, err := e.m.Status(t.Context(), "svc"); workload.CodeOf(err) != workload.Unavailable {
		t.Errorf("Status after Close = %v, want unavailable", err)
	}
	if err := e.m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := e.calls.Load(); n != 1 {
		t.Errorf("Resolve called %d times, want 1 (the eager attempt)", n)
	}
}

// TestNewManagedChecksOptions: bad kubernetes options are refused at once,
// with their field path.
func TestNewManagedChecksOptions(t *testing.T) {
	_, err := NewManaged(ManagedConfig{Provider: "cloud", Target: "mt", Options: Options{Namespace: "Not A Namespace"},
		Resolve: func(context.Context) (*rest.Config, error) { return nil, errors.New("unreachable") }})
	we := workload.AsError(err)
	if we.Code != workload.InvalidArgument || len(we.Fields) == 0 || we.Fields[0].Path != "targets.mt.options.namespace" {
		t.Errorf("NewManaged with a bad namespace = %v, want invalid_argument at targets.mt.options.namespace", err)
	}
}

// TestManagedResolveTimeout: an attempt that outlives ResolveTimeout fails
// as a timeout naming the cluster, and the next operation tries again.
func TestManagedResolveTimeout(t *testing.T) {
	var calls atomic.Int64
	m, err := NewManaged(ManagedConfig{Provider: "cloud", Target: "mt", Cluster: `test cluster "slow"`,
		ResolveTimeout: 50 * time.Millisecond,
		Resolve: func(ctx context.Context) (*rest.Config, error) {
			calls.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for range 2 {
		err := m.Ping(t.Context())
		if we := workload.AsError(err); we.Code != workload.Timeout || we.Provider != "cloud" || !strings.Contains(err.Error(), `test cluster "slow"`) {
			t.Errorf("Ping = %v, want timeout (cloud) naming the cluster", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Resolve called %d times, want 2", n)
	}
}

// TestManagedReresolvesAfterRotation: a cluster whose CA changed under the
// resolved configuration (a GKE/AKS CA rotation) fails with unavailable
// once; the next operation resolves the cluster again and works.
func TestManagedReresolvesAfterRotation(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	stale := rest.CopyConfig(c.RESTConfig)
	stale.TLSClientConfig.CAData = otherCA(t)
	var calls atomic.Int64
	m, err := NewManaged(ManagedConfig{Provider: "cloud", Target: "mt", Cluster: "rotating cluster", Options: Options{Namespace: ns},
		Resolve: func(context.Context) (*rest.Config, error) {
			if calls.Add(1) == 1 {
				return stale, nil // the configuration from before the rotation
			}
			return c.RESTConfig, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	err = m.Ping(t.Context())
	if we := workload.AsError(err); we.Code != workload.Unavailable || we.Provider != "cloud" {
		t.Fatalf("Ping with the old CA = %v, want unavailable (cloud)", err)
	}
	if err := m.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the cluster was resolved again: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Resolve called %d times, want 2", n)
	}
	if !m.Resolved() {
		t.Fatal("not resolved after a successful Ping")
	}
}

// otherCA is the PEM of a CA that signed nothing the API server serves.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestManagedDiffAndCheckRefs: EKS, AKS and GKE (which embed Managed)
// preview and check references through the kubernetes provider, under
// their own name.
func TestManagedDiffAndCheckRefs(t *testing.T) {
	e := newManagedEnv(t, false, nil)
	ctx := t.Context()
	spec := workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 1,
		Secrets: []workload.SecretRef{{Env: "P", From: "db/password"}}}
	d, err := e.m.Diff(ctx, spec)
	if err != nil || d.Action != workload.DiffCreate || d.Provider != "cloud" {
		t.Fatalf("diff: %+v, %v", d, err)
	}
	err = e.m.CheckRefs(ctx, spec)
	if we := workload.AsError(err); we.Code != workload.NotFound || we.Provider != "cloud" || we.Fields[0].Path != "secrets[0].from" {
		t.Fatalf("check refs: %v", err)
	}
	if _, err := e.m.Diff(ctx, workload.DeploymentSpec{Name: "Bad_Name"}); workload.CodeOf(err) != workload.InvalidArgument {
		t.Fatalf("diff of a bad spec: %v", err)
	}
}
