package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var dryRunAll = []string{metav1.DryRunAll}

func applyOptions(dryRun bool) metav1.ApplyOptions {
	o := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		o.DryRun = dryRunAll
	}
	return o
}

// ours reports whether an object carries this target's labels for name.
func (p *Provider) ours(obj metav1.Object, name string) bool {
	l := obj.GetLabels()
	return l[LabelTarget] == p.target && l[LabelService] == name
}

// Start implements provider.Provider. See the package documentation for
// what it writes and how it waits.
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	var zero workload.DeploymentStatus
	objs, err := p.prepare(&spec)
	if err != nil {
		return zero, err
	}
	if err := p.permitted(provider.OpStart); err != nil {
		return zero, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return zero, err
	}
	pl, err := p.plan(ctx, spec, objs)
	if err != nil {
		return zero, err
	}
	// A server-side dry run of every write first: admission, validation
	// and RBAC refuse here, before anything changed.
	if _, err := p.dryRun(ctx, pl); err != nil {
		return zero, err
	}
	name, ns := spec.Name, p.opts.Namespace
	apps, core := p.kube.AppsV1(), p.kube.CoreV1()
	objs = pl.objs

	// The writes: the ConfigMap first, so new pods find it.
	if _, err := core.ConfigMaps(ns).Apply(ctx, objs.configMap, applyOptions(false)); err != nil {
		return zero, provider.Wrap(Name, p.classified, err, "apply configmap "+configMapName(name))
	}
	dep, err := apps.Deployments(ns).Apply(ctx, objs.deployment, applyOptions(false))
	if err != nil {
		return zero, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "apply deployment "+name), "the configmap was applied")
	}
	if pl.deployment == nil {
		// Now that the Deployment has a UID, make it the owner of the
		// ConfigMap and the Service.
		if objs, err = translate(p.target, p.opts, spec, dep.UID); err != nil {
			return zero, err
		}
		if _, err := core.ConfigMaps(ns).Apply(ctx, objs.configMap, applyOptions(false)); err != nil {
			return zero, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "apply configmap "+configMapName(name)), "the deployment was applied")
		}
	}
	switch {
	case objs.service != nil:
		if _, err := core.Services(ns).Apply(ctx, objs.service, applyOptions(false)); err != nil {
			return zero, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "apply service "+name), "the deployment was applied")
		}
	case pl.service != nil:
		// The spec has no ports any more: its Service goes.
		if err := core.Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && classify(err) != workload.NotFound {
			return zero, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "delete service "+name), "the deployment was applied")
		}
	}
	return p.await(ctx, name, dep.ResourceVersion)
}

// prepare checks that spec is for this target (filling it in when empty)
// and builds the objects to apply, validating everything Kubernetes
// needs: a failure here has read and changed nothing.
func (p *Provider) prepare(spec *workload.DeploymentSpec) (*objects, error) {
	if err := p.alive(); err != nil {
		return nil, err
	}
	if spec.Target == "" {
		spec.Target = p.target
	}
	if spec.Target != p.target {
		return nil, workload.Invalid(workload.FieldError{Path: "target", Message: fmt.Sprintf("this provider serves target %q, not %q", p.target, spec.Target)})
	}
	return translate(p.target, p.opts, *spec, "")
}

// plan is what Start writes for a spec and what it found there: the
// objects to apply and the live objects of the same names. Start and Diff
// both build it (and dry-run it), so a diff previews exactly the writes a
// start makes.
type plan struct {
	objs       *objects           // owned by the live Deployment when there is one
	deployment *appsv1.Deployment // live; nil when absent
	configMap  *corev1.ConfigMap  // live; nil when absent
	service    *corev1.Service    // live and this target's; nil otherwise
}

