package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// D2 through the API: a deploy whose rollout ends Failed is an error
// envelope with code rollout_failed, HTTP 422, and the status in
// error.status. On the old code it was 200 with status Failed.
func TestFailedRolloutEnvelope(t *testing.T) {
	f := newFixture(t)
	f.mem.Fail = func(provider.Operation, string) string { return "ImagePullBackOff: Back-off pulling image" }
	r := f.call(t, "operator", "POST", "/v1/targets/local/services", "name: web\nimage: x/y:1\nreplicas: 2\n", "Content-Type", "application/yaml")
	if r.status != http.StatusUnprocessableEntity || r.env.Error == nil || r.env.Error.Code != workload.RolloutFailed {
		t.Fatalf("deploy: %d %s", r.status, r.raw)
	}
	st := r.env.Error.Status
	if st == nil || st.Phase != workload.Failed || st.ID != "local/web" || !strings.Contains(st.Message, "ImagePullBackOff") {
		t.Fatalf("error.status = %+v", st)
	}
	// The Go client hands the status to its caller.
	c, err := client.New(f.url, tokens["operator"])
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Scale(context.Background(), "local", "web", 3)
	if we := workload.AsError(err); we == nil || we.Code != workload.RolloutFailed || we.Status == nil || we.Status.Phase != workload.Failed {
		t.Fatalf("client scale: %+v", we)
	}
}

func TestWaitQueryParameters(t *testing.T) {
	f := newFixture(t)
	f.mem.ReadyAfter = time.Hour
	r := f.call(t, "operator", "POST", "/v1/targets/local/services?wait=false", "name: web\nimage: x/y:1\nreplicas: 2\n", "Content-Type", "application/yaml")
	var res control.Result
	json.Unmarshal(r.env.Data, &res)
	if r.status != 200 || !res.NoWait || res.Status == nil || res.Status.Phase != workload.Progressing {
		t.Fatalf("deploy?wait=false: %d %s", r.status, r.raw)
	}
	// Waiting with a short timeout: the deadline passes while Progressing.
	r = f.call(t, "operator", "POST", "/v1/targets/local/services/web/restart?timeout=1s", "")
	if r.status != http.StatusGatewayTimeout || r.env.Error.Code != workload.Timeout || r.env.Error.Status == nil ||
		r.env.Error.Status.Phase != workload.Progressing {
		t.Fatalf("restart?timeout=1s: %d %s", r.status, r.raw)
	}
	for _, q := range []string{"wait=maybe", "timeout=soon", "timeout=-1s", "timeout=3h"} {
		r = f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale?"+q, `{"replicas":1}`)
		if r.status != 400 || r.env.Error.Code != workload.InvalidArgument || len(r.env.Error.Fields) == 0 {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
	// The client's options reach the server.
	c, _ := client.New(f.url, tokens["operator"])
	res, err := c.Scale(client.WithWait(context.Background(), false, 0), "local", "web", 3)
	if err != nil || !res.NoWait {
		t.Fatalf("client no-wait scale: %+v %v", res, err)
	}
}

func TestOpenAPIDocumentsWait(t *testing.T) {
	f := newFixture(t)
	doc := openAPI(t, f)
	for _, route := range [][2]string{{"post", "/v1/targets/{target}/services"}, {"post", "/v1/targets/{target}/services/{service}/stop"},
		{"post", "/v1/targets/{target}/services/{service}/scale"}, {"post", "/v1/targets/{target}/services/{service}/restart"},
		{"put", "/v1/targets/{target}/services/{service}/config"}} {
		var op struct {
			Parameters []struct{ Name, In string }
		}
		json.Unmarshal(doc.Paths[route[1]][route[0]], &op)
		got := map[string]bool{}
		for _, p := range op.Parameters {
			got[p.In+":"+p.Name] = true
		}
		if !got["query:wait"] || !got["query:timeout"] {
			t.Errorf("%s %s documents %v, want query wait and timeout", route[0], route[1], got)
		}
	}
	r := f.call(t, "", "GET", "/v1/openapi.json", "")
	var raw struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string
						}
						Status json.RawMessage
					}
				}
			}
		}
	}
	json.Unmarshal([]byte(r.raw), &raw)
	enum := raw.Components.Schemas.Error.Properties.Code.Enum
	if len(enum) != len(workload.Codes) {
		t.Errorf("openapi codes %v, want %v", enum, workload.Codes)
	}
	for _, c := range workload.Codes {
		if !strings.Contains(strings.Join(enum, ","), string(c)) {
			t.Errorf("openapi does not list code %s", c)
		}
	}
	if len(raw.Components.Schemas.Error.Properties.Status) == 0 {
		t.Error("openapi Error has no status")
	}
}

// D4: a logs request with no lines is an empty answer, not an error.
func TestLogsWithNoLinesIsEmpty(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 2)
	f.deploy(t, "idle", 0)
	c, _ := client.New(f.url, tokens["viewer"])
	for name, tc := range map[string]struct {
		svc  string
		opts provider.LogOptions
	}{
		"since in the future": {"web", provider.LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}},
		"tail 0":              {"web", provider.LogOptions{Tail: 0}},
		"zero replicas":       {"idle", provider.LogOptions{Tail: 100}},
	} {
		t.Run(name, func(t *testing.T) {
			n := 0
			for _, err := range c.Logs(context.Background(), "local", tc.svc, tc.opts) {
				if err != nil {
					t.Fatalf("logs: %v", err)
				}
				n++
			}
			if n != 0 {
				t.Fatalf("%d lines, want none", n)
			}
		})
	}
	// Lines there are still arrive, and an unknown service is still an error.
	n := 0
	for _, err := range c.Logs(context.Background(), "local", "web", provider.LogOptions{Tail: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d lines, want the 2 startup lines", n)
	}
	for _, err := range c.Logs(context.Background(), "local", "ghost", provider.LogOptions{Tail: -1}) {
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("logs of ghost: %v", err)
		}
	}
}
