package k8stest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alphaswarm/controller/internal/testproc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// KubernetesVersion is the version of the control-plane binaries this
// package expects (.ci/k8s-binaries.sh builds it).
const KubernetesVersion = "v1.37.2"

// DefaultBinDir is where .ci/k8s-binaries.sh puts the binaries by default.
const DefaultBinDir = "/var/cache/alphaswarm/k8s-" + KubernetesVersion + "/bin"

// startTimeout bounds the start of the whole control plane.
const startTimeout = 3 * time.Minute

//go:embed kwok-stages.yaml
var kwokStages string

// binaries are the programs the control plane runs.
type binaries struct {
	etcd, apiserver, controllerManager, scheduler, kwok string
}

// errMissing says the binaries are not installed (the test skips outside CI).
type errMissing struct{ msg string }

func (e *errMissing) Error() string { return e.msg }

// binDir is where the Kubernetes binaries are looked up.
func binDir() string {
	if d := os.Getenv("ALPHASWARM_K8S_BIN"); d != "" {
		return d
	}
	if c := os.Getenv("ALPHASWARM_K8S_CACHE"); c != "" {
		return filepath.Join(c, "bin")
	}
	return DefaultBinDir
}

func findBinaries(dir string) (binaries, error) {
	var b binaries
	var missing []string
	look := func(name string, path bool) string {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
		if path {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		missing = append(missing, name)
		return ""
	}
	b.etcd = look("etcd", true)
	b.apiserver = look("kube-apiserver", false)
	b.controllerManager = look("kube-controller-manager", false)
	b.scheduler = look("kube-scheduler", false)
	b.kwok = look("kwok", false)
	if len(missing) > 0 {
		return b, &errMissing{fmt.Sprintf("Kubernetes control plane binaries not found in %s (etcd also on PATH): %s missing; run .ci/k8s-binaries.sh (or set ALPHASWARM_K8S_BUILD=1)",
			dir, strings.Join(missing, ", "))}
	}
	return b, nil
}

// ensureBinaries finds the binaries, building them with
// .ci/k8s-binaries.sh if they are missing and ALPHASWARM_K8S_BUILD=1.
func ensureBinaries() (binaries, error) {
	dir := binDir()
	b, err := findBinaries(dir)
	if err == nil || os.Getenv("ALPHASWARM_K8S_BUILD") != "1" {
		return b, err
	}
	built, berr := runBuildScript()
	if berr != nil {
		return b, fmt.Errorf("%v; building them failed: %w", err, berr)
	}
	return findBinaries(built)
}

// runBuildScript runs .ci/k8s-binaries.sh (found by walking up from the
// working directory), one test binary at a time, and returns the bin
// directory it prints on its last line.
func runBuildScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	script := ""
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".ci", "k8s-binaries.sh")); err == nil {
			script = filepath.Join(d, ".ci", "k8s-binaries.sh")
			break
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf(".ci/k8s-binaries.sh not found above %s", wd)
		}
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "alphaswarm-k8s-binaries.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	fmt.Fprintf(os.Stderr, "k8stest: building the control plane binaries with %s (a cold build takes about 20 minutes)\n", script)
	var out bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// baseDir is where cluster directories go: /dev/shm when it has room (etcd
