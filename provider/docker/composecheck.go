package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"

	"github.com/alphaswarm/controller/workload"
)

// maxComposeBytes bounds a Compose file.
const maxComposeBytes = 1 << 20

// readComposeFile reads name inside dir through an os.Root: a symlink or
// ".." that leaves dir fails, so /proc/<pid>/root/... and links to host
// files cannot be reached. Errors name the file and the problem, never the
// content, and never the directory's host path.
func readComposeFile(dir, name string) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return workload.Invalid(workload.FieldError{Path: "compose.file", Message: name + ": " + fmt.Sprintf(format, args...)})
	}
	if m := workload.ValidateComposeFile(name); m != "" {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.file", Message: m})
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "the target's Compose directory cannot be opened: %v", errors.Unwrap(err))
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(name))
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, bad("no such file in the target's Compose directory")
		case errors.Is(err, fs.ErrPermission):
			return nil, bad("the controller may not read it")
		default:
			// os.Root refuses paths and links that leave the directory.
			return nil, bad("cannot be opened inside the target's Compose directory (a link or path that leaves it is refused)")
		}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, bad("cannot be read")
	}
	if !st.Mode().IsRegular() {
		return nil, bad("is not a regular file")
	}
	if st.Size() > maxComposeBytes {
		return nil, bad("is larger than %d bytes", maxComposeBytes)
	}
	content, err := io.ReadAll(io.LimitReader(f, maxComposeBytes+1))
	if err != nil {
		return nil, bad("cannot be read")
	}
	if len(content) > maxComposeBytes {
		return nil, bad("is larger than %d bytes", maxComposeBytes)
	}
	return content, nil
}

// compose-go writes warnings through the global logrus logger, and they
// quote the file ("The \"x\" variable is not set", "\"yes\" for
// boolean..."): loadComposeProject silences logrus before every load. The
// controller logs through slog; nothing of its own uses logrus.

// rangeRE finds number ranges such as port ranges ("8000-8999").
var rangeRE = regexp.MustCompile(`(\d{1,6})\s*-\s*(\d{1,6})`)

// wideRange reports a range of more than 1024 numbers: compose-go expands
// port ranges one entry per port and then compares them pairwise, so
// "1-65535:1-65535" costs seconds of CPU per load (measured 13 s), and a
// spec's env can interpolate one into a file.
func wideRange(s string) bool {
	for _, m := range rangeRE.FindAllStringSubmatch(s, -1) {
		lo, _ := strconv.Atoi(m[1])
		hi, _ := strconv.Atoi(m[2])
		if hi-lo > 1024 {
			return true
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`\bline (\d+)\b`)

// describeLoadError turns a compose-go error into a fixed description:
// compose-go and YAML errors quote the file's content (keys, values,
// whole lines), which must never reach an answer, a log or the ledger.
// Only a line number survives.
func describeLoadError(name string, err error) error {
	msg := err.Error()
	desc := "cannot be loaded as a Compose file"
	switch {
	case strings.Contains(msg, "yaml:") || strings.Contains(msg, "failed to parse"):
		desc = "is not valid YAML"
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			desc += " at line " + m[1]
		}
	case strings.Contains(msg, "validating") || strings.Contains(msg, "additional propert") || strings.Contains(msg, "must be a"):
		desc = "does not follow the Compose file schema"
	case strings.Contains(msg, "interpolat") || strings.Contains(msg, "required variable"):
		desc = "has an invalid or missing ${VARIABLE} interpolation"
	case strings.Contains(msg, "top-level object must be a mapping") || strings.Contains(msg, "empty compose file"):
		desc = "is not a Compose mapping"
	case strings.Contains(msg, "depends on undefined") || strings.Contains(msg, "undefined"):
		desc = "refers to an undefined service, network, volume, config or secret"
	case strings.Contains(msg, "cycle"):
		desc = "has a dependency cycle"
	}
	return workload.Invalid(workload.FieldError{Path: "compose.file", Message: name + ": " + desc})
}

// loadComposeProject loads content (the file name read in dir) with
// compose-go, as the Compose CLI will see it: the same environment for
// interpolation, paths resolved against dir. include and extends from
// another file are refused before anything else is read, since they would
// read files outside the checks.
func loadComposeProject(ctx context.Context, dir, name, project string, content []byte, env []string, profiles []string) (*types.Project, error) {
	logrus.SetLevel(logrus.PanicLevel) // an atomic store; see the note above
	if wideRange(string(content)) || slices.ContainsFunc(env, wideRange) {
		return nil, workload.Invalid(workload.FieldError{Path: "compose.file", Message: name +
			": a range of more than 1024 ports (in the file or interpolated from the spec's env) is refused"})
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, filepath.FromSlash(name)), Content: content}},
		Environment: envMap,
	}
	skipFiles := func(o *loader.Options) {
		o.SkipInclude = true
		o.SkipExtends = true
		o.SkipResolveEnvironment = true
		o.SkipResolveLabels = true
		o.SetProjectName(project, true)
	}
	model, err := loader.LoadModelWithContext(ctx, details, skipFiles)
	if err != nil {
		return nil, describeLoadError(name, err)
	}
	if _, ok := model["include"]; ok {
		return nil, refused(name, "", "include", "include reads other files; put everything in one file")
	}
	if svcs, ok := model["services"].(map[string]any); ok {
		for _, sn := range slices.Sorted(maps.Keys(svcs)) {
			if s, ok := svcs[sn].(map[string]any); ok {
				if ext, ok := s["extends"].(map[string]any); ok {
					if _, ok := ext["file"]; ok {
						return nil, refused(name, sn, "extends.file", "extends may only name a service of the same file")
					}
				}
			}
		}
	}
	proj, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SkipInclude = true
		o.SkipResolveEnvironment = true
		o.SkipResolveLabels = true
		o.SetProjectName(project, true)
		o.Profiles = profiles
	})
	if err != nil {
		return nil, describeLoadError(name, err)
	}
	return proj, nil
}

