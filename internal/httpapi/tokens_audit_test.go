package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// TestTokenChangesAreAudited: token create and revoke write an intent and
// a result each (never the token), a denied or invalid attempt writes a
// rejected row, and a global halt does not block them (documented).
func TestTokenChangesAreAudited(t *testing.T) {
	store, err := auth.OpenTokenStore(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.Tokens = store })
	rows := func(action workload.Action) []ledger.Record {
		t.Helper()
		page, err := f.rt.Runs(context.Background(), ledger.Filter{Action: string(action)})
		if err != nil {
			t.Fatal(err)
		}
		return page.Records
	}
	if r := f.call(t, "admin", "PUT", "/v1/halt", `{"on":true}`); r.status != 200 {
		t.Fatalf("halt: %d %s", r.status, r.raw)
	}
	r := f.call(t, "admin", "POST", "/v1/tokens", `{"user":"vera","role":"viewer"}`)
	if r.status != 201 {
		t.Fatalf("create during a halt: %d %s", r.status, r.raw)
	}
	var created api.TokenResponse
	if err := json.Unmarshal(r.env.Data, &created); err != nil {
		t.Fatal(err)
	}
	recs := rows(control.ActionTokenCreate)
	if len(recs) != 2 || recs[0].Kind != ledger.KindIntent || recs[1].Kind != ledger.KindResult || recs[1].Outcome != ledger.OutcomeOK ||
		recs[0].UserID != "admin-user" || !strings.Contains(recs[0].Detail, `"vera"`) || !strings.Contains(recs[1].Detail, created.Info.ID) {
		t.Fatalf("token_create rows = %+v", recs)
	}
	for _, rec := range recs {
		if b, _ := json.Marshal(rec); strings.Contains(string(b), created.Token) {
			t.Fatalf("a ledger row holds the token: %s", b)
		}
	}
	if r := f.call(t, "admin", "DELETE", "/v1/tokens/"+created.Info.ID, ""); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := f.call(t, "admin", "DELETE", "/v1/tokens/nosuchid", ""); r.status != 404 {
		t.Fatalf("revoke unknown: %d %s", r.status, r.raw)
	}
	recs = rows(control.ActionTokenRevoke)
	if len(recs) != 4 || recs[1].Outcome != ledger.OutcomeOK || !strings.Contains(recs[0].Detail, created.Info.ID) ||
		recs[3].Outcome != ledger.OutcomeError || recs[3].ErrorCode != "not_found" {
		t.Fatalf("token_revoke rows = %+v", recs)
	}
	// Denied (operator) and invalid (bad role) attempts: one rejected row each.
	if r := f.call(t, "operator", "POST", "/v1/tokens", `{"user":"otto","role":"admin"}`); r.status != 403 {
		t.Fatalf("operator create: %d %s", r.status, r.raw)
	}
	if r := f.call(t, "operator", "DELETE", "/v1/tokens/"+created.Info.ID, ""); r.status != 403 {
		t.Fatalf("operator revoke: %d %s", r.status, r.raw)
	}
	if r := f.call(t, "admin", "POST", "/v1/tokens", `{"user":"x","role":"root"}`); r.status != 400 {
		t.Fatalf("bad role: %d %s", r.status, r.raw)
	}
	var rejected []string
	for _, a := range []workload.Action{control.ActionTokenCreate, control.ActionTokenRevoke} {
		for _, rec := range rows(a) {
			if rec.Kind == ledger.KindRejected {
				rejected = append(rejected, rec.Action+"/"+string(rec.Outcome)+"/"+rec.UserID)
			}
		}
	}
	want := "token_create/denied/operator-user token_create/invalid/admin-user token_revoke/denied/operator-user"
	if strings.Join(rejected, " ") != want {
		t.Fatalf("rejected rows %v, want %s", rejected, want)
	}
}
