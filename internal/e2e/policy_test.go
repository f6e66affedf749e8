package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestHostEscapeRefused replays the audit's host escapes through the HTTP
// API with an operator token, on the real Engine: compose.file outside the
// target's Compose directory (a host path, /proc/<pid>/root, a link, ..),
// a Compose file mounting / and the Docker socket on the host network, a
// host file's content echoed in errors; and requests outside the target's
// policy. Each is refused, nothing runs, the planted secret content is in
// no answer, ledger row (read by a viewer through /v1/runs) or log line,
// and the refusals are recorded.
func TestHostEscapeRefused(t *testing.T) {
	const planted = "root:$6$PLANTED-e2e-shadow-hash-77aa:20228:0:99999:7:::"
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "shadow"), []byte(planted+"\n"), 0o600)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "shadow.yml"), []byte(planted+"\nservices: [\n"+planted+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "schema.yml"), []byte("services:\n  web:\n    image: x\n    "+strings.ReplaceAll(planted, ":", "_")+": 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pwn.yml"), []byte(fmt.Sprintf(
		"services:\n  pwn:\n    image: %s\n    network_mode: host\n    volumes: [\"/:/host\", \"/var/run/docker.sock:/var/run/docker.sock\"]\n", image)), 0o644)
	os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(dir, "link.yml"))
	var logs testkit.Buffer
	s := newStackWith(t, provider.Policy{Compose: provider.ComposePolicy{Dir: dir}}, &logs)

	name := providertest.Name("esc")
	s.cleanup(t, name)
	deploy := func(sp map[string]any) (int, envelope) {
		sp["name"] = name
		b, _ := json.Marshal(sp)
		return s.call(t, "operator", "POST", "/v1/targets/"+target+"/services", string(b))
	}
	compose := func(file string) map[string]any { return map[string]any{"compose": map[string]any{"file": file}} }
	withImage := func(kv ...any) map[string]any {
		m := map[string]any{"image": image}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		spec map[string]any
		http int
		code workload.Code
		msg  string
	}{
		{"host path", compose(filepath.Join(outside, "shadow")), 400, workload.InvalidArgument, "not an absolute path"},
		{"proc root", compose("/proc/1/root/etc/shadow"), 400, workload.InvalidArgument, "not an absolute path"},
		{"dot-dot", compose("../" + filepath.Base(outside) + "/shadow"), 400, workload.InvalidArgument, `".."`},
		{"link out", compose("link.yml"), 400, workload.InvalidArgument, "leaves it is refused"},
		{"file content in YAML errors", compose("shadow.yml"), 400, workload.InvalidArgument, "shadow.yml: is not valid YAML"},
		{"file content in schema errors", compose("schema.yml"), 400, workload.InvalidArgument, "schema.yml: does not follow the Compose file schema"},
		{"escaping Compose file", compose("pwn.yml"), 400, workload.InvalidArgument, "service pwn: network_mode is refused"},
		{"privileged host port", withImage("ports", []any{map[string]any{"container": 8080, "host": 80}}), 403, workload.PermissionDenied, "host port 80"},
		{"all interfaces", withImage("ports", []any{map[string]any{"container": 8080, "host": 18080, "hostIP": "0.0.0.0"}}), 403, workload.PermissionDenied, "host address 0.0.0.0"},
		{"ungranted secret", withImage("secrets", []any{map[string]any{"env": "DB", "from": "env:ALPHASWARM_SECRET_DB"}}), 403, workload.PermissionDenied, "rule secrets"},
		{"foreign extension", withImage("extensions", map[string]any{"kubernetes": map[string]any{"hostNetwork": true}}), 400, workload.InvalidArgument, "extensions.kubernetes"},
		{"replicas", withImage("replicas", 21), 403, workload.PermissionDenied, "rule maxReplicas"},
	}
	for _, tc := range cases {
		code, env := deploy(tc.spec)
		if code != tc.http || env.Error == nil || env.Error.Code != tc.code || !strings.Contains(env.Error.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %s containing %q", tc.name, code, env.Error, tc.http, tc.code, tc.msg)
		}
		if env.Error != nil && strings.Contains(env.Error.Message, "PLANTED") {
			t.Errorf("%s: the answer quotes the file: %s", tc.name, env.Error.Message)
		}
	}
	if ids := dockerPS(t, name); len(ids) != 0 {
		t.Fatalf("refused requests started containers: %v", ids)
	}

	// What a viewer reads of the ledger, and the log.
	code, env := s.call(t, "viewer", "GET", "/v1/runs?service="+name+"&limit=100", "")
	if code != 200 {
		t.Fatalf("runs: %d %+v", code, env.Error)
	}
	if strings.Contains(string(env.Data), "PLANTED") || strings.Contains(string(env.Data), "99999") {
		t.Errorf("the ledger, as a viewer reads it, quotes the file: %s", env.Data)
	}
	if l := logs.String(); l == "" || strings.Contains(l, "PLANTED") || strings.Contains(l, "99999") {
		t.Errorf("the log is empty or quotes the file:\n%s", l)
	}
	page, err := s.led.Query(context.Background(), ledger.Filter{Service: name, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, r := range page.Records {
		if r.Kind == ledger.KindRejected && r.Outcome == ledger.OutcomeDenied && r.ErrorCode == string(workload.PermissionDenied) && strings.Contains(r.Message, "(rule ") {
			denied++
		}
	}
	if denied != 4 {
		t.Errorf("%d rejected rows naming a policy rule, want 4: %+v", denied, page.Records)
	}
}
