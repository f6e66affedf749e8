package kubernetes

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/alphaswarm/controller/workload"
)

// Names of the labels and annotations the provider sets.
const (
	// LabelService and LabelTarget are on every object the provider
	// writes (Deployment, its pods, Service, ConfigMap); the pair is the
	// Deployment's selector.
	LabelService = "alphaswarm.service"
	LabelTarget  = "alphaswarm.target"
	// AnnotationConfigChecksum is on the pod template: the SHA-256 of the
	// service's config, so a config change rolls the pods.
	AnnotationConfigChecksum = "alphaswarm.config-checksum"
	// AnnotationRestartedAt is the pod-template annotation Restart sets,
	// the one `kubectl rollout restart` sets.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// FieldManager is the server-side apply field manager of every write.
	FieldManager = "alphaswarm"

	labelManagedBy    = "app.kubernetes.io/managed-by"
	labelName         = "app.kubernetes.io/name"
	configVolume      = "alphaswarm-config"
	revisionAnnotaton = "deployment.kubernetes.io/revision"
)

// Extension is the spec's extensions.kubernetes block: placement and
// pull settings that only mean something on Kubernetes.
type Extension struct {
	// NodeSelector constrains the pods to nodes with these labels.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// ServiceAccountName runs the pods as this service account.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// ImagePullPolicy is Always, IfNotPresent or Never; Kubernetes'
	// default when empty.
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets name Secrets of type dockerconfigjson.
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	// ProgressDeadline overrides the target's progressDeadline for this
	// service (the Deployment's progressDeadlineSeconds).
	ProgressDeadline workload.Duration `json:"progressDeadline,omitzero"`
	// ServiceType is the type of the Service made for the ports:
	// ClusterIP (default), NodePort or LoadBalancer.
	ServiceType string `json:"serviceType,omitempty"`
}

// objects are what Start applies for one spec.
type objects struct {
	deployment *appsv1ac.DeploymentApplyConfiguration
	service    *corev1ac.ServiceApplyConfiguration // nil without ports
	configMap  *corev1ac.ConfigMapApplyConfiguration
	checksum   string
}

var (
	secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// configMapName is the name of a service's ConfigMap.
func configMapName(service string) string { return service + "-config" }

// ConfigMapName is the name of the ConfigMap that holds a service's config;
// the pods mount it as the volume named ConfigVolume. Exported for the
// harnesses of the providers that delegate to this one (kubetest).
func ConfigMapName(service string) string { return configMapName(service) }

// ConfigChecksum is the value of AnnotationConfigChecksum for a config.
func ConfigChecksum(config map[string]string) string { return configChecksum(config) }

// ConfigVolume is the name of the pods' volume made from the ConfigMap.
const ConfigVolume = configVolume

// configChecksum is the SHA-256 of a config, independent of map order.
func configChecksum(config map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(config)) {
		fmt.Fprintf(h, "%d:%s=%d:%s\n", len(k), k, len(config[k]), config[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// selector is the Deployment's label selector for a service.
func selector(target, name string) map[string]string {
	return map[string]string{LabelService: name, LabelTarget: target}
}

// ownLabels are the labels of every object the provider writes for a
// service, without the spec's own.
func ownLabels(target, name string) map[string]string {
	return map[string]string{LabelService: name, LabelTarget: target, labelManagedBy: FieldManager}
}

// decodeExtension decodes spec.extensions.kubernetes, rejecting unknown
// fields.
func decodeExtension(spec workload.DeploymentSpec) (Extension, error) {
	var ext Extension
	raw, ok := spec.Extensions[Name]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return ext, nil
	}
	// Keys are exact, as in the rest of the spec: encoding/json alone
	// would take "ServiceType" for "serviceType".
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.kubernetes", Message: strings.TrimPrefix(err.Error(), "json: ")})
	}
	unknown := workload.UnknownFields(reflect.TypeFor[Extension](), generic, "extensions.kubernetes")
	if unknown = append(unknown, workload.DuplicateKeys(raw, "extensions.kubernetes")...); len(unknown) > 0 {
		return ext, workload.Invalid(unknown...)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ext); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.kubernetes", Message: strings.TrimPrefix(err.Error(), "json: ")})
	}
	var errs []workload.FieldError
	switch ext.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, workload.FieldError{Path: "extensions.kubernetes.imagePullPolicy", Message: "must be Always, IfNotPresent or Never"})
	}
	switch ext.ServiceType {
	case "", "ClusterIP", "NodePort", "LoadBalancer":
	default:
		errs = append(errs, workload.FieldError{Path: "extensions.kubernetes.serviceType", Message: "must be ClusterIP, NodePort or LoadBalancer"})
	}
	if ext.ProgressDeadline < 0 {
		errs = append(errs, workload.FieldError{Path: "extensions.kubernetes.progressDeadline", Message: "must be >= 0"})
	}
	if ext.ServiceAccountName != "" && len(validation.IsDNS1123Subdomain(ext.ServiceAccountName)) > 0 {
		errs = append(errs, workload.FieldError{Path: "extensions.kubernetes.serviceAccountName", Message: "must be a DNS-1123 subdomain"})
	}
	for i, s := range ext.ImagePullSecrets {
		if len(validation.IsDNS1123Subdomain(s)) > 0 {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("extensions.kubernetes.imagePullSecrets[%d]", i), Message: "must be a Secret name (a DNS-1123 subdomain)"})
		}
	}
	if len(errs) > 0 {
		return ext, workload.Invalid(errs...)
	}
	return ext, nil
}

