package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestTargetRolesAndNoRole: the role check uses the principal's role on
// the route's target (a grant on one target only, issue 21.7), and a
// principal without any role is refused with a rejected row carrying its
// id, auth and display name like a refused viewer (issue 21.2, 21.1).
func TestTargetRolesAndNoRole(t *testing.T) {
	ci := control.Principal{User: "oidc:https://ci.example#repo:acme/shop", Auth: "oidc:https://ci.example",
		TargetRoles: map[string]string{"staging": "operator"}}
	none := control.Principal{User: "oidc:https://idp.example#u1", Name: "ann@example.com", Auth: "oidc:https://idp.example"}
	st := testkit.NewStack(t, testkit.Options{
		Targets: []control.Target{{Name: "staging", Provider: providertest.NewMemory("staging")}, {Name: "prod", Provider: providertest.NewMemory("prod")}},
		API: func(o *httpapi.Options) {
			o.Auth, o.AuthStatus, o.Extra = staticAuth{"tok-ci": ci, "tok-none": none}, nil, nil
		}})
	led := st.Ledger
	call := func(tok, method, path, body string) int {
		req, _ := http.NewRequest(method, st.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deploy := `{"name":"web","image":"example/web:1","replicas":1}`
	for _, tc := range []struct {
		tok, method, path, body string
		want                    int
	}{
		{"tok-ci", "POST", "/v1/targets/staging/services", deploy, 201},
		{"tok-ci", "GET", "/v1/targets/staging/services/web", "", 200},
		{"tok-ci", "POST", "/v1/targets/prod/services", deploy, 403},
		{"tok-ci", "GET", "/v1/targets/prod/services", "", 403},
		{"tok-ci", "GET", "/v1/services?target=prod", "", 403},
		{"tok-ci", "POST", "/v1/targets/staging/services/web/exec", `{"command":["true"]}`, 403},
		{"tok-none", "POST", "/v1/targets/staging/services/web/scale", `{"replicas":2}`, 403},
		{"tok-none", "GET", "/v1/services", "", 403},
		{"tok-none", "GET", "/v1/whoami", "", 403},
		{"tok-none", "GET", "/v1/targets", "", 403},
	} {
		if got := call(tc.tok, tc.method, tc.path, tc.body); got != tc.want && !(tc.want == 201 && got == 200) {
			t.Errorf("%s %s %s: %d, want %d", tc.tok, tc.method, tc.path, got, tc.want)
		}
	}
	// A principal with grants on some targets only asks who it is and
	// lists what it may see: the targets and services of its grants, not
	// the others' (the dashboard and `alphaswarm whoami/ls` need these).
	if _, err := st.Runtime.Do(context.Background(), control.Request{Principal: control.Principal{User: "admin", Role: "admin", Auth: "token:a"},
		Action: workload.ActionStart, Target: "prod", Service: "db", Spec: &workload.DeploymentSpec{Name: "db", Image: "example/db:1", Replicas: 1}}); err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) {
		req, _ := http.NewRequest("GET", st.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok-ci")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s as the CI identity: %d %s", path, resp.StatusCode, b)
		}
		if err := json.NewDecoder(resp.Body).Decode(&workload.Envelope{Data: v}); err != nil {
			t.Fatal(err)
		}
	}
	var who control.Principal
	get("/v1/whoami", &who)
	if who.User != ci.User || who.TargetRoles["staging"] != "operator" {
		t.Errorf("whoami: %+v", who)
	}
	var targets []control.TargetInfo
	get("/v1/targets", &targets)
	if len(targets) != 1 || targets[0].Name != "staging" {
		t.Errorf("targets of a staging-only identity: %+v", targets)
	}
	for _, path := range []string{"/v1/services", "/v1/services?target=staging"} {
		var sts []workload.DeploymentStatus
		get(path, &sts)
		if len(sts) != 1 || sts[0].Target != "staging" || sts[0].Name != "web" {
			t.Errorf("%s as a staging-only identity: %+v", path, sts)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", st.URL+"/v1/services/events", nil)
	req.Header.Set("Authorization", "Bearer tok-ci")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("services events as a staging-only identity: %d", resp.StatusCode)
	}
	if _, err := st.Runtime.Do(context.Background(), control.Request{Principal: control.Principal{User: "admin", Role: "admin", Auth: "token:a"},
		Action: workload.ActionScale, Target: "prod", Service: "db", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	if err := call("tok-ci", "POST", "/v1/targets/staging/services/web/scale", `{"replicas":2}`); err != 200 {
		t.Fatalf("scale on staging: %d", err)
	}
	// The initial status of web, then its change; prod's db (deployed and
	// scaled meanwhile) never appears.
	for _, ev := range readEvents(t, resp.Body, 2, "status") {
		if !strings.Contains(ev, `"target":"staging"`) || strings.Contains(ev, `"prod"`) {
			t.Errorf("event for a staging-only identity: %s", ev)
		}
	}
	page, err := led.Query(context.Background(), ledger.Filter{Outcome: ledger.OutcomeDenied, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byUser := map[string][]ledger.Record{}
	for _, r := range page.Records {
		byUser[r.UserID] = append(byUser[r.UserID], r)
	}
	if rs := byUser[none.User]; len(rs) != 1 || rs[0].Auth != none.Auth || rs[0].UserName != "ann@example.com" || rs[0].Action != "scale" {
		t.Errorf("no-role identity's denied rows: %+v", rs)
	}
	if rs := byUser[ci.User]; len(rs) != 2 || rs[0].Target != "prod" || rs[1].Action != "exec" {
		t.Errorf("CI identity's denied rows: %+v", rs)
	}
}
