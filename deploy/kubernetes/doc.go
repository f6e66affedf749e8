// Package manifests holds the controller's in-cluster manifests (a
// kustomize base: ServiceAccount, the provider's Role and its RoleBinding,
// ConfigMap, Deployment, Service, PodDisruptionBudget, NetworkPolicy) and
// the test that applies them to a real API server. It has no Go API.
package manifests
