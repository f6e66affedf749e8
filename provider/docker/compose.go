package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/workload"
)

// composeProjectFile is a Compose profile loaded and validated with
// compose-go.
type composeProjectFile struct {
	path     string
	dir      string
	version  string // the file's legacy top-level version, if any
	services []string
	hash     string
}

var composeVersionRE = regexp.MustCompile(`(?m)^version:\s*["']?([0-9.]+)["']?\s*$`)

// loadCompose loads and validates the spec's Compose file with compose-go.
// Interpolation sees the spec's env and resolved secrets, never the
// controller's own environment. Every failure is InvalidArgument.
func (p *Provider) loadCompose(ctx context.Context, spec *workload.DeploymentSpec, env []string) (*composeProjectFile, error) {
	file, err := filepath.Abs(spec.Compose.File)
	if err != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.file", Message: err.Error()})
	}
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("cannot read %s: %v", file, err)})
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithName(p.projectName(spec.Name)),
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnv(env),
		cli.WithProfiles(spec.Compose.Profiles),
	)
	if err != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "compose", Message: err.Error()})
	}
	proj, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: %v", file, err)})
	}
	cf := &composeProjectFile{path: file, dir: filepath.Dir(file), services: proj.ServiceNames()}
	if len(cf.services) == 0 {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.profiles", Message: fmt.Sprintf("%s: the selected profiles run no service", file)})
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

// composeRun runs the Compose CLI for rec's project with the label
// override file, so every container it creates carries the provider's
// labels besides Compose's own.
func (p *Provider) composeRun(ctx context.Context, rec *record, cf *composeProjectFile, env []string, args ...string) error {
	override, err := p.writeOverride(rec, cf)
	if err != nil {
		return err
	}
	defer os.Remove(override)
	full := []string{"-p", p.projectName(rec.Spec.Name), "-f", cf.path, "-f", override}
	for _, pr := range rec.Spec.Compose.Profiles {
		full = append(full, "--profile", pr)
	}
	full = append(full, args...)
	return p.composeExec(ctx, cf.dir, env, full...)
}

func (p *Provider) composeExec(ctx context.Context, dir string, env []string, args ...string) error {
	argv := append(append([]string{}, p.opts.ComposeCommand[1:]...), args...)
	cmd := exec.CommandContext(ctx, p.opts.ComposeCommand[0], argv...)
	cmd.Dir = dir
	// The child sees the resolver's docker variables (DOCKER_HOST...), the
	// spec's env for interpolation, and nothing else of ours.
	cmd.Env = []string{"PATH=" + p.creds.Get("PATH"), "HOME=" + p.creds.Get("HOME")}
	for k, v := range p.cenv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return p.wrap(ctx.Err(), "compose "+strings.Join(args[len(args)-min(len(args), 3):], " "))
		}
		tail := strings.TrimSpace(out.String())
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		code := workload.ProviderError
		if _, ok := err.(*exec.ExitError); !ok {
			code = workload.Unsupported // the Compose CLI is not installed
		}
		return errorf(code, "%s %s: %v: %s", strings.Join(p.opts.ComposeCommand, " "), strings.Join(args, " "), err, p.creds.Redact(tail))
	}
	return nil
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
	f, err := os.CreateTemp("", "alphaswarm-compose-*.yml")
	if err != nil {
		return "", workload.Errorf(workload.Internal, "compose override: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return "", workload.Errorf(workload.Internal, "compose override: %v", err)
	}
	return f.Name(), nil
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
		return st, errorf(workload.Unsupported, "compose profiles need %s, which is not installed: %v", p.opts.ComposeCommand[0], err)
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
	upErr := p.changed(p.composeRun(ctx, rec, cf, prep.env, append([]string{"up", "-d", "--remove-orphans"}, scaleArgs(rec)...)...))
	image := p.composeImage(ctx, name)
	if image == "" {
		image = p.anchorImage(ctx, anchors)
	}
	if image != "" {
		if err := p.writeAnchor(ctx, rec, image, anchors); err != nil && upErr == nil {
			return st, p.changed(err)
		}
	}
	return st, upErr
}

func (p *Provider) scaleCompose(ctx context.Context, next *record, anchors []string) (st workload.DeploymentStatus, err error) {
	env, err := p.resolveEnv(next)
	if err != nil {
		return st, err
	}
	cf, err := p.loadCompose(ctx, &next.Spec, env)
	if err != nil {
		return st, err
	}
	name := next.Spec.Name
	p.cache.setBusy(name, "scale", 1)
	defer func() {
		if err == nil {
			st, err = p.finish(ctx, name, p.waitCompose(ctx, name, next), nil)
		}
	}()
	defer p.cache.setBusy(name, "", -1)
	if err := p.writeAnchor(ctx, next, p.anchorImage(ctx, anchors), anchors); err != nil {
		return st, err
	}
	return st, p.changed(p.composeRun(ctx, next, cf, env, append([]string{"up", "-d", "--no-recreate", "--remove-orphans"}, scaleArgs(next)...)...))
}

// restartCompose recreates the project's containers (new ids), one Compose
// service at a time.
func (p *Provider) restartCompose(ctx context.Context, rec *record, _ []string) (st workload.DeploymentStatus, err error) {
	env, err := p.resolveEnv(rec)
	if err != nil {
		return st, err
	}
	cf, err := p.loadCompose(ctx, &rec.Spec, env)
	if err != nil {
		return st, err
	}
	name := rec.Spec.Name
	p.cache.setBusy(name, "restart", 1)
	defer func() {
		if err == nil {
			st, err = p.finish(ctx, name, p.waitCompose(ctx, name, rec), nil)
		}
	}()
	defer p.cache.setBusy(name, "", -1)
	for _, s := range rec.ComposeServices {
		args := []string{"up", "-d", "--force-recreate", "--no-deps", "-t", strconv.Itoa(p.stopTimeoutSeconds()),
			"--scale", s + "=" + strconv.Itoa(rec.Spec.Replicas), s}
		if err := p.composeRun(ctx, rec, cf, env, args...); err != nil {
			return st, p.changed(err)
		}
	}
	return st, nil
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
	f := make(client.Filters).Add("label", labelTarget+"="+p.target, labelService+"="+name, labelRole+"="+roleReplica)
	list, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return ""
	}
	for _, c := range list.Items {
		if c.ImageID != "" {
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
	return p.waitReplicas(ctx, ids, 0)
}