// parseSecretRef parses a secret reference "secret-name/key".
func parseSecretRef(i int, ref workload.SecretRef) (name, key string, err error) {
	path := fmt.Sprintf("secrets[%d].from", i)
	if scheme, _, ok := strings.Cut(ref.From, ":"); ok && len(scheme) <= 16 && !strings.Contains(scheme, "/") {
		if scheme == "env" {
			return "", "", workload.Invalid(workload.FieldError{Path: path, Message: "env: references are not resolved by the kubernetes provider: " +
				"the controller's environment never reaches the cluster, and values are never written into a Deployment; " +
				"create a Kubernetes Secret (kubectl create secret generic NAME --from-literal=KEY=...) and reference it as \"NAME/KEY\""})
		}
		return "", "", workload.Invalid(workload.FieldError{Path: path, Message: fmt.Sprintf("scheme %q is not understood by the kubernetes provider: reference a Kubernetes Secret as \"secret-name/key\"", scheme)})
	}
	name, key, ok := strings.Cut(ref.From, "/")
	if !ok || name == "" || key == "" || strings.Contains(key, "/") {
		return "", "", workload.Invalid(workload.FieldError{Path: path, Message: "must be a Kubernetes Secret reference \"secret-name/key\""})
	}
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", workload.Invalid(workload.FieldError{Path: path, Message: "the Secret name must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"})
	}
	if len(key) > 253 || !secretKeyRE.MatchString(key) {
		return "", "", workload.Invalid(workload.FieldError{Path: path, Message: "the Secret key must be letters, digits, '-', '_' or '.'"})
	}
	return name, key, nil
}

