package azure

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Tags alphaswarm sets on every container group it creates.
const (
	tagService = "alphaswarm.service"
	tagTarget  = "alphaswarm.target"
	tagIndex   = "alphaswarm.index"
	// tagSpec is a digest of the spec the group was created from
	// (config excluded), tagConfig one of the config it carries.
	tagSpec   = "alphaswarm.spec"
	tagConfig = "alphaswarm.config"
	// tagSecretPrefix + ENV holds the reference ("env:NAME",
	// "keyvault:name[/version]") of a secret env var, so that a group can
	// be recreated (Scale) although ACI never returns secure values.
	tagSecretPrefix = "alphaswarm.secret."
	// tagConfigKeys lists the env vars that came from config (comma
	// separated), so that ApplyConfig can replace them.
	tagConfigKeys = "alphaswarm.configkeys"

	containerName = "app"
	// maxGroupName is ACI's limit on container group names; a service's
	// groups are "<service>-<index>".
	maxGroupName = 63
	// Azure's limits on a resource's tags.
	maxTags     = 50
	maxTagValue = 256
)

// groupNameLimit is ACI's own name limit in workload.CheckName's wording:
// a service's container groups are "<name>-<index>", and ACI takes at most
// maxGroupName characters.
func groupNameLimit(name string, replicas int) string {
	last := max(replicas-1, 0)
	return fmt.Sprintf("must keep the container group names <name>-<index> within ACI's %d characters (%s-%d has %d)",
		maxGroupName, name, last, len(name)+1+len(strconv.Itoa(last)))
}

// blueprint is what a service's container groups are made from: the group
// without config, index and secret values, plus the secret references.
type blueprint struct {
	cg      armcontainerinstance.ContainerGroup
	secrets map[string]string // env var -> reference
	specTag string
}

