// Package config reads the control plane's one YAML configuration file:
// listen address, ledger URL, targets, authentication and timeouts. Unknown
// keys and bad values are errors naming the key. It never holds secrets:
// a key that looks like one is refused, since credentials come only from
// the environment (package credentials).
package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"sigs.k8s.io/yaml"
)

// Config is the whole file.
type Config struct {
	// Listen is the HTTP address; default 127.0.0.1:7070.
	Listen string `json:"listen,omitempty"`
	// Ledger is the ledger URL; default sqlite:<dataDir>/ledger.db.
	Ledger string `json:"ledger,omitempty"`
	// DataDir holds the embedded ledger and the token store.
	DataDir string `json:"dataDir,omitempty"`
	// Targets maps a target name to its provider and options.
	Targets map[string]Target `json:"targets,omitempty"`
	Auth    Auth              `json:"auth,omitzero"`
	// Timeouts bounds each action's provider call ("start": "5m").
	Timeouts map[string]workload.Duration `json:"timeouts,omitempty"`
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
	// ShutdownGrace is how long shutdown waits for in-flight operations;
	// default 30s.
	ShutdownGrace workload.Duration `json:"shutdownGrace,omitzero"`
	// RecoveryInterval is how often a running controller looks for
	// intents whose controller died (control.RecoverEvery); default 1m.
	// Each pass is one query of the ledger for intents without a result.
	RecoveryInterval workload.Duration `json:"recoveryInterval,omitzero"`
	// NoLocalTarget turns off the automatic `local` docker target.
	NoLocalTarget bool `json:"noLocalTarget,omitempty"`
	// Checkpoints configures the ledger's signed checkpoints and export
	// sinks (see checkpoints.go).
	Checkpoints Checkpoints `json:"checkpoints,omitzero"`
	// TLS serves HTTPS; nil serves plain HTTP (loopback, or behind a
	// proxy that terminates TLS).
	TLS *TLS `json:"tls,omitempty"`
	// ReadTimeout bounds reading a request body; default 10s.
	ReadTimeout workload.Duration `json:"readTimeout,omitzero"`
	// MaxStreamsPerUser caps the SSE and WebSocket streams one user holds
	// open; default 32.
	MaxStreamsPerUser int `json:"maxStreamsPerUser,omitempty"`
	// Policy loads the admin's Rego policies (package policy); nil: no
	// policy, every request that passes admission goes on.
	Policy *Policy `json:"policy,omitempty"`
	// RevisionKeyFile is the AES-256 key (64 hex digits, mode 0600) that
	// seals the env and config values of recorded spec revisions (history
	// and rollback); default <dataDir>/revisions.key, generated on first
	// start when absent. Controllers sharing one PostgreSQL ledger must
	// all be given the same key: a revision sealed under another key is
	// listed but cannot be rolled back to.
	RevisionKeyFile string `json:"revisionKeyFile,omitempty"`
}

// Policy names the policy files: *.rego files or directories of them,
// re-read when they change (a broken change keeps the last good bundle).
type Policy struct {
	Paths []string `json:"paths"`
	// ReloadInterval is how often the files are looked at; default 2s.
	ReloadInterval workload.Duration `json:"reloadInterval,omitzero"`
}

// TLS names the PEM certificate (chain) and private key files. Both are
// re-read when either changes, so a renewed certificate is served without
// a restart.
type TLS struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Target configures one target.
type Target struct {
	Provider string                     `json:"provider"`
	Options  map[string]json.RawMessage `json:"options,omitempty"`
	// Policy is the target's admission policy (provider.Policy): images,
	// replicas, host ports, secret grants, Compose. Absent: the defaults.
	Policy provider.Policy `json:"policy,omitzero"`
}

// Auth configures authentication.
type Auth struct {
	// TokenFile is the hashed bearer-token store; default
	// <dataDir>/tokens.json.
	TokenFile string `json:"tokenFile,omitempty"`
	// OIDC is the issuer people sign in with (the dashboard uses its
	// clientId).
	OIDC *OIDC `json:"oidc,omitempty"`
	// Issuers are further OIDC issuers whose tokens are accepted, each with
	// its own audience and role mapping (CI providers, other identity
	// providers). No clientId there: only auth.oidc signs people in.
	Issuers []OIDC `json:"issuers,omitempty"`
	// QueryToken allows ?access_token= for browsers' EventSource and
	// WebSocket, which cannot set headers.
	QueryToken bool `json:"queryToken,omitempty"`
	// TokenMaxTTL is the longest life of an API token created through
	// POST /v1/tokens; default 2160h (90 days). A request without a ttl
	// gets it.
	TokenMaxTTL workload.Duration `json:"tokenMaxTTL,omitzero"`
}