// translate builds the objects Start applies for spec on target. It
// validates everything the spec's own Validate does not know about
// Kubernetes, so a failure here changes nothing. ownerUID, when known, is
// the Deployment's UID: the Service and the ConfigMap then name the
// Deployment as their owner, so deleting it deletes them.
func translate(target string, opts Options, spec workload.DeploymentSpec, ownerUID types.UID) (*objects, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Compose != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "compose", Message: "the kubernetes provider does not run Compose files; give image (and one spec per service)"})
	}
	ext, err := decodeExtension(spec)
	if err != nil {
		return nil, err
	}
	var errs []workload.FieldError
	name, ns := spec.Name, opts.Namespace

	// Environment: plain variables sorted, then ours, then the secret
	// references (values never appear).
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, corev1ac.EnvVar().WithName(k).WithValue(spec.Env[k]))
	}
	env = append(env,
		corev1ac.EnvVar().WithName("ALPHASWARM_SERVICE").WithValue(name),
		corev1ac.EnvVar().WithName("ALPHASWARM_TARGET").WithValue(target),
		corev1ac.EnvVar().WithName("ALPHASWARM_CONFIG_DIR").WithValue(opts.ConfigDir),
		corev1ac.EnvVar().WithName("ALPHASWARM_INSTANCE").WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.name"))),
	)
	for i, s := range spec.Secrets {
		sname, key, err := parseSecretRef(i, s)
		if err != nil {
			errs = append(errs, workload.AsError(err).Fields...)
			continue
		}
		env = append(env, corev1ac.EnvVar().WithName(s.Env).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(sname).WithKey(key))))
	}

	container := corev1ac.Container().
		WithName(name).
		WithImage(spec.Image).
		WithEnv(env...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(configVolume).WithMountPath(opts.ConfigDir).WithReadOnly(true))
	if len(spec.Command) > 0 {
		container.WithCommand(spec.Command...)
	}
	if len(spec.Args) > 0 {
		container.WithArgs(spec.Args...)
	}
	if ext.ImagePullPolicy != "" {
		container.WithImagePullPolicy(corev1.PullPolicy(ext.ImagePullPolicy))
	}

	// Resources are limits; Kubernetes sets the requests equal to them.
	limits := corev1.ResourceList{}
	if spec.Resources.CPU != "" {
		q, err := resource.ParseQuantity(spec.Resources.CPU)
		if err != nil {
			errs = append(errs, workload.FieldError{Path: "resources.cpu", Message: err.Error()})
		} else {
			limits[corev1.ResourceCPU] = q
		}
	}
	if spec.Resources.Memory != "" {
		q, err := resource.ParseQuantity(spec.Resources.Memory)
		if err != nil {
			errs = append(errs, workload.FieldError{Path: "resources.memory", Message: err.Error()})
		} else {
			limits[corev1.ResourceMemory] = q
		}
	}
	if len(limits) > 0 {
		container.WithResources(corev1ac.ResourceRequirements().WithLimits(limits))
	}

	// Ports: container ports, and a Service when there are any.
	var svcPorts []*corev1ac.ServicePortApplyConfiguration
	for i, p := range spec.Ports {
		proto := corev1.ProtocolTCP
		if strings.EqualFold(p.Protocol, "udp") {
			proto = corev1.ProtocolUDP
		}
		pname := p.Name
		if pname == "" {
			pname = fmt.Sprintf("%s-%d", strings.ToLower(string(proto)), p.Container)
		} else if msgs := validation.IsValidPortName(pname); len(msgs) > 0 {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("ports[%d].name", i),
				Message: "kubernetes port names are at most 15 characters, with at least one letter: " + strings.Join(msgs, "; ")})
			continue
		}
		container.WithPorts(corev1ac.ContainerPort().WithName(pname).WithContainerPort(int32(p.Container)).WithProtocol(proto))
		port := p.Host
		if port == 0 {
			port = p.Container
		}
		svcPorts = append(svcPorts, corev1ac.ServicePort().WithName(pname).WithPort(int32(port)).
			WithTargetPort(intstr.FromString(pname)).WithProtocol(proto))
	}

	if spec.HealthCheck != nil {
		container.WithReadinessProbe(probe(spec.HealthCheck))
	}

	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}

	checksum := configChecksum(spec.Config)
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if _, ok := labels[labelName]; !ok {
		labels[labelName] = name
	}
	maps.Copy(labels, ownLabels(target, name))

	podSpec := corev1ac.PodSpec().
		WithContainers(container).
		WithVolumes(corev1ac.Volume().WithName(configVolume).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(configMapName(name))))
	if len(ext.NodeSelector) > 0 {
		podSpec.WithNodeSelector(ext.NodeSelector)
	}
	if ext.ServiceAccountName != "" {
		podSpec.WithServiceAccountName(ext.ServiceAccountName)
	}
	for _, s := range ext.ImagePullSecrets {
		podSpec.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s))
	}

	deadline := opts.ProgressDeadline.D()
	if ext.ProgressDeadline > 0 {
		deadline = ext.ProgressDeadline.D()
	}
	dep := appsv1ac.Deployment(name, ns).
		WithLabels(labels).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(int32(spec.Replicas)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector(target, name))).
			WithProgressDeadlineSeconds(seconds(deadline, 600)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).
				WithAnnotations(map[string]string{AnnotationConfigChecksum: checksum}).
				WithSpec(podSpec)))

	cm := configMapApply(target, ns, name, spec.Config, ownerUID)
	var svc *corev1ac.ServiceApplyConfiguration
	if len(svcPorts) > 0 {
		svc = corev1ac.Service(name, ns).
			WithLabels(ownLabels(target, name)).
			WithSpec(corev1ac.ServiceSpec().
				WithSelector(selector(target, name)).
				WithPorts(svcPorts...))
		if ext.ServiceType != "" {
			svc.Spec.WithType(corev1.ServiceType(ext.ServiceType))
		}
		if ownerUID != "" {
			svc.WithOwnerReferences(ownerRef(name, ownerUID))
		}
	}
	return &objects{deployment: dep, service: svc, configMap: cm, checksum: checksum}, nil
}

