package aws

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// CheckRefs implements provider.RefChecker with metadata calls only; no
// secret value is ever fetched:
//
//   - an SSM parameter ARN: ssm:DescribeParameters with a Name filter, in
//     the ARN's region (a parameter of another account, shared through
//     RAM, is not checked: DescribeParameters lists only the caller's
//     own parameters unless asked for shared ones);
//   - a Secrets Manager ARN: secretsmanager:DescribeSecret of the secret
//     part of the ARN, in its region; a secret scheduled for deletion
//     does not resolve (its value "is not accessible"), nor does a
//     version stage or version id the reference names that the secret
//     lacks; a JSON key inside the value cannot be checked without the
//     value;
//   - an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repo>
//     with a tag, "latest" by default, or a digest): ecr:DescribeImages.
//     Any other registry: ECS cannot tell without pulling, so the image
//     is not checked.
//
// The first reference that does not resolve is NotFound (AccessDenied
// is PermissionDenied), with Fields naming its spec path ("image",
// "secrets[1].from") and a message naming the reference.
func (p *Provider) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	if err := validateSpec(&spec); err != nil {
		return err
	}
	for i, s := range spec.Secrets {
		field := fmt.Sprintf("secrets[%d].from", i)
		arn := strings.SplitN(s.From, ":", 7) // validateSpec checked the form
		var err error
		switch arn[2] {
		case "ssm":
			err = p.checkParameter(ctx, field, s.From, arn)
		case "secretsmanager":
			err = p.checkSecret(ctx, field, s.From, arn)
		}
		if err != nil {
			return err
		}
	}
	return p.checkImage(ctx, spec.Image)
}

// refError gives err (from a check of field) the field, when its code
// says the reference does not resolve or cannot be read.
func refError(field string, err error) error {
	we := workload.AsError(err)
	if we.Code != workload.NotFound && we.Code != workload.PermissionDenied {
		return err
	}
	c := *we
	c.Fields = []workload.FieldError{{Path: field, Message: c.Message}}
	return &c
}

func notResolved(field, format string, args ...any) error {
	e := provider.NotFound(Name, format, args...)
	e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
	return e
}

func inRegion[O any](region string, set func(*O, string)) func(*O) {
	return func(o *O) { set(o, region) }
}

// checkParameter: arn is ref split on ":" (arn, partition, ssm, region,
// account, parameter/name).
func (p *Provider) checkParameter(ctx context.Context, field, ref string, arn []string) error {
	region, account := arn[3], arn[4]
	if mine, err := p.account(ctx); err != nil {
		return refError(field, err)
	} else if account != mine {
		return nil // shared from another account: not checked (see CheckRefs)
	}
	rest := strings.TrimPrefix(strings.Join(arn[5:], ":"), "parameter/")
	// The ARN of "/a/b" is parameter/a/b and that of "x" is parameter/x;
	// "/x" also has parameter/x, so a one-level name is looked up both
	// ways.
	names := []string{"/" + rest}
	if !strings.Contains(rest, "/") {
		names = append(names, rest)
	}
	out, err := p.ssm.DescribeParameters(ctx, &ssm.DescribeParametersInput{
		ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: sdkaws.String("Name"), Option: sdkaws.String("Equals"), Values: names}},
	}, inRegion(region, func(o *ssm.Options, r string) { o.Region = r }))
	if err != nil {
		return refError(field, mapErr("DescribeParameters "+ref, err))
	}
	for _, m := range out.Parameters {
		if slices.Contains(names, sdkaws.ToString(m.Name)) {
			return nil
		}
	}
	return notResolved(field, "SSM parameter %s does not exist (DescribeParameters found no parameter of that name)", ref)
}

// account is the caller's account: from the permission check, else STS
// GetCallerIdentity.
func (p *Provider) account(ctx context.Context) (string, error) {
	p.accessMu.Lock()
	a := p.access.account
	p.accessMu.Unlock()
	if a != "" {
		return a, nil
	}
	id, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", mapErr("GetCallerIdentity", err)
	}
	return sdkaws.ToString(id.Account), nil
}

// checkSecret: a Secrets Manager reference in ECS is
// arn:<partition>:secretsmanager:<region>:<account>:secret:<name>[:json-key[:version-stage[:version-id]]]
// ("Pass Secrets Manager secrets through Amazon ECS environment
// variables", ECS developer guide).
func (p *Provider) checkSecret(ctx context.Context, field, ref string, arn []string) error {
	parts := strings.Split(ref, ":")
	secret := strings.Join(parts[:min(len(parts), 7)], ":")
	var stage, version string
	if len(parts) > 8 {
		stage = parts[8]
	}
	if len(parts) > 9 {
		version = parts[9]
	}
	out, err := p.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: sdkaws.String(secret)},
		inRegion(arn[3], func(o *secretsmanager.Options, r string) { o.Region = r }))
	if err != nil {
		return refError(field, mapErr("DescribeSecret "+secret, err))
	}
	if out.DeletedDate != nil {
		return notResolved(field, "Secrets Manager secret %s is scheduled for deletion (on %s): its value is not accessible; RestoreSecret cancels the deletion",
			secret, out.DeletedDate.UTC().Format("2006-01-02"))
	}
	if version != "" {
		if _, ok := out.VersionIdsToStages[version]; !ok {
			return notResolved(field, "Secrets Manager secret %s has no version %s", secret, version)
		}
	}
	if stage != "" {
		found := false
		for _, stages := range out.VersionIdsToStages {
			found = found || slices.Contains(stages, stage)
		}
		if !found {
			return notResolved(field, "Secrets Manager secret %s has no version labelled %s", secret, stage)
		}
	}
	return nil
}

// ecrImage matches an ECR image URI: registry (account, region), the
// repository, and a tag or a digest (Amazon ECR user guide, "Pulling an
// image"; FIPS endpoints and the China partition included).
var ecrImage = regexp.MustCompile(`^([0-9]{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9._/-]+?)(?::([A-Za-z0-9_.-]+))?(?:@(sha256:[a-f0-9]{64}))?$`)

// checkImage asks ECR for an ECR image; other registries are not checked.
func (p *Provider) checkImage(ctx context.Context, image string) error {
	m := ecrImage.FindStringSubmatch(image)
	if m == nil {
		return nil // not ECR: cannot tell without pulling
	}
	account, region, repo, tag, digest := m[1], m[2], m[3], m[4], m[5]
	id := ecrtypes.ImageIdentifier{}
	switch {
	case digest != "":
		id.ImageDigest = sdkaws.String(digest)
	case tag != "":
		id.ImageTag = sdkaws.String(tag)
	default:
		id.ImageTag = sdkaws.String("latest")
	}
	out, err := p.ecr.DescribeImages(ctx, &ecr.DescribeImagesInput{RegistryId: sdkaws.String(account),
		RepositoryName: sdkaws.String(repo), ImageIds: []ecrtypes.ImageIdentifier{id}},
		inRegion(region, func(o *ecr.Options, r string) { o.Region = r }))
	if err != nil {
		return refError("image", mapErr("DescribeImages "+image, err))
	}
	if len(out.ImageDetails) == 0 {
		return notResolved("image", "ECR image %s does not exist", image)
	}
	return nil
}
