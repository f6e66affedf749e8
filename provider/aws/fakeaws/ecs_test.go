package fakeaws

import (
	"strings"
	"testing"
)

// TestRegisterAwsvpcPorts: under awsvpc a blank hostPort comes back equal
// to the containerPort, and a different one is refused, as ECS does.
func TestRegisterAwsvpcPorts(t *testing.T) {
	f := New(Options{})
	defer f.Close()
	const target = "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"blank hostPort", `{"family":"a","networkMode":"awsvpc","containerDefinitions":[{"name":"a","image":"x","portMappings":[{"containerPort":8080}]}]}`,
			200, `"hostPort":8080`},
		{"same hostPort", `{"family":"a","networkMode":"awsvpc","containerDefinitions":[{"name":"a","image":"x","portMappings":[{"containerPort":80,"hostPort":80}]}]}`,
			200, `"mountPoints":[]`},
		{"other hostPort", `{"family":"a","networkMode":"awsvpc","containerDefinitions":[{"name":"a","image":"x","portMappings":[{"containerPort":80,"hostPort":8080}]}]}`,
			400, "host ports and container ports in port mappings must match"},
		{"bridge keeps a blank hostPort", `{"family":"b","networkMode":"bridge","containerDefinitions":[{"name":"a","image":"x","portMappings":[{"containerPort":80}]}]}`,
			200, `"portMappings":[{"containerPort":80}]`},
	} {
		status, _, body := post(t, f.URL(), target, []byte(c.body), testAuth)
		if status != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s; want %d with %s", c.name, status, body, c.status, c.want)
		}
	}
	if n := f.Revisions("a"); n != 2 {
		t.Errorf("family a has %d revisions, want 2 (the refused one is not registered)", n)
	}
}
