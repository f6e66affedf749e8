package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// plantedSecret stands for a host file's secret content: it must never
// appear in an error about the file.
const plantedSecret = "root:$6$planted-SECRET-hash-4f1c9e:20228:0:99999:7:::"

// composeProvider builds a provider for Compose checks only: loadCompose
// reads files and never contacts the Engine.
func composeProvider(t *testing.T, pol provider.Policy) *Provider {
	t.Helper()
	p := newProvider("local", Options{NamePrefix: "as-local-"}, credentials.FromMap(map[string]string{"PATH": "/usr/bin", "HOME": "/root"}), nil, "unix:///var/run/docker.sock", nil)
	p.policy = pol
	t.Cleanup(p.cancel)
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestComposeConfinement: Compose files come only from the policy's
// directory, by a relative name, with no link or ".." leaving it; a file
// that does not load is described without its content.
func TestComposeConfinement(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "shadow"), plantedSecret+"\n"+plantedSecret+"\n")
	writeFile(t, filepath.Join(outside, "ok.yml"), "services:\n  web:\n    image: img:1\n")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.yml"), "services:\n  web:\n    image: img:1\n")
	writeFile(t, filepath.Join(dir, "sub/ok.yml"), "services:\n  web:\n    image: img:1\n")
	writeFile(t, filepath.Join(dir, "shadow-copy"), plantedSecret+"\n")
	writeFile(t, filepath.Join(dir, "badyaml.yml"), "services:\n  web:\n    image: [\n"+plantedSecret+"\n")
	writeFile(t, filepath.Join(dir, "badschema.yml"), "services:\n  web:\n    image: x\n    "+strings.ReplaceAll(plantedSecret, ":", "_")+": 1\n")
	writeFile(t, filepath.Join(dir, "badinterp.yml"), "services:\n  web:\n    image: \"${"+plantedSecret+"\"\n")
	must(t, os.Symlink(filepath.Join(outside, "shadow"), filepath.Join(dir, "abs-link.yml")))
	must(t, os.Symlink("../"+filepath.Base(outside)+"/ok.yml", filepath.Join(dir, "rel-link.yml")))
	must(t, os.Symlink("/proc/self/root"+filepath.Join(outside, "ok.yml"), filepath.Join(dir, "proc-link.yml")))
	must(t, os.Symlink("ok.yml", filepath.Join(dir, "inner-link.yml")))
	must(t, os.Mkdir(filepath.Join(dir, "adir"), 0o755))

	writeFile(t, filepath.Join(dir, "warns.yml"), "services:\n  web:\n    image: \"img${PLANTED_SECRET_4f1c9e}\"\n    read_only: \"yes\"\n")
	var logged strings.Builder
	logrus.SetLevel(logrus.InfoLevel)
	logrus.SetOutput(&logged)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr) })

	on := composeProvider(t, provider.Policy{Compose: provider.ComposePolicy{Dir: dir}})
	off := composeProvider(t, provider.Policy{})
	cases := []struct {
		name string
		p    *Provider
		file string
		want workload.Code
		msg  string // a part of the message
	}{
		{"compose off", off, "ok.yml", workload.PermissionDenied, "policy.compose.dir"},
		{"inside", on, "ok.yml", "", ""},
		{"inside a subdirectory", on, "sub/ok.yml", "", ""},
		{"link inside", on, "inner-link.yml", "", ""},
		{"absolute path", on, filepath.Join(outside, "ok.yml"), workload.InvalidArgument, "not an absolute path"},
		{"host file", on, "/etc/shadow", workload.InvalidArgument, "not an absolute path"},
		{"proc root", on, "/proc/1/root/etc/shadow", workload.InvalidArgument, "not an absolute path"},
		{"dot-dot", on, "../" + filepath.Base(outside) + "/ok.yml", workload.InvalidArgument, `".."`},
		{"dot-dot inside", on, "sub/../ok.yml", workload.InvalidArgument, `".."`},
		{"absolute link out", on, "abs-link.yml", workload.InvalidArgument, "leaves it is refused"},
		{"relative link out", on, "rel-link.yml", workload.InvalidArgument, "leaves it is refused"},
		{"proc link out", on, "proc-link.yml", workload.InvalidArgument, "leaves it is refused"},
		{"missing", on, "nope.yml", workload.InvalidArgument, "no such file"},
		{"directory", on, "adir", workload.InvalidArgument, "not a regular file"},
		{"not compose", on, "shadow-copy", workload.InvalidArgument, "shadow-copy: "},
		{"bad yaml", on, "badyaml.yml", workload.InvalidArgument, "not valid YAML at line"},
		{"bad schema", on, "badschema.yml", workload.InvalidArgument, "Compose file schema"},
		{"bad interpolation", on, "badinterp.yml", workload.InvalidArgument, "badinterp.yml: "},
		{"warnings", on, "warns.yml", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := workload.DeploymentSpec{Name: "web", Replicas: 1, Compose: &workload.ComposeProfile{File: tc.file}}
			_, err := tc.p.loadCompose(context.Background(), &spec, nil)
			if got := workload.CodeOf(err); got != tc.want {
				t.Fatalf("code %q, want %q: %v", got, tc.want, err)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q lacks %q", msg, tc.msg)
			}
			for _, leak := range []string{"planted", "SECRET", "4f1c9e", "99999", dir, outside} {
				if strings.Contains(msg, leak) {
					t.Errorf("message quotes %q: %s", leak, msg)
				}
			}
		})
	}
	// compose-go's own warnings (unset variables, YAML 1.1 booleans) quote
	// the file; they must not reach any log.
	if logged.Len() > 0 {
		t.Errorf("compose-go logged: %s", logged.String())
	}
}

