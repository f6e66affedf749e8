package azure

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// permission is one Azure RBAC control-plane action the provider uses on
// the target's resource group, and the operations that use it. Action
// names are those of "Azure permissions for Containers" /
// "Microsoft.ContainerInstance" in learn.microsoft.com's resource
// provider operations, and "Microsoft.Insights/metrics/read" for Azure
// Monitor metrics.
type permission struct {
	action string
	ops    []provider.Operation
	// optional actions degrade an operation instead of failing it (a
	// missing attach makes log following poll ListLogs): they are
	// reported in the log, not refused.
	optional bool
}

const (
	actGroupRead    = "Microsoft.ContainerInstance/containerGroups/read"
	actGroupWrite   = "Microsoft.ContainerInstance/containerGroups/write"
	actGroupDelete  = "Microsoft.ContainerInstance/containerGroups/delete"
	actGroupStart   = "Microsoft.ContainerInstance/containerGroups/start/action"
	actGroupStop    = "Microsoft.ContainerInstance/containerGroups/stop/action"
	actGroupRestart = "Microsoft.ContainerInstance/containerGroups/restart/action"
	actLogs         = "Microsoft.ContainerInstance/containerGroups/containers/logs/read"
	actAttach       = "Microsoft.ContainerInstance/containerGroups/containers/attach/action"
	actExec         = "Microsoft.ContainerInstance/containerGroups/containers/exec/action"
	actMetrics      = "Microsoft.Insights/metrics/read"
)

// permissions is what each operation needs. Start may delete (groups
// above the replica count; a group whose fixed properties change is
// deleted and created again) and stop (replicas 0); Scale creates,
// starts, stops and deletes; ApplyConfig rewrites the running groups
// (create-or-update of the same group). App Configuration and Key Vault
// data actions are not in this list: see accessCheckScope.
var permissions = []permission{
	{action: actGroupRead, ops: provider.Operations},
	{action: actGroupWrite, ops: []provider.Operation{provider.OpStart, provider.OpScale, provider.OpApplyConfig}},
	{action: actGroupDelete, ops: []provider.Operation{provider.OpStart, provider.OpScale}},
	{action: actGroupStart, ops: []provider.Operation{provider.OpStart, provider.OpScale}},
	{action: actGroupStop, ops: []provider.Operation{provider.OpStart, provider.OpStop, provider.OpScale}},
	{action: actGroupRestart, ops: []provider.Operation{provider.OpRestart}},
	{action: actLogs, ops: []provider.Operation{provider.OpLogs}},
	{action: actAttach, ops: []provider.Operation{provider.OpLogs}, optional: true},
	{action: actExec, ops: []provider.Operation{provider.OpExec}},
	{action: actMetrics, ops: []provider.Operation{provider.OpStreamMetrics}},
}

// accessCheckScope says what the check covers, for the messages and the
// documentation: the App Configuration store and the Key Vault are named
// by their endpoints only (their resource ids, which the permissions API
// needs, are unknown here), and Key Vault may authorise through access
// policies, which the permissions API does not report. Their data
// actions are therefore not checked up front; a refusal there is
// permission_denied when it happens.
const accessCheckScope = "Microsoft.Authorization/permissions of resource group %s at open"

// permissionsAPIVersion is the Microsoft.Authorization API version of
// "Permissions - List For Resource Group".
const permissionsAPIVersion = "2022-04-01"

// accessRecheck is how often the permissions are read again: role
// assignments change while the controller runs.
const accessRecheck = 5 * time.Minute

// firstAccessWait bounds how long an operation waits for the first
// check of a target that just opened.
const firstAccessWait = 5 * time.Second

