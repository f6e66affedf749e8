package workload

import (
	"encoding/json"
	"fmt"
	"time"
)

// DeploymentSpec describes one service: what to run, how many, and how to
// reach and check it. It never holds secret values: secrets are references
// that a provider resolves at deploy time (see SecretRef).
type DeploymentSpec struct {
	// Name is the service name, a DNS-1123 label. With Target it makes the
	// service id "<target>/<name>".
	Name string `json:"name"`
	// Target names the configured provider instance ("local", "prod-eks").
	// Empty means the caller chooses it (for example the API route).
	Target string `json:"target,omitempty"`
	// Image is the container image. Required unless Compose is set.
	Image   string   `json:"image,omitempty"`
	Command []string `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Env holds plain environment variables. Put nothing secret here.
	Env map[string]string `json:"env,omitempty"`
	// Secrets are references to secret values, resolved by the provider.
	Secrets []SecretRef `json:"secrets,omitempty"`
	// Replicas is the desired instance count. Decode sets 1 when absent.
	Replicas    int               `json:"replicas"`
	Ports       []Port            `json:"ports,omitempty"`
	Resources   Resources         `json:"resources,omitzero"`
	HealthCheck *HealthCheck      `json:"healthCheck,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Compose     *ComposeProfile   `json:"compose,omitempty"`
	// Extensions holds one block per provider name ("docker", "kubernetes",
	// "aws"...), interpreted only by that provider.
	Extensions map[string]json.RawMessage `json:"extensions,omitempty"`
}

// SecretRef exposes a secret to the workload as the environment variable
// Env. From is a reference the provider understands, never the value:
// "env:NAME" (a controller environment variable, resolved through
// credentials.Resolver), a Kubernetes "secret/key", an SSM parameter ARN,
// a Key Vault or Secret Manager name.
type SecretRef struct {
	Env  string `json:"env"`
	From string `json:"from"`
}

// Port publishes a container port.
type Port struct {
	Name      string `json:"name,omitempty"`
	Container int    `json:"container"`
	// Host is the port on the host (docker) or the Service port
	// (kubernetes); 0 lets the backend choose or mirrors Container.
	Host int `json:"host,omitempty"`
	// HostIP is the host address a published port listens on (docker).
	// Empty means the target policy's default bind address (127.0.0.1
	// unless the admin says otherwise).
	HostIP   string `json:"hostIP,omitempty"`
	Protocol string `json:"protocol,omitempty"` // tcp (default) or udp
}

// Resources are per-instance limits in Kubernetes quantity notation:
// CPU "500m" or "1.5", memory "256Mi" or "1G".
type Resources struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// MilliCPU returns CPU in thousandths of a core; 0 when unset.
func (r Resources) MilliCPU() (int64, error) { return ParseMilliCPU(r.CPU) }

// MemoryBytes returns the memory limit in bytes; 0 when unset.
func (r Resources) MemoryBytes() (int64, error) { return ParseBytes(r.Memory) }

// HealthCheck says how to tell a ready instance. Exactly one of HTTP, TCP
// and Exec is set.
type HealthCheck struct {
	HTTP        *HTTPCheck `json:"http,omitempty"`
	TCP         *TCPCheck  `json:"tcp,omitempty"`
	Exec        []string   `json:"exec,omitempty"`
	Interval    Duration   `json:"interval,omitzero"`
	Timeout     Duration   `json:"timeout,omitzero"`
	Retries     int        `json:"retries,omitempty"`
	StartPeriod Duration   `json:"startPeriod,omitzero"`
}

// HTTPCheck is a GET that must answer 2xx or 3xx.
type HTTPCheck struct {
	Path string `json:"path"`
	Port int    `json:"port"`
}

// TCPCheck is a connection that must be accepted.
type TCPCheck struct {
	Port int `json:"port"`
}

// ComposeProfile points a service at a Compose file for a multi-container
// service; the provider that supports it runs the file's services.
type ComposeProfile struct {
	File     string   `json:"file"`
	Profiles []string `json:"profiles,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration must be a string like \"5s\" or a number of seconds")
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