// TestComposeEscapes: the Compose keys that let a container escape are
// refused with invalid_argument naming the service and the key, unless the
// target's policy allows them; images and host ports follow the policy.
func TestComposeEscapes(t *testing.T) {
	dir := t.TempDir()
	data := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.env"), "A=1\n")
	writeFile(t, filepath.Join(dir, "conf.txt"), "x\n")
	must(t, os.Symlink("/", filepath.Join(data, "root-link")))
	svc := func(body string) string { return "services:\n  app:\n    image: img:1\n" + body }
	cases := []struct {
		name, file string
		pol        func(*provider.Policy)
		want       workload.Code
		msg        string
	}{
		{"plain", svc(""), nil, "", ""},
		{"privileged", svc("    privileged: true\n"), nil, workload.InvalidArgument, "service app: privileged is refused"},
		{"privileged allowed", svc("    privileged: true\n"), func(p *provider.Policy) { p.Compose.Allow = []string{"privileged"} }, "", ""},
		{"cap_add", svc("    cap_add: [SYS_ADMIN]\n"), nil, workload.InvalidArgument, "service app: cap_add is refused"},
		{"devices", svc("    devices: [\"/dev/sda:/dev/sda\"]\n"), nil, workload.InvalidArgument, "service app: devices is refused"},
		{"network_mode host", svc("    network_mode: host\n"), nil, workload.InvalidArgument, "service app: network_mode is refused"},
		{"network_mode container", svc("    network_mode: \"container:other\"\n"), nil, workload.InvalidArgument, "service app: network_mode is refused"},
		{"pid host", svc("    pid: host\n"), nil, workload.InvalidArgument, "service app: pid is refused"},
		{"ipc host", svc("    ipc: host\n"), nil, workload.InvalidArgument, "service app: ipc is refused"},
		{"uts host", svc("    uts: host\n"), nil, workload.InvalidArgument, "service app: uts is refused"},
		{"userns host", svc("    userns_mode: host\n"), nil, workload.InvalidArgument, "service app: userns_mode is refused"},
		{"cgroup host", svc("    cgroup: host\n"), nil, workload.InvalidArgument, "service app: cgroup is refused"},
		{"security_opt", svc("    security_opt: [\"seccomp:unconfined\"]\n"), nil, workload.InvalidArgument, "service app: security_opt is refused"},
		{"docker socket", svc("    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n"), nil, workload.InvalidArgument, "service app: docker_socket is refused"},
		{"docker socket dir", svc("    volumes: [\"/run:/hostrun\"]\n"), func(p *provider.Policy) { p.Compose.BindPaths = []string{"/run"} }, workload.InvalidArgument, "docker_socket is refused"},
		{"host root", svc("    volumes: [\"/:/host\"]\n"), nil, workload.InvalidArgument, "service app: docker_socket is refused"},
		{"bind outside", svc("    volumes: [\"/etc:/hostetc\"]\n"), nil, workload.InvalidArgument, "volumes[0] is refused: bind mounts must come from"},
		{"bind relative", svc("    volumes: [\"./data:/data\"]\n"), nil, workload.InvalidArgument, "volumes[0] is refused"},
		{"bind allowed", svc("    volumes: [\"" + data + ":/data\"]\n"), func(p *provider.Policy) { p.Compose.BindPaths = []string{data} }, "", ""},
		{"bind link out", svc("    volumes: [\"" + data + "/root-link:/data\"]\n"), func(p *provider.Policy) { p.Compose.BindPaths = []string{data} }, workload.InvalidArgument, "docker_socket is refused"},
		{"build", "services:\n  app:\n    build: /\n", nil, workload.InvalidArgument, "service app: build is refused"},
		{"env_file inside", svc("    env_file: app.env\n"), nil, "", ""},
		{"env_file outside", svc("    env_file: /etc/shadow\n"), nil, workload.InvalidArgument, "service app: env_file is refused"},
		{"env_file dot-dot", svc("    env_file: ../../etc/shadow\n"), nil, workload.InvalidArgument, "service app: env_file is refused"},
		{"include", "include: [/etc/shadow]\n" + svc(""), nil, workload.InvalidArgument, "include is refused"},
		{"extends file", svc("    extends:\n      file: /etc/passwd\n      service: x\n"), nil, workload.InvalidArgument, "service app: extends.file is refused"},
		{"host network", svc("    networks: [h]\nnetworks:\n  h:\n    external: true\n    name: host\n"), nil, workload.InvalidArgument, "network_mode is refused"},
		{"volume driver_opts", svc("    volumes: [\"v:/v\"]\nvolumes:\n  v:\n    driver_opts: {type: none, o: bind, device: /}\n"), nil, workload.InvalidArgument, "driver_opts is refused"},
		{"config inside", svc("    configs: [c]\nconfigs:\n  c:\n    file: ./conf.txt\n"), nil, "", ""},
		{"config outside", svc("    configs: [c]\nconfigs:\n  c:\n    file: /etc/shadow\n"), nil, workload.InvalidArgument, "configs.c.file is refused"},
		{"secret outside", svc("    secrets: [c]\nsecrets:\n  c:\n    file: /etc/shadow\n"), nil, workload.InvalidArgument, "secrets.c.file is refused"},
		{"interpolated escape", svc("    network_mode: ${MODE:-bridge}\n"), func(p *provider.Policy) {}, "", ""},
		{"image refused", svc(""), func(p *provider.Policy) { p.Images = []string{"registry.example.com/"} }, workload.PermissionDenied, "rule images"},
		{"image admitted", svc(""), func(p *provider.Policy) { p.Images = []string{"img:"} }, "", ""},
		{"port 80", svc("    ports: [\"127.0.0.1:80:8080\"]\n"), nil, workload.PermissionDenied, "host port 80"},
		{"port all interfaces", svc("    ports: [\"8080:8080\"]\n"), nil, workload.PermissionDenied, "0.0.0.0"},
		{"port loopback", svc("    ports: [\"127.0.0.1:8080:8080\"]\n"), nil, "", ""},
		{"port ephemeral loopback", svc("    ports: [\"127.0.0.1::8080\"]\n"), nil, "", ""},
		{"wide port range", svc("    ports: [\"127.0.0.1:1-65535:1-65535\"]\n"), nil, workload.InvalidArgument, "more than 1024 ports"},
		{"wide port range from env", svc("    ports: [\"127.0.0.1:${MODE}:80\"]\n"), nil, workload.InvalidArgument, "more than 1024 ports"},
		{"reserved label", svc("    labels: {alphaswarm.instance: other}\n"), nil, workload.InvalidArgument, "label alphaswarm.instance is refused"},
		{"port all allowed", svc("    ports: [\"80:8080\"]\n"), func(p *provider.Policy) {
			p.Ports = provider.PortPolicy{HostPorts: []string{"80"}, BindAddresses: []string{"0.0.0.0"}}
		}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := provider.Policy{Compose: provider.ComposePolicy{Dir: dir}}
			if tc.pol != nil {
				tc.pol(&pol)
			}
			writeFile(t, filepath.Join(dir, "c.yml"), tc.file)
			p := composeProvider(t, pol)
			spec := workload.DeploymentSpec{Name: "web", Replicas: 1, Compose: &workload.ComposeProfile{File: "c.yml"}}
			env := []string{"MODE=host"}
			if tc.name == "wide port range from env" {
				env = []string{"MODE=1-65535"}
			}
			_, err := p.loadCompose(context.Background(), &spec, env)
			if tc.name == "interpolated escape" {
				// The spec's env says MODE=host: the check sees what the CLI would.
				tc.want, tc.msg = workload.InvalidArgument, "network_mode is refused"
			}
			if got := workload.CodeOf(err); got != tc.want {
				t.Fatalf("code %q, want %q: %v", got, tc.want, err)
			}
			t.Log(err)
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err.Error(), tc.msg)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var fixedLoadError = regexp.MustCompile(`^invalid_argument: compose\.file: c\.yml: (is not valid YAML( at line \d+)?|does not follow the Compose file schema|has an invalid or missing \$\{VARIABLE\} interpolation|is not a Compose mapping|refers to an undefined service, network, volume, config or secret|has a dependency cycle|cannot be loaded as a Compose file)$`)

// FuzzComposeLoad: no file content makes loading or checking panic, and a
// file that does not load is described by a fixed sentence, never by its
// content.
func FuzzComposeLoad(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(composeFile, "img:1")))
	f.Add([]byte("services:\n  app:\n    image: img:1\n    privileged: true\n    volumes: [\"/:/host\"]\n    network_mode: host\n"))
	f.Add([]byte("services:\n  app:\n    image: img:1\n    ports: [\"127.0.0.1:8080-8090:80\"]\n    env_file: ../x\n"))
	f.Add([]byte("include: [a.yml]\nservices:\n  app:\n    extends: {file: b.yml, service: c}\n"))
	f.Add([]byte("x: &a [*a]\n"))
	f.Add([]byte(plantedSecret + "\n"))
	f.Add([]byte("services:\n  app:\n    image: ${X:?need X}\n"))
	dir := f.TempDir()
	p := &Provider{target: "local", opts: Options{NamePrefix: "as-local-"}, creds: credentials.FromMap(nil),
		policy: provider.Policy{Compose: provider.ComposePolicy{Dir: dir}}}
	f.Fuzz(func(t *testing.T, content []byte) {
		proj, err := loadComposeProject(context.Background(), dir, "c.yml", "as-local-web", content, []string{"A=1"}, []string{"extra"})
		if err != nil {
			if e := workload.AsError(err); e.Code == workload.InvalidArgument && strings.Contains(e.Message, " is refused: ") {
				return // include or extends.file, by key
			}
			if !fixedLoadError.MatchString(err.Error()) && !strings.Contains(err.Error(), "more than 1024 ports") {
				t.Fatalf("load error is not a fixed description: %v", err)
			}
			return
		}
		_ = p.checkComposeProject(dir, "c.yml", proj)
	})
}

// TestComposeOutput: when the Compose CLI refuses a file itself, its words
// (which quote the file) do not reach the error.
func TestComposeOutput(t *testing.T) {
	for _, out := range []string{
		"ERROR: The Compose file './x.yml' is invalid because:\nservices.web.image contains an invalid type: " + plantedSecret,
		"ERROR: yaml.scanner.ScannerError: while scanning a simple key\n  in \"./x.yml\", line 1\n" + plantedSecret,
		"ERROR: Invalid interpolation format for \"image\" option in service \"web\": \"" + plantedSecret + "\"",
	} {
		if got := composeOutput(out); strings.Contains(got, "planted") || !strings.Contains(got, "refused the file") {
			t.Errorf("composeOutput(%q) = %q", out, got)
		}
	}
	if got := composeOutput("ERROR: for web  Cannot start service web: port is already allocated"); !strings.Contains(got, "already allocated") {
		t.Errorf("an Engine error lost its words: %q", got)
	}
}
