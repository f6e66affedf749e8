package dashboard_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// TestLedgerFilterPrincipal: the ledger view's user filter finds an OIDC
// principal's runs by its unambiguous id and by its display name, and the
// run shows both (issue 21.1).
func TestLedgerFilterPrincipal(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	p := control.Principal{User: "oidc:https://idp.example#u-42", Name: "ann@example.com", Auth: "oidc:https://idp.example", Role: "operator"}
	if _, err := e.rt.Do(context.Background(), control.Request{Principal: p, Action: workload.ActionScale,
		Target: "local", Service: "web", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{p.User, p.Name} {
		r := e.get(t, "viewer", "/ui/frag/ledger?user="+url.QueryEscape(user))
		if r.status != 200 {
			t.Fatalf("user=%s: %d %s", user, r.status, r.body)
		}
		rows := reRunRow.FindAllStringSubmatch(r.body, -1)
		if len(rows) != 1 || rows[0][2] != p.User || rows[0][3] != "scale" {
			t.Fatalf("user=%s: rows %v", user, rows)
		}
		if !strings.Contains(r.body, "ann@example.com") || !strings.Contains(r.body, "oidc:https://idp.example#u-42") {
			t.Fatalf("user=%s: the run does not show the display name and the id:\n%s", user, r.body)
		}
	}
	if r := e.get(t, "viewer", "/ui/frag/ledger?user=u-42"); len(reRunRow.FindAllStringSubmatch(r.body, -1)) != 0 {
		t.Fatalf("the bare subject matched: %s", r.body)
	}
}