// OIDC configures JWT bearer authentication by one issuer.
type OIDC struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	// RolesClaim is the exact name of the top-level claim holding roles
	// (default "roles"); RolesClaimPath, instead, is a path into nested
	// objects, one exact key per element (["realm_access", "roles"]).
	RolesClaim     string   `json:"rolesClaim,omitempty"`
	RolesClaimPath []string `json:"rolesClaimPath,omitempty"`
	UserClaim      string   `json:"userClaim,omitempty"`
	ClientID       string   `json:"clientId,omitempty"`
	// DefaultRole is given to identities with no known role; default none.
	DefaultRole string `json:"defaultRole,omitempty"`
	// Grants give roles to tokens whose claims match, on every target or
	// on the targets listed.
	Grants []OIDCGrant `json:"grants,omitempty"`
	// MaxLifetime refuses tokens living longer (exp − iat); default 24h.
	MaxLifetime workload.Duration `json:"maxLifetime,omitzero"`
	// ClockSkew tolerates nbf/iat this far in the future; default 5m.
	ClockSkew workload.Duration `json:"clockSkew,omitzero"`
	// JWKSRefresh bounds how long fetched signing keys are used before
	// the JWKS is fetched again (how long a withdrawn key keeps
	// verifying); default 5m.
	JWKSRefresh workload.Duration `json:"jwksRefresh,omitzero"`
	// JWKSMaxAge bounds how long keys are trusted while the JWKS cannot be
	// fetched again (issuer down); default 1h.
	JWKSMaxAge workload.Duration `json:"jwksMaxAge,omitzero"`
	// JWKSMinRefetch is the least time between fetches caused by unknown
	// key ids; default 10s.
	JWKSMinRefetch workload.Duration `json:"jwksMinRefetch,omitzero"`
	// FetchTimeout bounds each discovery or JWKS fetch; default 5s.
	FetchTimeout workload.Duration `json:"fetchTimeout,omitzero"`
}

// OIDCGrant gives Role to tokens whose claims all equal Claims (a string
// claim equal to the value, or an array claim holding it), on Targets
// (every target when empty).
type OIDCGrant struct {
	Claims  map[string]string `json:"claims"`
	Role    string            `json:"role"`
	Targets []string          `json:"targets,omitempty"`
}

// Default returns the embedded defaults for dataDir.
func Default(dataDir string) Config {
	c := Config{DataDir: dataDir}
	c.fill()
	return c
}

func (c *Config) fill() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7070"
	}
	if c.Ledger == "" {
		c.Ledger = "sqlite:" + filepath.Join(c.DataDir, "ledger.db")
	}
	if c.Auth.TokenFile == "" {
		c.Auth.TokenFile = filepath.Join(c.DataDir, "tokens.json")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = workload.Duration(30 * time.Second)
	}
	if c.RecoveryInterval == 0 {
		c.RecoveryInterval = workload.Duration(time.Minute)
	}
	c.Checkpoints.fill(c.DataDir)
	if c.RevisionKeyFile == "" {
		c.RevisionKeyFile = filepath.Join(c.DataDir, "revisions.key")
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = workload.Duration(10 * time.Second)
	}
	if c.MaxStreamsPerUser == 0 {
		c.MaxStreamsPerUser = 32
	}
}

