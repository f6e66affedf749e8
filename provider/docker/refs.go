package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var _ provider.RefChecker = (*Provider)(nil)

// CheckRefs implements provider.RefChecker: the spec's image is present on
// the Engine (ImageInspect: it does not pull, and a deploy under pull
// policy "missing" or "always" might still get it from a registry; the
// error says so), and each secret reference resolves through the
// credentials resolver, as Start would resolve it. The first that does
// not is NotFound with Fields naming its spec path ("image",
// "secrets[1].from"); a reference of a form this provider never resolves
// is InvalidArgument. No secret value reaches an error: a resolved value
// is only registered for redaction. A Compose spec has no image to check;
// its Compose file is checked to exist instead ("compose.file").
func (p *Provider) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	if spec.Compose == nil {
		if err := p.checkImage(ctx, spec); err != nil {
			return err
		}
	}
	for i, s := range spec.Secrets {
		if err := p.checkSecret(i, s); err != nil {
			return err
		}
	}
	if spec.Compose != nil {
		if p.policy.Compose.Dir == "" {
			return composeOff(p.target)
		}
		if _, err := readComposeFile(p.policy.Compose.Dir, spec.Compose.File); err != nil {
			e := workload.AsError(err)
			if e.Code == workload.InvalidArgument && strings.Contains(e.Message, "no such file") {
				e = provider.NotFound(Name, "compose file %s is not in the target's Compose directory", spec.Compose.File)
				e.Fields = []workload.FieldError{{Path: "compose.file", Message: e.Message}}
			}
			return e.WithProvider(Name)
		}
	}
	return nil
}

func (p *Provider) checkImage(ctx context.Context, spec workload.DeploymentSpec) error {
	if spec.Image == "" {
		return workload.Invalid(workload.FieldError{Path: "image", Message: "is required unless compose is set"})
	}
	_, err := p.eng.ImageInspect(ctx, spec.Image)
	if err == nil {
		return nil
	}
	if classify(err) != workload.NotFound {
		return provider.Wrap(Name, p.classifier, err, "inspect image "+spec.Image)
	}
	rec := &record{Spec: spec}
	e := provider.NotFound(Name, "image %s is not present on the docker engine at %s (looked up by that reference with ImageInspect; nothing is pulled to check it, and a deploy with pull policy %q %s)",
		spec.Image, p.host, p.pullPolicy(rec), pullWould(p.pullPolicy(rec)))
	e.Fields = []workload.FieldError{{Path: "image", Message: e.Message}}
	return e
}

func pullWould(pull string) string {
	if pull == "never" {
		return "fails the same way"
	}
	return "would try to pull it from its registry"
}

// checkSecret resolves secret i of a spec the way Start's resolveEnv does
// (which registers the value for redaction) and drops the value.
func (p *Provider) checkSecret(i int, s workload.SecretRef) error {
	if _, err := p.creds.Secret(s.From); err != nil {
		e := *workload.AsError(err)
		path := fmt.Sprintf("secrets[%d].from", i)
		name, ok := strings.CutPrefix(s.From, "env:")
		if ok && strings.HasPrefix(name, credentials.SecretEnvPrefix) && name != credentials.SecretEnvPrefix {
			// A reference of the right form whose variable is not set.
			e.Code, e.Retryable = workload.NotFound, workload.NotFound.Retryable()
		}
		e.Err = nil
		e.Fields = []workload.FieldError{{Path: path, Message: e.Message}}
		return e.WithProvider(Name)
	}
	return nil
}
