package aws

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/alphaswarm/controller/workload"
)

// Labels and tags alphaswarm sets.
const (
	labelService  = "alphaswarm.service"
	labelTarget   = "alphaswarm.target"
	labelSpecHash = "alphaswarm.spec-hash"
	// SecretConfigPrefix marks a config key whose value is stored as an SSM
	// SecureString; the variable the workload sees drops the prefix.
	SecretConfigPrefix = "secret."
)

var secretARN = regexp.MustCompile(`^arn:aws[a-z-]*:(ssm|secretsmanager):[a-z0-9-]+:[0-9]{12}:(parameter/|secret:).+`)

// validateSpec checks what the provider needs beyond spec.Validate.
func validateSpec(spec *workload.DeploymentSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	var errs []workload.FieldError
	if spec.Compose != nil {
		errs = append(errs, workload.FieldError{Path: "compose", Message: "the aws provider (ECS) runs one image per service; compose is not supported"})
	}
	for i, s := range spec.Secrets {
		if strings.HasPrefix(s.From, "env:") {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("secrets[%d].from", i),
				Message: "env: references are not supported on ECS (the value would have to be copied into AWS): use an SSM parameter ARN (arn:aws:ssm:<region>:<account>:parameter/...) or a Secrets Manager ARN"})
		} else if !secretARN.MatchString(s.From) {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("secrets[%d].from", i),
				Message: "must be an SSM parameter ARN (arn:aws:ssm:...:parameter/...) or a Secrets Manager ARN (arn:aws:secretsmanager:...:secret:...)"})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// specHash identifies a spec (config included) in the task definition's
