// Package credentials resolves secrets and backend credentials from
// environment variables, the only place alphaswarm reads them from, and
// redacts every value it has handed out from logs, ledger digests and
// responses.
//
// It never reads config files or spec files for secrets, and it never
// writes a secret anywhere.
package credentials

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/alphaswarm/controller/workload"
)

// Redacted replaces a secret value wherever one would have been written.
const Redacted = "[REDACTED]"

// minSecretLen is the shortest value the redactor will scrub: shorter
// values ("1", "on") would mangle ordinary text and protect nothing.
const minSecretLen = 4

// Resolver looks up credentials. It is safe for concurrent use.
type Resolver struct {
	lookup func(string) (string, bool)
	names  func() []string // variable names, for prefix look-ups; may be nil

	mu      sync.RWMutex
	secrets []string // values handed out, longest first
}

// maxLen is the length of the longest registered secret (0 when none).
func (r *Resolver) maxLen() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.secrets) == 0 {
		return 0
	}
	return len(r.secrets[0])
}

// FromEnv returns a Resolver over the process environment.
func FromEnv() *Resolver {
	r := New(os.LookupEnv)
	r.names = func() []string {
		var out []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			out = append(out, k)
		}
		return out
	}
	r.registerManaged()
	return r
}

// FromMap returns a Resolver over a fixed map, for tests and embedding.
func FromMap(m map[string]string) *Resolver {
	r := New(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
	r.names = func() []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		return out
	}
	r.registerManaged()
	return r
}

// registerManaged registers the value of every SecretEnvPrefix variable,
// the only secrets a spec can reference (see Secret). It runs when the
// Resolver is built, so that redaction does not depend on which secrets
// this process happens to have resolved: after a controller restart a
// workload that prints a secret it was given by an earlier process is
// redacted from the first byte.
func (r *Resolver) registerManaged() {
	if r.names == nil {
		return
	}
	for _, k := range r.names() {
		if strings.HasPrefix(k, SecretEnvPrefix) {
			if v, ok := r.lookup(k); ok {
				r.Register(v)
			}
		}
	}
}

// New returns a Resolver over an arbitrary lookup function. Values of
// variables whose names look secret (see IsSecretName) are registered for
// redaction as soon as they are read.
func New(lookup func(string) (string, bool)) *Resolver {
	return &Resolver{lookup: lookup}
}

// Lookup returns an environment variable. If its name looks secret, its
// value is registered for redaction.
func (r *Resolver) Lookup(name string) (string, bool) {
	v, ok := r.lookup(name)
	if ok && IsSecretName(name) {
		r.Register(v)
	}
	return v, ok
}

// Get returns an environment variable or "".
func (r *Resolver) Get(name string) string { v, _ := r.Lookup(name); return v }

// Provider returns the variables a provider's SDK reads from its standard
// environment chain, plus ALPHASWARM_<PROVIDER>_* variables, that are set.
// Secret-looking values are registered for redaction. Providers hand the
// result to their SDK instead of letting it read os.Environ behind our back.
func (r *Resolver) Provider(name string) map[string]string {
	out := map[string]string{}
	names := slices.Clone(providerEnv[name])
	prefix := "ALPHASWARM_" + strings.ToUpper(name) + "_"
	if r.names != nil {
		for _, k := range r.names() {
			if strings.HasPrefix(k, prefix) {
				names = append(names, k)
			}
		}
	}
	for _, n := range names {
		if v, ok := r.Lookup(n); ok {
			out[n] = v
		}
	}
	return out
}

var providerEnv = map[string][]string{
	"docker":     {"DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION", "DOCKER_CONTEXT"},
	"kubernetes": {"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"},
	"aws": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_PROFILE"},
	"azure": {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_SUBSCRIPTION_ID", "AZURE_AUTHORITY_HOST"},
	"gcp": {"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"},
}

// IsSecretName reports whether an environment variable name looks like it
// holds a secret.
func IsSecretName(name string) bool {
	n := strings.ToUpper(name)
	if strings.HasPrefix(n, "ALPHASWARM_SECRET_") {
		return true
	}
	for _, w := range []string{"SECRET", "TOKEN", "PASSWORD", "PASSWD", "PRIVATE", "CREDENTIAL", "ACCESS_KEY", "API_KEY", "APIKEY"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// SecretEnvPrefix starts the name of every environment variable a spec
// may reference with "env:NAME". The controller's other variables (its
// cloud credentials, KUBECONFIG, a ledger password...) are not for
// workloads: anyone allowed to deploy could otherwise copy them into a
// container of theirs.
const SecretEnvPrefix = "ALPHASWARM_SECRET_"

// Secret resolves a workload.SecretRef's From reference of the form
// "env:NAME", NAME starting with SecretEnvPrefix, to its value and
// registers it for redaction. Other schemes belong to a provider's backend
// (a Kubernetes secret, an SSM ARN) and are refused here with
// InvalidArgument so the provider can pass them through.
func (r *Resolver) Secret(from string) (string, error) {
	name, ok := strings.CutPrefix(from, "env:")
	if !ok {
		// The reference is not echoed: a user may have pasted a value here.
		scheme := "no scheme"
		if s, _, ok := strings.Cut(from, ":"); ok && len(s) <= 16 {
			scheme = "scheme " + strconv.Quote(s)
		}
		return "", workload.Invalid(workload.FieldError{Path: "secrets.from",
			Message: fmt.Sprintf("reference with %s: this provider resolves only env:NAME references", scheme)})
	}
	if !strings.HasPrefix(name, SecretEnvPrefix) || name == SecretEnvPrefix {
		return "", workload.Invalid(workload.FieldError{Path: "secrets.from",
			Message: fmt.Sprintf("env:%s: specs may reference only the controller's %s* variables, not its own configuration or credentials",
				name, SecretEnvPrefix)})
	}
	v, found := r.lookup(name)
	if !found {
		return "", workload.Errorf(workload.InvalidArgument,
			"secret reference env:%s: the controller's environment has no such variable", name)
	}
	r.Register(v)
	return v, nil
}

// Register adds a value to redact from everything the system writes.
func (r *Resolver) Register(value string) {
	if len(value) < minSecretLen {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Contains(r.secrets, value) {
		return
	}
	r.secrets = append(r.secrets, value)
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// Redact replaces every registered secret value in s with Redacted.
func (r *Resolver) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// Contains reports whether s holds any registered secret value.
func (r *Resolver) Contains(s string) bool {
	return r.Redact(s) != s
}
