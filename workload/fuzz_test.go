package workload

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzDecodeSpec checks that no input makes decoding or validation panic,
// that every failure is an InvalidArgument with field paths, and that a
// spec that decodes and validates survives a round trip.
func FuzzDecodeSpec(f *testing.F) {
	if b, err := os.ReadFile("testdata/web.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"name":"a","image":"x","ports":[{"container":1},{"contianer":2}]}`))
	f.Add([]byte(`{"name":"a","image":"x","healthCheck":{"exec":[],"interval":3}}`))
	f.Add([]byte(`{"name":"a","compose":{"file":"c.yaml","profiles":[""]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spec, err := DecodeSpecJSON(b)
		if err != nil {
			e := AsError(err)
			if e.Code != InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("decode error %v: want invalid_argument with fields", err)
			}
			return
		}
		if err := spec.Validate(); err != nil {
			e := AsError(err)
			if e.Code != InvalidArgument || len(e.Fields) == 0 {
				t.Fatalf("validate error %v: want invalid_argument with fields", err)
			}
			return
		}
		out, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("marshal valid spec: %v", err)
		}
		again, err := DecodeSpecJSON(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("round trip invalid: %v\n%s", err, out)
		}
	})
}
