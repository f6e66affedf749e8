// Package opa is the policy.Evaluator of the admin's Rego policies,
// evaluated in-process with the Open Policy Agent Go library
// (github.com/open-policy-agent/opa/v1/rego). It lives apart from package
// policy so that only the server links OPA.
//
// # Loading and reloading
//
// The bundle is every *.rego file under the configured paths (a directory
// is read recursively; a file named directly is read whatever its name).
// Every module must be in package alphaswarm (see package policy for the
// contract). The bundle's digest — "sha256:" and the hex sha256 of every
// file's path, length and contents, in path order — is what the ledger
// records on each row the bundle let through or refused. Engine.Run polls
// the files' paths, sizes and modification times; a changed set is
// compiled and swapped in atomically, so a request is decided by one
// bundle, whole. A bundle that fails to read or compile is logged,
// counted (alphaswarm_policy_reload_errors_total) and ignored: the last
// good one stays in force.
package opa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"
)

// Query is the rule every bundle is asked for (policy.Package's deny).
const Query = "data." + policy.Package + ".deny"

// DefaultReloadInterval is how often Run looks at the files.
const DefaultReloadInterval = 2 * time.Second

// Options configures an Engine.
type Options struct {
	// Paths are *.rego files or directories holding them.
	Paths []string
	// ReloadInterval is how often Run polls the files; default
	// DefaultReloadInterval.
	ReloadInterval time.Duration
	Logger         *slog.Logger
}

// bundle is one compiled set of files.
type bundle struct {
	digest string
	stamp  string // the files' paths, sizes and mtimes, to notice changes
	query  rego.PreparedEvalQuery
	files  []string
	// reads are the parts of the input the compiled modules can read:
	// only those are built for an evaluation.
	reads reads
	// status: some module reads input.status (or input whole), so the
	// caller must ask the provider for it.
	status bool
	// consts are the values of the constant rules (consts.go).
	consts map[string]*ast.Term
	// decisions are the decisions kept by request shape (cache.go); nil
	// when the bundle's decisions cannot be kept.
	decisions *decisions
}

// Engine holds the bundle in force. It is safe for concurrent use.
type Engine struct {
	opts    Options
	log     *slog.Logger
	cur     atomic.Pointer[bundle]
	mu      sync.Mutex // serialises reloads
	reloads prometheus.Counter
	errs    prometheus.Counter
	info    *prometheus.GaugeVec
}

// Open reads and compiles the bundle; an error here (no file, a syntax
// error) is a start-up error.
func Open(ctx context.Context, o Options) (*Engine, error) {
	if len(o.Paths) == 0 {
		return nil, errors.New("policy: no paths")
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	e := &Engine{opts: o, log: o.Logger,
		reloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "alphaswarm_policy_reloads_total",
			Help: "Policy bundles loaded after a change to their files."}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "alphaswarm_policy_reload_errors_total",
			Help: "Policy reloads that failed; the last good bundle stayed in force."}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "alphaswarm_policy_bundle_info",
			Help: "1 for the digest of the policy bundle in force."}, []string{"digest"}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	b, err := e.load(ctx)
	if err != nil {
		return nil, err
	}
	e.swap(b)
	return e, nil
}

// Digest is the digest of the bundle in force.
func (e *Engine) Digest() string { return e.cur.Load().digest }

// NeedsStatus reports whether a module of the bundle in force reads
// input.status (or input as a whole): only then does the caller ask the
// provider for the service's status (policy.StatusReader).
func (e *Engine) NeedsStatus() bool { return e.cur.Load().status }

// Files are the files of the bundle in force.
func (e *Engine) Files() []string { return slices.Clone(e.cur.Load().files) }

// Collector exports the reload counters and the bundle in force.
func (e *Engine) Collector() prometheus.Collector { return collectors{e.reloads, e.errs, e.info} }

type collectors []prometheus.Collector

func (c collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c collectors) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}

func (e *Engine) swap(b *bundle) {
	if old := e.cur.Swap(b); old != nil {
		e.info.DeleteLabelValues(old.digest)
	}
	e.info.WithLabelValues(b.digest).Set(1)
}

// Run reloads the bundle whenever its files change, until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = e.Reload(ctx)
		}
	}
}

// Reload compiles the files again if they changed since the bundle in force
// was read, and reports whether a new bundle is in force. On an error the
// last good bundle stays.
func (e *Engine) Reload(ctx context.Context) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	files, stamp, err := e.scan()
	if err == nil && stamp == e.cur.Load().stamp {
		return false, nil
	}
	var b *bundle
	if err == nil {
		b, err = e.compile(ctx, files, stamp)
	}
	if err != nil {
		e.errs.Inc()
		e.log.Error("policy: reload failed; the last good bundle stays in force", "digest", e.Digest(), "err", err)
		return false, err
	}
	if b.digest == e.Digest() {
		e.cur.Store(b) // touched, not changed
		return false, nil
	}
	e.swap(b)
	e.reloads.Inc()
	e.log.Info("policy: bundle loaded", "digest", b.digest, "files", len(b.files))
	return true, nil
}

func (e *Engine) load(ctx context.Context) (*bundle, error) {
	files, stamp, err := e.scan()
	if err != nil {
		return nil, err
	}
	return e.compile(ctx, files, stamp)
}

