package gcp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"google.golang.org/api/cloudresourcemanager/v3"
	iam "google.golang.org/api/iam/v1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// scope is where a permission is granted for the provider's use of it.
type scope int

const (
	onProject        scope = iota // the request names the project (or a location in it)
	onService                     // the Cloud Run service
	onSecret                      // each config secret of the service
	onServiceAccount              // Options.ServiceAccount
)

// permission is one IAM permission the provider uses and the operations
// that use it.
type permission struct {
	name  string
	scope scope
	ops   []provider.Operation
	// config: Start needs it only for a spec that carries config.
	config bool
}

var (
	// every operation reads the service first.
	allOps = provider.Operations
	// the operations that update the service (a new revision or new
	// scaling).
	updating  = []provider.Operation{provider.OpStart, provider.OpStop, provider.OpScale, provider.OpRestart, provider.OpApplyConfig}
	configOps = []provider.Operation{provider.OpStart, provider.OpApplyConfig}
)

// permissions is what the provider calls need
// (cloud.google.com/run/docs/reference/iam/permissions,
// cloud.google.com/secret-manager/docs/access-control,
// cloud.google.com/monitoring/access-control,
// cloud.google.com/logging/docs/access-control). Deploying a revision that
// runs as a service account needs iam.serviceAccounts.actAs on it
// (cloud.google.com/run/docs/securing/service-identity); it is checked
// only when options.serviceAccount names that account. The predefined
// roles that hold them: roles/run.developer (run.*),
// roles/iam.serviceAccountUser on the service account (actAs),
// roles/secretmanager.admin (secretmanager.*; without
// options.serviceAccount roles/secretmanager.secretVersionAdder plus
// secretVersionManager and secretAccessor do), roles/monitoring.viewer
// and roles/logging.viewer.
var permissions = []permission{
	{"run.services.get", onService, allOps, false},
	{"run.services.create", onProject, []provider.Operation{provider.OpStart}, false},
	{"run.services.update", onService, updating, false},
	{"run.operations.get", onProject, updating, false},
	{"iam.serviceAccounts.actAs", onServiceAccount, updating, false},
	{"secretmanager.secrets.create", onProject, configOps, true},
	{"secretmanager.versions.add", onSecret, configOps, true},
	{"secretmanager.versions.access", onSecret, configOps, true},
	{"secretmanager.secrets.getIamPolicy", onSecret, configOps, true},
	{"secretmanager.secrets.setIamPolicy", onSecret, configOps, true},
	{"monitoring.timeSeries.list", onProject, []provider.Operation{provider.OpStreamMetrics}, false},
	{"logging.logEntries.list", onProject, []provider.Operation{provider.OpLogs}, false},
}

// applies reports whether the target uses m at all: actAs and the secret
// IAM policy are used only with options.serviceAccount.
func (p *Provider) applies(m permission) bool {
	switch m.name {
	case "iam.serviceAccounts.actAs", "secretmanager.secrets.getIamPolicy", "secretmanager.secrets.setIamPolicy":
		return p.opts.ServiceAccount != ""
	}
	return true
}

// accessInterval is how often the permissions are checked again (IAM
// may change while the controller runs); firstAccessWait bounds how long
// an operation waits for the first check of a target that just opened.
const (
	accessInterval  = 5 * time.Minute
	firstAccessWait = 5 * time.Second
)

// accessState is what the last check found: the permissions the
// credentials lack on the project (and, for actAs, on the service
// account too).
type accessState struct {
	checked bool
	missing []permission
}

// checkAccess asks Resource Manager (projects.testIamPermissions, REST)
// which of the permissions the credentials hold on the project, and IAM
// (projects.serviceAccounts.testIamPermissions) whether actAs, if not
// held on the project, is held on options.serviceAccount. An answer it
// cannot get leaves the last state as it was.
func (p *Provider) checkAccess(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var names []string
	for _, m := range permissions {
		if p.applies(m) {
			names = append(names, m.name)
		}
	}
	resp, err := p.rm.Projects.TestIamPermissions("projects/"+p.project, &cloudresourcemanager.TestIamPermissionsRequest{Permissions: names}).Context(ctx).Do()
	if err != nil {
		slog.Debug("gcp target: permission check failed", "target", p.target, "err", err)
		return
	}
	held := map[string]bool{}
	for _, n := range resp.Permissions {
		held[n] = true
	}
	if p.opts.ServiceAccount != "" && !held["iam.serviceAccounts.actAs"] {
		r, err := p.iam.Projects.ServiceAccounts.TestIamPermissions("projects/-/serviceAccounts/"+p.opts.ServiceAccount,
			&iam.TestIamPermissionsRequest{Permissions: []string{"iam.serviceAccounts.actAs"}}).Context(ctx).Do()
		if err != nil {
			slog.Debug("gcp target: permission check failed", "target", p.target, "err", err)
			return
		}
		held["iam.serviceAccounts.actAs"] = slices.Contains(r.Permissions, "iam.serviceAccounts.actAs")
	}
	st := accessState{checked: true}
	for _, m := range permissions {
		if p.applies(m) && !held[m.name] {
			st.missing = append(st.missing, m)
		}
	}
	p.accessMu.Lock()
	changed := fmt.Sprint(p.access) != fmt.Sprint(st)
	p.access = st
	p.accessMu.Unlock()
	if changed && len(st.missing) > 0 {
		slog.Warn("gcp target lacks permissions it needs", "target", p.target, "project", p.project,
			"missing_permissions", strings.Join(permissionNames(st.missing), ", "))
	}
}

