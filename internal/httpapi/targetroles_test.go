package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider/providertest"
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
		{"tok-ci", "GET", "/v1/services", "", 403},
		{"tok-ci", "POST", "/v1/targets/staging/services/web/exec", `{"command":["true"]}`, 403},
		{"tok-none", "POST", "/v1/targets/staging/services/web/scale", `{"replicas":2}`, 403},
		{"tok-none", "GET", "/v1/services", "", 403},
	} {
		if got := call(tc.tok, tc.method, tc.path, tc.body); got != tc.want && !(tc.want == 201 && got == 200) {
			t.Errorf("%s %s %s: %d, want %d", tc.tok, tc.method, tc.path, got, tc.want)
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
