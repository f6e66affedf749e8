package kubernetes

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// CheckRefs implements provider.RefChecker: each secret reference
// ("secret-name/key", secrets[i].from) must name a Secret of the target's
// namespace that has that key, and each of extensions.kubernetes'
// imagePullSecrets must exist. It answers NotFound naming the first that
// does not resolve, and invalid_argument for a reference that is not one.
// A Secret the target's credentials may not read is one CheckRefs cannot
// tell about, and passes (get secrets is not in deploy/kubernetes/role.yaml:
// reading a Secret returns its values, so granting it is the admin's
// choice, and a rollback must not need a permission start does not; a
// Secret that is gone then fails the rollout as it would fail a start).
//
// Reading a Secret returns its values: CheckRefs keeps only whether the
// key is there; no value is copied into an error, a log line or anything
// it returns.
//
// The image is not checked: whether a node can pull it is known only by
// pulling it there (the registry, its credentials and the node's network
// are the kubelet's), so CheckRefs returns nil for it rather than guess.
func (p *Provider) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	if err := p.alive(); err != nil {
		return err
	}
	ext, err := decodeExtension(spec)
	if err != nil {
		return err
	}
	for i, ref := range spec.Secrets {
		name, key, err := parseSecretRef(i, ref)
		if err != nil {
			return err
		}
		field := fmt.Sprintf("secrets[%d].from", i)
		has, err := p.secretHasKey(ctx, field, name, key)
		if err != nil {
			return err
		}
		if !has {
			return refNotFound(field, "Secret %s in namespace %s has no key %q (secret reference %s)", name, p.opts.Namespace, key, ref.From)
		}
	}
	for i, name := range ext.ImagePullSecrets {
		field := fmt.Sprintf("extensions.kubernetes.imagePullSecrets[%d]", i)
		if _, err := p.secretHasKey(ctx, field, name, ""); err != nil {
			return err
		}
	}
	return nil
}

// secretHasKey reads Secret name and reports whether it has key (any key
// when key is ""). A Secret that does not exist is NotFound on field.
func (p *Provider) secretHasKey(ctx context.Context, field, name, key string) (bool, error) {
	s, err := p.kube.CoreV1().Secrets(p.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
	switch code := classify(err); {
	case err == nil:
	case code == workload.NotFound:
		return false, refNotFound(field, "Secret %s does not exist in namespace %s", name, p.opts.Namespace)
	case code == workload.PermissionDenied:
		return true, nil // cannot tell (see CheckRefs)
	default:
		return false, provider.Wrap(Name, p.classified, err, "read secret "+name)
	}
	if key == "" {
		return true, nil
	}
	_, has := s.Data[key] // stringData is write-only: the API server returns data
	return has, nil
}

// refNotFound is the NotFound of a reference that does not resolve, with
// the spec path in Fields.
func refNotFound(field, format string, args ...any) error {
	e := provider.NotFound(Name, format, args...)
	e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
	return e
}
