package fakeaws

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The metadata calls a rollback's reference check makes (provider/aws
// refs.go): SSM DescribeParameters, Secrets Manager DescribeSecret and ECR
// DescribeImages, all AWS JSON 1.1. None of them returns a secret value,
// and neither does the fake.

type secret struct {
	name, arn string
	created   time.Time
	deleted   time.Time           // scheduled deletion; zero if none
	versions  map[string][]string // version id -> staging labels
}

type image struct {
	digest string
	tags   []string
	pushed time.Time
}

// CreateSecret creates a Secrets Manager secret with one version labelled
// AWSCURRENT and returns its ARN. The ARN ends in "-" and six random
// characters: "Secrets Manager automatically adds a hyphen and six random
// characters after the secret name at the end of the ARN" (Secrets
// Manager user guide, "Secret ARN"). The fake keeps no value.
func (f *Fake) CreateSecret(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.secrets == nil {
		f.secrets = map[string]*secret{}
	}
	suffix := fmt.Sprintf("%x", sha256.Sum256([]byte(name+f.id())))[:6]
	s := &secret{name: name, arn: f.arn("secretsmanager", "secret:"+name+"-"+suffix), created: f.now(),
		versions: map[string][]string{f.id()[:8] + "-0000-4000-8000-" + f.id()[20:]: {"AWSCURRENT"}}}
	f.secrets[name] = s
	return s.arn
}

// DeleteSecret deletes a secret as Secrets Manager DeleteSecret does:
// scheduled (the secret stays, with a DeletedDate, recoverable for the
// default recovery window of 30 days) or, with force, at once
// (ForceDeleteWithoutRecovery) (Secrets Manager API reference,
// DeleteSecret).
func (f *Fake) DeleteSecret(name string, force bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if force {
		delete(f.secrets, name)
	} else if s := f.secrets[name]; s != nil {
		s.deleted = f.now().Add(30 * 24 * time.Hour)
	}
}

// secretByID finds a secret by name, full ARN or partial ARN (without the
// random suffix): DescribeSecret's SecretId is "the ARN or name of the
// secret" (Secrets Manager API reference, DescribeSecret; "Finding a
// secret from a partial ARN", user guide).
func (f *Fake) secretByID(id string) *secret {
	if s := f.secrets[id]; s != nil && !strings.HasPrefix(id, "arn:") {
		return s
	}
	for _, s := range f.secrets {
		if id == s.arn || id == f.arn("secretsmanager", "secret:"+s.name) {
			return s
		}
	}
	return nil
}

func (f *Fake) secretsManager(op string, in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "DescribeSecret":
		s := f.secretByID(str(in, "SecretId"))
		if s == nil {
			// "We can't find the resource that you asked for."
			// (DescribeSecret, Errors: ResourceNotFoundException.)
			return nil, errf(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		}
		out := map[string]any{"ARN": s.arn, "Name": s.name, "CreatedDate": epoch(s.created),
			"LastChangedDate": epoch(s.created), "VersionIdsToStages": s.versions}
		if !s.deleted.IsZero() {
			// "The date the secret is scheduled for deletion. If it
			// is not scheduled for deletion, this field is omitted."
			out["DeletedDate"] = epoch(s.deleted)
		}
		return out, nil
	}
	return nil, errf(400, "UnknownOperationException", "fakeaws: Secrets Manager operation %s is not implemented", op)
}

// PushImage stores an image in ECR repository repo of the fake's account
// (creating the repository) under tag, and returns its digest.
func (f *Fake) PushImage(repo, tag string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.repos == nil {
		f.repos = map[string][]*image{}
	}
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(repo+":"+tag+f.id())))
	// A tag moves to the image pushed last (ECR user guide, image tag
	// mutability: MUTABLE, the default).
	for _, im := range f.repos[repo] {
		im.tags = slices.DeleteFunc(im.tags, func(t string) bool { return t == tag })
	}
	f.repos[repo] = append(f.repos[repo], &image{digest: digest, tags: []string{tag}, pushed: f.now()})
	return digest
}

// DeleteImage removes every image of repo tagged tag (BatchDeleteImage).
func (f *Fake) DeleteImage(repo, tag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repos[repo] = slices.DeleteFunc(f.repos[repo], func(im *image) bool { return slices.Contains(im.tags, tag) })
}

func (f *Fake) ecrAPI(op string, in map[string]any) (any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op {
	case "DescribeImages":
		return f.describeImages(in)
	}
	return nil, errf(400, "UnknownOperationException", "fakeaws: ECR operation %s is not implemented", op)
}