// scan lists the bundle's files and stamps them.
func (e *Engine) scan() ([]string, string, error) {
	var files []string
	var stamp strings.Builder
	for _, p := range e.opts.Paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || (path != p && !strings.HasSuffix(path, ".rego")) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, path)
			fmt.Fprintf(&stamp, "%s\x00%d\x00%d\n", path, info.Size(), info.ModTime().UnixNano())
			return nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("policy: %w", err)
		}
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("policy: no .rego files under %s", strings.Join(e.opts.Paths, ", "))
	}
	return files, stamp.String(), nil
}

func (e *Engine) compile(ctx context.Context, files []string, stamp string) (*bundle, error) {
	sorted := slices.Clone(files)
	slices.Sort(sorted)
	h := sha256.New()
	var compiler *ast.Compiler
	opts := []func(*rego.Rego){rego.Query(Query), rego.CompilerHook(func(c *ast.Compiler) { compiler = c })}
	for _, f := range sorted {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(src))
		h.Write(src)
		mod, err := ast.ParseModuleWithOpts(f, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if got := mod.Package.Path.String(); got != "data."+policy.Package {
			return nil, fmt.Errorf("policy: %s: package %s: every module must be in package %s", f, strings.TrimPrefix(got, "data."), policy.Package)
		}
		opts = append(opts, rego.ParsedModule(mod))
	}
	q, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if compiler == nil {
		return nil, errors.New("policy: the compiler was not created") // OPA changed; reads could not be known
	}
	rd := readsOf(compiler.Modules)
	consts, err := constsOf(ctx, compiler)
	if err != nil {
		return nil, err
	}
	ds, err := newDecisions(ctx, compiler, rd)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return &bundle{digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), stamp: stamp, query: q, files: sorted,
		reads: rd, status: rd.touches("status"), consts: consts, decisions: ds}, nil
}

var (
	_ policy.Evaluator    = (*Engine)(nil)
	_ policy.StatusReader = (*Engine)(nil)
)

// Evaluate asks the bundle in force about in.
func (e *Engine) Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error) {
	b := e.cur.Load()
	if b.decisions == nil {
		v, err := value(in, b.reads, true)
		if err != nil {
			return policy.Decision{Digest: b.digest}, err
		}
		return b.eval(ctx, v)
	}
	// cache.go: the decision kept for the request's shape, if its
	// decision does not depend on the time.
	shape, err := value(in, b.reads, false)
	if err != nil {
		return policy.Decision{Digest: b.digest}, err
	}
	kept, known := b.decisions.lookup(shape)
	if known && !kept.timed {
		d := kept.d
		d.Reasons = slices.Clone(d.Reasons)
		return d, nil
	}
	v := shape
	if !known { // shape is kept by learn: the time goes into a copy
		if v, err = value(in, b.reads, true); err != nil {
			return policy.Decision{Digest: b.digest}, err
		}
	} else if b.reads.touches("time") {
		shape.(ast.Object).Insert(keyTime, timeTerm(in.Time))
	}
	d, err := b.eval(ctx, v)
	if err == nil && !known {
		b.decisions.learn(ctx, shape, d)
	}
	return d, err
}

func (b *bundle) eval(ctx context.Context, input ast.Value) (policy.Decision, error) {
	d := policy.Decision{Digest: b.digest}
	// Cancelled with ctx without a goroutine per evaluation (what Eval
	// starts when it is not given a Cancel).
	cancel := topdown.NewCancel()
	stop := context.AfterFunc(ctx, cancel.Cancel)
	defer stop()
	opts := []rego.EvalOption{rego.EvalParsedInput(input), rego.EvalExternalCancel(cancel),
		rego.EvalMetrics(metrics.NoOp()), rego.EvalGenerateJSON(termValue)}
	if len(b.consts) > 0 {
		opts = append(opts, rego.EvalVirtualCache(constCache{VirtualCache: topdown.NewVirtualCache(), consts: b.consts, pkgLen: len(constPkg)}))
	}
	rs, err := b.query.Eval(ctx, opts...)
	if err != nil {
		return d, fmt.Errorf("policy %s: %w", b.digest, err)
	}
	if len(rs) == 1 && len(rs[0].Expressions) == 1 {
		var reasons []*ast.Term
		switch v := rs[0].Expressions[0].Value.(type) {
		case ast.Set:
			reasons = v.Slice()
		case *ast.Array: // not the contract's set, but read like one
			v.Foreach(func(t *ast.Term) { reasons = append(reasons, t) })
		case ast.Value:
			return d, fmt.Errorf("policy %s: deny is %s, not a set of strings", b.digest, ast.ValueName(v))
		default:
			return d, fmt.Errorf("policy %s: deny is %T, not a set of strings", b.digest, v)
		}
		for _, r := range reasons {
			s, ok := r.Value.(ast.String)
			if !ok {
				x, err := ast.JSON(r.Value)
				if err != nil {
					return d, fmt.Errorf("policy %s: deny reason %v: %w", b.digest, r, err)
				}
				b, _ := json.Marshal(x)
				s = ast.String(b)
			}
			d.Reasons = append(d.Reasons, string(s))
		}
	}
	slices.Sort(d.Reasons)
	d.Allow = len(d.Reasons) == 0
	return d, nil
}

// termValue hands the query's result over as the Rego value it is,
// instead of converting it to Go values first.
func termValue(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }
