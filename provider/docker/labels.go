package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strconv"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/workload"
)

// Labels the provider sets. Every container it creates carries service,
// target and role; replicas also carry replica and spec-hash; the anchor
// carries the persisted spec.
const (
	labelService = "alphaswarm.service"
	labelTarget  = "alphaswarm.target"
	// labelInstance scopes a target to one controller (Options.Instance):
	// set on everything the provider creates when the instance is known.
	labelInstance = "alphaswarm.instance"
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
	l := map[string]string{labelService: service, labelTarget: p.target}
	if p.instance != "" {
		l[labelInstance] = p.instance
	}
	return l
}

// ours reports whether a container with labels belongs to this provider:
// its target and its controller instance (none, for an unscoped provider).
func (p *Provider) ours(labels map[string]string) bool {
	return labels[labelTarget] == p.target && labels[labelInstance] == p.instance
}

// scopeFilter selects the target's containers of this controller instance
// on the Engine; callers still check ours, since the Engine cannot select
// containers without a label.
func (p *Provider) scopeFilter() client.Filters {
	f := make(client.Filters).Add("label", labelTarget+"="+p.target)
	if p.instance != "" {
		f.Add("label", labelInstance+"="+p.instance)
	}
	return f
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

// warnUnscoped logs, once per provider, the containers of the target that
// carry no instance label: created before instance scoping (or by an
// unscoped provider), they are not this controller's and it leaves them
// alone. The message says how to remove or adopt them.
func (p *Provider) warnUnscoped(ctx context.Context) {
	if p.instance == "" {
		return
	}
	p.unscopedOnce.Do(func() {
		f := make(client.Filters).Add("label", labelTarget+"="+p.target)
		list, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			return
		}
		n := 0
		for _, c := range list.Items {
			if c.Labels[labelInstance] == "" {
				n++
			}
		}
		if n > 0 {
			slog.Warn("docker: containers of this target carry no alphaswarm.instance label (created before instance scoping); "+
				"this controller does not see or change them. Remove them with `docker rm -f $(docker ps -aq --filter label=alphaswarm.target="+p.target+")` "+
				"after checking no other controller owns them, and deploy again",
				"target", p.target, "instance", p.instance, "containers", n)
		}
	})
}