// blueprintFromSpec translates a spec (see the package doc).
func (p *Provider) blueprintFromSpec(spec workload.DeploymentSpec) (*blueprint, error) {
	var errs []workload.FieldError
	add := func(path, msg string) { errs = append(errs, workload.FieldError{Path: path, Message: msg}) }
	if spec.Compose != nil {
		add("compose", "ACI container groups are built from one image here; compose is not supported by the azure provider")
	}
	if len(spec.Name)+1+len(strconv.Itoa(max(spec.Replicas-1, 0))) > maxGroupName {
		add("name", groupNameLimit(spec.Name, spec.Replicas))
	}
	c := &armcontainerinstance.ContainerProperties{Image: to.Ptr(spec.Image)}
	switch {
	case len(spec.Command) > 0:
		c.Command = to.SliceOfPtrs(append(slices.Clone(spec.Command), spec.Args...)...)
	case len(spec.Args) > 0:
		add("args", "ACI containers take one command line that replaces the image's entrypoint: set command as well")
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		c.EnvironmentVariables = append(c.EnvironmentVariables, &armcontainerinstance.EnvironmentVariable{Name: to.Ptr(k), Value: to.Ptr(spec.Env[k])})
	}
	secrets := map[string]string{}
	for i, s := range spec.Secrets {
		switch {
		case strings.HasPrefix(s.From, "env:"):
		case strings.HasPrefix(s.From, "keyvault:"):
			if p.secrets == nil {
				add(fmt.Sprintf("secrets[%d].from", i), "keyvault: references need the target's keyVaultURL option")
			}
			if n, _, _ := strings.Cut(strings.TrimPrefix(s.From, "keyvault:"), "/"); !kvName.MatchString(n) {
				add(fmt.Sprintf("secrets[%d].from", i), "want keyvault:<secret-name>[/<version>]")
			}
		default:
			add(fmt.Sprintf("secrets[%d].from", i), "want env:NAME (the controller's environment) or keyvault:<secret-name>[/<version>] (the target's Key Vault)")
		}
		secrets[s.Env] = s.From
	}
	var ports []*armcontainerinstance.Port
	for i, pt := range spec.Ports {
		if pt.Host != 0 && pt.Host != pt.Container {
			add(fmt.Sprintf("ports[%d].host", i), "ACI exposes a container port on the same port of the group's IP: host must equal container or be unset")
		}
		proto := armcontainerinstance.ContainerNetworkProtocolTCP
		gproto := armcontainerinstance.ContainerGroupNetworkProtocolTCP
		if pt.Protocol == "udp" {
			proto, gproto = armcontainerinstance.ContainerNetworkProtocolUDP, armcontainerinstance.ContainerGroupNetworkProtocolUDP
		}
		c.Ports = append(c.Ports, &armcontainerinstance.ContainerPort{Port: to.Ptr(int32(pt.Container)), Protocol: &proto})
		ports = append(ports, &armcontainerinstance.Port{Port: to.Ptr(int32(pt.Container)), Protocol: &gproto})
	}
	cpu, mem := 1.0, 1.5
	if spec.Resources.CPU != "" {
		if m, err := spec.Resources.MilliCPU(); err == nil {
			cpu = float64(m) / 1000
		}
	}
	if spec.Resources.Memory != "" {
		if b, err := spec.Resources.MemoryBytes(); err == nil {
			// ACI takes memory in GB with one decimal; round up.
			mem = math.Ceil(float64(b)/(1<<30)*10) / 10
		}
	}
	c.Resources = &armcontainerinstance.ResourceRequirements{Requests: &armcontainerinstance.ResourceRequests{CPU: to.Ptr(cpu), MemoryInGB: to.Ptr(mem)}}
	if hc := spec.HealthCheck; hc != nil {
		pr := &armcontainerinstance.ContainerProbe{}
		if hc.Interval > 0 {
			pr.PeriodSeconds = to.Ptr(int32(hc.Interval.D() / time.Second))
		}
		if hc.Timeout > 0 {
			pr.TimeoutSeconds = to.Ptr(int32(hc.Timeout.D() / time.Second))
		}
		if hc.Retries > 0 {
			pr.FailureThreshold = to.Ptr(int32(hc.Retries))
		}
		if hc.StartPeriod > 0 {
			pr.InitialDelaySeconds = to.Ptr(int32(hc.StartPeriod.D() / time.Second))
		}
		switch {
		case hc.HTTP != nil:
			pr.HTTPGet = &armcontainerinstance.ContainerHTTPGet{Path: to.Ptr(hc.HTTP.Path), Port: to.Ptr(int32(hc.HTTP.Port)), Scheme: to.Ptr(armcontainerinstance.SchemeHTTP)}
		case len(hc.Exec) > 0:
			pr.Exec = &armcontainerinstance.ContainerExec{Command: to.SliceOfPtrs(hc.Exec...)}
		case hc.TCP != nil:
			add("healthCheck.tcp", "ACI probes are httpGet or exec; tcp checks are not supported")
		}
		c.LivenessProbe, c.ReadinessProbe = pr, pr
	}
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	props := &armcontainerinstance.ContainerGroupPropertiesProperties{
		Containers:    []*armcontainerinstance.Container{{Name: to.Ptr(containerName), Properties: c}},
		OSType:        to.Ptr(armcontainerinstance.OperatingSystemTypesLinux),
		RestartPolicy: to.Ptr(armcontainerinstance.ContainerGroupRestartPolicyAlways),
	}
	if p.opts.Subnet != "" {
		props.SubnetIDs = []*armcontainerinstance.ContainerGroupSubnetID{{ID: to.Ptr(p.opts.Subnet)}}
	}
	if len(ports) > 0 {
		typ := armcontainerinstance.ContainerGroupIPAddressTypePublic
		if p.opts.Subnet != "" {
			typ = armcontainerinstance.ContainerGroupIPAddressTypePrivate
		}
		props.IPAddress = &armcontainerinstance.IPAddress{Type: &typ, Ports: ports}
	}
	tags := map[string]*string{}
	for k, v := range spec.Labels {
		if strings.ContainsAny(k, `<>%&\?/`) {
			add("labels."+k, "becomes an Azure tag name, which cannot contain < > % & \\ ? /")
		}
		if len(v) > maxTagValue {
			add("labels."+k, fmt.Sprintf("becomes an Azure tag value, at most %d characters", maxTagValue))
		}
		tags[k] = to.Ptr(v)
	}
	// The tags alphaswarm sets: service, target, index, spec, config,
	// config keys, and one per secret.
	if n := len(spec.Labels) + len(secrets) + 6; n > maxTags {
		add("labels", fmt.Sprintf("labels and secrets become Azure tags: %d with alphaswarm's own, at most %d", n, maxTags))
	}
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	bp := &blueprint{cg: armcontainerinstance.ContainerGroup{Location: to.Ptr(p.opts.Location), Tags: tags, Properties: props}, secrets: secrets}
	bp.specTag = digest(bp.cg, secrets)
	return bp, nil
}

// blueprintFromGroup recovers a blueprint from a live group (Get): the
// secure values, which ACI never returns, come back from the secret tags;
// config env vars are dropped (they are added again from the store).
func blueprintFromGroup(cg *armcontainerinstance.ContainerGroup) (*blueprint, error) {
	b, err := json.Marshal(cg)
	if err != nil {
		return nil, err
	}
	var cp armcontainerinstance.ContainerGroup
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, err
	}
	bp := &blueprint{secrets: map[string]string{}, specTag: tag(&cp, tagSpec)}
	configKeys := map[string]bool{}
	for _, k := range strings.Split(tag(&cp, tagConfigKeys), ",") {
		configKeys[k] = true
	}
	tags := map[string]*string{}
	for k, v := range cp.Tags {
		switch {
		case strings.HasPrefix(k, tagSecretPrefix):
			bp.secrets[strings.TrimPrefix(k, tagSecretPrefix)] = str(v)
		case strings.HasPrefix(k, workload.ReservedLabelPrefix):
		default:
			tags[k] = v
		}
	}
	cp.ID, cp.Name, cp.Type, cp.Tags = nil, nil, nil, tags
	if cp.Properties == nil {
		return nil, fmt.Errorf("container group has no properties")
	}
	if appContainer(&cp) == nil {
		return nil, fmt.Errorf("container group has no container named %s", containerName)
	}
	cp.Properties.Containers = slices.DeleteFunc(cp.Properties.Containers, func(c *armcontainerinstance.Container) bool { return c == nil })
	cp.Properties.InstanceView, cp.Properties.ProvisioningState = nil, nil
	if ip := cp.Properties.IPAddress; ip != nil {
		ip.IP, ip.Fqdn = nil, nil
	}
	for _, c := range cp.Properties.Containers {
		if c.Properties == nil {
			continue
		}
		c.Properties.InstanceView = nil
		var env []*armcontainerinstance.EnvironmentVariable
		for _, e := range c.Properties.EnvironmentVariables {
			n := str(e.Name)
			if configKeys[n] || bp.secrets[n] != "" {
				continue
			}
			env = append(env, e)
		}
		c.Properties.EnvironmentVariables = env
	}
	bp.cg = cp
	return bp, nil
}

