package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// composeProjectFile is a Compose profile read from the target's Compose
// directory, loaded and checked with compose-go. The CLI runs exactly the
// bytes that were checked (content), never the file again by its path.
type composeProjectFile struct {
	name     string // the spec's compose.file, relative to dir
	dir      string // the target's Compose directory: the project directory
	content  []byte
	version  string // the file's legacy top-level version, if any
	services []string
	hash     string
}

var composeVersionRE = regexp.MustCompile(`(?m)^version:\s*["']?([0-9.]+)["']?\s*$`)

// composeOff is the answer for a Compose spec on a target whose policy
// names no Compose directory.
func composeOff(target string) error {
	return workload.Errorf(workload.PermissionDenied,
		"compose is off for target %s (rule compose.dir): an admin turns it on by naming a directory in targets.%s.policy.compose.dir, and specs then name a file inside it", target, target)
}

// loadCompose reads the spec's Compose file from the target's Compose
// directory (never outside it: see readComposeFile), loads it with
// compose-go as the Compose CLI will see it (interpolation sees the spec's
// env and resolved secrets and the CLI's few variables, never the rest of
// the controller's environment), and refuses what the target's policy does
// not admit. Every failure leaves the Engine unchanged; no message quotes
// the file's content.
func (p *Provider) loadCompose(ctx context.Context, spec *workload.DeploymentSpec, env []string) (*composeProjectFile, error) {
	dir := p.policy.Compose.Dir
	if dir == "" {
		return nil, composeOff(p.target)
	}
	name := spec.Compose.File
	content, err := readComposeFile(dir, name)
	if err != nil {
		return nil, err
	}
	proj, err := loadComposeProject(ctx, dir, name, p.projectName(spec.Name), content, p.composeEnv(env), spec.Compose.Profiles)
	if err != nil {
		return nil, err
	}
	if err := p.checkComposeProject(dir, name, proj); err != nil {
		return nil, err
	}
	cf := &composeProjectFile{name: name, dir: dir, content: content, services: proj.ServiceNames()}
	if len(cf.services) == 0 {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.profiles", Message: fmt.Sprintf("%s: the selected profiles run no service", name)})
	}
	if m := composeVersionRE.FindSubmatch(content); m != nil {
		cf.version = string(m[1])
	}
	h := sha256.New()
	h.Write(content)
	h.Write([]byte(strings.Join(spec.Compose.Profiles, ",")))
	cf.hash = hex.EncodeToString(h.Sum(nil))[:16]
	return cf, nil
}

// composeRun runs the Compose CLI for rec's project on the checked content
// (written to a private temporary file; the project directory stays the
// target's Compose directory, so relative paths mean what was checked),
// with the label override file, so every container it creates carries the
// provider's labels besides Compose's own. An empty --env-file keeps a .env
// file in the directory from changing interpolation after the check.
func (p *Provider) composeRun(ctx context.Context, rec *record, cf *composeProjectFile, env []string, args ...string) error {
	override, err := p.writeOverride(rec, cf)
	if err != nil {
		return err
	}
	defer os.Remove(override)
	main, err := writeTemp(cf.content)
	if err != nil {
		return err
	}
	defer os.Remove(main)
	noEnv, err := writeTemp(nil)
	if err != nil {
		return err
	}
	defer os.Remove(noEnv)
	full := []string{"-p", p.projectName(rec.Spec.Name), "--project-directory", cf.dir, "--env-file", noEnv, "-f", main, "-f", override}
	for _, pr := range rec.Spec.Compose.Profiles {
		full = append(full, "--profile", pr)
	}
	full = append(full, args...)
	return p.composeExec(ctx, cf.dir, env, full...)
}