// plan reads the live objects a start of spec would write, refuses to take
// over objects that are not this target's (already_exists), and rebuilds
// objs with the live Deployment as the owner of the ConfigMap and the
// Service.
func (p *Provider) plan(ctx context.Context, spec workload.DeploymentSpec, objs *objects) (*plan, error) {
	name, ns := spec.Name, p.opts.Namespace
	apps, core := p.kube.AppsV1(), p.kube.CoreV1()
	pl := &plan{objs: objs}

	// Refuse to take over objects that are not this target's.
	existing, err := apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case classify(err) == workload.NotFound:
	case err != nil:
		return nil, provider.Wrap(Name, p.classified, err, "read deployment "+name)
	case !p.ours(existing, name):
		return nil, provider.Errorf(Name, workload.AlreadyExists, "deployment %s/%s exists and is not managed by target %s (labels %s=%s, %s=%s are missing); alphaswarm will not take it over",
			ns, name, p.target, LabelTarget, p.target, LabelService, name)
	default:
		pl.deployment = existing
	}
	cm, err := core.ConfigMaps(ns).Get(ctx, configMapName(name), metav1.GetOptions{})
	switch {
	case classify(err) == workload.NotFound:
	case err != nil:
		return nil, provider.Wrap(Name, p.classified, err, "read configmap "+configMapName(name))
	case !p.ours(cm, name):
		return nil, provider.Errorf(Name, workload.AlreadyExists, "configmap %s/%s exists and is not managed by target %s; alphaswarm will not take it over", ns, cm.Name, p.target)
	default:
		pl.configMap = cm
	}
	svc, err := core.Services(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case classify(err) == workload.NotFound:
	case err != nil:
		return nil, provider.Wrap(Name, p.classified, err, "read service "+name)
	case !p.ours(svc, name) && objs.service != nil:
		return nil, provider.Errorf(Name, workload.AlreadyExists, "service %s/%s exists and is not managed by target %s; alphaswarm will not take it over", ns, name, p.target)
	case !p.ours(svc, name):
		// someone else's Service of that name: leave it alone
	default:
		pl.service = svc
	}
	if pl.deployment != nil {
		if pl.objs, err = translate(p.target, p.opts, spec, pl.deployment.UID); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// dryRunResult is what the API server would store for a plan's writes
// (defaulted, admitted and validated), with nothing changed. service is
// nil when the Service would be deleted or not exist.
type dryRunResult struct {
	configMap  *corev1.ConfigMap
	deployment *appsv1.Deployment
	service    *corev1.Service
}

// dryRun applies a plan's objects with a server-side dry run, as the same
// field manager, in the order Start writes them; a Service of ours the
// spec no longer needs is deleted with a dry run too, so that write is
// refused here, not after the Deployment changed.
func (p *Provider) dryRun(ctx context.Context, pl *plan) (dryRunResult, error) {
	var r dryRunResult
	objs, ns := pl.objs, p.opts.Namespace
	name := *objs.deployment.Name
	apps, core := p.kube.AppsV1(), p.kube.CoreV1()
	var err error
	if r.configMap, err = core.ConfigMaps(ns).Apply(ctx, objs.configMap, applyOptions(true)); err != nil {
		return r, provider.Wrap(Name, p.classified, err, "apply configmap "+configMapName(name)+" (dry run)")
	}
	if r.deployment, err = apps.Deployments(ns).Apply(ctx, objs.deployment, applyOptions(true)); err != nil {
		return r, provider.Wrap(Name, p.classified, err, "apply deployment "+name+" (dry run)")
	}
	if objs.service != nil {
		if r.service, err = core.Services(ns).Apply(ctx, objs.service, applyOptions(true)); err != nil {
			return r, provider.Wrap(Name, p.classified, err, "apply service "+name+" (dry run)")
		}
	} else if pl.service != nil {
		if err := core.Services(ns).Delete(ctx, name, metav1.DeleteOptions{DryRun: dryRunAll}); err != nil && classify(err) != workload.NotFound {
			return r, provider.Wrap(Name, p.classified, err, "delete service "+name+" (dry run)")
		}
	}
	return r, nil
}

// getOwned reads a service's Deployment from the API server (not the
// cache: mutations act on the current object). Deployments of other
// targets, or of nobody, are NotFound.
func (p *Provider) getOwned(ctx context.Context, name string) (*appsv1.Deployment, error) {
	dep, err := p.kube.AppsV1().Deployments(p.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if classify(err) == workload.NotFound {
			return nil, notFound(name)
		}
		return nil, provider.Wrap(Name, p.classified, err, "read deployment "+name)
	}
	if !p.ours(dep, name) {
		return nil, notFound(name)
	}
	return dep, nil
}

// scale sets the replica count through the scale subresource and returns
// the resource version written.
func (p *Provider) scale(ctx context.Context, name string, n int) (string, error) {
	sc, err := p.kube.AppsV1().Deployments(p.opts.Namespace).UpdateScale(ctx, name, &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.opts.Namespace},
		Spec:       autoscalingv1.ScaleSpec{Replicas: int32(n)},
	}, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return "", provider.Wrap(Name, p.classified, err, fmt.Sprintf("scale deployment %s to %d", name, n))
	}
	return sc.ResourceVersion, nil
}

