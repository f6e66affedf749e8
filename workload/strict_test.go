package workload

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDuplicateKeysLargeObject(t *testing.T) {
	var kv []string
	for i := range 40 {
		kv = append(kv, fmt.Sprintf("%q:%d", fmt.Sprintf("K%d", i), i))
	}
	ok := "{" + strings.Join(kv, ",") + "}"
	if errs := DuplicateKeys([]byte(ok), "env"); errs != nil {
		t.Fatalf("distinct keys: %v", errs)
	}
	dup := "{" + strings.Join(append(kv, `"K\u00331":0`), ",") + "}" // K31 again, escaped
	errs := DuplicateKeys([]byte(dup), "env")
	if len(errs) != 1 || errs[0].Path != "env.K31" {
		t.Fatalf("errs = %v, want env.K31", errs)
	}
}

// FuzzDuplicateKeys checks the byte scanner against the json.Decoder walk
// on every valid document.
func FuzzDuplicateKeys(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"a":[{"x":1,"x":2}]},"a":"\"a\":"}`))
	f.Add([]byte(`{"a\u0062":1,"ab":2}`))
	f.Add([]byte(`[{"k":"v"},{"k":"v"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			hasDuplicateKeys(b) // must not panic
			return
		}
		w := keyWalker{dec: json.NewDecoder(strings.NewReader(string(b)))}
		_ = w.value("", 0)
		if fast := hasDuplicateKeys(b); fast != (len(w.errs) > 0) {
			t.Fatalf("scanner says %v, walk found %v in %s", fast, w.errs, b)
		}
	})
}
