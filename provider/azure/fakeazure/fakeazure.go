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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acifake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"
	monfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	kvfake "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"
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
}

// Metrics are the per-group values the fake's Azure Monitor reports.
type Metrics struct {
	CPUMillicores, MemoryBytes, RxBytesPerSecond, TxBytesPerSecond float64
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
}

type group struct {
	def      armcontainerinstance.ContainerGroup // as PUT, secure values included
	state    string                              // Pending, Running, Stopped, Failed
	pending  int
	started  time.Time
	restarts int32
	// stale is how many reads after a restart still report the previous
	// run as Running (ACI's instance view lags the restart operation);
	// staleView is set while they do.
	stale     int
	staleView bool
	logs      []logEntry
	events    []*armcontainerinstance.Event
}

type logEntry struct {
	t    time.Time
	text string
}

type secretVersion struct {
	version, value string
	tags           map[string]*string
	disabled       bool
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
		settings: map[settingID]*setting{}, calls: map[string]int{},
		metrics: Metrics{CPUMillicores: 250, MemoryBytes: 64 << 20, RxBytesPerSecond: 1000, TxBytesPerSecond: 500}}
	f.app = httptest.NewTLSServer(http.HandlerFunc(f.serveAppConfig))
	return f
}

// Close stops the App Configuration server.
func (f *Fake) Close() { f.app.Close() }

// Options returns the fake's options with defaults applied.
func (f *Fake) Options() Options { return f.opts }

// ACITransport is the Container Instances transport (container groups and
// containers clients).
func (f *Fake) ACITransport() policy.Transporter {
	return rgGuard{f: f, next: acifake.NewServerFactoryTransport(&acifake.ServerFactory{
		ContainerGroupsServer: f.containerGroupsServer(),
		ContainersServer:      f.containersServer(),
	})}
}

// rgGuard answers requests for a resource group other than the fake's
// with ARM's ResourceGroupNotFound response itself. (The generated fake
// keeps a pager whose first page was an error and answers the next list
// of the same URL with "fake paged response is empty".)
type rgGuard struct {
	f    *Fake
	next policy.Transporter
}

var rgPath = regexp.MustCompile(`(?i)/resourceGroups/([^/]+)/providers/`)

func (g rgGuard) Do(req *http.Request) (*http.Response, error) {
	if m := rgPath.FindStringSubmatch(req.URL.Path); m != nil && !strings.EqualFold(m[1], g.f.opts.ResourceGroup) {
		body, _ := json.Marshal(map[string]any{"error": map[string]string{
			"code": "ResourceGroupNotFound", "message": fmt.Sprintf("Resource group '%s' could not be found.", m[1])}})
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Request: req,
			Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Ms-Error-Code": {"ResourceGroupNotFound"}},
			Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}, nil
	}
	return g.next.Do(req)
}

// MonitorTransport is the Azure Monitor metrics transport.
func (f *Fake) MonitorTransport() policy.Transporter {
	return monfake.NewMetricsServerTransport(&monfake.MetricsServer{List: f.listMetrics})
}

// KeyVaultTransport is the Key Vault secrets transport.
func (f *Fake) KeyVaultTransport() policy.Transporter {
	return disabledShape{kvfake.NewServerTransport(&kvfake.Server{SetSecret: f.setSecret, GetSecret: f.getSecret, UpdateSecretProperties: f.updateSecretProperties})}
}

// disabledShape gives a read of a disabled secret Key Vault's error
// shape: 403 with the top-level code Forbidden and the reason in the inner
// error ({"error":{"code":"Forbidden","message":"Operation get is not
// allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}},
// as reported in Azure/azure-sdk-for-java#17991 and
// ansible-collections/azure#1989); the SDK's fake server can set only the
// top-level code.
type disabledShape struct{ next policy.Transporter }

func (t disabledShape) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(req)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "SecretDisabled" {
		return resp, err
	}
	body := `{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}`
	return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// AppConfigURL is the App Configuration store's endpoint (https).
func (f *Fake) AppConfigURL() string { return f.app.URL }

// AppConfigTransport is an HTTP client that trusts the store's
// certificate.
func (f *Fake) AppConfigTransport() policy.Transporter { return f.app.Client() }

