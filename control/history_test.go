package control_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"github.com/jackc/pgx/v5"
)

// Values planted in env and config: none may appear in a ledger row, a
// log line, a history answer or the clear columns of a revision row.
const (
	plantEnv  = "env-value-Qx7Lw"
	plantCfg1 = "config-value-one-Hd93"
	plantCfg2 = "config-value-two-Pz11"
	plantArgs = "resolver-secret-Kk2v"
)

func newKey(t testing.TB) []byte {
	k := make([]byte, control.RevisionKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// historyEnv is a runtime over led with a revision key and the memory
// provider; creds knows plantArgs as a secret.
func historyEnv(t *testing.T, led ledger.Ledger, key []byte, mem *providertest.Memory) *env {
	t.Helper()
	if mem == nil {
		mem = providertest.NewMemory("local")
	}
	creds := credentials.FromMap(nil)
	creds.Register(plantArgs)
	logs := &syncBuffer{}
	rt, err := control.New(context.Background(), control.Options{
		Ledger: led, Targets: []control.Target{{Name: "local", Provider: mem}}, Credentials: creds,
		Logger:      slog.New(credentials.NewHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}), creds)),
		RevisionKey: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &env{rt: rt, mem: mem, ledger: led, logs: logs}
}

type ledgerKind struct {
	name string
	open func(t *testing.T) (ledger.Ledger, func(t *testing.T, q string))
}

// ledgers are both backends; exec runs raw SQL behind the ledger's back.
var ledgers = []ledgerKind{
	{"sqlite", func(t *testing.T) (ledger.Ledger, func(t *testing.T, q string)) {
		l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		db, err := sql.Open("sqlite", "file:"+l.Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return l, func(t *testing.T, q string) {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}},
	{"postgres", func(t *testing.T) (ledger.Ledger, func(t *testing.T, q string)) {
		dsn := pgtest.CreateDB(t)
		l, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l, func(t *testing.T, q string) {
			c, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if _, err := c.Exec(context.Background(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}},
}

func v1spec() *workload.DeploymentSpec {
	return &workload.DeploymentSpec{Name: "web", Image: "example/app:1", Replicas: 1,
		Args: []string{"--token=" + plantArgs}, Env: map[string]string{"MODE": plantEnv},
		Config: map[string]string{"K": plantCfg1}}
}

// deployHistory runs start v1, scale 3, apply_config, start v2 and
// returns the results.
func deployHistory(t *testing.T, e *env) []control.Result {
	t.Helper()
	v2 := v1spec()
	v2.Image, v2.Replicas = "example/app:2", 3
	v2.Config = map[string]string{"K": plantCfg2, "L": "x"}
	var out []control.Result
	for _, r := range []control.Request{
		{Action: workload.ActionStart, Service: "web", Spec: v1spec()},
		{Action: workload.ActionScale, Service: "web", Replicas: 3},
		{Action: workload.ActionApplyConfig, Service: "web", Config: map[string]string{"K": plantCfg2, "L": "x"}},
		{Action: workload.ActionStart, Service: "web", Spec: v2},
	} {
		res, err := e.do(t, r)
		if err != nil {
			t.Fatalf("%s: %v", r.Action, err)
		}
		out = append(out, res)
	}
	return out
}

func TestHistory(t *testing.T) {
	for _, lk := range ledgers {
		t.Run(lk.name, func(t *testing.T) {
			led, _ := lk.open(t)
			e := historyEnv(t, led, newKey(t), nil)
			results := deployHistory(t, e)
			for i, res := range results {
				if res.Revision != i+1 {
					t.Errorf("result %d: revision %d, want %d", i, res.Revision, i+1)
				}
			}
			// A stop, a restart and a failed scale record no revision.
			if _, err := e.do(t, control.Request{Action: workload.ActionRestart, Service: "web"}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: -1}); err == nil {
				t.Fatal("scale -1 succeeded")
			}
			hist, err := e.rt.History(context.Background(), "local", "web")
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				rev     int
				action  string
				summary string
			}{
				{4, "start", "image example/app:1→example/app:2"},
				{3, "apply_config", "config keys added L, config keys changed K"},
				{2, "scale", "replicas 1→3"},
				{1, "start", "image example/app:1, replicas 1"},
			}
			if len(hist) != len(want) {
				t.Fatalf("history has %d revisions, want %d: %+v", len(hist), len(want), hist)
			}
			for i, w := range want {
				h := hist[i]
				if h.Revision != w.rev || h.Action != w.action || h.Summary != w.summary || h.User != "alice" || h.RunID != results[w.rev-1].RunID {
					t.Errorf("history[%d] = %d %s %q by %s run %s; want %d %s %q by alice run %s", i,
						h.Revision, h.Action, h.Summary, h.User, h.RunID, w.rev, w.action, w.summary, results[w.rev-1].RunID)
				}
				if h.Current != (i == 0) || h.Problem != "" || h.Partial {
					t.Errorf("history[%d]: current %v problem %q partial %v", i, h.Current, h.Problem, h.Partial)
				}
				if h.Spec.Env["MODE"] != "(set)" || h.Spec.Config["K"] != "(set)" {
					t.Errorf("history[%d]: env/config shown as %v / %v, want (set)", i, h.Spec.Env, h.Spec.Config)
				}
			}
			if hist[1].Spec.Replicas != 3 || hist[1].Spec.Image != "example/app:1" {
				t.Errorf("revision 3 (apply_config on revision 2) spec: %+v", hist[1].Spec)
			}
			raw, _ := json.Marshal(hist)
			assertNoPlant(t, "history JSON", string(raw))
			for _, rec := range e.records(t, ledger.Filter{}) {
				b, _ := json.Marshal(rec)
				assertNoPlant(t, "ledger row", string(b))
			}
			assertNoPlant(t, "logs", e.logs.String())
			rows, err := led.(ledger.RevisionStore).Revisions(context.Background(), "local", "web")
			if err != nil || len(rows) != 4 {
				t.Fatalf("revision rows: %d, %v", len(rows), err)
			}
			for _, row := range rows {
				assertNoPlant(t, "revision row", row.Spec+string(row.Sealed))
			}

			// revisionSpec restores the values.
			s1, err := e.rt.RevisionSpec(context.Background(), "local", "web", 1)
			if err != nil || s1.Env["MODE"] != plantEnv || s1.Config["K"] != plantCfg1 || s1.Args[0] != "--token="+plantArgs || s1.Image != "example/app:1" {
				t.Errorf("RevisionSpec(1) = %+v, %v", s1, err)
			}
			s3, err := e.rt.RevisionSpec(context.Background(), "local", "web", 3)
			if err != nil || s3.Replicas != 3 || s3.Config["K"] != plantCfg2 || s3.Config["L"] != "x" || s3.Env["MODE"] != plantEnv {
				t.Errorf("RevisionSpec(3) = %+v, %v", s3, err)
			}
			if _, err := e.rt.RevisionSpec(context.Background(), "local", "web", 9); workload.CodeOf(err) != workload.NotFound {
				t.Errorf("RevisionSpec(9): %v, want not_found", err)
			}
		})
	}
}

func assertNoPlant(t *testing.T, where, s string) {
	t.Helper()
	for _, p := range []string{plantEnv, plantCfg1, plantCfg2, plantArgs} {
		if strings.Contains(s, p) {
			t.Errorf("%s contains the planted value %q", where, p)
		}
	}
}

func TestRollback(t *testing.T) {
	for _, lk := range ledgers {
		t.Run(lk.name, func(t *testing.T) {
			led, _ := lk.open(t)
			e := historyEnv(t, led, newKey(t), nil)
			deployHistory(t, e)
			res, err := e.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Revision != 5 || res.Status == nil || res.Status.Image != "example/app:1" || res.Status.Replicas.Desired != 1 {
				t.Fatalf("rollback result: %+v", res)
			}
			intent := e.records(t, ledger.Filter{RunID: res.RunID, Kind: ledger.KindIntent})
			if len(intent) != 1 || intent[0].Action != "rollback" {
				t.Fatalf("intent rows: %+v", intent)
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(intent[0].Detail), &d); err != nil || d["fromRevision"] != 4.0 || d["toRevision"] != 1.0 || d["image"] != "example/app:1" {
				t.Errorf("intent detail %s: want fromRevision 4, toRevision 1, image example/app:1", intent[0].Detail)
			}
			assertNoPlant(t, "rollback intent", intent[0].Detail)
			hist, err := e.rt.History(context.Background(), "local", "web")
			if err != nil {
				t.Fatal(err)
			}
			if h := hist[0]; h.Revision != 5 || h.Action != "rollback" || !h.Current ||
				h.Summary != "rollback from 4 to 1; image example/app:2→example/app:1; replicas 3→1; config keys removed L, config keys changed K" {
				t.Errorf("revision 5: %+v", h)
			}
			// to 0: the revision before the current one (4).
			res, err = e.do(t, control.Request{Action: workload.ActionRollback, Service: "web"})
			if err != nil || res.Revision != 6 || res.Status.Image != "example/app:2" {
				t.Fatalf("rollback to the previous revision: %+v, %v", res, err)
			}
			s6, err := e.rt.RevisionSpec(context.Background(), "local", "web", 6)
			if err != nil || s6.Config["K"] != plantCfg2 || s6.Replicas != 3 {
				t.Errorf("revision 6 = %+v, %v; want revision 4's spec", s6, err)
			}
		})
	}
}

func TestRollbackRefused(t *testing.T) {
	led, exec := ledgers[0].open(t)
	key := newKey(t)
	e := historyEnv(t, led, key, nil)
	deployHistory(t, e)
	before := len(e.records(t, ledger.Filter{}))
	cases := []struct {
		name  string
		to    int
		code  workload.Code
		field string
	}{
		{"negative", -1, workload.InvalidArgument, "to"},
		{"missing", 9, workload.InvalidArgument, "to"},
		{"current", 4, workload.InvalidArgument, "to"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: c.to})
			we := workload.AsError(err)
			if we.Code != c.code || len(we.Fields) == 0 || we.Fields[0].Path != c.field {
				t.Fatalf("rollback to %d: %v (fields %v), want %s on %s", c.to, err, we.Fields, c.code, c.field)
			}
		})
	}
	recs := e.records(t, ledger.Filter{})[before:]
	if len(recs) != len(cases) {
		t.Fatalf("%d rows for %d refusals", len(recs), len(cases))
	}
	for _, r := range recs {
		if r.Kind != ledger.KindRejected || r.Action != "rollback" || r.Outcome != ledger.OutcomeInvalid {
			t.Errorf("refusal row: %+v", r)
		}
	}
	t.Run("no history", func(t *testing.T) {
		_, err := e.do(t, control.Request{Action: workload.ActionRollback, Service: "api"})
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("rollback of a service without history: %v", err)
		}
	})
	t.Run("another key", func(t *testing.T) {
		other := historyEnv(t, led, newKey(t), e.mem)
		_, err := other.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 1})
		if we := workload.AsError(err); we.Code != workload.InvalidArgument || !strings.Contains(we.Message, "another revision key") {
			t.Fatalf("rollback with another key: %v", err)
		}
		hist, err := other.rt.History(context.Background(), "local", "web")
		if err != nil || len(hist) != 4 || !strings.Contains(hist[3].Problem, "another revision key") {
			t.Fatalf("history with another key: %+v, %v", hist, err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		exec(t, `DROP TRIGGER workload_revisions_no_update`)
		exec(t, `UPDATE workload_revisions SET spec = replace(spec, 'example/app:2', 'evil/app:6') WHERE revision = 4`)
		hist, err := e.rt.History(context.Background(), "local", "web")
		if err != nil || !strings.Contains(hist[0].Problem, "does not match the digest") || hist[0].Spec.Image != "" {
			t.Fatalf("history after tampering: %+v, %v", hist[0], err)
		}
		// Revision 5 would be a rollback to 4: refused, nothing restored.
		_, err = e.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 3})
		if err != nil {
			t.Fatalf("rollback to an intact revision: %v", err)
		}
		_, err = e.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 4})
		if we := workload.AsError(err); we.Code != workload.InvalidArgument || !strings.Contains(we.Message, "does not match the digest") {
			t.Fatalf("rollback to a tampered revision: %v", err)
		}
		if st, _ := e.mem.Status(context.Background(), "web"); st.Image != "example/app:1" {
			t.Errorf("the backend runs %s after the refusal", st.Image)
		}
	})
}
