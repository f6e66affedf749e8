package gcp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// sameConfigEnv reports whether both templates refer to the same config
// secret versions under the same names.
func sameConfigEnv(p *Provider, service string, cur, want *runpb.RevisionTemplate) bool {
	pick := func(t *runpb.RevisionTemplate) map[string]string {
		m := map[string]string{}
		if cs := t.GetContainers(); len(cs) > 0 {
			for _, e := range cs[0].Env {
				if p.isConfigEnv(service, e) {
					r := e.GetValueSource().GetSecretKeyRef()
					m[e.Name] = r.Secret + "@" + r.Version
				}
			}
		}
		return m
	}
	return maps.Equal(pick(cur), pick(want))
}

// isConfigEnv reports whether e is a config env var of service: a
// reference to exactly the secret configSecretID(service, e.Name) of this
// project (or the id used before that mapping, alphaswarm-<service>-<key>).
func (p *Provider) isConfigEnv(service string, e *runpb.EnvVar) bool {
	ref := e.GetValueSource().GetSecretKeyRef()
	if ref == nil {
		return false
	}
	// Secret Manager names versions by project number, so any project
	// prefix is accepted; the id itself must match exactly.
	m := secretName.FindStringSubmatch(ref.Secret)
	if m == nil {
		return false
	}
	id := m[1]
	return id == p.configSecretID(service, e.Name) || id == legacyConfigSecretID(service, e.Name)
}

// Config secrets. Key k of service s on target t is the Secret Manager
// secret configSecretID(s, k):
//
//	alphaswarm-<t>--<s>--<k>
//
// when t, s and k contain no "--", k only letters, digits, '_' and '-',
// and the id fits Secret Manager's 255 characters; otherwise
//
//	alphaswarm-<t>--<s>--<k, '.' as '_', truncated>--<16 hex of sha256(t, s, k)>
//
// The first form splits into exactly three parts at "--", the second into
// at least four, so ids of different (target, service, key) never
// collide.
const (
	configSecretPrefix = "alphaswarm-"
	maxSecretID        = 255
	// maxSecretValue is Secret Manager's limit on a version's payload.
	maxSecretValue = 64 << 10
)

var (
	secretIDBad    = regexp.MustCompile(`[^A-Za-z0-9_-]`)
	secretIDSimple = regexp.MustCompile(`^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$`)
)

func (p *Provider) configSecretID(service, key string) string {
	target := labelValue(p.target)
	plain := configSecretPrefix + target + "--" + service + "--" + key
	if len(plain) <= maxSecretID && !strings.Contains(target, "--") && !strings.Contains(service, "--") && secretIDSimple.MatchString(key) {
		return plain
	}
	sum := sha256.Sum256([]byte(p.target + "\x00" + service + "\x00" + key))
	tail := "--" + hex.EncodeToString(sum[:8])
	head := configSecretPrefix + target + "--" + service + "--" + secretIDBad.ReplaceAllString(key, "_")
	if len(head) > maxSecretID-len(tail) {
		head = head[:maxSecretID-len(tail)]
	}
	return head + tail
}

// legacyConfigSecretID is the id used before configSecretID: still
// recognised in a live template so that older config env vars are
// replaced, not kept.
func legacyConfigSecretID(service, key string) string {
	return configSecretPrefix + service + "-" + secretIDBad.ReplaceAllString(key, "_")
}

// checkConfig refuses, before anything changes, what Secret Manager would
// refuse halfway through: ids it cannot hold, values over 64 KiB.
func (p *Provider) checkConfig(service string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	var errs []workload.FieldError
	for _, k := range slices.Sorted(maps.Keys(config)) {
		if id := p.configSecretID(service, k); len(id) > maxSecretID || secretIDBad.MatchString(id) {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("Secret Manager secret id %q is not valid (letters, digits, '_' and '-', at most %d)", id, maxSecretID)})
		}
		if n := len(config[k]); n > maxSecretValue {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("value is %d bytes; Secret Manager holds at most 64 KiB per version", n)})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// ApplyConfig implements provider.Provider: each key is a Secret Manager
