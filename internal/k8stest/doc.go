// Package k8stest starts a throwaway Kubernetes control plane for tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok,
// which plays the kubelet for a few fake nodes so that Deployments get
// ReplicaSets, Pods get scheduled and become Running and Ready without any
// container runtime.
//
// Starting the control plane takes several seconds, so a test binary shares
// one: Start returns it, starting it on first use. A package that uses it
// should stop it at the end with
//
//	func TestMain(m *testing.M) { k8stest.Main(m) }
//
// or by calling Shutdown after m.Run. Tests isolate themselves with
// Namespace, which gives each test a fresh namespace deleted when it ends.
//
// # Binaries
//
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok are looked
// up in $ALPHASWARM_K8S_BIN, else in $ALPHASWARM_K8S_CACHE/bin, else in
// /var/cache/alphaswarm/k8s-v1.37.2/bin (where .ci/k8s-binaries.sh builds
// them); etcd there or on PATH; kubectl (Cluster.Kubectl only) on PATH or
// there.
// When they are missing, Start runs .ci/k8s-binaries.sh if
// ALPHASWARM_K8S_BUILD=1 (a cold build takes about 20 minutes); otherwise it
// skips the test with a line starting "SKIPPING:", unless the environment
// variable CI is set, in which case the test fails loudly: CI must not pass
// by skipping the Kubernetes tests. A control plane whose binaries are
// present but which fails to start always fails the test, with the tail of
// the failing component's log.
//
// # What runs
//
// Everything listens on 127.0.0.1 only, on free ports: etcd (client and
// peer URLs; data on /dev/shm when available), kube-apiserver
// (--bind-address=127.0.0.1, --advertise-address=127.0.0.1 with
// --endpoint-reconciler-type=none, since the endpoint reconcilers refuse a
// loopback address: the "kubernetes" Service has no endpoints), the
// controller manager and the scheduler (--bind-address=127.0.0.1, no leader
// election) and kwok's kubelet endpoint, which the API server reaches for
// logs and exec. The package generates, in the cluster's temporary
// directory, a self-signed CA and serving certificates (crypto/x509), a
// service-account signing key pair, a static token file and a kubeconfig
// per component.
//
// With an etcd older than 3.4.31 (or 3.5.13), such as Debian's 3.4.23, the
// API server runs with --feature-gates=WatchList=false: otherwise it turns
// every watch without a resource version into a watch-list stream, which it
// then refuses for want of etcd's watch progress requests, and clients that
// do not fall back to a plain LIST and watch (kwok among them) see changes
// only when they relist, up to a minute late. client-go's informers work
// either way.
//
// Authentication is by bearer token (--token-auth-file): Cluster.Token
// belongs to user "k8stest-admin" in group system:masters. The controller
// manager runs as system:kube-controller-manager with
// --use-service-account-credentials (one service account per controller, as
// kubeadm sets it up), the scheduler as system:kube-scheduler, kwok as
// "kwok" in system:masters. Authorization is RBAC
// (--authorization-mode=RBAC), so ImpersonatedConfig yields clients that
// get Forbidden like any unprivileged user. Admission plugins are the API
// server's defaults (NamespaceLifecycle, ServiceAccount, PodSecurity,
// ResourceQuota, ...); none is added.
//
// # The fake nodes and what pods do
//
// Nodes (Cluster.Nodes) carry the annotation kwok.x-k8s.io/node=fake, the
// only nodes kwok manages; each advertises 32 CPUs, 256Gi and 110 pods.
// kwok uses the "fast" stages shipped with kwok v0.8.0 (node-initialize,
// node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete; see
// kwok-stages.yaml) plus two of this package's own, selected by image:
//
//   - ImagePullFailImage: the pod stays Pending with its container waiting
//     in ImagePullBackOff, as with an image that does not exist;
//   - CrashLoopImage: the pod is Running but not Ready, its container
//     waiting in CrashLoopBackOff after exiting 1.
//
// Any other image runs: the pod becomes Running and Ready within about a
// second of being scheduled. Deleted pods go away at once (no grace period
// is honoured). Containers do not run: kwok serves every container's log
// from one shared file (StartupLine, then whatever AppendLog adds) and runs
// exec'd commands on the host, as the test process's user, in the cluster
// directory (so "echo hello" prints hello). kwok reports a failing exec
// command as an error, not as an exit code. There is no metrics.k8s.io
// (no Metrics Server), so a provider's metrics stream sees it unavailable.
//
// Every process is a direct child of the test process with a parent-death
// signal (SIGKILL, on Linux), so a test binary that crashes or is killed by
// -timeout leaves nothing running; the directories such a run leaves behind
// are removed by the next run. Component logs go to files in the cluster
// directory (Cluster.Dir, see ComponentLog); ALPHASWARM_K8S_KEEP=1 leaves
// that directory in place after Shutdown for a post-mortem.
package k8stest