func permissionNames(ms []permission) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.name)
	}
	return out
}

// missingFor lists the permissions op lacks at the project level (the
// last check); withConfig counts the config permissions for Start.
func (p *Provider) missingFor(op provider.Operation, withConfig bool) []permission {
	p.accessMu.Lock()
	st := p.access
	p.accessMu.Unlock()
	var out []permission
	for _, m := range st.missing {
		if slices.Contains(m.ops, op) && (!m.config || withConfig || op != provider.OpStart) {
			out = append(out, m)
		}
	}
	return out
}

// where names the resource a missing permission was checked on.
func (p *Provider) where(m permission, name string) string {
	switch {
	case m.scope == onServiceAccount:
		return "service account " + p.opts.ServiceAccount
	case m.scope == onService && name != "":
		return "project " + p.project + " and service " + p.serviceName(name)
	case m.scope == onSecret && name != "":
		return "project " + p.project + " and the service's config secrets"
	}
	return "project " + p.project
}

// describe is the sentence naming what is missing.
func (p *Provider) describe(ms []permission, name string) string {
	byWhere := map[string][]string{}
	for _, m := range ms {
		w := p.where(m, name)
		byWhere[w] = append(byWhere[w], m.name)
	}
	var parts []string
	for _, w := range slices.Sorted(maps.Keys(byWhere)) {
		parts = append(parts, fmt.Sprintf("%s on %s", strings.Join(byWhere[w], ", "), w))
	}
	return fmt.Sprintf("the target's credentials lack permission %s (testIamPermissions; the roles that grant them are in docs/providers/gcp.md)", strings.Join(parts, "; "))
}

// MissingPermission implements provider.PermissionExplainer: what op
// lacks on the project, as the last check found. A permission bound on a
// single service or secret is seen only when the operation runs
// (permitted), so an op may show here and still work on that service.
func (p *Provider) MissingPermission(op provider.Operation) string {
	ms := p.missingFor(op, false)
	if len(ms) == 0 {
		return ""
	}
	return p.describe(ms, "")
}

// Ping implements provider.Pinger from the last permission check (it
// does not call Google Cloud): permission_denied when the credentials
// cannot read services, which every operation does.
func (p *Provider) Ping(ctx context.Context) error {
	if ms := p.missingFor(provider.OpStatus, false); len(ms) > 0 {
		return workload.Errorf(workload.PermissionDenied, "%s", p.describe(ms, "")).WithProvider(Name)
	}
	return nil
}

// permitted fails fast with PermissionDenied naming each permission op
// lacks, before any call that would fail on it. What the project does
// not grant is looked for on the resource itself (a service's or a
// secret's testIamPermissions; a resource that does not exist answers
// none). When that look-up fails, the operation goes ahead and the
// service answers for itself.
func (p *Provider) permitted(ctx context.Context, op provider.Operation, name string, configKeys []string) error {
	select {
	case <-p.accessFirst:
	case <-time.After(firstAccessWait):
	case <-ctx.Done():
	}
	ms := p.missingFor(op, len(configKeys) > 0)
	if len(ms) == 0 {
		return nil
	}
	ask := func(scope scope) []string {
		var out []string
		for _, m := range ms {
			if m.scope == scope {
				out = append(out, m.name)
			}
		}
		return out
	}
	held := map[string]bool{}
	if perms := ask(onService); len(perms) > 0 {
		r, err := p.services.TestIamPermissions(ctx, &iampb.TestIamPermissionsRequest{Resource: p.serviceName(name), Permissions: perms})
		if err != nil {
			return nil
		}
		for _, n := range r.Permissions {
			held[n] = true
		}
	}
	if perms := ask(onSecret); len(perms) > 0 && len(configKeys) > 0 {
		count := map[string]int{}
		for _, k := range configKeys {
			r, err := p.secrets.TestIamPermissions(ctx, &iampb.TestIamPermissionsRequest{
				Resource: "projects/" + p.project + "/secrets/" + p.configSecretID(name, k), Permissions: perms})
			if err != nil {
				return nil
			}
			for _, n := range r.Permissions {
				count[n]++
			}
		}
		for n, c := range count {
			held[n] = c == len(configKeys)
		}
	}
	var still []permission
	for _, m := range ms {
		if !held[m.name] {
			still = append(still, m)
		}
	}
	if len(still) == 0 {
		return nil
	}
	return workload.Errorf(workload.PermissionDenied, "%s %s: %s", op, name, p.describe(still, name)).WithProvider(Name)
}