// describeImages follows the ECR API reference, DescribeImages.
func (f *Fake) describeImages(in map[string]any) (any, *apiError) {
	registry, repo := str(in, "registryId"), str(in, "repositoryName")
	if registry == "" {
		// "If you do not specify a registry, the default registry is
		// assumed."
		registry = f.opts.Account
	}
	ids := list(in, "imageIds")
	if _, ok := in["maxResults"]; ok && len(ids) > 0 {
		// maxResults and nextToken: "This option cannot be used when
		// you specify images with imageIds."
		// (The wording of the message is the fake's.)
		return nil, errf(400, "InvalidParameterException", "Invalid parameter: maxResults cannot be used with imageIds")
	}
	images, ok := f.repos[repo]
	if !ok || registry != f.opts.Account {
		// RepositoryNotFoundException: "The specified repository could
		// not be found."
		return nil, errf(400, "RepositoryNotFoundException", "The repository with name '%s' does not exist in the registry with id '%s'", repo, registry)
	}
	var out []any
	detail := func(im *image) map[string]any {
		return map[string]any{"registryId": registry, "repositoryName": repo, "imageDigest": im.digest,
			"imageTags": orEmptyS(im.tags), "imagePushedAt": epoch(im.pushed), "imageSizeInBytes": 1 << 20,
			"imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json"}
	}
	if len(ids) == 0 {
		for _, im := range images {
			out = append(out, detail(im))
		}
		return map[string]any{"imageDetails": orEmpty(out)}, nil
	}
	for _, v := range ids {
		id, _ := v.(map[string]any)
		tag, digest := str(id, "imageTag"), str(id, "imageDigest")
		if digest != "" && !strings.HasPrefix(digest, "sha256:") {
			return nil, errf(400, "InvalidParameterException", "Invalid parameter at 'imageDigest' failed to satisfy constraint: 'Invalid digest format'")
		}
		i := slices.IndexFunc(images, func(im *image) bool {
			return (digest == "" || im.digest == digest) && (tag == "" || slices.Contains(im.tags, tag))
		})
		if i < 0 {
			// ImageNotFoundException: "The image requested does not
			// exist in the specified repository." The message names
			// the identifier as ECR writes it.
			return nil, errf(400, "ImageNotFoundException", "The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist within the repository with name '%s' in the registry with id '%s'",
				nullable(digest), nullable(tag), repo, registry)
		}
		out = append(out, detail(images[i]))
	}
	return map[string]any{"imageDetails": orEmpty(out)}, nil
}

func nullable(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

// describeParameters follows the SSM API reference, DescribeParameters
// and ParameterStringFilter (f.mu held). It returns metadata only: "no
// value" is the point of the call.
func (f *Fake) describeParameters(in map[string]any) (any, *apiError) {
	if _, ok := in["Filters"]; ok {
		// "Filters: This data type is deprecated. Instead, use
		// ParameterFilters." The fake does not implement it.
		return nil, errf(400, "ValidationException", "fakeaws: DescribeParameters Filters (deprecated) is not implemented; use ParameterFilters")
	}
	max := 50
	if m, ok := num(in, "MaxResults"); ok {
		// MaxResults: "Valid Range: Minimum value of 1. Maximum value
		// of 50."
		if m < 1 || m > 50 {
			return nil, errf(400, "ValidationException", "1 validation error detected: Value '%v' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50", m)
		}
		max = int(m)
	}
	type filter struct {
		key, option string
		values      []string
	}
	var filters []filter
	for _, v := range list(in, "ParameterFilters") {
		m, _ := v.(map[string]any)
		fl := filter{key: str(m, "Key"), option: str(m, "Option"), values: strs(m, "Values")}
		if fl.option == "" {
			fl.option = "Equals"
		}
		switch fl.key {
		case "Name", "Type", "KeyId", "Path", "Tier", "DataType":
		case "Label":
			// "For DescribeParameters, all of the listed patterns are
			// valid except Label."
			return nil, errf(400, "InvalidFilterKey", "The following filter key is not valid: Label. Valid filter keys include: [Path, Name, Type, KeyId, Tier, DataType].")
		default:
			if !strings.HasPrefix(fl.key, "tag:") {
				return nil, errf(400, "InvalidFilterKey", "The following filter key is not valid: %s.", fl.key)
			}
		}
		// "valid options include Equals and BeginsWith. The Name filter
		// additionally supports the Contains option."
		valid := []string{"Equals", "BeginsWith"}
		if fl.key == "Name" {
			valid = append(valid, "Contains")
		}
		if fl.key == "Path" {
			valid = []string{"Recursive", "OneLevel"}
		}
		if !slices.Contains(valid, fl.option) {
			return nil, errf(400, "InvalidFilterOption", "The following filter option is not valid: %s. Valid options include: %v.", fl.option, valid)
		}
		if len(fl.values) == 0 && !strings.HasPrefix(fl.key, "tag:") {
			return nil, errf(400, "InvalidFilterValue", "The following filter values are missing : null for filter key %s.", fl.key)
		}
		if fl.key != "Name" {
			// Only what the provider asks for is implemented.
			return nil, errf(400, "InvalidFilterKey", "fakeaws: DescribeParameters filter key %s is not implemented", fl.key)
		}
		filters = append(filters, fl)
	}
	var names []string
	for n := range f.params {
		ok := true
		for _, fl := range filters {
			ok = ok && slices.ContainsFunc(fl.values, func(v string) bool {
				switch fl.option {
				case "BeginsWith":
					return strings.HasPrefix(n, v)
				case "Contains":
					return strings.Contains(n, v)
				}
				return n == v
			})
		}
		if ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	start := 0
	if tok := str(in, "NextToken"); tok != "" {
		var err error
		if start, err = strconv.Atoi(tok); err != nil || start < 0 || start > len(names) {
			return nil, errf(400, "InvalidNextToken", "The specified token is not valid.")
		}
	}
	var ps []any
	for i := start; i < len(names) && i < start+max; i++ {
		p := f.params[names[i]]
		ps = append(ps, map[string]any{"Name": p.name, "ARN": f.paramARN(p.name), "Type": p.typ,
			"LastModifiedDate": epoch(p.modified), "Version": p.version, "Tier": "Standard", "DataType": "text"})
	}
	out := map[string]any{"Parameters": orEmpty(ps)}
	if start+max < len(names) {
		out["NextToken"] = strconv.Itoa(start + max)
	}
	return out, nil
}

// SetParameter writes an SSM parameter directly (as another tool would).
func (f *Fake) SetParameter(name, typ, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.params[name]
	if p == nil {
		p = &param{name: name}
		f.params[name] = p
	}
	p.typ, p.value, p.modified = typ, value, f.now()
	p.version++
}

// DeleteParameter removes an SSM parameter directly.
func (f *Fake) DeleteParameter(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.params, name)
}

// Revisions returns how many revisions of a task-definition family are
// registered.
func (f *Fake) Revisions(family string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tds[family])
}
