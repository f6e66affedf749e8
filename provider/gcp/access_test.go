package gcp_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/workload"
)

// deny takes perms away on the project and has the provider check again.
func deny(t *testing.T, p *gcp.Provider, f *fakegcp.Server, perms ...string) {
	t.Helper()
	f.Deny(perms...)
	p.RecheckAccess(ctx(t))
}

func capability(p provider.Provider, op provider.Operation) provider.Capability {
	for _, c := range provider.Capabilities(p) {
		if c.Op == op {
			return c
		}
	}
	return provider.Capability{}
}

// wantDenied checks that err is permission_denied naming every perm.
func wantDenied(t *testing.T, what string, err error, perms ...string) {
	t.Helper()
	if workload.CodeOf(err) != workload.PermissionDenied {
		t.Fatalf("%s = %v, want permission_denied", what, err)
	}
	for _, perm := range perms {
		if !strings.Contains(err.Error(), perm) {
			t.Errorf("%s: %q does not name %s", what, err, perm)
		}
	}
}

// TestMissingPermissionsAreNamed (issue 22): the permissions the provider
// lacks on the project (Resource Manager projects.testIamPermissions at
// open) are named in the capability matrix, by Ping, and by the operation
// that needs them, which fails before it sends anything.
func TestMissingPermissionsAreNamed(t *testing.T) {
	p, f := openFake(t, nil)
	mustStart(t, p, spec("web", 1))

	// Everything granted: nothing missing.
	for _, c := range provider.Capabilities(p) {
		if c.Op != provider.OpExec && !c.Supported {
			t.Errorf("with every permission, %s is unsupported: %s", c.Op, c.Reason)
		}
	}
	if err := p.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping with every permission = %v", err)
	}

	deny(t, p, f, "run.services.create", "logging.logEntries.list", "monitoring.timeSeries.list")
	for op, perm := range map[provider.Operation]string{provider.OpStart: "run.services.create", provider.OpLogs: "logging.logEntries.list", provider.OpStreamMetrics: "monitoring.timeSeries.list"} {
		c := capability(p, op)
		if c.Supported || !strings.Contains(c.Reason, perm) || !strings.Contains(c.Reason, "project demo-project") {
			t.Errorf("capability %s = %+v, want unsupported naming %s on project demo-project", op, c, perm)
		}
	}
	if c := capability(p, provider.OpScale); !c.Supported {
		t.Errorf("scale needs none of the denied permissions, got %+v", c)
	}
	if err := p.Ping(ctx(t)); err != nil {
		t.Errorf("Ping = %v; services can still be read", err)
	}

	creates := f.Calls("CreateService")
	_, err := p.Start(ctx(t), spec("api", 1))
	wantDenied(t, "Start of a new service", err, "run.services.create")
	if n := f.Calls("CreateService"); n != creates {
		t.Errorf("CreateService called %d times after the refusal", n-creates)
	}
	for _, err := range provider.Logs(ctx(t), p, "web", provider.LogOptions{Tail: 1}) {
		wantDenied(t, "Logs", err, "logging.logEntries.list")
		break
	}
	for _, err := range p.StreamMetrics(ctx(t), "web") {
		wantDenied(t, "StreamMetrics", err, "monitoring.timeSeries.list")
		break
	}
	// What the provider still may do works.
	if st, err := p.Scale(ctx(t), "web", 2); err != nil || st.Phase != workload.Running {
		t.Errorf("Scale = %s, %v", st.Phase, err)
	}

	// Reading services is what every operation needs: Ping says so
	// (/readyz), and so does Status.
	deny(t, p, f, "run.services.get")
	err = p.Ping(ctx(t))
	wantDenied(t, "Ping without run.services.get", err, "run.services.get")
	_, err = p.Status(ctx(t), "web")
	wantDenied(t, "Status without run.services.get", err, "run.services.get")
}

