package workload_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// opts is a small option set as a provider declares it.
type opts struct {
	Region  string            `json:"region"`
	Retries int               `json:"retries,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
	Subnets []struct {
		ID string `json:"id"`
	} `json:"subnets,omitempty"`
	Timeout workload.Duration `json:"timeout,omitzero"`
}

func fieldsOf(t *testing.T, err error) []workload.FieldError {
	t.Helper()
	var e *workload.Error
	if !errors.As(err, &e) || e.Code != workload.InvalidArgument {
		t.Fatalf("err = %#v, want an InvalidArgument *workload.Error", err)
	}
	return e.Fields
}

func TestDecodeStrictRejects(t *testing.T) {
	const at = "targets.eu.options"
	cases := []struct {
		name string
		in   string
		want []workload.FieldError // for DecodeStrict at "targets.eu.options"
	}{
		{"unknown", `{"region":"eu","regoin":"x"}`, []workload.FieldError{{at + ".regoin", "unknown field"}}},
		{"case mismatch", `{"Region":"eu"}`, []workload.FieldError{{at + ".Region", `unknown field (keys are case-sensitive: did you mean "region"?)`}}},
		{"nested unknown", `{"subnets":[{"id":"a"},{"idd":"b"}]}`, []workload.FieldError{{at + ".subnets[1].idd", "unknown field"}}},
		{"repeated", `{"region":"a","region":"b"}`, []workload.FieldError{{at + ".region", "duplicate key: each key may appear once"}}},
		{"repeated in a map", `{"tags":{"a":"1","a":"2"}}`, []workload.FieldError{{at + ".tags.a", "duplicate key: each key may appear once"}}},
		{"wrong type", `{"retries":"many"}`, []workload.FieldError{{at + ".retries", "must be an integer, not string"}}},
		// encoding/json names the map, not the key.
		{"wrong type in a map", `{"tags":{"a":1}}`, []workload.FieldError{{at + ".tags", "must be a string, not number"}}},
		{"bad value of its own type", `{"timeout":"soon"}`, []workload.FieldError{{at, `duration "soon": time: invalid duration "soon"`}}},
		{"not JSON", `{"region":`, []workload.FieldError{{at, "not valid JSON: unexpected end of JSON input"}}},
		{"not an object", `["eu"]`, []workload.FieldError{{at, "must be an object"}}},
		{"null", `null`, []workload.FieldError{{at, "must be an object"}}},
		{"trailing", `{"region":"eu"} {}`, []workload.FieldError{{at, "not valid JSON: invalid character '{' after top-level value"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := workload.DecodeStrict[opts]([]byte(tc.in), at)
			if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("DecodeStrict: %v, want %v", got, tc.want)
			}
			// DecodeInto reports the same, word for word.
			var v opts
			if got := fieldsOf(t, workload.DecodeInto([]byte(tc.in), &v, at)); !slices.Equal(got, tc.want) {
				t.Fatalf("DecodeInto: %v, want %v", got, tc.want)
			}
			// As a whole document, field paths start at the keys and the
			// messages stay the same.
			_, err = workload.DecodeDocument[opts]([]byte(tc.in), "body")
			want := slices.Clone(tc.want)
			for i := range want {
				if want[i].Path == at {
					want[i].Path = "body"
				} else {
					want[i].Path = strings.TrimPrefix(want[i].Path, at+".")
				}
			}
			if got := fieldsOf(t, err); !slices.Equal(got, want) {
				t.Fatalf("DecodeDocument: %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeStrictAccepts(t *testing.T) {
	in := `{"region":"eu","retries":3,"tags":{"team":"a"},"subnets":[{"id":"s1"}],"timeout":"2s"}`
	v, err := workload.DecodeStrict[opts]([]byte(in), "extensions.x")
	if err != nil {
		t.Fatal(err)
	}
	if v.Region != "eu" || v.Retries != 3 || v.Tags["team"] != "a" || len(v.Subnets) != 1 || v.Subnets[0].ID != "s1" || time.Duration(v.Timeout) != 2*time.Second {
		t.Fatalf("decoded %+v", v)
	}
	// DecodeInto keeps the defaults a document leaves alone.
	def := opts{Region: "us", Retries: 5}
	if err := workload.DecodeInto([]byte(`{"retries":1}`), &def, "x"); err != nil || def.Region != "us" || def.Retries != 1 {
		t.Fatalf("DecodeInto = %+v, %v", def, err)
	}
}

func TestCheckName(t *testing.T) {
	cases := []struct {
		name, path, in, msg string
	}{
		{"ok", "name", "web-1", ""},
		{"empty", "name", "", "is required"},
		{"upper case", "targets.name", "Web", "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"},
		{"too long", "service", strings.Repeat("a", 64), "must be at most 63 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := workload.CheckName(tc.path, tc.in)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) = %v", tc.in, err)
				}
				return
			}
			want := []workload.FieldError{{tc.path, tc.msg}}
			if got := fieldsOf(t, err); !slices.Equal(got, want) || workload.ValidateName(tc.in) != tc.msg {
				t.Fatalf("CheckName(%q) = %v, want %v", tc.in, got, want)
			}
		})
	}
}
