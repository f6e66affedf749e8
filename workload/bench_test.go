package workload

import (
	"os"
	"testing"
)

// BenchmarkDecodeSpecJSON decodes the full example spec (testdata/web.json)
// with every check: unknown fields, exact-case and duplicate keys, types.
func BenchmarkDecodeSpecJSON(b *testing.B) {
	data, err := os.ReadFile("testdata/web.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeSpecJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}
