package workload

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustRead(t *testing.T, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFixture(t *testing.T) {
	spec, err := DecodeSpecJSON(mustRead(t, "web.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(); err != nil {
		t.Fatalf("fixture invalid: %v", err)
	}
	if spec.Replicas != 3 || spec.HealthCheck.Interval.D() != 5*time.Second || spec.Secrets[0].From != "env:ALPHASWARM_SECRET_DB" {
		t.Fatalf("decoded %+v", spec)
	}
	if cpu, _ := spec.Resources.MilliCPU(); cpu != 500 {
		t.Errorf("cpu = %d", cpu)
	}
	if mem, _ := spec.Resources.MemoryBytes(); mem != 256<<20 {
		t.Errorf("memory = %d", mem)
	}
	// Round trip.
	b, _ := json.Marshal(spec)
	again, err := DecodeSpecJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(again)
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
}

func TestDecodeDefaultsReplicas(t *testing.T) {
	spec, err := DecodeSpecJSON([]byte(`{"name":"a","image":"x"}`))
	if err != nil || spec.Replicas != 1 {
		t.Fatalf("replicas = %d, %v", spec.Replicas, err)
	}
	spec, err = DecodeSpecJSON([]byte(`{"name":"a","image":"x","replicas":0}`))
	if err != nil || spec.Replicas != 0 {
		t.Fatalf("explicit 0: replicas = %d, %v", spec.Replicas, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := []struct {
		name, in string
		paths    []string
	}{
		{"unknown top", `{"name":"a","image":"x","replica":2}`, []string{"replica"}},
		{"unknown nested", `{"name":"a","image":"x","ports":[{"container":1},{"contianer":2}]}`, []string{"ports[1].contianer"}},
		{"unknown deep", `{"name":"a","image":"x","healthCheck":{"http":{"path":"/","port":1,"scheme":"h"}}}`, []string{"healthCheck.http.scheme"}},
		{"several unknown", `{"nme":"a","imag":"x"}`, []string{"imag", "nme"}},
		{"type", `{"name":"a","image":"x","replicas":"three"}`, []string{"replicas"}},
		{"not object", `[1,2]`, []string{"spec"}},
		{"not json", `{"name":`, []string{"spec"}},
		{"trailing", `{"name":"a","image":"x"} {}`, []string{"spec"}},
		{"bad duration", `{"name":"a","image":"x","healthCheck":{"tcp":{"port":1},"interval":"soon"}}`, []string{"spec"}},
		{"case variant", `{"name":"a","image":"x","replicas":1,"Replicas":7}`, []string{"Replicas"}},
		{"case variant alone", `{"name":"a","Image":"x"}`, []string{"Image"}},
		{"case variant nested", `{"name":"a","image":"x","ports":[{"Container":1}]}`, []string{"ports[0].Container"}},
		{"duplicate", `{"name":"a","image":"x","replicas":1,"replicas":7}`, []string{"replicas"}},
		{"duplicate escaped", `{"name":"a","image":"x","replicas":1,"repl\u0069cas":7}`, []string{"replicas"}},
		{"duplicate in map", `{"name":"a","image":"x","env":{"A":"1","A":"2","a":"3"}}`, []string{"env.A"}},
		{"duplicate in list item", `{"name":"a","image":"x","ports":[{"container":1},{"container":1,"container":2}]}`, []string{"ports[1].container"}},
		{"duplicate in extension", `{"name":"a","image":"x","extensions":{"docker":{"x":1,"x":2}}}`, []string{"extensions.docker.x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSpecJSON([]byte(tc.in))
			e := AsError(err)
			if e == nil || e.Code != InvalidArgument {
				t.Fatalf("err = %v, want invalid_argument", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Path)
			}
			if !slices.Equal(got, tc.paths) {
				t.Fatalf("paths = %v, want %v (%v)", got, tc.paths, err)
			}
		})
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	spec := DeploymentSpec{
		Name:      "Bad_Name",
		Target:    "-x",
		Replicas:  -1,
		Env:       map[string]string{"1BAD": "x", "ALPHASWARM_TOKEN": "y", "OK": "z"},
		Secrets:   []SecretRef{{Env: "OK", From: "env:X"}, {Env: "S", From: ""}},
		Ports:     []Port{{Container: 80}, {Container: 70000, Host: -1, Protocol: "sctp"}, {Container: 80}},
		Resources: Resources{CPU: "lots", Memory: "12XB"},
		HealthCheck: &HealthCheck{HTTP: &HTTPCheck{Path: "health", Port: 0}, TCP: &TCPCheck{Port: 1},
			Interval: -1, Retries: -1},
		Config:     map[string]string{"good.key": "v", "bad key": "v"},
		Labels:     map[string]string{"alphaswarm.service": "x", "ok": strings.Repeat("v", 64)},
		Extensions: map[string]json.RawMessage{"Not A Provider": nil},
	}
	err := spec.Validate()
	e := AsError(err)
	if e == nil || e.Code != InvalidArgument {
		t.Fatalf("err = %v", err)
	}
	want := []string{
		"name", "target", "image", "replicas", "env.1BAD", "env.ALPHASWARM_TOKEN", "secrets[0].env", "secrets[1].from",
		"ports[1].container", "ports[1].host", "ports[1].protocol", "ports[2].container",
		"resources.cpu", "resources.memory", "healthCheck.http.path", "healthCheck.http.port", "healthCheck",
		"healthCheck.interval", "healthCheck.retries", "config.bad key", "labels.alphaswarm.service", "labels.ok",
		"extensions.Not A Provider",
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Path)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paths:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(e.Message, "replicas: must be >= 0") {
		t.Errorf("message %q lacks the replicas error", e.Message)
	}
}

func TestValidateAcceptsMinimal(t *testing.T) {
	for _, s := range []DeploymentSpec{
		{Name: "a", Image: "x"},
		{Name: "web-1", Image: "x", Replicas: MaxReplicas},
		{Name: "multi", Compose: &ComposeProfile{File: "compose.yaml"}},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

func TestQuantities(t *testing.T) {
	cpu := map[string]int64{"": 0, "250m": 250, "0.5": 500, "2": 2000, "1.25": 1250}
	for in, want := range cpu {
		if got, err := ParseMilliCPU(in); err != nil || got != want {
			t.Errorf("cpu %q = %d, %v", in, got, err)
		}
	}
	mem := map[string]int64{"": 0, "1024": 1024, "1Ki": 1024, "256Mi": 256 << 20, "1G": 1e9, "2Gi": 2 << 30}
	for in, want := range mem {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("memory %q = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"-1", "x", "1.5Mi", "99999999999999999Ti"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("memory %q accepted", bad)
		}
	}
	for _, bad := range []string{"-1", "m", "1e400", "NaN"} {
		if _, err := ParseMilliCPU(bad); err == nil {
			t.Errorf("cpu %q accepted", bad)
		}
	}
}

func TestParseAction(t *testing.T) {
	for _, a := range Actions {
		got, err := ParseAction(string(a))
		if err != nil || got != a {
			t.Errorf("%s: %v %v", a, got, err)
		}
	}
	if _, err := ParseAction("explode"); CodeOf(err) != InvalidArgument || strings.Contains(err.Error(), "Terraform") {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := ParseAction("create_namespace"); !strings.Contains(err.Error(), "Terraform") {
		t.Errorf("provisioning action: %v", err)
	}
}

func TestPhaseFromReplicas(t *testing.T) {
	cases := []struct {
		r       Replicas
		running int
		want    Phase
	}{
		{Replicas{0, 0, 0}, 0, Stopped},
		{Replicas{0, 0, 0}, 1, Progressing},
		{Replicas{3, 3, 3}, 3, Running},
		{Replicas{3, 2, 1}, 3, Progressing},
		{Replicas{3, 2, 3}, 3, Degraded},
		{Replicas{3, 0, 3}, 0, Pending},
	}
	for _, tc := range cases {
		if got := PhaseFromReplicas(tc.r, tc.running); got != tc.want {
			t.Errorf("%+v running %d: %s, want %s", tc.r, tc.running, got, tc.want)
		}
	}
}