// configMapApply is the ConfigMap of a service, as Start and ApplyConfig
// apply it.
func configMapApply(target, ns, name string, config map[string]string, ownerUID types.UID) *corev1ac.ConfigMapApplyConfiguration {
	cm := corev1ac.ConfigMap(configMapName(name), ns).
		WithLabels(ownLabels(target, name)).
		WithData(nonNil(config))
	if ownerUID != "" {
		cm.WithOwnerReferences(ownerRef(name, ownerUID))
	}
	return cm
}

// ownerRef names a service's Deployment as the owner of its Service and
// ConfigMap, so that deleting the Deployment deletes them.
func ownerRef(name string, uid types.UID) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().WithAPIVersion("apps/v1").WithKind("Deployment").WithName(name).WithUID(uid)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// probe turns a health check into a readiness probe. Defaults: every 5s,
// 2s timeout, 3 failures; startPeriod becomes the initial delay.
func probe(hc *workload.HealthCheck) *corev1ac.ProbeApplyConfiguration {
	p := corev1ac.Probe().
		WithPeriodSeconds(seconds(hc.Interval.D(), 5)).
		WithTimeoutSeconds(seconds(hc.Timeout.D(), 2)).
		WithFailureThreshold(3)
	if hc.Retries > 0 {
		p.WithFailureThreshold(int32(min(hc.Retries, math.MaxInt32)))
	}
	if hc.StartPeriod > 0 {
		p.WithInitialDelaySeconds(seconds(hc.StartPeriod.D(), 0))
	}
	switch {
	case hc.HTTP != nil:
		p.WithHTTPGet(corev1ac.HTTPGetAction().WithPath(hc.HTTP.Path).WithPort(intstr.FromInt32(int32(hc.HTTP.Port))))
	case hc.TCP != nil:
		p.WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromInt32(int32(hc.TCP.Port))))
	case len(hc.Exec) > 0:
		p.WithExec(corev1ac.ExecAction().WithCommand(hc.Exec...))
	}
	return p
}

// seconds rounds d up to whole seconds (at least 1); def when d is 0.
func seconds(d time.Duration, def int32) int32 {
	if d <= 0 {
		return def
	}
	s := math.Ceil(d.Seconds())
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	return max(int32(s), 1)
}
