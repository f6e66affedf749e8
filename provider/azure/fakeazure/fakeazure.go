// Package fakeazure is an in-process Azure for the azure provider's tests:
// stateful fakes of Container Instances (container groups whose instances
// go Pending → Running over successive reads, stop/start/restart, logs,
// exec, images that fail to pull), Azure Monitor metrics and Key Vault
// secrets, all built on the SDK's own generated fake servers
// (armcontainerinstance/v2/fake, armmonitor/fake, azsecrets/fake) and
// plugged in as the clients' transports, so the SDK's serialisation,
// pipelines and long-running-operation pollers run for real; and an App
// Configuration store served over TLS (httptest.NewTLSServer) speaking its
// REST API, Sync-Token included, since the SDK has no fake for it.
//
// A Fake's state is observable by tests (Observe, Env, Settings, Secret)
// independently of the provider. All methods are safe for concurrent use.
package fakeazure

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	acifake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2/fake"
)

// VaultURL is the Key Vault URL the fake answers for (any host reaches
// the fake transport; secret ids carry this one).
const VaultURL = "https://fake-vault.vault.azure.net"

// InstanceTimeFormat formats a container's start time in instance ids
// ("<group>@<start>"), as the azure provider does.
const InstanceTimeFormat = "20060102T150405.000000000Z"

// Options configure a Fake.
type Options struct {
	// SubscriptionID and ResourceGroup are the ones that exist; others
	// answer SubscriptionNotFound / ResourceGroupNotFound.
	SubscriptionID string
	ResourceGroup  string
	// PendingReads is how many reads (Get) of a container group it stays
	// Pending after being created, started or restarted. Default 2.
	PendingReads int
	// StartupLine is printed by every container when it starts.
	StartupLine string
	// FailingImages cannot be pulled. ACI checks the image on the
	// request itself: create/update, start and restart answer 400
	// InaccessibleImage at once ("The image '...' in container group '...'
	// is not accessible. Please check the image and registry
	// credential."; Azure/azure-cli#18596, Azure/azure-sdk-for-python#16731,
	// Azure/docker-login#65), and no group is created or changed.
	FailingImages []string
	// Roles are the caller's role assignments on the resource group
	// (nil: Owner). The permissions API reports them and every ACI and
	// Azure Monitor request is authorised against them (rbac.go).
	Roles []Role
}

// Fake is the in-process Azure.
type Fake struct {
	opts Options

	mu         sync.Mutex
	groups     map[string]*group // by name (one resource group)
	lastStart  time.Time
	secrets    map[string][]secretVersion
	kvSeq      int
	settings   map[settingID]*setting
	syncSeq    int
	metrics    Metrics
	exec       func(group, command string, rows, cols int) (uri, password string, err error)
	calls      map[string]int
	violations []string // requests the contract check refused (contract.go)
	logBytes   int      // log content served by ListLogs
	aks        map[string]*aksCluster
	aksFormat  string

	app *httptest.Server

	attachSrv      *httptest.Server         // the attach WebSocket endpoint (attach.go)
	attachSessions map[string]attachSession // by session id
}

// New starts a Fake (the App Configuration TLS server included); Close
// stops it.
func New(opts Options) *Fake {
	if opts.SubscriptionID == "" {
		opts.SubscriptionID = "00000000-0000-0000-0000-000000000000"
	}
	if opts.ResourceGroup == "" {
		opts.ResourceGroup = "alphaswarm"
	}
	if opts.PendingReads == 0 {
		opts.PendingReads = 2
	}
	f := &Fake{opts: opts, groups: map[string]*group{}, secrets: map[string][]secretVersion{},
		settings: map[settingID]*setting{}, calls: map[string]int{}, attachSessions: map[string]attachSession{},
		metrics: Metrics{CPUMillicores: 250, MemoryBytes: 64 << 20, RxBytesPerSecond: 1000, TxBytesPerSecond: 500}}
	f.app = httptest.NewTLSServer(http.HandlerFunc(f.serveAppConfig))
	f.startAttachServer()
	return f
}

// Close stops the App Configuration server and the attach endpoint.
func (f *Fake) Close() {
	f.closeAttach()
	f.app.Close()
}

// Options returns the fake's options with defaults applied.
func (f *Fake) Options() Options { return f.opts }

// ACITransport is the Container Instances transport (container groups and
// containers clients).
func (f *Fake) ACITransport() policy.Transporter {
	return rbac{f: f, next: rgGuard{f: f, next: acifake.NewServerFactoryTransport(&acifake.ServerFactory{
		ContainerGroupsServer: f.containerGroupsServer(),
		ContainersServer:      f.containersServer(),
	})}}
}

// AppConfigURL is the App Configuration store's endpoint (https).
func (f *Fake) AppConfigURL() string { return f.app.URL }

// AppConfigTransport is an HTTP client that trusts the store's
// certificate.
func (f *Fake) AppConfigTransport() policy.Transporter { return f.app.Client() }

// Calls returns how many times an operation ("Stop", "BeginRestart",
// "BeginCreateOrUpdate", ...) was called.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func deref[T any](v *T) T {
	var zero T
	if v == nil {
		return zero
	}
	return *v
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