// Scale implements provider.Provider through the Deployment's scale
// subresource, as `kubectl scale` does, and waits for the pods.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	var zero workload.DeploymentStatus
	if err := workload.CheckName("name", name); err != nil {
		return zero, err
	}
	if m := workload.ValidateReplicas(replicas); m != "" {
		return zero, workload.Invalid(workload.FieldError{Path: "replicas", Message: m})
	}
	if err := p.permitted(provider.OpScale); err != nil {
		return zero, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return zero, err
	}
	if _, err := p.getOwned(ctx, name); err != nil {
		return zero, err
	}
	rv, err := p.scale(ctx, name, replicas)
	if err != nil {
		return zero, err
	}
	return p.await(ctx, name, rv)
}

// Stop implements provider.Provider: it scales the Deployment to 0 and
// keeps it (with its Service and ConfigMap), so the service stays known,
// Stopped, and Scale or Start brings it back. With the deleteOnStop option
// it deletes the three instead. Either way it waits until no pod is left.
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	var zero workload.DeploymentStatus
	if err := workload.CheckName("name", name); err != nil {
		return zero, err
	}
	if err := p.permitted(provider.OpStop); err != nil {
		return zero, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return zero, err
	}
	dep, err := p.getOwned(ctx, name)
	if workload.CodeOf(err) == workload.NotFound {
		return p.stoppedStatus(name), nil
	}
	if err != nil {
		return zero, err
	}
	if !p.opts.DeleteOnStop {
		rv := dep.ResourceVersion
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 0 {
			if rv, err = p.scale(ctx, name, 0); err != nil {
				return zero, err
			}
		}
		return p.await(ctx, name, rv)
	}
	return p.delete(ctx, dep)
}

// delete removes a service's Deployment (foreground: its pods go first),
// Service and ConfigMap, and waits until the cache has no trace of them.
func (p *Provider) delete(ctx context.Context, dep *appsv1.Deployment) (workload.DeploymentStatus, error) {
	name, ns := dep.Name, p.opts.Namespace
	fg := metav1.DeletePropagationForeground
	uid := dep.UID
	err := p.kube.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && classify(err) != workload.NotFound {
		return workload.DeploymentStatus{}, provider.Wrap(Name, p.classified, err, "delete deployment "+name)
	}
	core := p.kube.CoreV1()
	if svc, err := core.Services(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && p.ours(svc, name) {
		if err := core.Services(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && classify(err) != workload.NotFound {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "delete service "+name), "the deployment was deleted")
		}
	}
	if cm, err := core.ConfigMaps(ns).Get(ctx, configMapName(name), metav1.GetOptions{}); err == nil && p.ours(cm, name) {
		if err := core.ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && classify(err) != workload.NotFound {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "delete configmap "+cm.Name), "the deployment was deleted")
		}
	}
	wctx, cancel := p.rolloutContext(ctx)
	defer cancel()
	for provider.Waits(ctx) {
		ch := p.cache.changedCh(name)
		_, exists := p.cache.deployment(name)
		if !exists && len(p.cache.podsOf(name)) == 0 {
			return p.stoppedStatus(name), nil
		}
		select {
		case <-ch:
		case <-time.After(time.Second):
		case <-wctx.Done():
			st := p.stoppedStatus(name)
			st.Phase = workload.Progressing
			st.Message = fmt.Sprintf("deleted; %d pods still terminating at the operation's deadline", len(p.cache.podsOf(name)))
			return st, nil
		}
	}
	st := p.stoppedStatus(name)
	st.Phase, st.Message = workload.Progressing, "deleted; the operation did not wait for the pods to go"
	return st, nil
}

// Restart implements provider.Restarter as `kubectl rollout restart`
// does: it stamps the pod template with kubectl.kubernetes.io/restartedAt,
// so the Deployment replaces every pod by its rolling-update strategy, and
// waits for the rollout.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	var zero workload.DeploymentStatus
	if err := workload.CheckName("name", name); err != nil {
		return zero, err
	}
	if err := p.permitted(provider.OpRestart); err != nil {
		return zero, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return zero, err
	}
	if _, err := p.getOwned(ctx, name); err != nil {
		return zero, err
	}
	rv, err := p.patchTemplateAnnotation(ctx, name, AnnotationRestartedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return zero, provider.Wrap(Name, p.classified, err, "restart deployment "+name)
	}
	return p.await(ctx, name, rv)
}

