package docker

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/workload"
)

// dockerExtension is spec.extensions.docker.
type dockerExtension struct {
	// Pull overrides the target's pull policy for this service.
	Pull string `json:"pull,omitempty"`
	// StopSignal replaces SIGTERM.
	StopSignal string `json:"stopSignal,omitempty"`
	// User runs the workload as this user ("1000", "app:app").
	User string `json:"user,omitempty"`
}

func decodeExtension(spec *workload.DeploymentSpec) (dockerExtension, error) {
	var ext dockerExtension
	raw, ok := spec.Extensions[Name]
	if !ok {
		return ext, nil
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker", Message: "not valid JSON"})
	}
	if unknown := workload.UnknownFields(reflect.TypeFor[dockerExtension](), generic, "extensions.docker"); len(unknown) > 0 {
		return ext, workload.Invalid(unknown...)
	}
	if err := json.Unmarshal(raw, &ext); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker", Message: err.Error()})
	}
	switch ext.Pull {
	case "", "missing", "never", "always":
	default:
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker.pull", Message: `must be "missing", "never" or "always"`})
	}
	return ext, nil
}

// configTar is the archive ApplyConfig's files travel in: dir and its
// parents, then one file per key (keys are validated to be safe file
// names), readable by every user.
func configTar(dir string, config map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	for i := range parts {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path.Join(parts[:i+1]...) + "/", Mode: 0o755, ModTime: now}); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := config[k]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(strings.Trim(dir, "/"), k), Mode: 0o644, Size: int64(len(v)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, v); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// healthConfig translates a health check into a Docker health check. HTTP
// and TCP checks run inside the container, so they need a shell and wget,
// curl or nc in the image; images without them (FROM scratch) use an exec
// check.
func healthConfig(hc *workload.HealthCheck) *container.HealthConfig {
	if hc == nil {
		return nil
	}
	out := &container.HealthConfig{
		Interval:    hc.Interval.D(),
		Timeout:     hc.Timeout.D(),
		Retries:     hc.Retries,
		StartPeriod: hc.StartPeriod.D(),
	}
	// Docker's own default interval is 30s, far too slow to report a
	// fresh replica ready.
	if out.Interval == 0 {
		out.Interval = 2 * time.Second
	}
	if out.Timeout == 0 {
		out.Timeout = 5 * time.Second
	}
	if out.Retries == 0 {
		out.Retries = 3
	}
	switch {
	case len(hc.Exec) > 0:
		out.Test = append([]string{"CMD"}, hc.Exec...)
	case hc.HTTP != nil:
		u := shellQuote(fmt.Sprintf("http://127.0.0.1:%d%s", hc.HTTP.Port, hc.HTTP.Path))
		out.Test = []string{"CMD-SHELL", fmt.Sprintf("wget -q -O /dev/null %s || curl -fsS -o /dev/null %s || exit 1", u, u)}
	case hc.TCP != nil:
		out.Test = []string{"CMD-SHELL", fmt.Sprintf("nc -z 127.0.0.1 %d || exit 1", hc.TCP.Port)}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// replicaContainer translates replica index of rec into the Engine's
// container: a fresh name, the config (env, labels, health check, stop
// signal and timeout, user, command), the host config (network, restart
// policy, init, published ports on the policy's bind address, CPU and
// memory) and the service network's aliases.
func (p *Provider) replicaContainer(rec *record, env []string, net string, index int) (client.ContainerCreateOptions, error) {
	spec := &rec.Spec
	ext, _ := decodeExtension(spec)
	cname := fmt.Sprintf("%s%s-%d-%s", p.opts.NamePrefix, spec.Name, index, randHex(3))
	stopSecs := p.stopTimeoutSeconds()
	cfg := &container.Config{
		Image:       spec.Image,
		Hostname:    fmt.Sprintf("%s-%d", spec.Name, index),
		Env:         append(slices.Clip(env), "ALPHASWARM_REPLICA="+strconv.Itoa(index)),
		Labels:      p.replicaLabels(rec, index),
		Healthcheck: healthConfig(spec.HealthCheck),
		StopTimeout: &stopSecs,
		StopSignal:  ext.StopSignal,
		User:        ext.User,
	}
	if len(spec.Command) > 0 {
		cfg.Entrypoint = spec.Command
	}
	if len(spec.Args) > 0 {
		cfg.Cmd = spec.Args
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(net),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(p.opts.RestartPolicy)},
		Init:          p.opts.Init,
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		host.PortBindings = network.PortMap{}
		for _, pt := range spec.Ports {
			proto := network.IPProtocol(pt.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			port, ok := network.PortFrom(uint16(pt.Container), proto)
			if !ok {
				return client.ContainerCreateOptions{}, workload.Errorf(workload.InvalidArgument, "port %d/%s", pt.Container, proto)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hp := ""
			if pt.Host > 0 {
				hp = strconv.Itoa(pt.Host)
			}
			// The bind address: the spec's, else the target policy's
			// default (loopback unless the admin says otherwise).
			addr, err := netip.ParseAddr(p.policy.BindAddress(pt.HostIP))
			if err != nil {
				return client.ContainerCreateOptions{}, workload.Invalid(workload.FieldError{Path: "ports.hostIP", Message: "must be an IP address"})
			}
			host.PortBindings[port] = append(host.PortBindings[port], network.PortBinding{HostIP: addr, HostPort: hp})
		}
	}
	if m, _ := spec.Resources.MilliCPU(); m > 0 {
		host.Resources.NanoCPUs = m * 1_000_000
	}
	if b, _ := spec.Resources.MemoryBytes(); b > 0 {
		host.Resources.Memory = b
	}
	var nc *network.NetworkingConfig
	if net != "" {
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			net: {Aliases: []string{spec.Name, fmt.Sprintf("%s-%d", spec.Name, index)}},
		}}
	}
	return client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: host, NetworkingConfig: nc}, nil
}
