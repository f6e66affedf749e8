package workload

import (
	"strings"
	"testing"
)

// TestComposeFileAndHostIP: compose.file is a name relative to the target's
// Compose directory, and ports[].hostIP an IP address.
func TestComposeFileAndHostIP(t *testing.T) {
	cases := []struct {
		file, hostIP string
		bad          string // the field path expected in the error, "" when valid
	}{
		{"compose.yml", "", ""},
		{"team/web.yml", "127.0.0.1", ""},
		{"c.yml", "::1", ""},
		{"", "", "compose.file"},
		{"/etc/shadow", "", "compose.file"},
		{"/proc/1/root/etc/alphaswarm/config/compose.yml", "", "compose.file"},
		{"../x.yml", "", "compose.file"},
		{"a/../../x.yml", "", "compose.file"},
		{"./x.yml", "", "compose.file"},
		{"a//x.yml", "", "compose.file"},
		{"a\\..\\x.yml", "", "compose.file"},
		{"x.yml\x00", "", "compose.file"},
		{strings.Repeat("a", 256), "", "compose.file"},
		{"c.yml", "localhost", "ports[0].hostIP"},
		{"c.yml", "0.0.0.0:80", "ports[0].hostIP"},
	}
	for _, tc := range cases {
		s := DeploymentSpec{Name: "web", Replicas: 1, Compose: &ComposeProfile{File: tc.file},
			Ports: []Port{{Container: 80, HostIP: tc.hostIP}}}
		err := s.Validate()
		if tc.bad == "" {
			if err != nil {
				t.Errorf("%q %q: %v", tc.file, tc.hostIP, err)
			}
			continue
		}
		e := AsError(err)
		if e == nil || e.Code != InvalidArgument || len(e.Fields) != 1 || e.Fields[0].Path != tc.bad {
			t.Errorf("%q %q: %v, want invalid_argument on %s", tc.file, tc.hostIP, err, tc.bad)
		}
	}
}