// configEntry is one config key as the workload sees it.
type configEntry struct {
	env    string
	value  string
	secure bool
	// version identifies the value in the config digest: the value
	// itself for plain keys, the Key Vault secret id for secret ones.
	version string
}

// materialize builds group index of the service from bp with config.
func (p *Provider) materialize(ctx context.Context, service string, bp *blueprint, config []configEntry, index int) (armcontainerinstance.ContainerGroup, error) {
	b, err := json.Marshal(bp.cg)
	if err != nil {
		return armcontainerinstance.ContainerGroup{}, err
	}
	var cg armcontainerinstance.ContainerGroup
	if err := json.Unmarshal(b, &cg); err != nil {
		return armcontainerinstance.ContainerGroup{}, err
	}
	if cg.Tags == nil {
		cg.Tags = map[string]*string{}
	}
	cg.Tags[tagService] = to.Ptr(service)
	cg.Tags[tagTarget] = to.Ptr(p.target)
	cg.Tags[tagIndex] = to.Ptr(strconv.Itoa(index))
	cg.Tags[tagSpec] = to.Ptr(bp.specTag)
	cg.Tags[tagConfig] = to.Ptr(configDigest(config))
	var keys []string
	for _, e := range config {
		keys = append(keys, e.env)
	}
	if len(keys) > 0 {
		cg.Tags[tagConfigKeys] = to.Ptr(strings.Join(keys, ","))
	}
	c := appContainer(&cg)
	if c == nil {
		return armcontainerinstance.ContainerGroup{}, provider.Errorf(Name, workload.ProviderError, "container group %s: %s", service,
			"the definition has no container named "+containerName)
	}
	for _, env := range slices.Sorted(maps.Keys(bp.secrets)) {
		from := bp.secrets[env]
		cg.Tags[tagSecretPrefix+env] = to.Ptr(from)
		v, err := p.resolveSecret(ctx, from)
		if err != nil {
			return armcontainerinstance.ContainerGroup{}, err
		}
		c.EnvironmentVariables = append(c.EnvironmentVariables, &armcontainerinstance.EnvironmentVariable{Name: to.Ptr(env), SecureValue: to.Ptr(v)})
	}
	// Config wins over a spec env var of the same name.
	cfgNames := map[string]bool{}
	for _, e := range config {
		cfgNames[e.env] = true
	}
	c.EnvironmentVariables = slices.DeleteFunc(c.EnvironmentVariables, func(e *armcontainerinstance.EnvironmentVariable) bool {
		return cfgNames[str(e.Name)] && e.SecureValue == nil
	})
	for _, e := range config {
		ev := &armcontainerinstance.EnvironmentVariable{Name: to.Ptr(e.env)}
		if e.secure {
			ev.SecureValue = to.Ptr(e.value)
		} else {
			ev.Value = to.Ptr(e.value)
		}
		c.EnvironmentVariables = append(c.EnvironmentVariables, ev)
	}
	return cg, nil
}

// resolveSecret resolves a secret reference of a spec.
func (p *Provider) resolveSecret(ctx context.Context, from string) (string, error) {
	if rest, ok := strings.CutPrefix(from, "keyvault:"); ok {
		if p.secrets == nil {
			return "", provider.Errorf(Name, workload.InvalidArgument, "secret reference %s: the target has no keyVaultURL", from)
		}
		name, version, _ := strings.Cut(rest, "/")
		resp, err := p.secrets.GetSecret(ctx, name, version, nil)
		if err != nil {
			return "", mapErr("get Key Vault secret "+name, err)
		}
		// Redacted from everything the system writes, like env: values.
		p.creds.Register(str(resp.Value))
		return str(resp.Value), nil
	}
	return p.creds.Secret(from)
}

func digest(v ...any) string {
	h := sha256.New()
	for _, x := range v {
		_ = json.NewEncoder(h).Encode(x)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func configDigest(config []configEntry) string {
	var parts []string
	for _, e := range config {
		parts = append(parts, e.env+"="+e.version)
	}
	return digest(parts)
}

func tag(cg *armcontainerinstance.ContainerGroup, k string) string {
	if cg == nil {
		return ""
	}
	return str(cg.Tags[k])
}
