package gcp

import (
	"regexp"
	"strings"
	"testing"
)

// TestConfigSecretIDs: ids are valid, at most 255 characters, and
// distinct for distinct (target, service, key).
func TestConfigSecretIDs(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	cases := []struct{ target, service, key, want string }{
		{"prod", "web", "greeting", "alphaswarm-prod--web--greeting"},
		{"prod", "web", "a-b", "alphaswarm-prod--web--a-b"},
		{"prod", "web-a", "b", "alphaswarm-prod--web-a--b"},
		{"prod-web", "a", "b", "alphaswarm-prod-web--a--b"},
		{"prod", "web", "a.b", ""},
		{"prod", "web", "a_b", "alphaswarm-prod--web--a_b"},
		{"prod", "a--b", "c", ""},
		{"prod", "a", "b--c", ""},
		{strings.Repeat("t", 63), strings.Repeat("s", 63), strings.Repeat("k", 253), ""},
		{strings.Repeat("t", 63), strings.Repeat("s", 63), strings.Repeat("k", 252), ""},
	}
	seen := map[string]int{}
	for i, c := range cases {
		p := &Provider{target: c.target}
		id := p.configSecretID(c.service, c.key)
		if !valid.MatchString(id) {
			t.Errorf("%d: id %q is not a valid secret id", i, id)
		}
		if c.want != "" && id != c.want {
			t.Errorf("%d: id %q, want %q", i, id, c.want)
		}
		if j, dup := seen[id]; dup {
			t.Errorf("%d and %d share id %q", j, i, id)
		}
		seen[id] = i
	}
}
