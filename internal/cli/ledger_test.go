package cli_test

import (
	"bufio"
	"bytes"
	"context"

	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger/checkpoint"
)

// serveProc is one `alphaswarm serve` process.
type serveProc struct {
	url, out string
	env      []string
	cmd      *exec.Cmd
	done     chan error
}

// startServe runs serve on data with config cfg and extra flags, and waits
// for "listening on".
func startServe(t *testing.T, data, cfg string, flags ...string) *serveProc {
	t.Helper()
	env := append(os.Environ(), "ALPHASWARM_DATA_DIR="+data)
	cmd := exec.Command(binary, append([]string{"serve", "--config", cfg}, flags...)...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, done: make(chan error, 1)}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			p.url = u
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
		p.done <- cmd.Wait()
	}()
	p.out = strings.Join(lines, "\n")
	p.env = append(env, "ALPHASWARM_SERVER="+p.url)
	t.Cleanup(func() { p.stop(t) })
	if p.url == "" {
		t.Fatalf("serve did not start:\n%s\n%s", p.out, stderr.String())
	}
	return p
}

func (p *serveProc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Error("serve did not stop within 30s of SIGTERM")
	}
}

func (p *serveProc) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func (p *serveProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeLedgerTamperDetected is the review's F5/F11 attack end to end:
// halt on, stop the server, delete the ledger's tail from the halt row with
// sqlite3-style SQL (triggers dropped and put back), start again. The
// server must come up read-only and not ready, keep the halt, say why in
// its metrics; `ledger verify --checkpoints` must name the checkpoint; an
// admin's --ledger-accept-broken start is recorded in the ledger; and the
// export sink holds every row written before the attack, with its hash.
func TestServeLedgerTamperDetected(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	export := filepath.Join(t.TempDir(), "siem", "ledger.jsonl")
	cfg := filepath.Join(t.TempDir(), "alphaswarm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: 127.0.0.1:0
noLocalTarget: true
checkpoints:
  every: 1
  interval: 200ms
  sinks:
  - name: siem
    type: jsonl
    path: %s
`, export)), 0o600)
	cpFile := data + "-checkpoints/checkpoints.jsonl"

	s := startServe(t, data, cfg)
	if !strings.Contains(s.out, "first start: checkpoint signing key written to "+filepath.Join(data, "checkpoint.key")) {
		t.Fatalf("start-up output lacks the key line:\n%s", s.out)
	}
	var pub string
	for _, l := range strings.Split(s.out, "\n") {
		if rest, ok := strings.CutPrefix(l, "ledger checkpoints: "); ok {
			pub, _, _ = strings.Cut(rest, " ")
		}
	}
	if code, body := s.get(t, "/v1/ledger/checkpoint-key"); code != 200 || !strings.Contains(body, pub) || pub == "" {
		t.Fatalf("GET /v1/ledger/checkpoint-key = %d %s; start-up key %q", code, body, pub)
	}
	if fi, err := os.Stat(filepath.Join(data, "checkpoint.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if out, code := s.cli(t, "halt", "on", "--all"); code != 0 {
		t.Fatalf("halt on: %d %s", code, out)
	}
	for range 3 { // refused (halted) requests are rows too
		s.cli(t, "scale", "web", "2", "--target", "local")
	}
	s.stop(t)
	cps, err := checkpoint.ReadFile(cpFile)
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints: %v %v", cps, err)
	}
	last := cps[len(cps)-1]
	if len(last.Halts) != 1 || last.Halts[0] != "*" {
		t.Fatalf("last checkpoint %+v lacks the global halt", last)
	}
	exported := exportedRows(t, export)
	if int64(len(exported)) != last.Seq {
		t.Fatalf("export holds %d rows, the ledger %d", len(exported), last.Seq)
	}

	// The attack.
	db, err := sql.Open("sqlite", filepath.Join(data, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	var haltSeq int64
	if err := db.QueryRow(`SELECT min(seq) FROM workload_runs WHERE action = 'halt'`).Scan(&haltSeq); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER workload_runs_no_delete`, fmt.Sprintf(`DELETE FROM workload_runs WHERE seq >= %d`, haltSeq),
		`CREATE TRIGGER workload_runs_no_delete BEFORE DELETE ON workload_runs BEGIN SELECT RAISE(ABORT, 'workload_runs is append-only'); END`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = startServe(t, data, cfg)
	for _, want := range []string{"DOES NOT VERIFY", "checkpoint #", "READ-ONLY", fmt.Sprintf("(%d records", haltSeq-1)} {
		if !strings.Contains(s.out, want) {
			t.Fatalf("start-up output lacks %q:\n%s", want, s.out)
		}
	}
	if code, body := s.get(t, "/readyz"); code != 503 || !strings.Contains(body, "read-only") {
		t.Fatalf("readyz on a tampered ledger = %d %s", code, body)
	}
	if _, body := s.get(t, "/metrics"); !strings.Contains(body, "alphaswarm_ledger_tampered 1") || !strings.Contains(body, "alphaswarm_ledger_writable 0") {
		t.Fatalf("metrics lack the tamper gauges:\n%s", grepLines(body, "alphaswarm_ledger"))
	}
	if out, _ := s.cli(t, "halt", "status"); !strings.Contains(out, "on") {
		t.Fatalf("halt status after the halt rows were deleted: %s", out)
	}
	if out, code := s.cli(t, "halt", "off", "--all"); code == 0 || !strings.Contains(out, "unavailable") || !strings.Contains(out, "read-only") {
		t.Fatalf("halt off on a read-only ledger: %d %s", code, out)
	}
	out, code := s.cli(t, "ledger", "verify", "--ledger", "sqlite:"+filepath.Join(data, "ledger.db"), "--checkpoints", cpFile, "--public-key", pub)
	if code == 0 || !strings.Contains(out, "first bad checkpoint:") || !strings.Contains(out, "removed from the tail") {
		t.Fatalf("ledger verify --checkpoints: %d\n%s", code, out)
	}
	// The export is a copy outside the database: its checkpoints verify
	// the same way.
	if out, code := s.cli(t, "ledger", "verify", "--ledger", "sqlite:"+filepath.Join(data, "ledger.db"), "--checkpoints", export, "--public-key", pub); code == 0 {
		t.Fatalf("verify against the export's checkpoints passed:\n%s", out)
	}
	s.stop(t)

	s = startServe(t, data, cfg, "--ledger-accept-broken")
	if !strings.Contains(s.out, "started anyway") {
		t.Fatalf("accept start-up:\n%s", s.out)
	}
	if code, body := s.get(t, "/readyz"); code != 200 {
		t.Fatalf("readyz after an admin accepted: %d %s", code, body)
	}
	if out, _ := s.cli(t, "runs", "--action", "ledger_accept", "-o", "json"); !strings.Contains(out, "ledger_accept") || !strings.Contains(out, "removed from the tail") {
		t.Fatalf("the acceptance is not in the ledger:\n%s", out)
	}
	if out, _ := s.cli(t, "halt", "status"); !strings.Contains(out, "on") {
		t.Fatalf("an accepted start lifted the checkpointed halt: %s", out)
	}
	if out, code := s.cli(t, "halt", "off", "--all"); code != 0 {
		t.Fatalf("halt off by an admin: %d %s", code, out)
	}
	if out, _ := s.cli(t, "halt", "status", "-o", "json"); strings.Contains(out, "true") {
		t.Fatalf("halt status after halt off: %s", out)
	}
}

func exportedRows(t *testing.T, path string) map[int64]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int64]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var line checkpoint.Line
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		if line.Type == "row" {
			if line.Row.Hash == "" || line.Row.ComputeHash() != line.Row.Hash {
				t.Fatalf("exported row %d: hash %q does not match its contents", line.Row.Seq, line.Row.Hash)
			}
			rows[line.Row.Seq] = line.Row.Hash
		}
	}
	return rows
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeWarnsWhenTheLedgerRoleCanAlterTheTable runs serve on PostgreSQL
// as the superuser (warned), then, after `ledger migrate --grant-runtime`,
// as a role with INSERT and SELECT only (not warned).
func TestServeWarnsWhenTheLedgerRoleCanAlterTheTable(t *testing.T) {
	dsn := pgtest.Start(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE ROLE ledger_owner LOGIN", "CREATE ROLE ledger_app LOGIN", "CREATE DATABASE audit OWNER ledger_owner"} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	c.Close(ctx)
	as := func(role string) string {
		u := strings.Replace(dsn, "postgres://postgres@/postgres", "postgres://"+role+"@/audit", 1)
		if u == dsn {
			t.Fatalf("unexpected pgtest DSN %s", dsn)
		}
		return u
	}
	cfg := filepath.Join(t.TempDir(), "alphaswarm.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\nnoLocalTarget: true\n"), 0o600)

	s := &serveProc{env: os.Environ()}
	out, code := s.cli(t, "ledger", "migrate", "--ledger", as("ledger_owner"), "--grant-runtime", "ledger_app")
	if code != 0 || !strings.Contains(out, "role ledger_app: SELECT and INSERT") {
		t.Fatalf("ledger migrate: %d %s", code, out)
	}
	for role, want := range map[string]string{"postgres": "superuser", "ledger_owner": "the owner of workload_runs"} {
		s = startServe(t, filepath.Join(t.TempDir(), role), cfg, "--ledger", as(role))
		if !strings.Contains(s.out, "WARNING: the ledger role can alter the audit table") || !strings.Contains(s.out, want) {
			t.Fatalf("serve as %s did not warn (%q):\n%s", role, want, s.out)
		}
		s.stop(t)
	}
	s = startServe(t, filepath.Join(t.TempDir(), "d2"), cfg, "--ledger", as("ledger_app"))
	if strings.Contains(s.out, "WARNING") {
		t.Fatalf("serve as the runtime role warned:\n%s", s.out)
	}
	if out, code := s.cli(t, "halt", "on", "--all"); code != 0 {
		t.Fatalf("halt on as the runtime role: %d %s", code, out)
	}
}

// TestVerifyNeverCreatesAPostgresLedger (review F2, PostgreSQL side):
// `ledger verify --ledger postgres://...` on an empty database is an error
// and leaves the database empty; on a migrated one it verifies.
func TestVerifyNeverCreatesAPostgresLedger(t *testing.T) {
	dsn := pgtest.Start(t)
	ctx := context.Background()
	tables := func() int {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s := &serveProc{env: os.Environ()}
	out, code := s.cli(t, "ledger", "verify", "--ledger", dsn)
	if code != 1 || !strings.Contains(out, "not_found") || !strings.Contains(out, "never creates") {
		t.Fatalf("verify of an empty database: exit %d\n%s", code, out)
	}
	if n := tables(); n != 0 {
		t.Fatalf("verify created %d tables in the empty database", n)
	}
	if out, code := s.cli(t, "ledger", "migrate", "--ledger", dsn); code != 0 {
		t.Fatalf("ledger migrate: %d %s", code, out)
	}
	out, code = s.cli(t, "ledger", "verify", "--ledger", dsn)
	if code != 0 || !strings.Contains(out, "chain OK: 0 records") {
		t.Fatalf("verify of a migrated ledger: exit %d\n%s", code, out)
	}
}
