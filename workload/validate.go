package workload

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// MaxReplicas bounds DeploymentSpec.Replicas and scale requests.
const MaxReplicas = 1000

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	configKey    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	labelKey     = regexp.MustCompile(`^([a-z0-9.-]+/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
)

// ReservedLabelPrefix marks labels alphaswarm sets itself.
const ReservedLabelPrefix = "alphaswarm."

// ValidateName checks a service or target name: a DNS-1123 label.
func ValidateName(name string) string {
	switch {
	case name == "":
		return "is required"
	case len(name) > 63:
		return "must be at most 63 characters"
	case !dns1123Label.MatchString(name):
		return "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
	}
	return ""
}

// CheckName is the one service-name rule as an error: nil, or an
// InvalidArgument *Error naming path ("name", "targets.name") with
// ValidateName's message. A provider with a stricter limit of its own
// reports it the same way, at the same path.
func CheckName(path, name string) error {
	if m := ValidateName(name); m != "" {
		return Invalid(FieldError{path, m})
	}
	return nil
}

// ValidateComposeFile checks a compose.file reference: a name relative to
// the target's Compose directory, in slash form, with no "..", "." or empty
// element, no leading "/" and no backslash or control character. The
// provider still resolves it without leaving the directory; this refuses
// the obvious escapes early, naming the field.
func ValidateComposeFile(f string) string {
	switch {
	case f == "":
		return "is required: a file name relative to the target's Compose directory"
	case len(f) > 255:
		return "must be at most 255 characters"
	case strings.HasPrefix(f, "/"):
		return "must be a name relative to the target's Compose directory, not an absolute path"
	case strings.ContainsAny(f, "\\\x00:") || strings.IndexFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return "must not contain backslashes, colons or control characters"
	}
	for _, el := range strings.Split(f, "/") {
		if el == "" || el == "." || el == ".." {
			return "must not contain empty, \".\" or \"..\" path elements"
		}
	}
	return ""
}

// ValidateReplicas checks a replica count.
func ValidateReplicas(n int) string {
	switch {
	case n < 0:
		return "must be >= 0"
	case n > MaxReplicas:
		return fmt.Sprintf("must be <= %d", MaxReplicas)
	}
	return ""
}

// ValidateConfig checks a config map: keys and sizes. It returns every bad
// entry, with paths under prefix ("config").
func ValidateConfig(prefix string, config map[string]string) []FieldError {
	var errs []FieldError
	total := 0
	for _, k := range sortedKeys(config) {
		if len(k) > 253 || !configKey.MatchString(k) {
			errs = append(errs, FieldError{prefix + "." + k, "key must be letters, digits, '.', '_' or '-' (at most 253), starting and ending with a letter or digit"})
		}
		total += len(k) + len(config[k])
	}
	if total > 1<<20 {
		errs = append(errs, FieldError{prefix, "must be at most 1 MiB in total"})
	}
	return errs
}

// Validate checks every field of s and returns an InvalidArgument *Error
// listing every bad field with its path, or nil.
func (s *DeploymentSpec) Validate() error {
	var errs []FieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{path, fmt.Sprintf(format, args...)})
	}
	if m := ValidateName(s.Name); m != "" {
		add("name", "%s", m)
	}
	if s.Target != "" {
		if m := ValidateName(s.Target); m != "" {
			add("target", "%s", m)
		}
	}
	if s.Compose == nil {
		if strings.TrimSpace(s.Image) == "" {
			add("image", "is required (or give compose.file)")
		}
	} else {
		if m := ValidateComposeFile(s.Compose.File); m != "" {
			add("compose.file", "%s", m)
		}
		for i, p := range s.Compose.Profiles {
			if p == "" {
				add(fmt.Sprintf("compose.profiles[%d]", i), "must not be empty")
			}
		}
	}
	if strings.ContainsAny(s.Image, " \t\n") {
		add("image", "must not contain whitespace")
	}
	if m := ValidateReplicas(s.Replicas); m != "" {
		add("replicas", "%s", m)
	}
	for _, k := range sortedKeys(s.Env) {
		if !envName.MatchString(k) {
			add("env."+k, "must be a valid environment variable name")
		}
		if strings.HasPrefix(k, "ALPHASWARM_") {
			add("env."+k, "the ALPHASWARM_ prefix is reserved")
		}
	}
	seenEnv := map[string]bool{}
	for i, sec := range s.Secrets {
		p := fmt.Sprintf("secrets[%d]", i)
		if !envName.MatchString(sec.Env) {
			add(p+".env", "must be a valid environment variable name")
		} else if _, dup := s.Env[sec.Env]; dup || seenEnv[sec.Env] {
			add(p+".env", "%s is set twice (env and secrets, or two secrets)", sec.Env)
		}
		seenEnv[sec.Env] = true
		if strings.TrimSpace(sec.From) == "" {
			add(p+".from", "is required: a reference such as env:NAME, never the value")
		}
	}
	seenPort := map[string]int{}
	for i, p := range s.Ports {
		path := fmt.Sprintf("ports[%d]", i)
		if p.Container < 1 || p.Container > 65535 {
			add(path+".container", "must be between 1 and 65535")
		}
		if p.Host < 0 || p.Host > 65535 {
			add(path+".host", "must be between 0 and 65535")
		}
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(p.HostIP); err != nil {
				add(path+".hostIP", "must be an IP address such as 127.0.0.1")
			}
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			add(path+".protocol", "must be tcp or udp")
		}
		if p.Name != "" && ValidateName(p.Name) != "" {
			add(path+".name", "must be a DNS-1123 label")
		}
		key := fmt.Sprintf("%d/%s", p.Container, proto)
		if j, dup := seenPort[key]; dup {
			add(path+".container", "duplicates ports[%d]", j)
		}
		seenPort[key] = i
	}
	if _, err := s.Resources.MilliCPU(); err != nil {
		add("resources.cpu", "%v", err)
	}
	if _, err := s.Resources.MemoryBytes(); err != nil {
		add("resources.memory", "%v", err)
	}
	if hc := s.HealthCheck; hc != nil {
		n := 0
		if hc.HTTP != nil {
			n++
			if !strings.HasPrefix(hc.HTTP.Path, "/") {
				add("healthCheck.http.path", "must start with /")
			}
			if hc.HTTP.Port < 1 || hc.HTTP.Port > 65535 {
				add("healthCheck.http.port", "must be between 1 and 65535")
			}
		}
		if hc.TCP != nil {
			n++
			if hc.TCP.Port < 1 || hc.TCP.Port > 65535 {
				add("healthCheck.tcp.port", "must be between 1 and 65535")
			}
		}
		if hc.Exec != nil {
			n++
			if len(hc.Exec) == 0 || hc.Exec[0] == "" {
				add("healthCheck.exec", "must name a command")
			}
		}
		if n != 1 {
			add("healthCheck", "set exactly one of http, tcp and exec")
		}
		for _, d := range []struct {
			name string
			v    Duration
		}{{"interval", hc.Interval}, {"timeout", hc.Timeout}, {"startPeriod", hc.StartPeriod}} {
			if d.v < 0 {
				add("healthCheck."+d.name, "must be >= 0")
			}
		}
		if hc.Retries < 0 {
			add("healthCheck.retries", "must be >= 0")
		}
	}
	errs = append(errs, ValidateConfig("config", s.Config)...)
	for _, k := range sortedKeys(s.Labels) {
		if strings.HasPrefix(k, ReservedLabelPrefix) {
			add("labels."+k, "the %q prefix is reserved for labels alphaswarm sets", ReservedLabelPrefix)
		} else if len(k) > 253 || !labelKey.MatchString(k) {
			add("labels."+k, "must be a label key: letters, digits, '.', '_' or '-', with an optional dns/ prefix")
		}
		if len(s.Labels[k]) > 63 {
			add("labels."+k, "value must be at most 63 characters")
		}
	}
	for _, k := range sortedKeys(s.Extensions) {
		if ValidateName(k) != "" {
			add("extensions."+k, "must be a provider name")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return Invalid(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
