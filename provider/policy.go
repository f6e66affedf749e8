package provider

import (
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/alphaswarm/controller/workload"
)

// DefaultMaxReplicas is a target's replica limit when its policy sets none.
const DefaultMaxReplicas = 20

// DefaultBindAddress is where published host ports listen when neither the
// spec nor the target's policy names an address: loopback, so a laptop's
// services are not reachable from the network by accident.
const DefaultBindAddress = "127.0.0.1"

// Policy is a target's static admission policy. The admin writes it in the
// config file (targets.<name>.policy); no request can change it. The zero
// value is the default, chosen for a single-user laptop: any image, at most
// DefaultMaxReplicas replicas, host ports 1024-65535 on 127.0.0.1 only, no
// secret granted to any service, Compose off.
//
// The runtime (package control) applies it to every request before the
// ledger intent; a provider applies the parts that only it can see, such as
// the contents of a Compose file. Policy is read-only after it is built and
// safe for concurrent use.
type Policy struct {
	// Images lists the image references services may run, as prefixes of
	// the reference as written ("registry.example.com/team/", "nginx:").
	// A prefix matches at a boundary only: "registry.example.com" admits
	// "registry.example.com/x" but not "registry.example.com.evil/x".
	// Empty admits every image.
	Images []string `json:"images,omitempty"`
	// MaxReplicas bounds replicas at start and scale; default
	// DefaultMaxReplicas.
	MaxReplicas int `json:"maxReplicas,omitempty"`
	// Ports says which host ports may be published, and where.
	Ports PortPolicy `json:"ports,omitzero"`
	// Secrets grants secret references to services. A reference no grant
	// covers is refused.
	Secrets []SecretGrant `json:"secrets,omitempty"`
	// Compose says whether Compose files may run and from where.
	Compose ComposePolicy `json:"compose,omitzero"`
}

// PortPolicy governs published host ports.
type PortPolicy struct {
	// HostPorts lists the host ports a service may publish: "8080" or a
	// range "8000-8999". Default "1024-65535" (no privileged port). A port
	// with host 0 (the backend picks one) is always admitted.
	HostPorts []string `json:"hostPorts,omitempty"`
	// BindAddresses lists the host addresses ports may listen on; the first
	// is used when a port names none. Default ["127.0.0.1"]. "0.0.0.0"
	// (every interface) must be listed to be admitted.
	BindAddresses []string `json:"bindAddresses,omitempty"`
}

// SecretGrant lets services reference a secret.
type SecretGrant struct {
	// Secret is the reference as a spec's secrets[].from writes it, without
	// the "env:" scheme: "ALPHASWARM_SECRET_DB". A trailing "*" matches
	// every reference with that prefix ("ALPHASWARM_SECRET_WEB_*").
	Secret string `json:"secret"`
	// Services are service-name patterns (path.Match syntax: "web",
	// "api-*"). Empty grants every service of the target.
	Services []string `json:"services,omitempty"`
}

// ComposePolicy governs Compose files.
type ComposePolicy struct {
	// Dir is the absolute directory Compose files come from; a spec names
	// a file relative to it. Empty turns Compose off.
	Dir string `json:"dir,omitempty"`
	// Allow lists the Compose keys that let a container escape it, which
	// are refused unless listed here: "privileged", "cap_add", "devices",
	// "device_cgroup_rules", "network_mode", "pid", "ipc", "uts",
	// "userns_mode", "cgroup", "cgroup_parent", "security_opt",
	// "volumes_from", "build", "driver_opts", "docker_socket".
	Allow []string `json:"allow,omitempty"`
	// BindPaths lists the absolute host directories bind mounts may come
	// from. Empty refuses every bind mount.
	BindPaths []string `json:"bindPaths,omitempty"`
}

// ComposeEscapeKeys are the values ComposePolicy.Allow accepts.
var ComposeEscapeKeys = []string{
	"privileged", "cap_add", "devices", "device_cgroup_rules", "network_mode", "pid", "ipc", "uts",
	"userns_mode", "cgroup", "cgroup_parent", "security_opt", "volumes_from", "build", "driver_opts",
	"docker_socket",
}