// writeTemp writes b to a new private temporary file and returns its name.
func writeTemp(b []byte) (string, error) {
	f, err := os.CreateTemp("", "alphaswarm-compose-*.yml")
	if err != nil {
		return "", workload.Errorf(workload.Internal, "compose file: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		os.Remove(f.Name())
		return "", workload.Errorf(workload.Internal, "compose file: %v", err)
	}
	return f.Name(), nil
}

// composeEnv is the Compose CLI's whole environment: PATH and HOME, the
// resolver's docker variables (DOCKER_HOST...) and env (the spec's env and
// secrets). compose-go interpolates with the same list, so the check and
// the CLI see the same file.
func (p *Provider) composeEnv(env []string) []string {
	out := []string{"PATH=" + p.creds.Get("PATH"), "HOME=" + p.creds.Get("HOME")}
	for _, k := range slices.Sorted(maps.Keys(p.cenv)) {
		out = append(out, k+"="+p.cenv[k])
	}
	return append(out, env...)
}

func (p *Provider) composeExec(ctx context.Context, dir string, env []string, args ...string) error {
	argv := append(append([]string{}, p.opts.ComposeCommand[1:]...), args...)
	cmd := exec.CommandContext(ctx, p.opts.ComposeCommand[0], argv...)
	cmd.Dir = dir
	// The child sees the resolver's docker variables (DOCKER_HOST...), the
	// spec's env for interpolation, and nothing else of ours.
	cmd.Env = p.composeEnv(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return provider.Wrap(Name, p.classifier, ctx.Err(), "compose "+strings.Join(args[len(args)-min(len(args), 3):], " "))
		}
		tail := composeOutput(out.String())
		code := workload.ProviderError
		if _, ok := err.(*exec.ExitError); !ok {
			code = workload.Unsupported // the Compose CLI is not installed
		}
		return provider.Errorf(Name, code, "%s %s: %v: %s", strings.Join(p.opts.ComposeCommand, " "), strings.Join(args, " "), err, p.creds.Redact(tail))
	}
	return nil
}

// composeFileComplaints are what the Compose CLI says when it refuses a
// file itself; such messages quote the file, so they are not passed on.
var composeFileComplaints = []string{"is invalid because", "while parsing", "while scanning", "mapping values are not allowed",
	"found character", "Invalid interpolation", "yaml:", "Unsupported config option", "contains an invalid type",
	"Additional properties are not allowed", "does not match any of the regexes"}

// composeOutput is the part of the Compose CLI's output that an error may
// carry: its last 2000 bytes, or a fixed sentence when the CLI complains
// about the file (its words would quote it). The caller redacts secrets.
func composeOutput(out string) string {
	for _, c := range composeFileComplaints {
		if strings.Contains(out, c) {
			return "the Compose CLI refused the file (its message is not shown: it quotes the file)"
		}
	}
	tail := strings.TrimSpace(out)
	if len(tail) > 2000 {
		tail = "..." + tail[len(tail)-2000:]
	}
	return tail
}

// writeOverride writes the Compose override that adds the provider's
// labels to every service of the project. JSON is YAML, and Compose v1
// wants the override's version to match the file's.
func (p *Provider) writeOverride(rec *record, cf *composeProjectFile) (string, error) {
	services := map[string]any{}
	for _, s := range cf.services {
		l := p.baseLabels(rec.Spec.Name)
		for k, v := range rec.Spec.Labels {
			l[k] = v
		}
		l[labelRole] = roleReplica
		l[labelSpecHash] = rec.hash()
		l[labelCompose] = s
		services[s] = map[string]any{"labels": l}
	}
	doc := map[string]any{"services": services}
	if cf.version != "" {
		doc["version"] = cf.version
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", workload.Errorf(workload.Internal, "compose override: %v", err)
	}
	return writeTemp(b)
}

func scaleArgs(rec *record) []string {
	var out []string
	for _, s := range rec.ComposeServices {
		out = append(out, "--scale", s+"="+strconv.Itoa(rec.Spec.Replicas))
	}
	return out
}

func (p *Provider) startCompose(ctx context.Context, prep *prepared, anchors []string) (st workload.DeploymentStatus, err error) {
	rec := prep.rec
	cf, err := p.loadCompose(ctx, &rec.Spec, prep.env)
	if err != nil {
		return st, err
	}
	if _, err := exec.LookPath(p.opts.ComposeCommand[0]); err != nil {
		return st, provider.Errorf(Name, workload.Unsupported, "compose profiles need %s, which is not installed: %v", p.opts.ComposeCommand[0], err)
	}
	rec.ComposeServices, rec.ComposeHash = cf.services, cf.hash
	name := rec.Spec.Name
	p.cache.setBusy(name, "start", 1)
	defer func() {
		if err == nil {
			st, err = p.finish(ctx, name, p.waitCompose(ctx, name, rec), nil)
		}
	}()
	defer p.cache.setBusy(name, "", -1)
	upErr := provider.AfterChange(Name, p.composeRun(ctx, rec, cf, prep.env, append([]string{"up", "-d", "--remove-orphans"}, scaleArgs(rec)...)...), "")
	image := p.composeImage(ctx, name)
	if image == "" {
		image = p.anchorImage(ctx, anchors)
	}
	if image != "" {
		if err := p.writeAnchor(ctx, rec, image, anchors); err != nil && upErr == nil {
			return st, provider.AfterChange(Name, err, "")
		}
	}
	return st, upErr
}

func (p *Provider) scaleCompose(ctx context.Context, next *record, anchors []string) (workload.DeploymentStatus, error) {
	return p.composeOp(ctx, next, "scale", func(cf *composeProjectFile, env []string) error {
		if err := p.writeAnchor(ctx, next, p.anchorImage(ctx, anchors), anchors); err != nil {
			return err
		}
		return provider.AfterChange(Name, p.composeRun(ctx, next, cf, env, append([]string{"up", "-d", "--no-recreate", "--remove-orphans"}, scaleArgs(next)...)...), "")
	})
}

// restartCompose recreates the project's containers (new ids), one Compose
// service at a time.
func (p *Provider) restartCompose(ctx context.Context, rec *record, _ []string) (workload.DeploymentStatus, error) {
	return p.composeOp(ctx, rec, "restart", func(cf *composeProjectFile, env []string) error {
		for _, s := range rec.ComposeServices {
			args := []string{"up", "-d", "--force-recreate", "--no-deps", "-t", strconv.Itoa(p.stopTimeoutSeconds()),
				"--scale", s + "=" + strconv.Itoa(rec.Spec.Replicas), s}
			if err := p.composeRun(ctx, rec, cf, env, args...); err != nil {
				return provider.AfterChange(Name, err, "")
			}
		}
		return nil
	})
}

// composeOp runs one change to rec's Compose project: it resolves the
// environment and loads the project, marks the service busy with what
// while do runs, and, when do succeeds, waits for the project and returns
// its status.
func (p *Provider) composeOp(ctx context.Context, rec *record, what string, do func(cf *composeProjectFile, env []string) error) (workload.DeploymentStatus, error) {
	env, err := p.resolveEnv(rec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	cf, err := p.loadCompose(ctx, &rec.Spec, env)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	name := rec.Spec.Name
	p.cache.setBusy(name, what, 1)
	err = do(cf, env)
	p.cache.setBusy(name, "", -1)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	return p.finish(ctx, name, p.waitCompose(ctx, name, rec), nil)
}

// composeDown removes the project with the Compose CLI. If the file is
// gone, the caller's label sweep still removes the containers, and the
// project's networks are removed here by Compose's label.
func (p *Provider) composeDown(ctx context.Context, rec *record) error {
	env, err := p.resolveEnv(rec)
	if err == nil {
		var cf *composeProjectFile
		if cf, err = p.loadCompose(ctx, &rec.Spec, env); err == nil {
			err = p.composeRun(ctx, rec, cf, env, "down", "--remove-orphans", "-t", strconv.Itoa(p.stopTimeoutSeconds()))
		}
	}
	if err != nil && classify(err) == workload.Unavailable {
		return err
	}
	f := make(client.Filters).Add("label", composeProject+"="+p.projectName(rec.Spec.Name))
	if list, lerr := p.eng.NetworkList(ctx, client.NetworkListOptions{Filters: f}); lerr == nil {
		for _, n := range list.Items {
			_, _ = p.eng.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	return nil
}

// composeImage returns the image of one of the project's containers: the
// anchor must be created from an image the Engine has.
func (p *Provider) composeImage(ctx context.Context, name string) string {
	f := p.scopeFilter().Add("label", labelService+"="+name, labelRole+"="+roleReplica)
	list, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return ""
	}
	for _, c := range list.Items {
		if c.ImageID != "" && p.ours(c.Labels) {
			return c.ImageID
		}
	}
	return ""
}

func (p *Provider) anchorImage(ctx context.Context, anchors []string) string {
	for _, id := range anchors {
		if r, err := p.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
			return r.Container.Image
		}
	}
	return ""
}

// waitCompose waits for the project's current containers to be ready.
func (p *Provider) waitCompose(ctx context.Context, name string, rec *record) result {
	reps, err := p.listReplicas(ctx, name)
	if err != nil {
		return result{failed: []string{err.Error()}}
	}
	var ids []string
	for _, r := range reps {
		if r.hash == rec.hash() {
			ids = append(ids, r.id)
		}
	}
	return p.waitReplicas(ctx, name, ids, 0)
}
