package dashboard_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/provider/providertest"
)

var (
	reRevRow      = regexp.MustCompile(`<tr data-revision="(\d+)"( data-current="true")?>`)
	reDiffBtn     = regexp.MustCompile(`data-diff="(\d+)"`)
	reRollbackBtn = regexp.MustCompile(`data-rollback="(\d+)"`)
)

// TestHistoryFragments: the History card lists a service's revisions
// newest first with the current one marked, offers "diff against live" on
// every restorable revision to every role, and a rollback button on the
// revisions before the current one only to the roles that may roll back;
// no config value reaches the markup. The diff fragment passes the API's
// answers through: a provider that cannot preview (the in-memory one) is
// unsupported, an unknown revision not_found, a bad one invalid_argument.
func TestHistoryFragments(t *testing.T) {
	e := newEnv(t, envOptions{})
	const cfg1, cfg2 = "cfg-value-one-4b1d", "cfg-value-two-9c2e"
	for _, body := range []string{
		`{"name":"web","image":"example/web:1","replicas":1,"config":{"greeting":"` + cfg1 + `"}}`,
		`{"name":"web","image":"example/web:2","replicas":2,"config":{"greeting":"` + cfg2 + `"}}`,
	} {
		if r := e.call("operator", "POST", "/v1/targets/local/services", body); r.err != nil {
			t.Fatal(r.err)
		}
	}
	for _, tc := range []struct {
		role      string
		rollbacks []string
	}{{"viewer", nil}, {"operator", []string{"1"}}, {"admin", []string{"1"}}} {
		r := e.get(t, tc.role, "/ui/frag/service/local/web/history")
		if r.status != 200 {
			t.Fatalf("history as %s: %d %s", tc.role, r.status, r.body)
		}
		checkSecure(t, r)
		checkNoInline(t, "history fragment", r.body)
		rows := reRevRow.FindAllStringSubmatch(r.body, -1)
		if len(rows) != 2 || rows[0][1] != "2" || rows[0][2] == "" || rows[1][1] != "1" || rows[1][2] != "" {
			t.Errorf("history rows as %s: %q, want revision 2 (current) then 1", tc.role, rows)
		}
		if got := submatches(reDiffBtn, r.body); strings.Join(got, ",") != "2,1" {
			t.Errorf("diff buttons as %s: %v, want 2,1", tc.role, got)
		}
		if got := submatches(reRollbackBtn, r.body); strings.Join(got, ",") != strings.Join(tc.rollbacks, ",") {
			t.Errorf("rollback buttons as %s: %v, want %v", tc.role, got, tc.rollbacks)
		}
		for _, v := range []string{cfg1, cfg2} {
			if strings.Contains(r.body, v) {
				t.Errorf("the history fragment shows a config value:\n%s", r.body)
			}
		}
		if !strings.Contains(r.body, "<code>example/web:1</code>") {
			t.Errorf("revision 1's image is not shown:\n%s", r.body)
		}
	}

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/ui/frag/service/local/web/diff?revision=1", 501, "unsupported"},
		{"/ui/frag/service/local/web/diff?revision=0", 501, "unsupported"}, // revision 1, the one before the current
		{"/ui/frag/service/local/web/diff?revision=-1", 400, "invalid_argument"},
		{"/ui/frag/service/local/web/diff?revision=9", 404, "not_found"},
		{"/ui/frag/service/local/ghost/diff?revision=1", 404, "not_found"},
		{"/ui/frag/service/local/web/diff?revision=first", 400, "invalid_argument"},
		{"/ui/frag/service/local/web/diff", 400, "invalid_argument"},
	} {
		r := e.get(t, "viewer", tc.path)
		if r.status != tc.status || !strings.Contains(r.body, `"code":"`+tc.code+`"`) {
			t.Errorf("GET %s: %d %s, want %d %s", tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	for _, p := range []string{"/ui/frag/service/local/web/history", "/ui/frag/service/local/web/diff?revision=1"} {
		if r := e.get(t, "", p); r.status != 401 || !strings.Contains(r.body, `"code":"unauthenticated"`) {
			t.Errorf("GET %s without a token: %d %s", p, r.status, r.body)
		}
	}
}

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDiffFragmentAdmission: the diff of a revision says whether the
// rollback to it would be let through, as the API's verdict has it: for
// an operator, refused (with the code and the reason) for the current
// revision and allowed for an earlier one; for a viewer, not checked,
// without a word of the reason.
func TestDiffFragmentAdmission(t *testing.T) {
	d := providertest.NewDiffer("preview")
	e := newEnv(t, envOptions{extra: []control.Target{{Name: "preview", Provider: d}}})
	for _, body := range []string{`{"name":"web","image":"example/web:1","replicas":1}`, `{"name":"web","image":"example/web:2","replicas":1}`} {
		if r := e.call("operator", "POST", "/v1/targets/preview/services", body); r.err != nil {
			t.Fatal(r.err)
		}
	}
	for _, tc := range []struct {
		role, rev string
		want      []string
		absent    string
	}{
		{"operator", "2", []string{`data-verdict="refused"`, `data-code="invalid_argument"`, "would be refused now", "is the current revision", "<code>to</code>"}, ""},
		{"operator", "1", []string{`data-verdict="allowed"`, "would pass the halt switch and the policies"}, "refused"},
		{"operator", "0", []string{`data-revision="1"`, `data-verdict="allowed"`}, "refused"},
		{"viewer", "2", []string{`data-verdict="unchecked"`, "Admission not checked"}, "current revision"},
	} {
		r := e.get(t, tc.role, "/ui/frag/service/preview/web/diff?revision="+tc.rev)
		if r.status != 200 {
			t.Fatalf("diff of %s as %s: %d %s", tc.rev, tc.role, r.status, r.body)
		}
		checkNoInline(t, "diff fragment", r.body)
		for _, w := range tc.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("diff of %s as %s lacks %q:\n%s", tc.rev, tc.role, w, r.body)
			}
		}
		if tc.absent != "" && strings.Contains(r.body, tc.absent) {
			t.Errorf("diff of %s as %s shows %q:\n%s", tc.rev, tc.role, tc.absent, r.body)
		}
	}
}