// patchTemplateAnnotation sets one pod-template annotation with a
// strategic merge patch, leaving every other field (and its server-side
// apply owner) alone.
func (p *Provider) patchTemplateAnnotation(ctx context.Context, name, key, value string) (string, error) {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{key: value}}}}})
	dep, err := p.kube.AppsV1().Deployments(p.opts.Namespace).Patch(ctx, name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return "", err
	}
	return dep.ResourceVersion, nil
}

// ApplyConfig implements provider.Provider: it applies the service's
// ConfigMap and sets the pod template's config checksum, which rolls the
// pods; it returns when the new pods are ready. The pods read the config
// as files in Options.ConfigDir. An unchanged config rolls nothing.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := workload.CheckName("name", name); err != nil {
		return err
	}
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	if err := p.permitted(provider.OpApplyConfig); err != nil {
		return err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return err
	}
	dep, err := p.getOwned(ctx, name)
	if err != nil {
		return err
	}
	cmName := configMapName(name)
	cm := configMapApply(p.target, p.opts.Namespace, name, config, dep.UID)
	if _, err := p.kube.CoreV1().ConfigMaps(p.opts.Namespace).Apply(ctx, cm, applyOptions(false)); err != nil {
		return provider.Wrap(Name, p.classified, err, "apply configmap "+cmName)
	}
	rv := dep.ResourceVersion
	sum := configChecksum(config)
	if dep.Spec.Template.Annotations[AnnotationConfigChecksum] != sum {
		if rv, err = p.patchTemplateAnnotation(ctx, name, AnnotationConfigChecksum, sum); err != nil {
			return provider.AfterChange(Name, provider.Wrap(Name, p.classified, err, "roll deployment "+name), "the configmap was applied")
		}
	}
	st, err := p.await(ctx, name, rv)
	switch {
	case err != nil:
		return err
	case !provider.Waits(ctx):
	case st.Phase == workload.Failed || st.Phase == workload.Degraded:
		e := provider.Errorf(Name, workload.RolloutFailed, "config of %s applied, but the rollout failed: %s", name, st.Message)
		e.Status = &st
		return e
	case st.Phase != workload.Running && st.Phase != workload.Stopped:
		e := provider.Errorf(Name, workload.Timeout, "config of %s applied; the rollout did not finish before the deadline: %s", name, st.Message)
		e.Status = &st
		return e
	}
	return nil
}

// rolloutContext bounds a wait by Options.RolloutTimeout.
func (p *Provider) rolloutContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.opts.RolloutTimeout.D())
}

// await waits until the cache has seen resource version rv of a service's
// Deployment (or a later one) and the Deployment controller has acted on
// it, then until the rollout is done (Running, or Stopped at 0 replicas),
// stuck (Failed or Degraded: an image that does not pull, a crash loop,
// the progress deadline), or the operation's deadline passes (Progressing,
// with what it is waiting for). It never returns an error for the rollout
// itself: the status says how it went.
func (p *Provider) await(ctx context.Context, name, rv string) (workload.DeploymentStatus, error) {
	if !provider.Waits(ctx) {
		// The caller chose not to wait: the cache's view now, typically
		// Progressing (the write may not have reached it yet).
		if d, _, ok := p.cache.derive(name); ok {
			return d.status, nil
		}
		st := p.stoppedStatus(name)
		st.Phase, st.Message = workload.Progressing, "written; not observed yet (the operation did not wait)"
		return st, nil
	}
	wctx, cancel := p.rolloutContext(ctx)
	defer cancel()
	for {
		ch := p.cache.changedCh(name)
		d, dep, ok := p.cache.derive(name)
		if ok && rvAtLeast(dep.ResourceVersion, rv) && d.settled {
			switch {
			case d.status.Phase == workload.Running, d.status.Phase == workload.Stopped, d.stuck:
				return d.status, nil
			}
		}
		select {
		case <-ch:
		case <-time.After(time.Second): // conditions that change with time alone
		case <-wctx.Done():
			if !ok {
				st := p.stoppedStatus(name)
				st.Phase = workload.Progressing
				st.Message = "the deployment was written but this controller has not seen it yet"
				return st, nil
			}
			st := d.status
			if st.Phase != workload.Running && st.Phase != workload.Stopped {
				st.Phase = workload.Progressing
				st.Message = "the rollout did not finish before the operation's deadline: " + st.Message
			}
			return st, nil
		}
	}
}