func refused(file, service, key, why string) error {
	where := key
	if service != "" {
		where = "service " + service + ": " + key
	}
	return workload.Invalid(workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: %s is refused: %s", file, where, why)})
}

// checkComposeProject refuses what lets a container escape (unless the
// target's policy allows the key) and what the target's policy does not
// admit (images, published ports): escapes are InvalidArgument naming the
// service and key, policy breaches PermissionDenied naming the rule.
func (p *Provider) checkComposeProject(dir, name string, proj *types.Project) error {
	pol := &p.policy
	var errs []workload.FieldError
	var denied []string
	escape := func(svc, key, detail string) {
		if pol.ComposeAllows(key) {
			return
		}
		where := key
		if svc != "" {
			where = "service " + svc + ": " + key
		}
		errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf(
			"%s: %s is refused: %s (allowed only when targets.%s.policy.compose.allow lists %q)", name, where, detail, p.target, key)})
	}
	inside := func(abs string) bool { return insideDir(dir, abs) }
	hostNS := func(v string) bool { return v == "host" || strings.HasPrefix(v, "container:") }

	services := make([]types.ServiceConfig, 0, len(proj.Services)+len(proj.DisabledServices))
	for _, s := range proj.Services {
		services = append(services, s)
	}
	for _, s := range proj.DisabledServices {
		services = append(services, s)
	}
	slices.SortFunc(services, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range services {
		svc := s.Name
		if s.Privileged {
			escape(svc, "privileged", "a privileged container has the host's devices and every capability")
		}
		if len(s.CapAdd) > 0 {
			escape(svc, "cap_add", "extra capabilities weaken the container boundary")
		}
		if len(s.Devices) > 0 || len(s.Gpus) > 0 {
			escape(svc, "devices", "host devices are passed into the container")
		}
		if len(s.DeviceCgroupRules) > 0 {
			escape(svc, "device_cgroup_rules", "it grants access to host devices")
		}
		if hostNS(s.NetworkMode) {
			escape(svc, "network_mode", "the host's or another container's network namespace")
		}
		if hostNS(s.Pid) {
			escape(svc, "pid", "the host's or another container's process namespace")
		}
		if hostNS(s.Ipc) {
			escape(svc, "ipc", "the host's or another container's IPC namespace")
		}
		if s.Uts == "host" {
			escape(svc, "uts", "the host's UTS namespace")
		}
		if s.UserNSMode == "host" {
			escape(svc, "userns_mode", "the host's user namespace")
		}
		if s.Cgroup == "host" {
			escape(svc, "cgroup", "the host's cgroup namespace")
		}
		if s.CgroupParent != "" {
			escape(svc, "cgroup_parent", "a cgroup outside the Engine's")
		}
		if len(s.SecurityOpt) > 0 {
			escape(svc, "security_opt", "it can turn off seccomp, AppArmor or SELinux confinement")
		}
		for _, vf := range s.VolumesFrom {
			if strings.HasPrefix(vf, "container:") {
				escape(svc, "volumes_from", "it mounts another container's volumes")
			}
		}
		if s.Build != nil {
			escape(svc, "build", "a build context sends host files to the Engine; run an image the target's policy admits")
		}
		if s.Provider != nil {
			errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: provider is refused: it runs a program on the controller host", name, svc)})
		}
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			if strings.HasPrefix(k, workload.ReservedLabelPrefix) {
				errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: label %s is refused: the %q prefix is reserved for labels alphaswarm sets", name, svc, k, workload.ReservedLabelPrefix)})
			}
		}
		if s.Image != "" && !pol.AllowsImage(s.Image) {
			denied = append(denied, fmt.Sprintf("service %s: image %s is not among the target's allowed images %v (rule images)", svc, s.Image, pol.Images))
		}
		for _, ef := range s.EnvFiles {
			if !inside(ef.Path) {
				errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: env_file is refused: it must be a file inside the target's Compose directory", name, svc)})
			}
		}
		for _, lf := range s.LabelFiles {
			if !inside(lf) {
				errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: label_file is refused: it must be a file inside the target's Compose directory", name, svc)})
			}
		}
		for i, v := range s.Volumes {
			key := fmt.Sprintf("volumes[%d]", i)
			switch v.Type {
			case types.VolumeTypeBind:
				src := filepath.Clean(v.Source)
				real, err := filepath.EvalSymlinks(src)
				if err != nil {
					real = src
				}
				if p.exposesDockerSocket(src) || p.exposesDockerSocket(real) {
					escape(svc, "docker_socket", key+" mounts the Docker socket, which controls the host")
					continue
				}
				if !pol.AllowsBindPath(src) || !pol.AllowsBindPath(real) {
					errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf(
						"%s: service %s: %s is refused: bind mounts must come from targets.%s.policy.compose.bindPaths (%v)", name, svc, key, p.target, pol.Compose.BindPaths)})
				}
			case types.VolumeTypeVolume, types.VolumeTypeTmpfs, "image":
			default:
				errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: %s is refused: mount type %q", name, svc, key, v.Type)})
			}
		}
		for i, pt := range s.Ports {
			addr := pt.HostIP
			if addr == "" {
				addr = "0.0.0.0" // what the Engine binds when the file says nothing
			}
			ports := []int{0}
			if pt.Published != "" {
				lo, hi, err := publishedRange(pt.Published)
				if err != nil {
					errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: service %s: ports[%d]: published must be a port or a range", name, svc, i)})
					continue
				}
				ports = ports[:0]
				for n := lo; n <= hi && len(ports) < 1024; n++ {
					ports = append(ports, n)
				}
			}
			for _, n := range ports {
				if why := pol.CheckPort(addr, n); why != "" {
					denied = append(denied, fmt.Sprintf("service %s: ports[%d]: %s (rule ports; set host_ip)", svc, i, why))
					break
				}
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(proj.Networks)) {
		nw := proj.Networks[n]
		if nw.Driver == "host" || nw.Name == "host" || bool(nw.External) {
			escape("", "network_mode", fmt.Sprintf("networks.%s joins the host's network or a network outside the project", n))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(proj.Volumes)) {
		v := proj.Volumes[n]
		if len(v.DriverOpts) > 0 || (v.Driver != "" && v.Driver != "local") {
			escape("", "driver_opts", fmt.Sprintf("volumes.%s sets a driver or driver options, which can mount host paths", n))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(proj.Configs)) {
		if c := proj.Configs[n]; c.File != "" && !inside(c.File) {
			errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: configs.%s.file is refused: it must be a file inside the target's Compose directory", name, n)})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(proj.Secrets)) {
		if c := proj.Secrets[n]; c.File != "" && !inside(c.File) {
			errs = append(errs, workload.FieldError{Path: "compose.file", Message: fmt.Sprintf("%s: secrets.%s.file is refused: it must be a file inside the target's Compose directory", name, n)})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	if len(denied) > 0 {
		return workload.Errorf(workload.PermissionDenied, "compose.file: %s: outside the policy of target %s: %s", name, p.target, strings.Join(denied, "; "))
	}
	return nil
}

// insideDir reports whether the absolute path abs names a file inside dir
// that an os.Root of dir can reach (so no link leaves dir).
func insideDir(dir, abs string) bool {
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return false
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer root.Close()
	st, err := root.Stat(rel)
	return err == nil && st.Mode().IsRegular()
}

// exposesDockerSocket reports whether a bind mount of the host path src
// makes the Engine's socket visible: src is the socket or a directory
// above it.
func (p *Provider) exposesDockerSocket(src string) bool {
	socks := []string{"/var/run/docker.sock", "/run/docker.sock"}
	if s, ok := strings.CutPrefix(p.host, "unix://"); ok {
		socks = append(socks, filepath.Clean(s))
	}
	for _, sock := range socks {
		if src == "/" || sock == src || strings.HasPrefix(sock, strings.TrimSuffix(src, "/")+"/") || strings.HasSuffix(src, ".sock") {
			return true
		}
	}
	return false
}

func publishedRange(s string) (int, int, error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, err
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, err
		}
	}
	if lo < 0 || hi > 65535 || lo > hi {
		return 0, 0, errors.New("out of range")
	}
	return lo, hi, nil
}
