package k8stest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// NodeAnnotation marks the nodes kwok manages (value "fake").
	NodeAnnotation = "kwok.x-k8s.io/node"
	// StartupLine is the first line of every container's log.
	StartupLine = "k8stest: container started"
	// ImagePullFailImage is an image whose pods stay Pending, their
	// containers waiting in ImagePullBackOff.
	ImagePullFailImage = "k8stest.invalid/image-pull-fails:v1"
	// CrashLoopImage is an image whose pods run but are never Ready, their
	// containers waiting in CrashLoopBackOff after exiting 1.
	CrashLoopImage = "k8stest.invalid/crash-loops:v1"
)

// Cluster is a running control plane. Its fields must not be modified.
type Cluster struct {
	// RESTConfig reaches the API server as the cluster administrator
	// (group system:masters), with QPS 100 and burst 200. Copy it with
	// rest.CopyConfig before changing it.
	RESTConfig *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same identity.
	Kubeconfig string
	// Token is the administrator's bearer token.
	Token string
	// Server is the API server's URL, https://127.0.0.1:PORT.
	Server string
	// CAFile is the path of the CA certificate (PEM) that signed the API
	// server's serving certificate; CAData is its content.
	CAFile string
	CAData []byte
	// Nodes are the names of the fake nodes.
	Nodes []string
	// LogFile is the file kwok serves as every container's log (in the
	// CRI log format); see AppendLog.
	LogFile string
	// Dir is the cluster's directory: certificates, kubeconfigs, etcd's
	// data and each component's log (NAME.log).
	Dir string
	// StartupTime is how long starting the control plane took.
	StartupTime time.Duration

	client   *kubernetes.Clientset
	webhook  *tokenWebhook
	procs    []*proc
	logMu    sync.Mutex
	stopOnce sync.Once
}

var shared struct {
	once sync.Once
	mu   sync.Mutex
	c    *Cluster
	err  error
	down bool
	n    atomic.Int64
}

// Start returns the control plane shared by the test binary, starting it on
// first use. When the binaries are missing it skips t (fails it if CI is
// set); when the control plane fails to start it fails t.
func Start(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		c, err := startCluster()
		shared.mu.Lock()
		shared.c, shared.err = c, err
		shared.mu.Unlock()
		if err == nil {
			fmt.Fprintf(os.Stderr, "k8stest: control plane %s started in %v (%s)\n", c.Server, c.StartupTime.Round(time.Millisecond), c.Dir)
		}
	})
	shared.mu.Lock()
	c, err := shared.c, shared.err
	if err == nil && c == nil {
		err = errors.New("k8stest: the shared control plane has been shut down")
	}
	shared.mu.Unlock()
	if err != nil {
		unavailable(t, err)
	}
	return c
}

// Launch starts a control plane of its own for a program that is not a
// test (the bench harness), or says why it cannot (binaries missing: an
// error naming them). The caller stops it with Stop.
func Launch() (*Cluster, error) { return startCluster() }

// Stop stops a control plane started by Launch and removes its directory.
func (c *Cluster) Stop() { c.stop() }

// Shutdown stops the shared control plane, if it was started, and removes
// its directory. Call it after m.Run in TestMain.
func Shutdown() {
	shared.once.Do(func() {}) // none may start after this
	shared.mu.Lock()
	c := shared.c
	shared.c = nil
	shared.mu.Unlock()
	if c != nil {
		c.stop()
	}
}

// Main runs the tests, stops the shared control plane and exits with the
// tests' status: func TestMain(m *testing.M) { k8stest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	var missing *errMissing
	if !errors.As(err, &missing) {
		t.Fatalf("k8stest: the Kubernetes control plane failed to start: %v", err)
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"+
			"!!! k8stest: a Kubernetes control plane is REQUIRED when CI is set:\n"+
			"!!! %v\n"+
			"!!! Build the binaries in CI (.ci/k8s-binaries.sh); these tests must not skip.\n"+
			"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", err)
	}
	t.Skipf("SKIPPING: %v", err)
}

// Client returns a clientset for the administrator.
func (c *Cluster) Client() *kubernetes.Clientset { return c.client }

// ImpersonatedConfig returns a copy of RESTConfig that acts as user (and
// groups, besides system:authenticated) through impersonation: what RBAC
// grants that user and nothing more.
func (c *Cluster) ImpersonatedConfig(user string, groups ...string) *rest.Config {
	cfg := rest.CopyConfig(c.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// Namespace creates a fresh namespace for t, named after the test, waits
// until its default service account exists (pods cannot be created
// before), and deletes it when t ends.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	base := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	suffix := fmt.Sprintf("-%d", shared.n.Add(1))
	if len(base) > 50 {
		base = strings.Trim(base[:50], "-")
	}
	name := "t-" + base + suffix
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{"k8stest": "true"},
		Annotations: map[string]string{"k8stest/test": t.Name()},
	}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("k8stest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The namespace controller finishes the deletion in the background.
		if err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Logf("k8stest: delete namespace %s: %v", name, err)
		}
	})
	for {
		ok, err := c.hasServiceAccount(ctx, name)
		if ok {
			return name
		}
		select {
		case <-ctx.Done():
			t.Fatalf("k8stest: namespace %s has no default service account after a minute (last error: %v); controller manager log:\n%s",
				name, err, c.ComponentLog("kube-controller-manager", 20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kubectl runs the machine's kubectl with the administrator's kubeconfig
// and returns its standard output; it fails t if kubectl fails.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.TryKubectl(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// TryKubectl runs the machine's kubectl (from PATH, else from the binaries'
// directory) like Kubectl and returns its standard output, or an error
// carrying its standard error.
func (c *Cluster) TryKubectl(args ...string) (string, error) {
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		bin = filepath.Join(binDir(), "kubectl")
		if _, serr := os.Stat(bin); serr != nil {
			return "", fmt.Errorf("k8stest: kubectl not found on PATH nor in %s: %w", binDir(), err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// AppendLog appends a line to the log every container shows (LogFile),
// so followers of any pod's log receive it.
func (c *Cluster) AppendLog(text string) error {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	f, err := os.OpenFile(c.LogFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(criLine(time.Now(), text)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ComponentLog returns the last n lines of a component's log: "etcd",
// "kube-apiserver", "kube-controller-manager", "kube-scheduler" or "kwok".
func (c *Cluster) ComponentLog(name string, n int) string {
	return tail(filepath.Join(c.Dir, name+".log"), n)
}