// Load reads a config file; defaultDataDir applies when the file names
// none.
func Load(path, defaultDataDir string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b, defaultDataDir)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks a config document.
func Parse(b []byte, defaultDataDir string) (Config, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return Config{}, workload.Invalid(workload.FieldError{Path: "config", Message: "not valid YAML: " + err.Error()})
	}
	var generic any
	if err := json.Unmarshal(j, &generic); err != nil {
		return Config{}, workload.Invalid(workload.FieldError{Path: "config", Message: err.Error()})
	}
	if generic == nil {
		generic = map[string]any{}
		j = []byte("{}")
	}
	if _, ok := generic.(map[string]any); !ok {
		return Config{}, workload.Invalid(workload.FieldError{Path: "config", Message: "must be a mapping"})
	}
	if secrets := secretKeys(generic, ""); len(secrets) > 0 {
		// Reported beside the key errors, before any value is decoded.
		errs := workload.UnknownFields(reflect.TypeFor[Config](), generic, "")
		errs = append(errs, workload.DuplicateKeys(j, "")...)
		return Config{}, workload.Invalid(append(errs, secrets...)...)
	}
	c, err := workload.DecodeDocument[Config](j, "config")
	if err != nil {
		return Config{}, err
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// policySecretPath matches the keys of a target policy's secret grants,
// which name secrets and never hold them.
var policySecretPath = regexp.MustCompile(`^targets\.[^.]+\.policy\.secrets(\[\d+\]\.secret)?$`)

// secretKeys refuses keys that look like they hold secrets.
func secretKeys(v any, path string) []workload.FieldError {
	var errs []workload.FieldError
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if p == "auth.tokenFile" || p == "auth.queryToken" || p == "auth.tokenMaxTTL" || p == "tls.key" || policySecretPath.MatchString(p) {
				// a path to hashed tokens, a switch, a duration, a path to
				// a key file, and grants naming secrets (never their
				// values): not secrets
			} else if credentials.IsSecretName(strings.ReplaceAll(k, "-", "_")) || strings.EqualFold(k, "key") {
				errs = append(errs, workload.FieldError{Path: p, Message: "looks like a secret: secrets come only from environment variables, never from the config file"})
				continue
			}
			errs = append(errs, secretKeys(x[k], p)...)
		}
	case []any:
		for i, e := range x {
			errs = append(errs, secretKeys(e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

// Validate checks values.
func (c *Config) Validate() error {
	var errs []workload.FieldError
	if _, _, err := splitHostPort(c.Listen); err != nil {
		errs = append(errs, workload.FieldError{Path: "listen", Message: err.Error()})
	}
	if !strings.HasPrefix(c.Ledger, "sqlite:") && !strings.HasPrefix(c.Ledger, "postgres://") && !strings.HasPrefix(c.Ledger, "postgresql://") {
		errs = append(errs, workload.FieldError{Path: "ledger", Message: "must be sqlite:PATH or postgres://..."})
	}
	for _, name := range slices.Sorted(maps.Keys(c.Targets)) {
		t := c.Targets[name]
		if m := workload.ValidateName(name); m != "" {
			errs = append(errs, workload.FieldError{Path: "targets." + name, Message: "target name " + m})
		}
		if t.Provider == "" {
			errs = append(errs, workload.FieldError{Path: "targets." + name + ".provider", Message: "is required"})
		}
		errs = append(errs, t.Policy.Validate("targets."+name+".policy")...)
	}
	for _, a := range slices.Sorted(maps.Keys(c.Timeouts)) {
		act, err := workload.ParseAction(a)
		if err != nil || !act.Mutating() {
			errs = append(errs, workload.FieldError{Path: "timeouts." + a, Message: "must name a mutating action (start, stop, scale, restart, apply_config, exec, halt)"})
		} else if c.Timeouts[a] <= 0 {
			errs = append(errs, workload.FieldError{Path: "timeouts." + a, Message: "must be > 0"})
		}
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, workload.FieldError{Path: "maxBodyBytes", Message: "must be >= 1024"})
	}
	if c.TLS != nil {
		if c.TLS.Cert == "" {
			errs = append(errs, workload.FieldError{Path: "tls.cert", Message: "is required (a PEM certificate file)"})
		}
		if c.TLS.Key == "" {
			errs = append(errs, workload.FieldError{Path: "tls.key", Message: "is required (a PEM private key file)"})
		}
	}
	if c.Policy != nil {
		if len(c.Policy.Paths) == 0 {
			errs = append(errs, workload.FieldError{Path: "policy.paths", Message: "is required (.rego files or directories)"})
		}
		for i, p := range c.Policy.Paths {
			if p == "" {
				errs = append(errs, workload.FieldError{Path: fmt.Sprintf("policy.paths[%d]", i), Message: "must not be empty"})
			}
		}
		if c.Policy.ReloadInterval < 0 {
			errs = append(errs, workload.FieldError{Path: "policy.reloadInterval", Message: "must be > 0"})
		}
	}
	if c.ReadTimeout < 0 {
		errs = append(errs, workload.FieldError{Path: "readTimeout", Message: "must be > 0"})
	}
	if c.RecoveryInterval < 0 || (c.RecoveryInterval > 0 && c.RecoveryInterval.D() < time.Second) {
		errs = append(errs, workload.FieldError{Path: "recoveryInterval", Message: "must be at least 1s"})
	}
	if c.MaxStreamsPerUser < 0 {
		errs = append(errs, workload.FieldError{Path: "maxStreamsPerUser", Message: "must be > 0"})
	}
	if o := c.Auth.OIDC; o != nil {
		errs = append(errs, o.validate("auth.oidc")...)
	}
	seen := map[string]bool{}
	if c.Auth.OIDC != nil {
		seen[c.Auth.OIDC.Issuer] = true
	}
	for i, o := range c.Auth.Issuers {
		p := fmt.Sprintf("auth.issuers[%d]", i)
		errs = append(errs, o.validate(p)...)
		if o.ClientID != "" {
			errs = append(errs, workload.FieldError{Path: p + ".clientId", Message: "only auth.oidc signs people in to the dashboard"})
		}
		if seen[o.Issuer] {
			errs = append(errs, workload.FieldError{Path: p + ".issuer", Message: "is configured twice"})
		}
		seen[o.Issuer] = true
	}
	if c.Auth.TokenMaxTTL < 0 {
		errs = append(errs, workload.FieldError{Path: "auth.tokenMaxTTL", Message: "must be > 0"})
	}
	errs = append(errs, c.Checkpoints.validate()...)
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

var roleNames = []string{"viewer", "operator", "admin"}

// validate checks one issuer's settings; p is its path.
func (o *OIDC) validate(p string) []workload.FieldError {
	var errs []workload.FieldError
	if !strings.HasPrefix(o.Issuer, "https://") && !strings.HasPrefix(o.Issuer, "http://127.0.0.1") && !strings.HasPrefix(o.Issuer, "http://localhost") && !strings.HasPrefix(o.Issuer, "http://[::1]") {
		errs = append(errs, workload.FieldError{Path: p + ".issuer", Message: "must be an https URL"})
	}
	if o.Audience == "" {
		errs = append(errs, workload.FieldError{Path: p + ".audience", Message: "is required"})
	}
	if o.RolesClaim != "" && len(o.RolesClaimPath) > 0 {
		errs = append(errs, workload.FieldError{Path: p + ".rolesClaimPath", Message: "set rolesClaim or rolesClaimPath, not both"})
	}
	if o.DefaultRole != "" && !slices.Contains(roleNames, o.DefaultRole) {
		errs = append(errs, workload.FieldError{Path: p + ".defaultRole", Message: "must be one of viewer, operator, admin"})
	}
	for i, g := range o.Grants {
		gp := fmt.Sprintf("%s.grants[%d]", p, i)
		if len(g.Claims) == 0 {
			errs = append(errs, workload.FieldError{Path: gp + ".claims", Message: "must name at least one claim"})
		}
		if !slices.Contains(roleNames, g.Role) {
			errs = append(errs, workload.FieldError{Path: gp + ".role", Message: "must be one of viewer, operator, admin"})
		}
		for j, t := range g.Targets {
			if m := workload.ValidateName(t); m != "" {
				errs = append(errs, workload.FieldError{Path: fmt.Sprintf("%s.targets[%d]", gp, j), Message: m})
			}
		}
	}
	for name, d := range map[string]workload.Duration{"maxLifetime": o.MaxLifetime, "clockSkew": o.ClockSkew,
		"jwksRefresh": o.JWKSRefresh, "jwksMaxAge": o.JWKSMaxAge, "jwksMinRefetch": o.JWKSMinRefetch, "fetchTimeout": o.FetchTimeout} {
		if d < 0 {
			errs = append(errs, workload.FieldError{Path: p + "." + name, Message: "must be > 0"})
		}
	}
	slices.SortFunc(errs, func(a, b workload.FieldError) int { return strings.Compare(a.Path, b.Path) })
	return errs
}

// TargetConfigs returns the targets in name order, for provider.Open.
func (c *Config) TargetConfigs() []provider.TargetConfig {
	out := make([]provider.TargetConfig, 0, len(c.Targets))
	for _, name := range slices.Sorted(maps.Keys(c.Targets)) {
		t := c.Targets[name]
		out = append(out, provider.TargetConfig{Name: name, Provider: t.Provider, Options: t.Options, Policy: t.Policy})
	}
	return out
}

// ActionTimeouts converts Timeouts for control.Options.
func (c *Config) ActionTimeouts() map[workload.Action]time.Duration {
	out := map[workload.Action]time.Duration{}
	for a, d := range c.Timeouts {
		out[workload.Action(a)] = d.D()
	}
	return out
}
