package dashboard_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	_ "github.com/alphaswarm/controller/provider/docker" // registers "docker"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/workload"
)

// TestBrowserScenarioDocker is the on-call walk through against the real
// Docker Engine: the test workload (built FROM scratch) is deployed
// through the API, its /burn endpoint is hit (through the API's exec) to
// make the CPU chart rise, and its /log endpoint prints the line the log
// panel must show. Without an Engine it skips loudly; under CI it fails.
func TestBrowserScenarioDocker(t *testing.T) {
	chromium(t)
	var rnd [3]byte
	rand.Read(rnd[:])
	dt := dockertest.NewTarget(testkit.Context(t, 5*time.Minute), t, "dash"+hex.EncodeToString(rnd[:]), dockertest.TargetOptions{})
	target, image := dt.Name, dt.Image
	e := newEnv(t, envOptions{extra: []control.Target{{Name: target, Provider: dt.Provider}}})
	exec := func(ctx context.Context, url string) error {
		body := fmt.Sprintf(`{"command":["/workload","get",%q]}`, url)
		done := make(chan callResult, 1)
		go func() { done <- e.call("admin", "POST", "/v1/targets/"+target+"/services/web/exec", body) }()
		select {
		case r := <-done:
			var res struct {
				ExitCode int    `json:"exitCode"`
				Stderr   string `json:"stderr"`
			}
			if r.err == nil && json.Unmarshal(r.data, &res) == nil && res.ExitCode != 0 {
				return fmt.Errorf("exit %d: %s", res.ExitCode, res.Stderr)
			}
			return r.err
		case <-ctx.Done():
			<-done
			return nil
		}
	}
	runScenario(t, e, workloadHooks{
		target: target, image: image,
		burn: func(ctx context.Context) {
			for ctx.Err() == nil {
				if err := exec(ctx, "http://127.0.0.1:8080/burn?ms=2000"); err != nil && ctx.Err() == nil {
					t.Errorf("burn: %v", err)
					return
				}
			}
		},
		// An idle replica shows about 0 %; a burning one about a core.
		cpuRose: func(first float64) string { return fmt.Sprintf(">= %v + 20", first) },
		emit: func(text string) {
			if err := exec(context.Background(), "http://127.0.0.1:8080/log?text="+url.QueryEscape(text)); err != nil {
				t.Errorf("log: %v", err)
			}
		},
		running: func() int {
			r := e.call("viewer", "GET", "/v1/targets/"+target+"/services/web", "")
			var st workload.DeploymentStatus
			if r.err != nil || json.Unmarshal(r.data, &st) != nil {
				t.Errorf("status: %v", r.err)
			}
			return st.Replicas.Ready
		},
	})
}
