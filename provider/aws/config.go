package aws

import (
	"context"
	"fmt"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// maxParamValue is the value limit of a Standard-tier SSM parameter, the
// tier PutParameter uses when none is given: "Standard parameters have a
// value limit of 4 KB. Advanced parameters have a value limit of 8 KB"
// (PutParameterInput.Value, AWS Systems Manager API reference).
const maxParamValue = 4096

// checkConfig refuses, before anything is written, what SSM would refuse
// halfway through the keys.
func checkConfig(config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	var errs []workload.FieldError
	for _, k := range sortedKeys(config) {
		switch {
		case configEnvName(k) == "":
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "names no variable after the secret. prefix"})
		case config[k] == "":
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "SSM parameters cannot be empty"})
		case len(config[k]) > maxParamValue:
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("value is %d bytes; a Standard-tier SSM parameter holds at most 4 KB (%d bytes)", len(config[k]), maxParamValue)})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// writeConfig stores config under the service's SSM path, deletes keys no
// longer present, and returns the secrets to reference (env -> name).
func (p *Provider) writeConfig(ctx context.Context, service string, config map[string]string) (map[string]string, error) {
	if err := checkConfig(config); err != nil {
		return nil, err
	}
	path := p.paramPath(service)
	written := 0
	for _, k := range sortedKeys(config) {
		typ := ssmtypes.ParameterTypeString
		if strings.HasPrefix(k, SecretConfigPrefix) {
			typ = ssmtypes.ParameterTypeSecureString
		}
		name := path + k
		if _, err := p.ssm.PutParameter(ctx, &ssm.PutParameterInput{Name: sdkaws.String(name),
			Value: sdkaws.String(config[k]), Type: typ, Overwrite: sdkaws.Bool(true)}); err != nil {
			if written > 0 {
				return nil, provider.AfterChange(Name, mapErr("PutParameter "+name, err), changesApplied)
			}
			return nil, mapErr("PutParameter "+name, err)
		}
		written++
	}
	var stale []string
	pg := ssm.NewGetParametersByPathPaginator(p.ssm, &ssm.GetParametersByPathInput{Path: sdkaws.String(strings.TrimSuffix(path, "/")), Recursive: sdkaws.Bool(false)})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, provider.AfterChange(Name, mapErr("GetParametersByPath "+path, err), changesApplied)
		}
		for _, prm := range out.Parameters {
			if _, keep := config[strings.TrimPrefix(sdkaws.ToString(prm.Name), path)]; !keep {
				stale = append(stale, sdkaws.ToString(prm.Name))
			}
		}
	}
	for i := 0; i < len(stale); i += 10 {
		if _, err := p.ssm.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: stale[i:min(i+10, len(stale))]}); err != nil {
			return nil, provider.AfterChange(Name, mapErr("DeleteParameters", err), changesApplied)
		}
	}
	return p.configRefs(service, config), nil
}

// configRefs are the secrets a task definition references for config
// (variable -> parameter name): what writeConfig writes.
func (p *Provider) configRefs(service string, config map[string]string) map[string]string {
	refs := make(map[string]string, len(config))
	for k := range config {
		refs[configEnvName(k)] = p.paramPath(service) + k
	}
	return refs
}

// paramPath is the SSM path of a service's config.
func (p *Provider) paramPath(service string) string {
	return "/alphaswarm/" + p.target + "/" + service + "/"
}

// configEnvName is the variable a config key is exposed as.
func configEnvName(key string) string { return strings.TrimPrefix(key, SecretConfigPrefix) }

// isConfigParam reports whether a valueFrom is one of the service's config
// parameters (by name or ARN).
func (p *Provider) isConfigParam(service, ref string) bool {
	path := p.paramPath(service)
	if strings.HasPrefix(ref, path) {
		return true
	}
	_, rest, ok := strings.Cut(ref, ":parameter/")
	return ok && strings.HasPrefix("/"+rest, path)
}
