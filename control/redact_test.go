package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const planted = "hunter2-supersecret-value"

// TestLogsAreRedacted: a workload that prints a secret it was given shows
// every viewer [REDACTED], in a runtime that never resolved the secret
// itself (a restarted controller).
func TestLogsAreRedacted(t *testing.T) {
	creds := credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_DB": planted})
	e := newEnv(t, nil, creds)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	e.mem.Emit("web", "pw="+planted)
	var got []string
	for l, err := range e.rt.Logs(context.Background(), "local", "web", provider.LogOptions{Tail: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
	}
	if len(got) == 0 || got[len(got)-1] != "pw="+credentials.Redacted || strings.Contains(strings.Join(got, "\n"), planted) {
		t.Fatalf("log lines = %q, want the last pw=%s", got, credentials.Redacted)
	}
}

// chunkyExec prints its command's arguments one byte per Write, the way a
// slow process's output reaches a terminal.
type chunkyExec struct{ *providertest.Memory }

func (c chunkyExec) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	out := strings.Join(req.Command[1:], " ") + "\n"
	for i := range len(out) {
		if _, err := req.Stdout.Write([]byte{out[i]}); err != nil {
			return provider.ExecResult{}, err
		}
	}
	return provider.ExecResult{Instance: "i-1"}, nil
}

// TestExecOutputRedactedAcrossWrites: streamed exec output (what the
// WebSocket exec forwards) is redacted even when the secret arrives one
// byte per Write, after a controller restart.
func TestExecOutputRedactedAcrossWrites(t *testing.T) {
	creds := credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_DB": planted})
	mem := providertest.NewMemory("local")
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: creds, Logger: slog.New(slog.DiscardHandler),
		Targets: []control.Target{{Name: "local", Provider: chunkyExec{mem}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	p := control.Principal{User: "root", Role: "admin"}
	if _, err := rt.Do(context.Background(), control.Request{Principal: p, Action: workload.ActionStart, Target: "local",
		Service: "web", Spec: spec("web", 1)}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := rt.Do(context.Background(), control.Request{Principal: p, Action: workload.ActionExec, Target: "local",
		Service: "web", Exec: &provider.ExecRequest{Command: []string{"echo", "DB_PASSWORD=" + planted}, Stdout: &out}}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "DB_PASSWORD="+credentials.Redacted+"\n"; got != want {
		t.Fatalf("exec output %q, want %q", got, want)
	}
}

// TestExecArgumentsNotInLedger reads the ledger as a viewer would (the
// runs API returns rows as stored): an exec's free-form arguments are not
// there, its program and a digest of the command are.
func TestExecArgumentsNotInLedger(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	const arg = "--password=Sup3rS3cretNotRegistered"
	e.mustDo(t, control.Request{Action: workload.ActionExec, Service: "web",
		Exec: &provider.ExecRequest{Command: []string{"echo", "connecting with", arg}}})
	page, err := e.rt.Runs(context.Background(), ledger.Filter{Action: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) == 0 {
		t.Fatal("no exec rows")
	}
	var intent map[string]any
	for _, r := range page.Records {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "Sup3rS3cret") || strings.Contains(string(b), "connecting") {
			t.Errorf("exec row holds the arguments: %s", b)
		}
		if r.Kind == ledger.KindIntent {
			if err := json.Unmarshal([]byte(r.Detail), &intent); err != nil {
				t.Fatal(err)
			}
		}
	}
	if intent["argv0"] != "echo" || intent["argc"] != float64(3) || len(intent["commandSha256"].(string)) != 64 {
		t.Errorf("intent detail = %v, want argv0 echo, argc 3 and a sha256", intent)
	}
	if _, ok := intent["command"]; ok {
		t.Errorf("intent detail still has the command: %v", intent)
	}
}

// vaultProvider resolves a secret from its backend's store, like Azure's
// Key Vault references.
type vaultProvider struct {
	*providertest.Memory
	values []string
	err    error
}

func (v vaultProvider) ManagedSecrets(context.Context) ([]string, error) { return v.values, v.err }

// TestBackendSecretsRegisteredAtStart: values a provider resolves from its
// own secret store are redacted by a fresh runtime (after a restart)
// before the provider resolves them again; a failing source does not stop
// the start.
func TestBackendSecretsRegisteredAtStart(t *testing.T) {
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	creds := credentials.FromMap(nil)
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: creds, Logger: slog.New(slog.DiscardHandler),
		Targets: []control.Target{
			{Name: "aci", Provider: vaultProvider{Memory: providertest.NewMemory("aci"), values: []string{"key-vault-value-0042"}}},
			{Name: "broken", Provider: vaultProvider{Memory: providertest.NewMemory("broken"), err: errors.New("vault unreachable")}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	if got := rt.Redact("conn=key-vault-value-0042"); got != "conn="+credentials.Redacted {
		t.Fatalf("Redact = %q", got)
	}
}