// TestPermissionOnTheResourceCounts: a permission the project does not
// grant but the service (or the service account) does is found with
// that resource's testIamPermissions when the operation runs.
func TestPermissionOnTheResourceCounts(t *testing.T) {
	p, f := openFake(t, nil)
	mustStart(t, p, spec("web", 1))
	mustStart(t, p, spec("api", 1))
	f.GrantOn("projects/demo-project/locations/europe-west1/services/web", "run.services.update")
	deny(t, p, f, "run.services.update")

	if st, err := p.Scale(ctx(t), "web", 2); err != nil || st.Replicas.Desired != 2 {
		t.Fatalf("Scale web (update granted on the service) = %+v, %v", st, err)
	}
	updates := f.Calls("UpdateService")
	_, err := p.Scale(ctx(t), "api", 2)
	wantDenied(t, "Scale api", err, "run.services.update", "service projects/demo-project/locations/europe-west1/services/api")
	_, err = p.Stop(ctx(t), "api")
	wantDenied(t, "Stop api", err, "run.services.update")
	if !strings.HasPrefix(err.Error(), "stop api:") && !strings.Contains(err.Error(), "stop api:") {
		t.Errorf("Stop's refusal says %q, want it to name the stop", err)
	}
	if n := f.Calls("UpdateService"); n != updates {
		t.Errorf("UpdateService called %d times after the refusals", n-updates)
	}

	// actAs: checked on the service account itself at open.
	deny(t, p, f, "iam.serviceAccounts.actAs")
	_, err = p.Restart(ctx(t), "web")
	wantDenied(t, "Restart without actAs", err, "iam.serviceAccounts.actAs on service account "+testServiceAccount)
	f.GrantOn(testServiceAccount, "iam.serviceAccounts.actAs")
	p.RecheckAccess(ctx(t))
	if c := capability(p, provider.OpRestart); strings.Contains(c.Reason, "actAs") {
		t.Errorf("actAs granted on the service account, restart = %+v", c)
	}
	if st, err := p.Restart(ctx(t), "web"); err != nil || st.Phase != workload.Running {
		t.Errorf("Restart with actAs on the service account = %s, %v", st.Phase, err)
	}
}

// TestConfigPermissions: config is written through Secret Manager;
// without the permission to add versions, ApplyConfig and a Start that
// carries config are refused before a secret is created, while a Start
// without config goes ahead.
func TestConfigPermissions(t *testing.T) {
	p, f := openFake(t, nil)
	mustStart(t, p, spec("web", 1))
	deny(t, p, f, "secretmanager.versions.add")
	if c := capability(p, provider.OpApplyConfig); c.Supported || !strings.Contains(c.Reason, "secretmanager.versions.add") {
		t.Errorf("capability apply_config = %+v", c)
	}
	if c := capability(p, provider.OpStart); !c.Supported {
		t.Errorf("start without config needs no Secret Manager permission; capability = %+v", c)
	}
	err := p.ApplyConfig(ctx(t), "web", map[string]string{"MODE": "on"})
	wantDenied(t, "ApplyConfig", err, "secretmanager.versions.add")
	sp := spec("web", 1)
	sp.Config = map[string]string{"MODE": "on"}
	_, err = p.Start(ctx(t), sp)
	wantDenied(t, "Start with config", err, "secretmanager.versions.add")
	if n := f.Calls("CreateSecret") + f.Calls("AddSecretVersion"); n != 0 {
		t.Errorf("%d Secret Manager writes after the refusals", n)
	}
	if st, err := p.Start(ctx(t), spec("web", 2)); err != nil || st.Phase != workload.Running {
		t.Errorf("Start without config = %s, %v", st.Phase, err)
	}
}

// TestPermissionCheckUnavailable: when the check cannot be made, nothing
// is reported missing and operations go ahead (the service answers for
// itself).
func TestPermissionCheckUnavailable(t *testing.T) {
	p, f := openFake(t, nil)
	p.RecheckAccess(ctx(t)) // the check at open has ended
	f.Deny("run.services.create")
	f.Fail("projects.testIamPermissions", status.Error(codes.Unavailable, "down"))
	p.RecheckAccess(ctx(t))
	// The first check (at open) saw every permission; the failed one
	// changed nothing.
	if c := capability(p, provider.OpStart); !c.Supported {
		t.Errorf("after a failed check, start = %+v", c)
	}
	// The fake itself refuses CreateService (its grant set), with Google
	// APIs' wording, and the provider maps it.
	_, err := p.Start(ctx(t), spec("web", 1))
	wantDenied(t, "Start refused by the service", err, "run.services.create")
	var we *workload.Error
	if !errors.As(err, &we) || we.Provider != gcp.Name {
		t.Errorf("error %v is not a gcp workload error", err)
	}
}