// Validate checks the policy's values; paths in errors start with prefix
// ("targets.local.policy").
func (p *Policy) Validate(prefix string) []workload.FieldError {
	var errs []workload.FieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, workload.FieldError{Path: prefix + "." + path, Message: fmt.Sprintf(format, args...)})
	}
	for i, img := range p.Images {
		if strings.TrimSpace(img) == "" || strings.ContainsAny(img, " \t\n") {
			add(fmt.Sprintf("images[%d]", i), "must be a non-empty image reference prefix without whitespace")
		}
	}
	if p.MaxReplicas < 0 || p.MaxReplicas > workload.MaxReplicas {
		add("maxReplicas", "must be between 1 and %d (0 means the default, %d)", workload.MaxReplicas, DefaultMaxReplicas)
	}
	for i, r := range p.Ports.HostPorts {
		if _, _, err := parsePortRange(r); err != nil {
			add(fmt.Sprintf("ports.hostPorts[%d]", i), "%v", err)
		}
	}
	for i, a := range p.Ports.BindAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			add(fmt.Sprintf("ports.bindAddresses[%d]", i), "must be an IP address such as 127.0.0.1 or 0.0.0.0")
		}
	}
	for i, g := range p.Secrets {
		if s := strings.TrimSuffix(g.Secret, "*"); s == "" || strings.ContainsAny(s, "* \t\n") {
			add(fmt.Sprintf("secrets[%d].secret", i), "must name a secret reference, optionally ending in *")
		}
		for j, s := range g.Services {
			if _, err := path.Match(s, ""); err != nil || s == "" {
				add(fmt.Sprintf("secrets[%d].services[%d]", i, j), "must be a service-name pattern such as web or api-*")
			}
		}
	}
	if d := p.Compose.Dir; d != "" && (!filepath.IsAbs(d) || filepath.Clean(d) == "/") {
		add("compose.dir", "must be an absolute directory other than /")
	}
	for i, k := range p.Compose.Allow {
		if !slices.Contains(ComposeEscapeKeys, k) {
			add(fmt.Sprintf("compose.allow[%d]", i), "must be one of %s", strings.Join(ComposeEscapeKeys, ", "))
		}
	}
	for i, b := range p.Compose.BindPaths {
		if !filepath.IsAbs(b) || filepath.Clean(b) != b {
			add(fmt.Sprintf("compose.bindPaths[%d]", i), "must be a clean absolute directory")
		}
	}
	return errs
}

func parsePortRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(a)
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(b)
	}
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("must be a port (1-65535) or a range lo-hi, not %q", s)
	}
	return lo, hi, nil
}

// Replicas returns the largest replica count the policy admits.
func (p *Policy) Replicas() int {
	if p.MaxReplicas > 0 {
		return p.MaxReplicas
	}
	return DefaultMaxReplicas
}

// AllowsImage reports whether image is admitted (see Images).
func (p *Policy) AllowsImage(image string) bool {
	if len(p.Images) == 0 {
		return true
	}
	for _, pre := range p.Images {
		if image == pre {
			return true
		}
		if rest, ok := strings.CutPrefix(image, pre); ok {
			if strings.ContainsAny(pre[len(pre)-1:], "/:@") || strings.ContainsAny(rest[:1], "/:@") {
				return true
			}
		}
	}
	return false
}

// BindAddress returns the host address a port listens on: want when
// given, else the policy's first bind address, else DefaultBindAddress.
func (p *Policy) BindAddress(want string) string {
	if want != "" {
		return want
	}
	if len(p.Ports.BindAddresses) > 0 {
		return p.Ports.BindAddresses[0]
	}
	return DefaultBindAddress
}

// CheckPort says why host port hostPort on address hostIP is refused, or
// "" when it is admitted. hostPort 0 (the backend chooses) is admitted on
// an admitted address.
func (p *Policy) CheckPort(hostIP string, hostPort int) string {
	addr := p.BindAddress(hostIP)
	allowed := p.Ports.BindAddresses
	if len(allowed) == 0 {
		allowed = []string{DefaultBindAddress}
	}
	ok := false
	if a, err := netip.ParseAddr(addr); err == nil {
		for _, s := range allowed {
			if b, err := netip.ParseAddr(s); err == nil && a == b {
				ok = true
			}
		}
	}
	if !ok {
		return fmt.Sprintf("host address %s is not among the target's bind addresses %v", addr, allowed)
	}
	if hostPort == 0 {
		return ""
	}
	ranges := p.Ports.HostPorts
	if len(ranges) == 0 {
		ranges = []string{"1024-65535"}
	}
	for _, r := range ranges {
		if lo, hi, err := parsePortRange(r); err == nil && hostPort >= lo && hostPort <= hi {
			return ""
		}
	}
	return fmt.Sprintf("host port %d is not among the target's host ports %v", hostPort, ranges)
}

// AllowsSecret reports whether service may reference the secret ref (a
// secrets[].from value; an "env:" scheme is ignored).
func (p *Policy) AllowsSecret(service, ref string) bool {
	ref = strings.TrimPrefix(ref, "env:")
	for _, g := range p.Secrets {
		match := ref == g.Secret
		if pre, ok := strings.CutSuffix(g.Secret, "*"); ok && pre != "" {
			match = strings.HasPrefix(ref, pre)
		}
		if !match {
			continue
		}
		if len(g.Services) == 0 {
			return true
		}
		for _, s := range g.Services {
			if ok, _ := path.Match(s, service); ok {
				return true
			}
		}
	}
	return false
}

// ComposeAllows reports whether the Compose escape key is allowed.
func (p *Policy) ComposeAllows(key string) bool { return slices.Contains(p.Compose.Allow, key) }

// AllowsBindPath reports whether a bind mount of the clean absolute host
// path src is admitted: it lies in one of Compose.BindPaths.
func (p *Policy) AllowsBindPath(src string) bool {
	src = filepath.Clean(src)
	for _, b := range p.Compose.BindPaths {
		if src == b || strings.HasPrefix(src, strings.TrimSuffix(b, "/")+"/") {
			return true
		}
	}
	return false
}
