package azure

import (
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// TestActionMatching: the provider's RBAC evaluation and the fake's
// (written independently: glob walk against regular expression) agree on
// wildcards, case and NotActions, and both follow "Understand Azure role
// definitions".
func TestActionMatching(t *testing.T) {
	const exec = "Microsoft.ContainerInstance/containerGroups/containers/exec/action"
	for _, c := range []struct {
		name  string
		roles []fakeazure.Role
		want  bool
	}{
		{"owner", []fakeazure.Role{fakeazure.Owner}, true},
		{"none", nil, false},
		{"exact", []fakeazure.Role{{Actions: []string{exec}}}, true},
		{"case differs", []fakeazure.Role{{Actions: []string{strings.ToLower(exec)}}}, true},
		{"provider wildcard", []fakeazure.Role{{Actions: []string{"Microsoft.ContainerInstance/*"}}}, true},
		{"inner wildcard", []fakeazure.Role{{Actions: []string{"Microsoft.ContainerInstance/containerGroups/*/action"}}}, true},
		{"read only", []fakeazure.Role{{Actions: []string{"*/read"}}}, false},
		{"other provider", []fakeazure.Role{{Actions: []string{"Microsoft.Compute/*"}}}, false},
		{"prefix is not a match", []fakeazure.Role{{Actions: []string{"Microsoft.ContainerInstance/containerGroups/containers/exec"}}}, false},
		{"not action subtracts", []fakeazure.Role{{Actions: []string{"*"}, NotActions: []string{"Microsoft.ContainerInstance/*/exec/action"}}}, false},
		{"not action is no deny", []fakeazure.Role{
			{Actions: []string{"*"}, NotActions: []string{"*/exec/action"}},
			{Actions: []string{"Microsoft.ContainerInstance/containerGroups/containers/*"}}}, true},
		{"data actions do not grant", []fakeazure.Role{{DataActions: []string{"*"}}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var perms []rbacPermission
			for _, r := range c.roles {
				perms = append(perms, rbacPermission{Actions: r.Actions, NotActions: r.NotActions, DataActions: r.DataActions})
			}
			if got := allowed(perms, exec); got != c.want {
				t.Errorf("provider: allowed = %v, want %v", got, c.want)
			}
			if got := fakeazure.Permits(c.roles, exec); got != c.want {
				t.Errorf("fake: Permits = %v, want %v", got, c.want)
			}
		})
	}
}

// TestMissingActionsAreNamed (issue 22, Azure): the permissions the
// operations need are read from Microsoft.Authorization/permissions when
// the target opens; an operation lacking one fails at once with
// permission_denied naming the action (nothing is sent to ACI), the
// capability matrix says why, and the others work.
func TestMissingActionsAreNamed(t *testing.T) {
	// Two assignments: the second does not give back what the first's
	// NotActions took (restart), and exec is in neither.
	p, f := openFake(t, fakeazure.Options{Roles: []fakeazure.Role{
		{Actions: []string{"Microsoft.ContainerInstance/containerGroups/*", "Microsoft.Insights/metrics/read"},
			NotActions: []string{"Microsoft.ContainerInstance/containerGroups/restart/action", "Microsoft.ContainerInstance/containerGroups/containers/*"}},
		{Actions: []string{"Microsoft.ContainerInstance/containerGroups/containers/logs/read", "Microsoft.ContainerInstance/containerGroups/containers/attach/action"}},
	}}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("web", 1)); err != nil {
		t.Fatal(err)
	}
	if n := f.Calls("ListPermissions"); n != 2 {
		t.Errorf("permissions pages read = %d, want 2 (one per assignment, nextLink followed)", n)
	}
	for _, c := range []struct {
		op     provider.Operation
		action string
		call   string
		do     func() error
	}{
		{provider.OpExec, actExec, "ExecuteCommand", func() error {
			_, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"/bin/hello"}})
			return err
		}},
		{provider.OpRestart, actGroupRestart, "BeginRestart", func() error { _, err := p.Restart(ctx, "web"); return err }},
	} {
		err := c.do()
		if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), c.action) || !strings.Contains(err.Error(), testRG) {
			t.Errorf("%s: err = %v, want permission_denied naming %s on %s", c.op, err, c.action, testRG)
		}
		if n := f.Calls(c.call); n != 0 {
			t.Errorf("%s: %d %s calls reached ACI after the refusal", c.op, n, c.call)
		}
		if why := p.MissingPermission(c.op); !strings.Contains(why, c.action) {
			t.Errorf("MissingPermission(%s) = %q, want it to name %s", c.op, why, c.action)
		}
	}
	for _, cap := range provider.Capabilities(p) {
		wantOK := cap.Op != provider.OpExec && cap.Op != provider.OpRestart
		if cap.Supported != wantOK {
			t.Errorf("capability %s supported = %v (%s), want %v", cap.Op, cap.Supported, cap.Reason, wantOK)
		}
	}
	if err := p.Ping(ctx); err != nil {
		t.Errorf("Ping = %v, want nil (containerGroups/read is granted)", err)
	}
	if _, err := p.Scale(ctx, "web", 2); err != nil {
		t.Errorf("Scale: %v", err)
	}
	if n := f.Calls("AuthorizationFailed"); n != 0 {
		t.Errorf("the fake refused %d requests the provider should not have sent", n)
	}
}

// TestNoReadIsNotReady: credentials that cannot read container groups
// make the target not ready (Ping, for /readyz) and every operation
// permission_denied naming the read action.
func TestNoReadIsNotReady(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{Roles: []fakeazure.Role{{Actions: []string{"Microsoft.Insights/metrics/read"}}}}, nil)
	ctx := ctxT(t)
	_, err := p.Status(ctx, "web")
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), actGroupRead) {
		t.Fatalf("Status: err = %v, want permission_denied naming %s", err, actGroupRead)
	}
	if err := p.Ping(ctx); workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), actGroupRead) {
		t.Errorf("Ping = %v, want permission_denied naming %s", err, actGroupRead)
	}
	if n := f.Calls("AuthorizationFailed"); n != 0 {
		t.Errorf("%d requests reached ACI and were refused; the provider should have failed first", n)
	}
}

// TestFakeEnforcesRoles: a role taken away after the check (the provider
// still believes it has it) is refused by the fake as ARM refuses it,
// 403 AuthorizationFailed, which the provider reports as
// permission_denied with ARM's message.
func TestFakeEnforcesRoles(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("web", 1)); err != nil {
		t.Fatal(err)
	}
	f.SetRoles(fakeazure.Role{Actions: []string{"*/read"}})
	_, err := p.Stop(ctx, "web")
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "AuthorizationFailed") ||
		!strings.Contains(err.Error(), "Microsoft.ContainerInstance/containerGroups/stop/action") {
		t.Fatalf("Stop after the role changed: err = %v, want permission_denied AuthorizationFailed naming stop/action", err)
	}
	if n := f.Calls("Stop"); n != 0 {
		t.Errorf("Stop reached the container group %d times", n)
	}
}