// then never waits for a disk), else the temp dir.
func baseDir() string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && st.Bavail*uint64(st.Bsize) > 1<<30 {
		if f, err := os.CreateTemp("/dev/shm", dirPrefix+"probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// etcdHasWatchProgress reports whether etcd supports the watch progress
// requests the API server needs for watch-list streams: 3.4.31 and later
// 3.4 releases, 3.5.13 and later.
func etcdHasWatchProgress(etcd string) bool {
	out, err := exec.Command(etcd, "--version").Output()
	if err != nil {
		return false
	}
	m := regexp.MustCompile(`etcd Version: (\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		return false
	}
	v := [3]int{}
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	switch {
	case v[0] != 3:
		return v[0] > 3
	case v[1] == 4:
		return v[2] >= 31
	case v[1] == 5:
		return v[2] >= 13
	default:
		return v[1] > 5
	}
}

// startCluster starts a control plane, trying again with other ports when a
// component lost its port to another process.
func startCluster() (*Cluster, error) {
	bins, err := ensureBinaries()
	if err != nil {
		return nil, err
	}
	testproc.RemoveStale(os.TempDir(), dirPrefix, nil)
	for attempt := 1; ; attempt++ {
		c, err := startOnce(bins)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
	}
}

func startOnce(bins binaries) (_ *Cluster, err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	dir, err := makeDir(baseDir())
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()

	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort, kwokPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	pk, err := newPKI(dir)
	if err != nil {
		return nil, err
	}
	c.CAFile, c.CAData = pk.caFile, pk.caPEM
	apiCert, apiKey, err := pk.serving("apiserver", "127.0.0.1", "10.96.0.1", "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return nil, err
	}
	kwokCert, kwokKey, err := pk.serving("kwok", "127.0.0.1", "localhost")
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKeys(dir)
	if err != nil {
		return nil, err
	}
	c.Token = newToken()
	ids := []identity{
		{c.Token, "k8stest-admin", []string{"system:masters"}},
		{newToken(), "system:kube-controller-manager", nil},
		{newToken(), "system:kube-scheduler", nil},
		{newToken(), "kwok", []string{"system:masters"}},
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := writeTokenFile(tokenFile, ids); err != nil {
		return nil, err
	}
	webhook, webhookConfig, err := startTokenWebhook(pk, dir)
	if err != nil {
		return nil, err
	}
	c.webhook = webhook
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	kubeconfigs := []string{c.Kubeconfig, filepath.Join(dir, "controller-manager.kubeconfig"),
		filepath.Join(dir, "scheduler.kubeconfig"), filepath.Join(dir, "kwok.kubeconfig")}
	for i, id := range ids {
		if err := writeKubeconfig(kubeconfigs[i], c.Server, pk.caFile, id.user, id.token, ""); err != nil {
			return nil, err
		}
	}
	c.RESTConfig = &rest.Config{
		Host:            c.Server,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		QPS:             100,
		Burst:           200,
	}
	c.client, err = kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		return nil, err
	}

	// etcd
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := c.start("etcd", bins.etcd, nil,
		"--name=k8stest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=k8stest="+peerURL,
		"--initial-cluster-state=new",
		"--logger=zap",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := c.waitHTTP(ctx, etcd, plain, etcdURL+"/health", "", `"health":"true"`); err != nil {
		return nil, err
	}

	// kube-apiserver
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		// The endpoint reconcilers refuse a loopback address; with none,
		// the "kubernetes" Service simply has no endpoints.
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + apiCert,
		"--tls-private-key-file=" + apiKey,
		"--token-auth-file=" + tokenFile,
		"--authentication-token-webhook-config-file=" + webhookConfig,
		"--authentication-token-webhook-version=v1",
		"--authentication-token-webhook-cache-ttl=0s",
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + pk.caFile,
		"--allow-privileged=true",
		"--profiling=false",
	}
	if !etcdHasWatchProgress(bins.etcd) {
		// The API server turns a watch without a resource version into a
		// watch-list stream (sendInitialEvents), which it refuses when
		// etcd cannot report watch progress (before 3.4.31 and 3.5.13;
		// Debian's etcd is 3.4.23). Clients that do not fall back to a
		// LIST, like kwok, then see changes only when they relist, tens
		// of seconds late.
		apiArgs = append(apiArgs, "--feature-gates=WatchList=false")
	}
	apiserver, err := c.start("kube-apiserver", bins.apiserver, nil, apiArgs...)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(c.CAData)
	verified := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if err := c.waitHTTP(ctx, apiserver, verified, c.Server+"/readyz", c.Token, "ok"); err != nil {
		return nil, err
	}

	// The nodes exist before kwok starts, so that it takes them over at once.
	if err := c.createNodes(ctx, 2); err != nil {
		return nil, err
	}

	stagesFile := filepath.Join(dir, "kwok.yaml")
	c.LogFile = filepath.Join(dir, "container.log")
	execDir := filepath.Join(dir, "exec")
	for _, d := range []string{execDir, filepath.Join(dir, "kwok-home")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(c.LogFile, []byte(criLine(time.Now(), StartupLine)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(stagesFile, []byte(kwokConfig(c.LogFile, execDir)), 0o644); err != nil {
		return nil, err
	}

	kcm, err := c.start("kube-controller-manager", bins.controllerManager, nil,
		"--kubeconfig="+kubeconfigs[1],
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(kcmPort),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+saKey,
		"--root-ca-file="+pk.caFile,
		"--cluster-signing-cert-file="+pk.caFile,
		"--cluster-signing-key-file="+filepath.Join(dir, "ca.key"),
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	sched, err := c.start("kube-scheduler", bins.scheduler, nil,
		"--kubeconfig="+kubeconfigs[2],
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false",
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	kwok, err := c.start("kwok", bins.kwok, []string{"HOME=" + filepath.Join(dir, "kwok-home")},
		"--kubeconfig="+kubeconfigs[3],
		"--config="+stagesFile,
		"--manage-nodes-with-annotation-selector="+NodeAnnotation+"=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
		"--node-port="+strconv.Itoa(kwokPort),
		"--server-address=127.0.0.1:"+strconv.Itoa(kwokPort),
		"--tls-cert-file="+kwokCert,
		"--tls-private-key-file="+kwokKey,
		"--node-lease-duration-seconds=40",
	)
	if err != nil {
		return nil, err
	}

	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// The controller manager and the scheduler serve with self-signed
		// certificates of their own.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	if err := c.waitHTTP(ctx, kcm, insecure, "https://127.0.0.1:"+strconv.Itoa(kcmPort)+"/healthz", "", "ok"); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, sched, insecure, "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz", "", "ok"); err != nil {
		return nil, err
	}
	if err := c.waitHTTP(ctx, kwok, verified, "https://127.0.0.1:"+strconv.Itoa(kwokPort)+"/healthz", "", "ok"); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, kcm, "the default service account", func(ctx context.Context) (bool, error) {
		return c.hasServiceAccount(ctx, "default")
	}); err != nil {
		return nil, err
	}
	if err := c.waitFor(ctx, kwok, "the nodes to be Ready and schedulable", c.nodesReady); err != nil {
		return nil, err
	}
	c.StartupTime = time.Since(began)
	return c, nil
}

// start starts a component and registers it for stop.
func (c *Cluster) start(name, bin string, env []string, args ...string) (*proc, error) {
	p, err := startProc(c.Dir, name, bin, args, env)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// waitFor polls cond until it holds, p exits, or ctx ends.
func (c *Cluster) waitFor(ctx context.Context, p *proc, what string, cond func(context.Context) (bool, error)) error {
	var last error
	for {
		for _, q := range c.procs {
			if err := q.exited(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return p.failure(fmt.Sprintf("did not bring %s within %v (last error: %v)", what, startTimeout, last))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitHTTP waits until GET url answers 200 with a body containing want.
func (c *Cluster) waitHTTP(ctx context.Context, p *proc, client *http.Client, url, token, want string) error {
	return c.waitFor(ctx, p, "a healthy "+url, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(want)) {
			return false, fmt.Errorf("%s: %s: %s", url, resp.Status, firstLines(string(body), 20))
		}
		return true, nil
	})
}

func firstLines(s string, n int) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() && len(out) < n {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}

func (c *Cluster) hasServiceAccount(ctx context.Context, ns string) (bool, error) {
	_, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// createNodes creates the fake nodes kwok manages.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		res := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("32"),
			corev1.ResourceMemory: resource.MustParse("256Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{NodeAnnotation: "fake"},
				Labels: map[string]string{
					"type":                          "kwok",
					"kubernetes.io/hostname":        name,
					"kubernetes.io/os":              "linux",
					"kubernetes.io/arch":            "amd64",
					"node-role.kubernetes.io/agent": "",
				},
			},
			Status: corev1.NodeStatus{
				Capacity:    res,
				Allocatable: res,
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
					{Type: corev1.NodeHostName, Address: name},
				},
			},
		}
		if _, err := c.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return nil
}

// nodesReady reports whether every fake node is Ready and free of the
// not-ready and unreachable taints.
func (c *Cluster) nodesReady(ctx context.Context) (bool, error) {
	for _, name := range c.Nodes {
		n, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, fmt.Errorf("node %s is not Ready", name)
		}
		for _, t := range n.Spec.Taints {
			if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
				return false, fmt.Errorf("node %s has taint %s", name, t.Key)
			}
		}
	}
	return true, nil
}

// kwokConfig is kwok's --config: the stages plus the logs and exec rules
// for every pod.
func kwokConfig(logFile, execDir string) string {
	return kwokStages + fmt.Sprintf(`---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: k8stest-logs
spec:
  logs:
  - logsFile: %q
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: k8stest-exec
spec:
  execs:
  - local:
      workDir: %q
`, logFile, execDir)
}

// criLine formats one line of a container log the way the CRI writes it,
// which is what kwok reads.
func criLine(t time.Time, text string) string {
	return t.UTC().Format(time.RFC3339Nano) + " stdout F " + text + "\n"
}

// stop stops every component, the API server's clients first, and removes
// the cluster directory.
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, p := range c.procs {
			if p.name == "etcd" || p.name == "kube-apiserver" {
				continue
			}
			wg.Go(func() { p.stop(5 * time.Second) })
		}
		wg.Wait()
		for _, name := range []string{"kube-apiserver", "etcd"} {
			for _, p := range c.procs {
				if p.name == name {
					p.stop(10 * time.Second)
				}
			}
		}
		if c.webhook != nil {
			c.webhook.stop()
		}
		if c.Dir != "" && os.Getenv("ALPHASWARM_K8S_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "k8stest: ALPHASWARM_K8S_KEEP=1: leaving %s in place\n", c.Dir)
		} else if c.Dir != "" {
			if err := os.RemoveAll(c.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(os.Stderr, "k8stest: removing %s: %v\n", c.Dir, err)
			}
		}
	})
}