// secret (see configSecretID) with a new version per changed value; the
// container's env var <key> refers to that exact version; when the env
// changed, a new revision rolls. Applying the same config again changes
// nothing.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := workload.CheckName("name", name); err != nil {
		return err
	}
	if err := p.checkConfig(name, config); err != nil {
		return err
	}
	svc, err := p.existing(ctx, provider.OpApplyConfig, name, slices.Sorted(maps.Keys(config)))
	if err != nil {
		return err
	}
	if len(svc.GetTemplate().GetContainers()) == 0 {
		return provider.Errorf(Name, workload.ProviderError, "ApplyConfig %s: service has no container", name)
	}
	refs, changed, err := p.writeConfigs(ctx, name, svc, config)
	if err != nil {
		return afterIf(changed, err)
	}
	c := svc.Template.Containers[0]
	before := slices.Clone(c.Env)
	keysBefore := svc.Template.GetAnnotations()[AnnotationConfigKeys]
	setConfigEnv(p, name, svc.Template, c.Env, refs)
	if slices.EqualFunc(before, c.Env, func(a, b *runpb.EnvVar) bool { return proto.Equal(a, b) }) &&
		keysBefore == svc.Template.Annotations[AnnotationConfigKeys] {
		return nil // nothing to roll
	}
	bump(svc)
	st, err := p.update(ctx, svc, name)
	if err == nil && st.Phase != workload.Failed {
		st, err = p.wait(ctx, name)
	}
	if err != nil {
		return provider.AfterChange(Name, err, earlierChanges)
	}
	if st.Phase == workload.Failed {
		e := provider.Errorf(Name, workload.RolloutFailed, "ApplyConfig %s: new revision failed: %s", name, st.Message)
		e.Status = &st
		return e
	}
	return nil
}

// setConfigEnv sets t's container env to the non-config vars of env
// followed by refs (sorted by key), and records the keys in
// AnnotationConfigKeys.
func setConfigEnv(p *Provider, service string, t *runpb.RevisionTemplate, env []*runpb.EnvVar, refs map[string]*runpb.SecretKeySelector) {
	var out []*runpb.EnvVar
	for _, e := range env {
		if p.isConfigEnv(service, e) || refs[e.Name] != nil {
			continue
		}
		out = append(out, e)
	}
	keys := slices.Sorted(maps.Keys(refs))
	for _, key := range keys {
		out = append(out, &runpb.EnvVar{Name: key, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: refs[key]}}})
	}
	t.Containers[0].Env = out
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	if len(keys) > 0 {
		t.Annotations[AnnotationConfigKeys] = strings.Join(keys, ",")
	} else {
		delete(t.Annotations, AnnotationConfigKeys)
	}
}

// writeConfigs writes every key of config and returns the references to
// use, and whether anything was created or added (then a later error must
// go through afterChange). A key whose current version (the one the live
// template refers to, else the secret's latest) holds the same value is
// not written again.
func (p *Provider) writeConfigs(ctx context.Context, service string, svc *runpb.Service, config map[string]string) (map[string]*runpb.SecretKeySelector, bool, error) {
	current := p.configRefs(service, svc)
	refs := map[string]*runpb.SecretKeySelector{}
	changed := false
	for _, key := range slices.Sorted(maps.Keys(config)) {
		ref := p.sameVersion(ctx, service, key, current[key], config[key])
		if ref == nil {
			var wrote bool
			var err error
			ref, wrote, err = p.writeConfig(ctx, service, key, config[key])
			changed = changed || wrote
			if err != nil {
				return nil, changed, err
			}
		}
		granted, err := p.grantAccess(ctx, ref.Secret)
		changed = changed || granted
		if err != nil {
			return nil, changed, err
		}
		refs[key] = ref
	}
	return refs, changed, nil
}

// configRefs returns the live template's config env vars' references,
// by key.
func (p *Provider) configRefs(service string, svc *runpb.Service) map[string]*runpb.SecretKeySelector {
	current := map[string]*runpb.SecretKeySelector{}
	if cs := svc.GetTemplate().GetContainers(); len(cs) > 0 {
		for _, e := range cs[0].Env {
			if p.isConfigEnv(service, e) {
				current[e.Name] = e.GetValueSource().GetSecretKeyRef()
			}
		}
	}
	return current
}

// newConfigVersion stands for the version writeConfig would add: no
// Secret Manager version has this name.
const newConfigVersion = "(new version)"

