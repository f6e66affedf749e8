package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	_ "github.com/alphaswarm/controller/ledger/postgres" // the postgres: ledger the stack opens by URL
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestRunsPerTargetPrincipal: GET /v1/runs for a principal with a role on
// some targets only (a CI identity, operator on staging) lists the
// records of those targets and the global halt switch's intents and
// results — nothing else: not another target's rows, not its own refused
// request naming that target, not a refused global halt, not rows naming
// no target (token administration, a refused halt request). The
// restriction is the query's (ledger.Filter.Targets), so every page of 50
// holds 50 visible rows across hundreds of hidden ones, on both ledgers'
// SQL. A run of another target asked by id is answered as a run that
// does not exist; ?target= naming another target is 403. Verify and the
// halt switch still need a role on every target: a target admin's halt of
// its own target is refused (and recorded), as before.
func TestRunsPerTargetPrincipal(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var dsn string
			if backend == "postgres" {
				dsn = pgtest.CreateDB(t)
			}
			testRunsPerTarget(t, dsn)
		})
	}
}

func testRunsPerTarget(t *testing.T, dsn string) {
	ci := control.Principal{User: "oidc:https://ci.example#repo:acme/shop", Auth: "oidc:https://ci.example",
		TargetRoles: map[string]string{"staging": "operator"}}
	boss := control.Principal{User: "oidc:https://idp.example#boss", Auth: "oidc:https://idp.example",
		TargetRoles: map[string]string{"staging": "admin"}}
	admin := control.Principal{User: "admin", Role: "admin", Auth: "token:a"}
	st := testkit.NewStack(t, testkit.Options{
		Targets: []control.Target{{Name: "staging", Provider: providertest.NewMemory("staging")}, {Name: "prod", Provider: providertest.NewMemory("prod")}},
		Config: func(c *config.Config) {
			if dsn != "" {
				c.Ledger = dsn
			}
		},
		API: func(o *httpapi.Options) {
			o.Auth, o.AuthStatus, o.Extra = staticAuth{"tok-ci": ci, "tok-boss": boss, "tok-admin": admin, "tok-none": {User: "nobody"}}, nil, nil
		}})
	ctx := context.Background()
	call := func(tok, method, path, body string) (int, workload.Envelope, json.RawMessage) {
		t.Helper()
		req, _ := http.NewRequest(method, st.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var data json.RawMessage
		env := workload.Envelope{Data: &data}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
		return resp.StatusCode, env, data
	}
	deploy := `{"name":"web","image":"example/web:1","replicas":1}`
	if code, _, _ := call("tok-ci", "POST", "/v1/targets/staging/services", deploy); code != 200 && code != 201 {
		t.Fatalf("CI deploy on staging: %d", code)
	}
	if code, _, _ := call("tok-ci", "POST", "/v1/targets/prod/services", deploy); code != 403 {
		t.Fatalf("CI deploy on prod: %d, want 403", code)
	}
	// A target's admin may not set a halt switch, not even its target's:
	// PUT /v1/halt names no target in its path, so it needs admin on every
	// target (not widened here). The refusal is a rejected row naming no
	// target.
	if code, env, _ := call("tok-boss", "PUT", "/v1/halt", `{"target":"staging","on":true}`); code != 403 || env.Error == nil || env.Error.Code != workload.PermissionDenied {
		t.Fatalf("halt of staging by staging's admin: %d %+v", code, env.Error)
	}
	if h, err := st.Runtime.Halts(ctx); err != nil || h["staging"] {
		t.Fatalf("halts after a refused halt: %v %v", h, err)
	}
	var prodRun string
	for _, req := range []control.Request{
		{Principal: admin, Action: workload.ActionStart, Target: "prod", Service: "db", Spec: &workload.DeploymentSpec{Name: "db", Image: "example/db:1", Replicas: 1}},
		{Principal: admin, Action: workload.ActionHalt, HaltOn: true},
		{Principal: admin, Action: workload.ActionHalt, HaltOn: false},
		{Principal: admin, Action: workload.ActionHalt, Target: "prod", HaltOn: true},
	} {
		res, err := st.Runtime.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if req.Action == workload.ActionStart {
			prodRun = res.RunID
		}
	}
	// Many more rows than a page: two of three of prod, one of staging,
	// and the rows no per-target principal sees.
	for i := range 360 {
		target := "prod"
		if i%3 == 0 {
			target = "staging"
		}
		mustAppend(t, st.Ledger, ledger.Record{RunID: fmt.Sprintf("bulk-%d", i), Kind: ledger.KindResult, UserID: "admin", Action: "scale",
			Target: target, Service: "web", Provider: "memory", Outcome: ledger.OutcomeOK})
	}
	for _, r := range []ledger.Record{
		{RunID: "refused-global-halt", Kind: ledger.KindRejected, UserID: "eve", Action: "halt", Target: ledger.GlobalScope, Outcome: ledger.OutcomeDenied},
		{RunID: "accept", Kind: ledger.KindIntent, UserID: "admin", Action: "ledger_accept", Target: ledger.GlobalScope},
		{RunID: "token", Kind: ledger.KindIntent, UserID: "admin", Action: string(control.ActionTokenCreate)},
	} {
		mustAppend(t, st.Ledger, r)
	}

	// What the CI identity may see, worked out here from every row.
	visible := func(r ledger.Record) bool {
		return r.Target == "staging" || (r.Target == ledger.GlobalScope && r.Action == "halt" && r.Kind != ledger.KindRejected)
	}
	var all []ledger.Record
	for cursor := ""; ; {
		page, err := st.Ledger.Query(ctx, ledger.Filter{Cursor: cursor, Limit: ledger.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Records...)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	var want []int64
	globalHalts := 0
	for _, r := range all {
		if visible(r) {
			want = append(want, r.Seq)
			if r.Target == ledger.GlobalScope {
				globalHalts++
			}
		}
	}
	// 120 bulk rows and web's deploy on staging, the global halt on and
	// off; 249 hidden.
	if globalHalts != 4 || len(want) != 126 || len(all)-len(want) != 249 {
		t.Fatalf("fixture: %d rows, %d visible, %d of the global halt", len(all), len(want), globalHalts)
	}

	// Every page full (but the last), in order, ascending and descending.
	for _, order := range []string{"asc", "desc"} {
		var got []int64
		pages := 0
		for cursor := ""; ; pages++ {
			code, env, data := call("tok-ci", "GET", "/v1/runs?limit=50&order="+order+"&cursor="+url.QueryEscape(cursor), "")
			if code != 200 {
				t.Fatalf("page %d (%s): %d %+v", pages, order, code, env.Error)
			}
			var page ledger.Page
			if err := json.Unmarshal(data, &page); err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				if !visible(r) {
					t.Errorf("%s page %d shows row %d (target %q, action %s, kind %s)", order, pages, r.Seq, r.Target, r.Action, r.Kind)
				}
				got = append(got, r.Seq)
			}
			if page.Next == "" {
				break
			}
			if len(page.Records) != 50 {
				t.Errorf("%s page %d holds %d rows and is not the last", order, pages, len(page.Records))
			}
			cursor = page.Next
		}
		if order == "desc" {
			for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
				got[i], got[j] = got[j], got[i]
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: the CI identity's rows %v\nwant %v", order, got, want)
		}
		if pages != (len(want)-1)/50 {
			t.Errorf("%s: %d pages after the first for %d rows", order, pages, len(want))
		}
	}

	// A run of another target is answered as one that does not exist.
	_, _, absent := call("tok-ci", "GET", "/v1/runs?run=no-such-run", "")
	for _, run := range []string{prodRun, "refused-global-halt", "token"} {
		code, _, data := call("tok-ci", "GET", "/v1/runs?run="+url.QueryEscape(run), "")
		if code != 200 || string(data) != string(absent) {
			t.Errorf("run %s of another target: %d %s, want the answer for no run: %s", run, code, data, absent)
		}
		if _, _, data := call("tok-admin", "GET", "/v1/runs?run="+url.QueryEscape(run), ""); string(data) == string(absent) {
			t.Errorf("run %s: the admin does not see it either (fixture)", run)
		}
	}
	for _, tc := range []struct {
		tok, path string
		want      int
	}{
		{"tok-ci", "/v1/runs?target=prod", 403},
		{"tok-ci", "/v1/runs?target=" + url.QueryEscape(ledger.GlobalScope), 403},
		{"tok-ci", "/v1/runs?target=staging&run=" + prodRun, 200},
		{"tok-none", "/v1/runs", 403},
		{"tok-ci", "/v1/ledger/verify", 403},
		{"tok-boss", "/v1/ledger/verify", 403},
		{"tok-admin", "/v1/ledger/verify", 200},
	} {
		code, env, data := call(tc.tok, "GET", tc.path, "")
		if code != tc.want {
			t.Errorf("%s GET %s: %d, want %d", tc.tok, tc.path, code, tc.want)
		}
		if code == 403 && (env.Error == nil || env.Error.Code != workload.PermissionDenied) {
			t.Errorf("%s GET %s: %+v", tc.tok, tc.path, env.Error)
		}
		if code == 200 && strings.Contains(tc.path, "run=") && string(data) != string(absent) {
			t.Errorf("%s GET %s: %s", tc.tok, tc.path, data)
		}
	}
	// ?target=staging: staging's rows only, its own filter (no global halt).
	_, _, data := call("tok-ci", "GET", "/v1/runs?target=staging&limit=1000", "")
	var page ledger.Page
	if err := json.Unmarshal(data, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != len(want)-globalHalts {
		t.Errorf("?target=staging: %d rows, want %d", len(page.Records), len(want)-globalHalts)
	}
	for _, r := range page.Records {
		if r.Target != "staging" {
			t.Errorf("?target=staging shows row %d of %q", r.Seq, r.Target)
		}
	}
}

func mustAppend(t *testing.T, l ledger.Ledger, r ledger.Record) {
	t.Helper()
	if _, err := l.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}
