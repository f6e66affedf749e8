package specfile

import (
	"slices"
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestReadFileYAML(t *testing.T) {
	spec, err := ReadFile("testdata/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	if spec.Name != "web" || spec.Replicas != 3 || spec.Ports[0].Container != 8080 || spec.HealthCheck.Interval.D().Seconds() != 5 {
		t.Fatalf("decoded %+v", spec)
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		f     Format
		paths []string
	}{
		{"yaml ok", "name: a\nimage: x\n", YAML, nil},
		{"json auto", `{"name":"a","image":"x"}`, Auto, nil},
		{"yaml auto", "name: a\nimage: x\n", Auto, nil},
		{"yaml unknown nested", "name: a\nimage: x\nports:\n- container: 1\n- contianer: 2\n", YAML, []string{"ports[1].contianer"}},
		{"yaml duplicate key", "name: a\nname: b\nimage: x\n", YAML, []string{"spec"}},
		{"yaml type", "name: a\nimage: x\nreplicas: many\n", YAML, []string{"replicas"}},
		{"yaml broken", "name: [a\n", YAML, []string{"spec"}},
		{"yaml case variant", "name: a\nimage: x\nreplicas: 1\nReplicas: 7\n", YAML, []string{"Replicas"}},
		{"json case variant", `{"name":"a","image":"x","replicas":1,"Replicas":7}`, JSON, []string{"Replicas"}},
		{"json duplicate", `{"name":"a","image":"x","replicas":1,"replicas":7}`, Auto, []string{"replicas"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in), tc.f)
			if tc.paths == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := workload.AsError(err)
			if e == nil || e.Code != workload.InvalidArgument {
				t.Fatalf("err = %v", err)
			}
			var got []string
			for _, f := range e.Fields {
				got = append(got, f.Path)
			}
			if !slices.Equal(got, tc.paths) {
				t.Fatalf("paths %v, want %v", got, tc.paths)
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	for in, want := range map[string]Format{"application/json": JSON, "application/yaml": YAML, "text/x-yaml": YAML,
		"web.yml": YAML, "web.yaml": YAML, "web.json": JSON, "": Auto} {
		if got := FormatOf(in); got != want {
			t.Errorf("%q -> %v, want %v", in, got, want)
		}
	}
}

func FuzzDecodeYAML(f *testing.F) {
	f.Add([]byte("name: a\nimage: x\n"))
	f.Add([]byte("name: a\nports:\n- container: 1\n  host: 2\n"))
	f.Add([]byte("name: a\nimage: x\nreplicas: 1\nReplicas: 7\n"))
	f.Add([]byte(`{"name":"a","image":"x","env":{"A":"1","A":"2"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := Decode(b, YAML)
		if err != nil {
			if e := workload.AsError(err); e.Code != workload.InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("error %v: want invalid_argument with fields", err)
			}
			return
		}
		_ = spec.Validate()
	})
}
