package httpapi_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

func init() { // the authorization matrix's requests for these routes
	routeRequests["GET /v1/targets/{target}/services/{service}/history"] = struct{ method, path, body string }{
		"GET", "/v1/targets/local/services/web/history", ""}
	routeRequests["POST /v1/targets/{target}/services/{service}/rollback"] = struct{ method, path, body string }{
		"POST", "/v1/targets/local/services/web/rollback", `{"to":1}`}
}

// TestHistoryAndRollback goes through the API: deploy v1 with env and
// config values, change config, deploy v2, read history (no value in the
// raw answer), refuse a viewer's rollback and bad "to" values with their
// codes and field, then roll back to v1.
func TestHistoryAndRollback(t *testing.T) {
	f := newFixture(t)
	const envVal, cfgVal, cfgVal2 = "env-plant-7c1", "cfg-plant-9d2", "cfg-plant-3e4"
	v1 := `{"name":"web","image":"x/y:1","replicas":1,"env":{"MODE":"` + envVal + `"},"config":{"K":"` + cfgVal + `"}}`
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/targets/local/services", v1},
		{"PUT", "/v1/targets/local/services/web/config", `{"config":{"K":"` + cfgVal2 + `"}}`},
		{"POST", "/v1/targets/local/services", strings.Replace(v1, "x/y:1", "x/y:2", 1)},
	} {
		if r := f.call(t, "operator", c.method, c.path, c.body, "Content-Type", "application/json"); r.status != 200 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.status, r.raw)
		}
	}
	r := f.call(t, "viewer", "GET", "/v1/targets/local/services/web/history", "")
	if r.status != 200 {
		t.Fatalf("history: %d %s", r.status, r.raw)
	}
	for _, v := range []string{envVal, cfgVal, cfgVal2} {
		if strings.Contains(r.raw, v) {
			t.Errorf("the history answer holds the value %q: %s", v, r.raw)
		}
	}
	var h api.HistoryResponse
	if err := json.Unmarshal(r.env.Data, &h); err != nil || len(h.Revisions) != 3 {
		t.Fatalf("history: %s (%v)", r.raw, err)
	}
	if got := h.Revisions[1]; got.Revision != 2 || got.Action != "apply_config" || got.Summary != "config keys changed K" || got.Spec.Config["K"] != "(set)" {
		t.Errorf("revision 2: %+v", got)
	}
	if got := h.Revisions[0]; got.Revision != 3 || !got.Current || got.Summary != "image x/y:1→x/y:2; config keys changed K" {
		t.Errorf("revision 3: %+v", got)
	}

	refusals := []struct {
		role, body string
		status     int
		code       workload.Code
		field      string
	}{
		{"viewer", `{"to":1}`, 403, workload.PermissionDenied, ""},
		{"operator", `{"to":-2}`, 400, workload.InvalidArgument, "to"},
		{"operator", `{"to":7}`, 400, workload.InvalidArgument, "to"},
		{"operator", `{"to":3}`, 400, workload.InvalidArgument, "to"},
		{"operator", `{"to":"1"}`, 400, workload.InvalidArgument, "to"},
	}
	for _, c := range refusals {
		r := f.call(t, c.role, "POST", "/v1/targets/local/services/web/rollback", c.body, "Content-Type", "application/json")
		if r.status != c.status || r.env.Error == nil || r.env.Error.Code != c.code {
			t.Errorf("%s rollback %s: %d %s, want %d %s", c.role, c.body, r.status, r.raw, c.status, c.code)
			continue
		}
		if c.field != "" && (len(r.env.Error.Fields) == 0 || r.env.Error.Fields[0].Path != c.field) {
			t.Errorf("%s rollback %s: fields %v, want %q", c.role, c.body, r.env.Error.Fields, c.field)
		}
	}
	page, err := f.led.Query(context.Background(), ledger.Filter{Action: "rollback", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != len(refusals) {
		t.Fatalf("%d rollback rows for %d refusals: %+v", len(page.Records), len(refusals), page.Records)
	}
	for _, rec := range page.Records {
		if rec.Kind != ledger.KindRejected {
			t.Errorf("a refused rollback wrote a %s row", rec.Kind)
		}
	}
	if page.Records[0].Outcome != ledger.OutcomeDenied || page.Records[0].UserID != "viewer-user" {
		t.Errorf("the viewer's attempt: %+v", page.Records[0])
	}

	r = f.call(t, "operator", "POST", "/v1/targets/local/services/web/rollback", `{"to":1}`, "Content-Type", "application/json")
	var res api.Result
	if r.status != 200 || json.Unmarshal(r.env.Data, &res) != nil || res.Revision != 4 || res.Status == nil || res.Status.Image != "x/y:1" {
		t.Fatalf("rollback to 1: %d %s", r.status, r.raw)
	}
	for _, v := range []string{envVal, cfgVal, cfgVal2} {
		if strings.Contains(r.raw, v) {
			t.Errorf("the rollback answer holds the value %q", v)
		}
	}
	if st, err := f.mem.Status(context.Background(), "web"); err != nil || st.Image != "x/y:1" {
		t.Errorf("the backend runs %+v after the rollback (%v)", st.Image, err)
	}
}