// rbacPermission is one element of the permissions API's answer: the
// actions and not-actions of one role assignment that applies at the
// scope (Microsoft.Authorization "Permission").
type rbacPermission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// accessCheck is the provider's permission check: the last state, and
// the background checks.
type accessCheck struct {
	mu     sync.Mutex
	state  accessState
	busy   bool          // a check is running
	first  chan struct{} // closed when the first check has ended
	bg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// accessState is what the last check found.
type accessState struct {
	checked bool
	at      time.Time
	missing []permission // required and optional
}

// actionMatches reports whether an RBAC action pattern grants action.
// Azure compares action strings case-insensitively (built-in roles write
// "Microsoft.Authorization/*/Delete") and "*" matches any run of
// characters, "/" included ("*", "*/read", "Microsoft.ContainerInstance/*",
// "Microsoft.ContainerInstance/containerGroups/*/action"; "Understand
// Azure role definitions", learn.microsoft.com).
func actionMatches(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	parts := strings.Split(p, "*")
	if len(parts) == 1 {
		return p == a
	}
	if !strings.HasPrefix(a, parts[0]) {
		return false
	}
	a = a[len(parts[0]):]
	for i, part := range parts[1:] {
		if i == len(parts)-2 { // the last part must end the action
			return strings.HasSuffix(a, part) && len(a) >= len(part)
		}
		j := strings.Index(a, part)
		if j < 0 {
			return false
		}
		a = a[j+len(part):]
	}
	return true
}

// allowed computes whether the permissions grant action: some element
// has it in Actions and not in that same element's NotActions. NotActions
// subtract from their own role's Actions only; they are not a deny, so
// another role assignment granting the action still applies ("Understand
// Azure role definitions": "NotActions ... subtracted from the Actions").
// Deny assignments are not part of this answer.
func allowed(perms []rbacPermission, action string) bool {
	for _, p := range perms {
		granted := false
		for _, a := range p.Actions {
			if actionMatches(a, action) {
				granted = true
				break
			}
		}
		for _, n := range p.NotActions {
			if granted && actionMatches(n, action) {
				granted = false
			}
		}
		if granted {
			return true
		}
	}
	return false
}

// listPermissions reads the caller's permissions on the target's
// resource group (GET .../resourceGroups/{rg}/providers/
// Microsoft.Authorization/permissions), following nextLink.
func (p *Provider) listPermissions(ctx context.Context) ([]rbacPermission, error) {
	next := runtime.JoinPaths(p.arm.Endpoint(), "/subscriptions/"+url.PathEscape(p.sub)+"/resourceGroups/"+
		url.PathEscape(p.opts.ResourceGroup)+"/providers/Microsoft.Authorization/permissions") + "?api-version=" + permissionsAPIVersion
	var out []rbacPermission
	for next != "" {
		req, err := runtime.NewRequest(ctx, http.MethodGet, next)
		if err != nil {
			return nil, err
		}
		req.Raw().Header.Set("Accept", "application/json")
		resp, err := p.arm.Pipeline().Do(req)
		if err != nil {
			return nil, err
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return nil, runtime.NewResponseError(resp)
		}
		var page struct {
			Value    []rbacPermission `json:"value"`
			NextLink string           `json:"nextLink"`
		}
		if err := runtime.UnmarshalAsJSON(resp, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
		next = page.NextLink
	}
	return out, nil
}

// checkAccess reads the permissions and records which actions are
// missing. An answer it cannot get (the API unreachable, or the caller
// not allowed to read its own permissions) leaves the last state as it
// was, logged: operations then report their own refusals.
func (p *Provider) checkAccess(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	perms, err := p.listPermissions(ctx)
	if err != nil {
		slog.Warn("azure target: could not read its permissions; operations report refusals as they happen",
			"target", p.target, "resource_group", p.opts.ResourceGroup, "error", mapErr("list permissions", err))
		p.acc.mu.Lock()
		p.acc.state.at = p.now()
		p.acc.mu.Unlock()
		return
	}
	st := accessState{checked: true, at: p.now()}
	for _, m := range permissions {
		if !allowed(perms, m.action) {
			st.missing = append(st.missing, m)
		}
	}
	p.acc.mu.Lock()
	changed := !p.acc.state.checked || fmt.Sprint(p.acc.state.missing) != fmt.Sprint(st.missing)
	p.acc.state = st
	p.acc.mu.Unlock()
	if changed && len(st.missing) > 0 {
		var acts []string
		for _, m := range st.missing {
			acts = append(acts, m.action)
		}
		slog.Warn("azure target lacks permissions it needs", "target", p.target, "resource_group", p.opts.ResourceGroup,
			"missing_actions", strings.Join(acts, ", "))
	}
}

// refreshAccess starts a new check in the background when the last one
// is older than accessRecheck (one at a time).
func (p *Provider) refreshAccess() {
	p.acc.mu.Lock()
	stale := !p.acc.state.at.IsZero() && p.now().Sub(p.acc.state.at) >= accessRecheck && !p.acc.busy
	if stale {
		p.acc.busy = true
	}
	p.acc.mu.Unlock()
	if !stale {
		return
	}
	p.acc.bg.Add(1)
	go func() {
		defer p.acc.bg.Done()
		p.checkAccess(p.acc.ctx)
		p.acc.mu.Lock()
		p.acc.busy = false
		p.acc.mu.Unlock()
	}()
}

// missingFor says what op cannot do for lack of a permission; "" when
// nothing required is known to be missing. optional lists the missing
// actions that only degrade op.
func (p *Provider) missingFor(op provider.Operation) (why string, optional []string) {
	p.acc.mu.Lock()
	st := p.acc.state
	p.acc.mu.Unlock()
	var acts []string
	for _, m := range st.missing {
		for _, o := range m.ops {
			if o != op {
				continue
			}
			if m.optional {
				optional = append(optional, m.action)
			} else {
				acts = append(acts, m.action)
			}
		}
	}
	if len(acts) == 0 {
		return "", optional
	}
	who := "the target's credentials"
	if p.clientID != "" {
		who += fmt.Sprintf(" (client %s)", p.clientID)
	}
	return fmt.Sprintf("%s lack %s on resource group %s (%s; docs/providers/azure.md lists the actions each operation needs)",
		who, strings.Join(acts, ", "), p.opts.ResourceGroup, fmt.Sprintf(accessCheckScope, p.opts.ResourceGroup)), optional
}

// permitted fails fast with PermissionDenied naming the actions op lacks,
// before any call that would be refused for them (and before anything
// changes). Right after the target opened it waits for the first check,
// at most firstAccessWait.
func (p *Provider) permitted(op provider.Operation) error {
	select {
	case <-p.acc.first:
	case <-time.After(firstAccessWait):
	}
	p.refreshAccess()
	why, _ := p.missingFor(op)
	if why == "" {
		return nil
	}
	return provider.Errorf(Name, workload.PermissionDenied, "%s: %s", op, why)
}

// attachAllowed reports whether log following may try Attach: false only
// when the check found attach/action missing.
func (p *Provider) attachAllowed() bool {
	_, optional := p.missingFor(provider.OpLogs)
	return len(optional) == 0
}

// MissingPermission implements provider.PermissionExplainer: the
// capability matrix (targets) shows the missing actions as the reason.
func (p *Provider) MissingPermission(op provider.Operation) string {
	why, _ := p.missingFor(op)
	return why
}

// Ping implements provider.Pinger for /readyz: a target whose
// credentials cannot read container groups (which every operation needs)
// is not ready, and the detail names the action. It makes no request of
// its own beyond the periodic permission check.
func (p *Provider) Ping(context.Context) error {
	p.refreshAccess()
	if why, _ := p.missingFor(provider.OpStatus); why != "" {
		return provider.Errorf(Name, workload.PermissionDenied, "%s", why)
	}
	return nil
}

// Close implements io.Closer: it ends a permission check in flight.
func (p *Provider) Close() error {
	p.acc.cancel()
	p.acc.bg.Wait()
	return nil
}

// startAccessCheck runs the first check in the background from Open.
func (p *Provider) startAccessCheck() {
	ctx, cancel := context.WithCancel(context.Background())
	p.acc = &accessCheck{ctx: ctx, cancel: cancel, first: make(chan struct{})}
	p.acc.bg.Add(1)
	go func() {
		defer p.acc.bg.Done()
		defer close(p.acc.first)
		p.checkAccess(p.acc.ctx)
	}()
}
