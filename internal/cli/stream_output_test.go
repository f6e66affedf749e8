package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/workload"
	"sigs.k8s.io/yaml"
)

// TestStreamOutput (review third-party-clients F4): streamed YAML is one
// document per record, so a YAML reader gets all of them; `metrics
// --watch` rows stay aligned with the header.
func TestStreamOutput(t *testing.T) {
	s := startServer(t)
	if _, err := s.mem.Start(context.Background(), workload.DeploymentSpec{Name: "web", Image: "x/y:1", Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	out := s.mustRun(t, "viewer", "logs", "web", "--tail", "-1", "-o", "yaml")
	docs := strings.Split(strings.TrimPrefix(out, "---\n"), "\n---\n")
	if len(docs) < 3 || !strings.HasPrefix(out, "---\n") {
		t.Fatalf("logs -o yaml: %d documents, want one per line (3 instances):\n%s", len(docs), out)
	}
	for _, d := range docs {
		var line map[string]any
		if err := yaml.Unmarshal([]byte(d), &line); err != nil || line["text"] == nil {
			t.Fatalf("document %q: %v", d, err)
		}
	}

	// metrics --watch: a bounded run; every row as long as the header.
	ctx := testkit.Context(t, 3*time.Second)
	cmd := exec.CommandContext(ctx, binary, "metrics", "web", "--watch")
	cmd.Env = append(os.Environ(), "ALPHASWARM_SERVER="+s.url, "ALPHASWARM_TOKEN="+s.tokens["viewer"], "ALPHASWARM_DATA_DIR="+t.TempDir())
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	_ = cmd.Run() // ended by the deadline
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("metrics --watch printed %d lines in 3s: %q", len(lines), stdout.String())
	}
	header := lines[0]
	for _, l := range lines[1:] {
		for _, col := range []string{"INSTANCES", "CPU%", "MEMORY"} {
			// The column's last character sits at the same offset in every row.
			end := strings.Index(header, col) + len(col)
			if len(l) < end || l[end-1] == ' ' || (len(l) > end && l[end] != ' ') {
				t.Fatalf("row %q is not aligned with the header %q at %s", l, header, col)
			}
		}
	}
}
