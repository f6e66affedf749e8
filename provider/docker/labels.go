package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/alphaswarm/controller/workload"
)

// Labels the provider sets. Every container it creates carries service,
// target and role; replicas also carry replica and spec-hash; the anchor
// carries the persisted spec.
const (
	labelService  = "alphaswarm.service"
	labelTarget   = "alphaswarm.target"
	labelRole     = "alphaswarm.role"
	labelReplica  = "alphaswarm.replica"
	labelSpecHash = "alphaswarm.spec-hash"
	// Anchor only.
	labelSpec       = "alphaswarm.spec"
	labelGeneration = "alphaswarm.generation"
	labelDesired    = "alphaswarm.replicas"
	// Compose members only: the Compose service a container belongs to.
	labelCompose = "alphaswarm.compose-service"

	roleReplica = "replica"
	roleAnchor  = "anchor"

	composeProject = "com.docker.compose.project"
	composeService = "com.docker.compose.service"
	composeNumber  = "com.docker.compose.container-number"
)

// record is what the anchor persists: the spec as last applied (Replicas
// is the desired count, Config the last applied config, Secrets references
// only: a spec never holds secret values) and, for Compose services, the
// Compose services the profile runs.
type record struct {
	Spec            workload.DeploymentSpec `json:"spec"`
	ComposeServices []string                `json:"composeServices,omitempty"`
	// ComposeHash fingerprints the Compose file's content.
	ComposeHash string `json:"composeHash,omitempty"`
}

func (r *record) desiredContainers() int {
	if r.Spec.Compose != nil {
		return r.Spec.Replicas * len(r.ComposeServices)
	}
	return r.Spec.Replicas
}

// specHash fingerprints what a replica is made from: the spec without its
// replica count. Secret values are not part of it (they must never reach a
// label, even hashed); rotating a secret takes a Restart.
func specHash(spec workload.DeploymentSpec, extra string) string {
	spec.Replicas = 0
	b, _ := json.Marshal(spec)
	h := sha256.New()
	h.Write(b)
	h.Write([]byte(extra))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func (r *record) hash() string { return specHash(r.Spec, r.ComposeHash) }

func (p *Provider) baseLabels(service string) map[string]string {
	return map[string]string{labelService: service, labelTarget: p.target}
}

func (p *Provider) replicaLabels(rec *record, index int) map[string]string {
	l := make(map[string]string, len(rec.Spec.Labels)+6)
	for k, v := range rec.Spec.Labels {
		l[k] = v
	}
	for k, v := range p.baseLabels(rec.Spec.Name) {
		l[k] = v
	}
	l[labelRole] = roleReplica
	l[labelReplica] = strconv.Itoa(index)
	l[labelSpecHash] = rec.hash()
	return l
}
