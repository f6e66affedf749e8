package auth

import (
	"os"
	"testing"
)

// FuzzParseStore checks that no tokens.json content makes the store's
// decoder panic, and that what it accepts indexes without a panic.
func FuzzParseStore(f *testing.F) {
	if b, err := os.ReadFile("testdata/store_v1.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"tokens":[]}`))
	f.Add([]byte(`{"version":1,"Tokens":[],"tokens":[]}`))
	f.Add([]byte(`{"version":1,"tokens":[{"id":"a","user":"u","role":"admin","sha256":"00","id":"b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := parseStore(b)
		if err != nil {
			return
		}
		_, _ = newTokenSet(nil, sf.Tokens)
	})
}