// docker labels, so that starting an unchanged spec rolls nothing.
func specHash(spec workload.DeploymentSpec) string {
	spec.Replicas = 0
	b, _ := json.Marshal(spec)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (p *Provider) family(service string) string { return "as-" + p.target + "-" + service }

// fargateSizes lists valid Fargate CPU units with their memory range (MiB)
// and step.
var fargateSizes = []struct{ cpu, min, max, step int64 }{
	{256, 512, 2048, 512}, {512, 1024, 4096, 1024}, {1024, 2048, 8192, 1024},
	{2048, 4096, 16384, 1024}, {4096, 8192, 30720, 1024}, {8192, 16384, 61440, 4096},
	{16384, 32768, 122880, 8192},
}

// taskSize converts the spec's resources to task-level cpu units and MiB:
// rounded up to the nearest valid Fargate combination on FARGATE, as given
// (defaults 256 / 512) otherwise.
func taskSize(r workload.Resources, fargate bool) (cpu, mem int64, err error) {
	milli, err := r.MilliCPU()
	if err != nil {
		return 0, 0, workload.Invalid(workload.FieldError{Path: "resources.cpu", Message: err.Error()})
	}
	bytes, err := r.MemoryBytes()
	if err != nil {
		return 0, 0, workload.Invalid(workload.FieldError{Path: "resources.memory", Message: err.Error()})
	}
	cpu = (milli*1024 + 999) / 1000
	mem = (bytes + (1<<20 - 1)) >> 20
	if !fargate {
		return max(cpu, 256), max(mem, 512), nil
	}
	for _, s := range fargateSizes {
		if cpu > s.cpu || mem > s.max {
			continue
		}
		m := max(mem, s.min)
		m = (m + s.step - 1) / s.step * s.step
		if s.cpu == 256 && m == 1536 {
			m = 2048
		}
		return s.cpu, m, nil
	}
	return 0, 0, workload.Invalid(workload.FieldError{Path: "resources", Message: "exceeds the largest Fargate task (16 vCPU, 120 GiB)"})
}

// taskDefinitionInput translates a spec. configSecrets are the config
// parameters to reference (env name -> parameter name).
func (p *Provider) taskDefinitionInput(spec workload.DeploymentSpec, configSecrets map[string]string) (*ecs.RegisterTaskDefinitionInput, error) {
	fargate := p.opts.LaunchType == "FARGATE"
	cpu, mem, err := taskSize(spec.Resources, fargate)
	if err != nil {
		return nil, err
	}
	c := ecstypes.ContainerDefinition{
		Name:       sdkaws.String(spec.Name),
		Image:      sdkaws.String(spec.Image),
		Essential:  sdkaws.Bool(true),
		EntryPoint: spec.Command,
		Command:    spec.Args,
		DockerLabels: map[string]string{
			labelService: spec.Name, labelTarget: p.target, labelSpecHash: specHash(spec),
		},
		LogConfiguration: &ecstypes.LogConfiguration{
			LogDriver: ecstypes.LogDriverAwslogs,
			Options: map[string]string{
				"awslogs-group":         p.opts.LogGroup,
				"awslogs-region":        p.region(),
				"awslogs-stream-prefix": spec.Name,
				"awslogs-create-group":  "true",
			},
		},
	}
	for k, v := range spec.Labels {
		if !strings.HasPrefix(k, workload.ReservedLabelPrefix) {
			c.DockerLabels[k] = v
		}
	}
	env := map[string]string{"ALPHASWARM_SERVICE": spec.Name, "ALPHASWARM_TARGET": p.target}
	for k, v := range spec.Env {
		env[k] = v
	}
	for _, k := range sortedKeys(env) {
		c.Environment = append(c.Environment, ecstypes.KeyValuePair{Name: sdkaws.String(k), Value: sdkaws.String(env[k])})
	}
	secrets := map[string]string{}
	for k, v := range configSecrets {
		secrets[k] = v
	}
	for _, s := range spec.Secrets {
		secrets[s.Env] = s.From
	}
	for _, k := range sortedKeys(secrets) {
		c.Secrets = append(c.Secrets, ecstypes.Secret{Name: sdkaws.String(k), ValueFrom: sdkaws.String(secrets[k])})
	}
	for _, port := range spec.Ports {
		pm := ecstypes.PortMapping{ContainerPort: sdkaws.Int32(int32(port.Container)), Protocol: ecstypes.TransportProtocolTcp}
		if port.Protocol == "udp" {
			pm.Protocol = ecstypes.TransportProtocolUdp
		}
		if port.Name != "" {
			pm.Name = sdkaws.String(port.Name)
		}
		c.PortMappings = append(c.PortMappings, pm)
	}
	if hc := spec.HealthCheck; hc != nil {
		h := &ecstypes.HealthCheck{
			Interval:    sdkaws.Int32(clampSecs(hc.Interval.D().Seconds(), 10, 5, 300)),
			Timeout:     sdkaws.Int32(clampSecs(hc.Timeout.D().Seconds(), 5, 2, 60)),
			Retries:     sdkaws.Int32(clampSecs(float64(hc.Retries), 3, 1, 10)),
			StartPeriod: sdkaws.Int32(clampSecs(hc.StartPeriod.D().Seconds(), 0, 0, 300)),
		}
		switch {
		case len(hc.Exec) > 0:
			h.Command = append([]string{"CMD"}, hc.Exec...)
		case hc.HTTP != nil:
			h.Command = []string{"CMD-SHELL", fmt.Sprintf("curl -fsS http://localhost:%d%s >/dev/null || wget -q -O /dev/null http://localhost:%d%s || exit 1",
				hc.HTTP.Port, hc.HTTP.Path, hc.HTTP.Port, hc.HTTP.Path)}
		case hc.TCP != nil:
			h.Command = []string{"CMD-SHELL", fmt.Sprintf("nc -z localhost %d || exit 1", hc.TCP.Port)}
		}
		c.HealthCheck = h
	}
	in := &ecs.RegisterTaskDefinitionInput{
		Family:               sdkaws.String(p.family(spec.Name)),
		ContainerDefinitions: []ecstypes.ContainerDefinition{c},
		NetworkMode:          ecstypes.NetworkModeAwsvpc,
		Cpu:                  sdkaws.String(strconv.FormatInt(cpu, 10)),
		Memory:               sdkaws.String(strconv.FormatInt(mem, 10)),
		Tags: []ecstypes.Tag{
			{Key: sdkaws.String(labelService), Value: sdkaws.String(spec.Name)},
			{Key: sdkaws.String(labelTarget), Value: sdkaws.String(p.target)},
		},
	}
	if fargate {
		in.RequiresCompatibilities = []ecstypes.Compatibility{ecstypes.CompatibilityFargate}
	}
	if p.opts.ExecutionRoleArn != "" {
		in.ExecutionRoleArn = sdkaws.String(p.opts.ExecutionRoleArn)
	}
	if p.opts.TaskRoleArn != "" {
		in.TaskRoleArn = sdkaws.String(p.opts.TaskRoleArn)
	}
	if p.opts.EnableExecuteCommand {
		// ECS Exec's recommendation: an init process reaps the processes
		// exec sessions leave behind.
		in.ContainerDefinitions[0].LinuxParameters = &ecstypes.LinuxParameters{InitProcessEnabled: sdkaws.Bool(true)}
	}
	return in, nil
}

// matchesExecOptions reports whether a task definition carries what the
// target's taskRoleArn and enableExecuteCommand options put there, so that
// Start registers a new revision when they change although the spec did
// not.
func (p *Provider) matchesExecOptions(td *ecstypes.TaskDefinition) bool {
	if sdkaws.ToString(td.TaskRoleArn) != p.opts.TaskRoleArn || len(td.ContainerDefinitions) == 0 {
		return false
	}
	lp := td.ContainerDefinitions[0].LinuxParameters
	return (lp != nil && sdkaws.ToBool(lp.InitProcessEnabled)) == p.opts.EnableExecuteCommand
}

func clampSecs(v float64, def, lo, hi int32) int32 {
	if v <= 0 {
		return def
	}
	n := int32(v + 0.999)
	return min(max(n, lo), hi)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// reviseTaskDefinition builds a register input from an existing task
// definition, with its config secrets replaced.
func (p *Provider) reviseTaskDefinition(td *ecstypes.TaskDefinition, service string, configSecrets map[string]string) *ecs.RegisterTaskDefinitionInput {
	cds := slices.Clone(td.ContainerDefinitions)
	if len(cds) > 0 {
		c := &cds[0]
		var kept []ecstypes.Secret
		for _, s := range c.Secrets {
			if !p.isConfigParam(service, sdkaws.ToString(s.ValueFrom)) {
				kept = append(kept, s)
			}
		}
		for _, k := range sortedKeys(configSecrets) {
			kept = append(kept, ecstypes.Secret{Name: sdkaws.String(k), ValueFrom: sdkaws.String(configSecrets[k])})
		}
		c.Secrets = kept
	}
	return &ecs.RegisterTaskDefinitionInput{
		Family:                  td.Family,
		ContainerDefinitions:    cds,
		NetworkMode:             td.NetworkMode,
		Cpu:                     td.Cpu,
		Memory:                  td.Memory,
		RequiresCompatibilities: td.RequiresCompatibilities,
		ExecutionRoleArn:        td.ExecutionRoleArn,
		TaskRoleArn:             td.TaskRoleArn,
		Tags: []ecstypes.Tag{
			{Key: sdkaws.String(labelService), Value: sdkaws.String(service)},
			{Key: sdkaws.String(labelTarget), Value: sdkaws.String(p.target)},
		},
	}
}
