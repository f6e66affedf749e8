package fakeazure

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acifake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2/fake"
)

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
	subs      []*attachSub // attach sockets of the current run (attach.go)
}

type logEntry struct {
	t    time.Time
	text string
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
	f.endRun(g)
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
		f.output(g, 1, g.started, f.opts.StartupLine)
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
			if g != nil && (g.state == "Failed" || g.state == "Succeeded") {
				// "Terminated or deleted container groups can't be
				// updated. Once a container group has terminated (is in
				// either a Succeeded or Failed state) ... the group must
				// be deployed as new" (container-instances-update,
				// learn.microsoft.com). The error code ACI answers with is
				// not documented; the fake uses its code for the other
				// updates ACI refuses.
				f.calls["update of a terminated group"]++
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
			f.endRun(g)
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
			g := f.relaunchable("BeginRestart", rg, name, &e)
			if g == nil {
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
			g := f.relaunchable("BeginStart", rg, name, &e)
			if g == nil {
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
			f.endRun(g)
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
		Attach: f.attach,
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

// relaunchable counts op and returns the group that a start or restart
// may launch again, or nil with e set: the resource group and the group
// must exist, and ACI pulls the image again, refusing one it cannot pull
// at once (400 InaccessibleImage; see Options.FailingImages). f.mu is held.
func (f *Fake) relaunchable(op, rg, name string, e *azfake.ErrorResponder) *group {
	f.calls[op]++
	if !f.rgOK(rg, e) {
		return nil
	}
	g := f.groups[name]
	if g == nil {
		e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
		return nil
	}
	if slices.Contains(f.opts.FailingImages, f.image(g)) {
		e.SetResponseError(http.StatusBadRequest, "InaccessibleImage")
		return nil
	}
	return g
}

func (f *Fake) hasContainer(g *group, name string) bool {
	for _, c := range g.def.Properties.Containers {
		if str(c.Name) == name {
			return true
		}
	}
	return false
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

// FailGroup ends a group's run as an infrastructure failure does: its
// instance view state becomes Failed ("Azure Container Instances states":
// with restart policy Always, Failed means an infrastructure failure). ACI
// then refuses to update it; it must be deleted and created again.
func (f *Fake) FailGroup(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.groups[name]; g != nil {
		g.state = "Failed"
		f.endRun(g)
	}
}

// EmitLog makes every running container of the service print text.
func (f *Fake) EmitLog(target, service, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.groups {
		if str(g.def.Tags["alphaswarm.service"]) == service && str(g.def.Tags["alphaswarm.target"]) == target && g.state == "Running" {
			f.output(g, 1, time.Now().UTC(), text)
		}
	}
}

// AppendLog appends a line with a given time to a group's log.
func (f *Fake) AppendLog(group string, t time.Time, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g := f.groups[group]; g != nil {
		f.output(g, 1, t.UTC(), text)
	}
}

// Delete removes every group of the service.
func (f *Fake) Delete(target, service string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, g := range f.groups {
		if str(g.def.Tags["alphaswarm.service"]) == service && str(g.def.Tags["alphaswarm.target"]) == target {
			f.endRun(g)
			delete(f.groups, name)
		}
	}
}

// MaxLogBytes is how much of a log ListLogs returns without a tail.
const MaxLogBytes = 4 << 20

// LogBytes is how many bytes of log content ListLogs has returned in all.
func (f *Fake) LogBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logBytes
}