// plannedConfigs is writeConfigs without writing: a key whose current
// version holds the value keeps its reference (sameVersion, as Start
// decides it), any other refers to newConfigVersion of its secret.
func (p *Provider) plannedConfigs(ctx context.Context, service string, svc *runpb.Service, config map[string]string) map[string]*runpb.SecretKeySelector {
	current := p.configRefs(service, svc)
	refs := map[string]*runpb.SecretKeySelector{}
	for _, key := range slices.Sorted(maps.Keys(config)) {
		ref := p.sameVersion(ctx, service, key, current[key], config[key])
		if ref == nil {
			ref = &runpb.SecretKeySelector{Secret: "projects/" + p.project + "/secrets/" + p.configSecretID(service, key), Version: newConfigVersion}
		}
		refs[key] = ref
	}
	return refs
}

// sameVersion returns a reference to the current version of key's secret
// if it holds value, else nil. Values are compared, never logged.
func (p *Provider) sameVersion(ctx context.Context, service, key string, cur *runpb.SecretKeySelector, value string) *runpb.SecretKeySelector {
	name := "projects/" + p.project + "/secrets/" + p.configSecretID(service, key) + "/versions/latest"
	if cur != nil && cur.Version != "" && cur.Version != "latest" {
		name = cur.Secret + "/versions/" + cur.Version
	}
	v, err := p.secrets.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil || subtle.ConstantTimeCompare(v.GetPayload().GetData(), []byte(value)) != 1 {
		return nil
	}
	m := secretVersionPath.FindStringSubmatch(v.Name)
	if m == nil {
		return nil
	}
	return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}
}

// writeConfig ensures the key's secret exists and adds a version with
// value, returning a reference to that exact version, and whether
// anything was created or added.
func (p *Provider) writeConfig(ctx context.Context, service, key, value string) (*runpb.SecretKeySelector, bool, error) {
	parent := "projects/" + p.project
	id := p.configSecretID(service, key)
	wrote := false
	_, err := p.secrets.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: parent, SecretId: id,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}},
			Labels:      map[string]string{LabelService: service, LabelTarget: labelValue(p.target)},
		},
	})
	switch {
	case err == nil:
		wrote = true
	case status.Code(err) != codes.AlreadyExists:
		return nil, false, mapErr("CreateSecret "+id, err)
	}
	v, err := p.secrets.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: parent + "/secrets/" + id, Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)},
	})
	if err != nil {
		return nil, wrote, mapErr("AddSecretVersion "+id, err)
	}
	m := secretVersionPath.FindStringSubmatch(v.Name)
	if m == nil {
		return nil, true, provider.Errorf(Name, workload.ProviderError, "AddSecretVersion %s: unexpected version name %s", id, v.Name)
	}
	return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}, true, nil
}

// serviceAccountEmail is the shape of a service account email.
var serviceAccountEmail = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.[a-z]+$`)

// secretAccessorRole lets a member read a secret's versions
// (cloud.google.com/secret-manager/docs/access-control).
const secretAccessorRole = "roles/secretmanager.secretAccessor"

// grantAccess gives the revisions' service account (Options.ServiceAccount)
// roles/secretmanager.secretAccessor on the secret, unless it already has
// it. Cloud Run resolves a secretKeyRef as the revision's service account;
// without access the revision fails ("Permission denied on secret ... for
// Revision service account ...", cloud.google.com/run/docs/configuring/
// services/secrets#access-secret). It reports whether the policy changed.
func (p *Provider) grantAccess(ctx context.Context, secret string) (bool, error) {
	if p.opts.ServiceAccount == "" {
		return false, nil
	}
	member := "serviceAccount:" + p.opts.ServiceAccount
	pol, err := p.secrets.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: secret})
	if err != nil {
		return false, mapErr("GetIamPolicy "+secret, err)
	}
	for _, b := range pol.Bindings {
		if b.Role == secretAccessorRole && b.Condition == nil && slices.Contains(b.Members, member) {
			return false, nil
		}
	}
	added := false
	for _, b := range pol.Bindings {
		if b.Role == secretAccessorRole && b.Condition == nil {
			b.Members = append(b.Members, member)
			added = true
			break
		}
	}
	if !added {
		pol.Bindings = append(pol.Bindings, &iampb.Binding{Role: secretAccessorRole, Members: []string{member}})
	}
	// The policy carries the etag read above: a concurrent change makes
	// SetIamPolicy fail with ABORTED rather than lose it
	// (google/iam/v1/policy.proto, Policy.etag).
	if _, err := p.secrets.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: secret, Policy: pol}); err != nil {
		return false, mapErr("SetIamPolicy "+secret, err)
	}
	return true, nil
}