// SetMetrics sets what Azure Monitor reports for every running group.
func (f *Fake) SetMetrics(m Metrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metrics = m
}

// SetExec makes executeCommand answer with handler's WebSocket URI and
// password. command is the request's command string exactly as sent: ACI
// runs it as one executable path, never split into arguments ("ls /" is an
// executable named "ls /"; Azure/azure-cli#10039), and the request itself
// is accepted, the failure showing only on the socket, so a handler
// playing the container must not split it either.
func (f *Fake) SetExec(handler func(group, command string, rows, cols int) (uri, password string, err error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exec = handler
}

// Calls returns how many times an operation ("Stop", "BeginRestart",
// "BeginCreateOrUpdate", ...) was called.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *Fake) rgOK(rg string, e *azfake.ErrorResponder) bool {
	if !strings.EqualFold(rg, f.opts.ResourceGroup) {
		e.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
		return false
	}
	return true
}

func (f *Fake) groupID(name string) string {
	return "/subscriptions/" + f.opts.SubscriptionID + "/resourceGroups/" + f.opts.ResourceGroup +
		"/providers/Microsoft.ContainerInstance/containerGroups/" + name
}

// nextStart returns a start time after every earlier one, so that run ids
// differ even within a clock tick.
func (f *Fake) nextStart() time.Time {
	t := time.Now().UTC()
	if !t.After(f.lastStart) {
		t = f.lastStart.Add(time.Microsecond)
	}
	f.lastStart = t
	return t
}

func (f *Fake) image(g *group) string {
	if p := g.def.Properties; p != nil && len(p.Containers) > 0 && p.Containers[0].Properties != nil {
		return str(p.Containers[0].Properties.Image)
	}
	return ""
}

// launch (re)starts a group's container: Pending for PendingReads reads.
func (f *Fake) launch(g *group) {
	g.logs = nil
	g.started = time.Time{}
	g.state, g.pending = "Pending", f.opts.PendingReads
}

// read advances a group by one observation.
func (f *Fake) read(g *group) {
	g.staleView = false
	if g.stale > 0 {
		g.stale--
		g.staleView = true
		return
	}
	if g.state != "Pending" {
		return
	}
	if g.pending--; g.pending > 0 {
		return
	}
	g.state = "Running"
	g.started = f.nextStart()
	if f.opts.StartupLine != "" {
		g.logs = append(g.logs, logEntry{t: g.started, text: f.opts.StartupLine})
	}
	now := time.Now().UTC()
	g.events = append(g.events, &armcontainerinstance.Event{Type: to.Ptr("Normal"), Name: to.Ptr("Started"),
		Message: to.Ptr("Started container"), Count: to.Ptr[int32](1), FirstTimestamp: &now, LastTimestamp: &now})
}

// view renders a group as Get returns it: secure values removed, instance
// view added when withView.
func (f *Fake) view(name string, g *group, withView bool) armcontainerinstance.ContainerGroup {
	cg := clone(g.def)
	cg.ID, cg.Name = to.Ptr(f.groupID(name)), to.Ptr(name)
	cg.Type = to.Ptr("Microsoft.ContainerInstance/containerGroups")
	ps := "Succeeded"
	state := g.state
	if g.staleView {
		state = "Running"
	}
	switch state {
	case "Pending":
		ps = "Creating"
	case "Failed":
		ps = "Failed"
	}
	cg.Properties.ProvisioningState = to.Ptr(ps)
	for _, c := range cg.Properties.Containers {
		if c.Properties == nil {
			continue
		}
		for _, e := range c.Properties.EnvironmentVariables {
			e.SecureValue = nil
		}
		if !withView {
			continue
		}
		cs := &armcontainerinstance.ContainerState{}
		switch state {
		case "Running":
			cs.State, cs.DetailStatus, cs.StartTime = to.Ptr("Running"), to.Ptr(""), to.Ptr(g.started)
		case "Stopped":
			cs.State, cs.DetailStatus = to.Ptr("Terminated"), to.Ptr("Stopped")
			if !g.started.IsZero() {
				cs.StartTime = to.Ptr(g.started)
			}
		case "Failed":
			cs.State, cs.DetailStatus = to.Ptr("Waiting"), to.Ptr("ErrImagePull")
		default:
			cs.State, cs.DetailStatus = to.Ptr("Waiting"), to.Ptr("ContainerCreating")
		}
		c.Properties.InstanceView = &armcontainerinstance.ContainerPropertiesInstanceView{
			CurrentState: cs, RestartCount: to.Ptr(g.restarts), Events: slices.Clone(g.events)}
	}
	if withView {
		cg.Properties.InstanceView = &armcontainerinstance.ContainerGroupPropertiesInstanceView{State: to.Ptr(state)}
	}
	return cg
}

// fixedProps renders what ACI cannot update in place.
func fixedProps(cg armcontainerinstance.ContainerGroup) string {
	p := cg.Properties
	if p == nil {
		return ""
	}
	type ctr struct {
		Name      string
		Resources *armcontainerinstance.ResourceRequirements
		Ports     []*armcontainerinstance.ContainerPort
	}
	v := struct {
		OS, Restart string
		Subnets     []*armcontainerinstance.ContainerGroupSubnetID
		IP          *armcontainerinstance.IPAddress
		Containers  []ctr
	}{OS: string(deref(p.OSType)), Restart: string(deref(p.RestartPolicy)), Subnets: p.SubnetIDs}
	if p.IPAddress != nil {
		v.IP = &armcontainerinstance.IPAddress{Type: p.IPAddress.Type, Ports: p.IPAddress.Ports}
	}
	for _, c := range p.Containers {
		if c != nil && c.Properties != nil {
			v.Containers = append(v.Containers, ctr{str(c.Name), c.Properties.Resources, c.Properties.Ports})
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func clone(cg armcontainerinstance.ContainerGroup) armcontainerinstance.ContainerGroup {
	b, _ := cg.MarshalJSON()
	var out armcontainerinstance.ContainerGroup
	_ = out.UnmarshalJSON(b)
	return out
}

func (f *Fake) containerGroupsServer() acifake.ContainerGroupsServer {
	return acifake.ContainerGroupsServer{
		BeginCreateOrUpdate: func(_ context.Context, rg, name string, cg armcontainerinstance.ContainerGroup, _ *armcontainerinstance.ContainerGroupsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientCreateOrUpdateResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["BeginCreateOrUpdate"]++
			if !f.rgOK(rg, &e) {
				return
			}
			if cg.Location == nil || cg.Properties == nil || len(cg.Properties.Containers) == 0 {
				e.SetResponseError(http.StatusBadRequest, "InvalidRequestContent")
				return
			}
			if msg := f.checkReadOnly("BeginCreateOrUpdate", cg); msg != "" {
				e.SetResponseError(http.StatusBadRequest, "InvalidRequestContent")
				return
			}
			if cp := cg.Properties.Containers[0].Properties; cp != nil && slices.Contains(f.opts.FailingImages, str(cp.Image)) {
				e.SetResponseError(http.StatusBadRequest, "InaccessibleImage")
				return
			}
			g := f.groups[name]
			if g != nil && fixedProps(g.def) != fixedProps(cg) {
				// Modelled on ACI, which refuses an update of the OS
				// type, restart policy, network (IP address type, ports,
				// subnet), CPU or memory of an existing group ("...you
				// must delete it first and then create a new one").
				e.SetResponseError(http.StatusConflict, "InvalidContainerGroupUpdate")
				return
			}
			status := http.StatusOK
			if g == nil {
				g = &group{}
				f.groups[name] = g
				status = http.StatusCreated
			}
			g.def = clone(cg)
			f.launch(g)
			resp.AddNonTerminalResponse(status, nil)
			resp.SetTerminalResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientCreateOrUpdateResponse{ContainerGroup: f.view(name, g, false)}, nil)
			return
		},
		BeginDelete: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientDeleteResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["BeginDelete"]++
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil {
				resp.SetTerminalResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientDeleteResponse{}, nil)
				return
			}
			v := f.view(name, g, false)
			delete(f.groups, name)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientDeleteResponse{ContainerGroup: v}, nil)
			return
		},
		Get: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientGetOptions) (resp azfake.Responder[armcontainerinstance.ContainerGroupsClientGetResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil {
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			f.read(g)
			resp.SetResponse(http.StatusOK, armcontainerinstance.ContainerGroupsClientGetResponse{ContainerGroup: f.view(name, g, true)}, nil)
			return
		},
		NewListByResourceGroupPager: func(rg string, _ *armcontainerinstance.ContainerGroupsClientListByResourceGroupOptions) (resp azfake.PagerResponder[armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse]) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !strings.EqualFold(rg, f.opts.ResourceGroup) {
				resp.AddResponseError(http.StatusNotFound, "ResourceGroupNotFound")
				return
			}
			var page []*armcontainerinstance.ContainerGroup
			for _, name := range sortedKeys(f.groups) {
				v := f.view(name, f.groups[name], false)
				page = append(page, &v)
			}
			// Two pages when there is more than one group, to exercise
			// nextLink.
			half := len(page) / 2
			if half > 0 {
				resp.AddPage(http.StatusOK, armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse{ContainerGroupListResult: armcontainerinstance.ContainerGroupListResult{Value: page[:half]}}, nil)
			}
			resp.AddPage(http.StatusOK, armcontainerinstance.ContainerGroupsClientListByResourceGroupResponse{ContainerGroupListResult: armcontainerinstance.ContainerGroupListResult{Value: page[half:]}}, nil)
			return
		},
		BeginRestart: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientBeginRestartOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientRestartResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["BeginRestart"]++
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil {
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if slices.Contains(f.opts.FailingImages, f.image(g)) {
				e.SetResponseError(http.StatusBadRequest, "InaccessibleImage")
				return
			}
			// A running group's previous run stays visible (Running)
			// for one read after the operation, then the new run is Pending
			// (Waiting) for PendingReads reads and Running with a new
			// start time.
			prev, wasRunning := g.started, g.state == "Running"
			f.launch(g)
			if wasRunning && g.state == "Pending" {
				g.started, g.stale = prev, 1
			}
			// The restart operation answers 204 only (no polling).
			resp.SetTerminalResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientRestartResponse{}, nil)
			return
		},
		BeginStart: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientBeginStartOptions) (resp azfake.PollerResponder[armcontainerinstance.ContainerGroupsClientStartResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["BeginStart"]++
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil {
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			if slices.Contains(f.opts.FailingImages, f.image(g)) {
				e.SetResponseError(http.StatusBadRequest, "InaccessibleImage")
				return
			}
			f.launch(g)
			resp.AddNonTerminalResponse(http.StatusAccepted, nil)
			resp.SetTerminalResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientStartResponse{}, nil)
			return
		},
		Stop: func(_ context.Context, rg, name string, _ *armcontainerinstance.ContainerGroupsClientStopOptions) (resp azfake.Responder[armcontainerinstance.ContainerGroupsClientStopResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls["Stop"]++
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil {
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			g.state = "Stopped"
			resp.SetResponse(http.StatusNoContent, armcontainerinstance.ContainerGroupsClientStopResponse{}, nil)
			return
		},
	}
}

func (f *Fake) containersServer() acifake.ContainersServer {
	return acifake.ContainersServer{
		ListLogs: func(_ context.Context, rg, name, container string, o *armcontainerinstance.ContainersClientListLogsOptions) (resp azfake.Responder[armcontainerinstance.ContainersClientListLogsResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if !f.rgOK(rg, &e) {
				return
			}
			g := f.groups[name]
			if g == nil || !f.hasContainer(g, container) {
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			lines := g.logs
			f.calls["ListLogs"]++
			if o == nil || o.Tail == nil {
				f.calls["ListLogs without tail"]++
			}
			if o != nil && o.Tail != nil && int(*o.Tail) < len(lines) {
				lines = lines[len(lines)-int(*o.Tail):]
			}
			var b strings.Builder
			for _, l := range lines {
				if o != nil && o.Timestamps != nil && *o.Timestamps {
					b.WriteString(l.t.Format(time.RFC3339Nano) + " ")
				}
				b.WriteString(l.text + "\n")
			}
			content := b.String()
			// Containers_ListLogs "tail": "If not provided, all available
			// logs are shown up to 4mb" (azure-rest-api-specs,
			// containerInstance.json): the newest 4 MB, from a line start.
			if len(content) > MaxLogBytes {
				content = content[len(content)-MaxLogBytes:]
				if i := strings.IndexByte(content, '\n'); i >= 0 {
					content = content[i+1:]
				}
			}
			f.logBytes += len(content)
			resp.SetResponse(http.StatusOK, armcontainerinstance.ContainersClientListLogsResponse{Logs: armcontainerinstance.Logs{Content: to.Ptr(content)}}, nil)
			return
		},
		ExecuteCommand: func(_ context.Context, rg, name, container string, req armcontainerinstance.ContainerExecRequest, _ *armcontainerinstance.ContainersClientExecuteCommandOptions) (resp azfake.Responder[armcontainerinstance.ContainersClientExecuteCommandResponse], e azfake.ErrorResponder) {
			f.mu.Lock()
			f.calls["ExecuteCommand"]++
			exec := f.exec
			ok := f.rgOK(rg, &e)
			g := f.groups[name]
			running := g != nil && g.state == "Running" && f.hasContainer(g, container)
			f.mu.Unlock()
			switch {
			case !ok:
				return
			case g == nil:
				e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			case !running:
				e.SetResponseError(http.StatusConflict, "ContainerGroupTransitioning")
				return
			case exec == nil:
				e.SetResponseError(http.StatusBadRequest, "ExecNotConfigured")
				return
			}
			rows, cols := 0, 0
			if ts := req.TerminalSize; ts != nil {
				rows, cols = int(deref(ts.Rows)), int(deref(ts.Cols))
			}
			uri, pw, err := exec(name, str(req.Command), rows, cols)
			if err != nil {
				e.SetError(err)
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerinstance.ContainersClientExecuteCommandResponse{
				ContainerExecResponse: armcontainerinstance.ContainerExecResponse{WebSocketURI: to.Ptr(uri), Password: to.Ptr(pw)}}, nil)
			return
		},
	}
}

func (f *Fake) hasContainer(g *group, name string) bool {
	for _, c := range g.def.Properties.Containers {
		if str(c.Name) == name {
			return true
		}
	}
	return false
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

// parseISODuration parses the PT…H/M/S durations Azure Monitor takes.
func parseISODuration(s string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok {
		return 0, false
	}
	var d time.Duration
	for rest != "" {
		i := strings.IndexAny(rest, "HMS")
		if i <= 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, false
		}
		unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}[rest[i]]
		d += time.Duration(v * float64(unit))
		rest = rest[i+1:]
	}
	return d, d > 0
}

func (f *Fake) listMetrics(_ context.Context, resourceURI string, o *armmonitor.MetricsClientListOptions) (resp azfake.Responder[armmonitor.MetricsClientListResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["MetricsList"]++
	prefix := strings.TrimPrefix(f.groupID(""), "/")
	name, ok := strings.CutPrefix(strings.TrimPrefix(resourceURI, "/"), prefix)
	g := f.groups[name]
	if !ok || g == nil {
		e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
		return
	}
	if o == nil || o.Interval == nil || o.Metricnames == nil {
		e.SetResponseError(http.StatusBadRequest, "BadRequest")
		return
	}
	every, ok := parseISODuration(*o.Interval)
	// Time grains of Microsoft.ContainerInstance/containerGroups metrics:
	// PT1M, PT5M, PT15M, PT30M, PT1H, PT6H, PT12H ("Supported metrics for
	// Microsoft.ContainerInstance/containerGroups", learn.microsoft.com).
	// Sub-minute grains stay accepted: the tests run at millisecond
	// intervals (the provider holds real targets to the list).
	if !ok || (every >= time.Minute && !slices.Contains(aciTimeGrains, every)) {
		e.SetResponseError(http.StatusBadRequest, "BadRequest")
		return
	}
	now := time.Now().UTC().Truncate(every)
	values := map[string]float64{
		"CpuUsage": f.metrics.CPUMillicores, "MemoryUsage": f.metrics.MemoryBytes,
		"NetworkBytesReceivedPerSecond": f.metrics.RxBytesPerSecond, "NetworkBytesTransmittedPerSecond": f.metrics.TxBytesPerSecond,
	}
	units := map[string]armmonitor.MetricUnit{"CpuUsage": armmonitor.MetricUnitCount, "MemoryUsage": armmonitor.MetricUnitBytes,
		"NetworkBytesReceivedPerSecond": armmonitor.MetricUnitBytesPerSecond, "NetworkBytesTransmittedPerSecond": armmonitor.MetricUnitBytesPerSecond}
	out := armmonitor.Response{Timespan: o.Timespan, Interval: o.Interval, Namespace: to.Ptr("Microsoft.ContainerInstance/containerGroups")}
	for _, m := range strings.Split(*o.Metricnames, ",") {
		v, known := values[m]
		if !known {
			e.SetResponseError(http.StatusBadRequest, "BadRequest")
			return
		}
		var data []*armmonitor.MetricValue
		for i := 2; i >= 0; i-- {
			t := now.Add(-time.Duration(i) * every)
			mv := &armmonitor.MetricValue{TimeStamp: to.Ptr(t)}
			// Points exist only while the container runs.
			if g.state == "Running" && !t.Before(g.started.Truncate(every)) {
				mv.Average = to.Ptr(v)
			}
			data = append(data, mv)
		}
		out.Value = append(out.Value, &armmonitor.Metric{ID: to.Ptr(resourceURI + "/providers/Microsoft.Insights/metrics/" + m),
			Name: &armmonitor.LocalizableString{Value: to.Ptr(m), LocalizedValue: to.Ptr(m)}, Type: to.Ptr("Microsoft.Insights/metrics"),
			Unit: to.Ptr(units[m]), Timeseries: []*armmonitor.TimeSeriesElement{{Data: data}}})
	}
	resp.SetResponse(http.StatusOK, armmonitor.MetricsClientListResponse{Response: out}, nil)
	return
}

func (f *Fake) setSecret(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (resp azfake.Responder[azsecrets.SetSecretResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["SetSecret"]++
	if msg := f.checkReadOnly("SetSecret", p); msg != "" {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	// Key Vault service limits: "Secret value size: 25k bytes"
	// (learn.microsoft.com, Azure Key Vault service limits); the fake
	// takes 25,000 bytes, the lower reading of "25k".
	if len(str(p.Value)) > MaxSecretBytes {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	f.kvSeq++
	v := secretVersion{version: fmt.Sprintf("%032x", f.kvSeq), value: str(p.Value), tags: p.Tags}
	f.secrets[name] = append(f.secrets[name], v)
	resp.SetResponse(http.StatusOK, azsecrets.SetSecretResponse{Secret: f.secretOf(name, v)}, nil)
	return
}

func (f *Fake) secretOf(name string, v secretVersion) azsecrets.Secret {
	return azsecrets.Secret{ID: to.Ptr(azsecrets.ID(VaultURL + "/secrets/" + name + "/" + v.version)),
		Value: to.Ptr(v.value), Tags: v.tags, Attributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(!v.disabled)}}
}

func (f *Fake) getSecret(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	for i := len(vs) - 1; i >= 0; i-- {
		if version == "" || vs[i].version == version {
			if vs[i].disabled {
				// Key Vault: 403, "Operation get is not allowed on a
				// disabled secret" (inner error SecretDisabled).
				e.SetResponseError(http.StatusForbidden, "SecretDisabled")
				return
			}
			resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: f.secretOf(name, vs[i])}, nil)
			return
		}
	}
	e.SetResponseError(http.StatusNotFound, "SecretNotFound")
	return
}

func (f *Fake) updateSecretProperties(_ context.Context, name, version string, p azsecrets.UpdateSecretPropertiesParameters, _ *azsecrets.UpdateSecretPropertiesOptions) (resp azfake.Responder[azsecrets.UpdateSecretPropertiesResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["UpdateSecretProperties"]++
	if msg := f.checkReadOnly("UpdateSecretProperties", p); msg != "" {
		e.SetResponseError(http.StatusBadRequest, "BadParameter")
		return
	}
	vs := f.secrets[name]
	for i := len(vs) - 1; i >= 0; i-- {
		if version == "" || vs[i].version == version {
			if a := p.SecretAttributes; a != nil && a.Enabled != nil {
				vs[i].disabled = !*a.Enabled
			}
			s := f.secretOf(name, vs[i])
			resp.SetResponse(http.StatusOK, azsecrets.UpdateSecretPropertiesResponse{Secret: azsecrets.Secret{ID: s.ID, Tags: s.Tags, Attributes: s.Attributes}}, nil)
			return
		}
	}
	e.SetResponseError(http.StatusNotFound, "SecretNotFound")
	return
}

// SecretVersions returns how many versions of a Key Vault secret exist
// and whether the latest is enabled.
func (f *Fake) SecretVersions(name string) (n int, latestEnabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	if len(vs) == 0 {
		return 0, false
	}
	return len(vs), !vs[len(vs)-1].disabled
}

// Observation is the fake's own account of a service's groups.
type Observation struct {
	// Groups are the service's container groups (any state).
	Groups []string
	// Running are the ids of the running container runs,
	// "<group>@<start>".
	Running []string
}

// Observe reports the container groups tagged with service and target.
func (f *Fake) Observe(target, service string) Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	var o Observation
	for _, name := range sortedKeys(f.groups) {
		g := f.groups[name]
		if str(g.def.Tags["alphaswarm.service"]) != service || str(g.def.Tags["alphaswarm.target"]) != target {
			continue
		}
		o.Groups = append(o.Groups, name)
		if g.state == "Running" {
			o.Running = append(o.Running, name+"@"+g.started.Format(InstanceTimeFormat))
		}
	}
	return o
}

// Env returns the environment (secure values included) of the service's
// running group with the lowest name, as the workload sees it; nil if
// none runs.
func (f *Fake) Env(target, service string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range sortedKeys(f.groups) {
		g := f.groups[name]
		if str(g.def.Tags["alphaswarm.service"]) != service || str(g.def.Tags["alphaswarm.target"]) != target || g.state != "Running" {
			continue
		}
		env := map[string]string{}
		for _, e := range g.def.Properties.Containers[0].Properties.EnvironmentVariables {
			v := e.Value
			if e.SecureValue != nil {
				v = e.SecureValue
			}
			env[str(e.Name)] = str(v)
		}
		return env
	}
	return nil
}

// Group returns a group's definition as stored (secure values included).
func (f *Fake) Group(name string) (armcontainerinstance.ContainerGroup, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[name]
	if !ok {
		return armcontainerinstance.ContainerGroup{}, "", false
	}
	return clone(g.def), g.state, true
}

// EmitLog makes every running container of the service print text.
func (f *Fake) EmitLog(target, service, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.groups {
		if str(g.def.Tags["alphaswarm.service"]) == service && str(g.def.Tags["alphaswarm.target"]) == target && g.state == "Running" {
			g.logs = append(g.logs, logEntry{t: time.Now().UTC(), text: text})
		}
	}
}

// AppendLog appends a line with a given time to a group's log.
func (f *Fake) AppendLog(group string, t time.Time, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.groups[group]; g != nil {
		g.logs = append(g.logs, logEntry{t: t.UTC(), text: text})
	}
}

// Delete removes every group of the service.
func (f *Fake) Delete(target, service string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, g := range f.groups {
		if str(g.def.Tags["alphaswarm.service"]) == service && str(g.def.Tags["alphaswarm.target"]) == target {
			delete(f.groups, name)
		}
	}
}

// Secret returns the latest value of a Key Vault secret.
func (f *Fake) Secret(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.secrets[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1].value, true
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// MaxSecretBytes is the Key Vault secret value limit the fake enforces.
const MaxSecretBytes = 25000

var aciTimeGrains = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 6 * time.Hour, 12 * time.Hour}

// MaxLogBytes is how much of a log ListLogs returns without a tail.
const MaxLogBytes = 4 << 20

// LogBytes is how many bytes of log content ListLogs has returned in all.
func (f *Fake) LogBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logBytes
}
