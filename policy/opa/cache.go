package opa

import (
	"context"
	"slices"
	"sync"

	"github.com/alphaswarm/controller/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Decisions. A bundle whose modules call no nondeterministic builtin
// decides the same way on the same input: the decision is a function of the
// parts of the input the modules read (reads). Every part but the time
// repeats from request to request (the same user scaling the same service
// on the same target), and the time, which changes on every request,
// matters to a decision only where a module reaches it: the freeze rule
// reads it for a target that has freeze windows, not for the others. So
// the first time a request shape is seen, the bundle is also partially
// evaluated with the time unknown (OPA's partial evaluation, sound for
// every value of the unknown): when what remains does not mention the
// time, the decision holds at any time and is kept for that shape; when it
// does, the shape is marked as time-dependent and always evaluated. A
// bundle that reads the service's status (a new observation on every
// request) or the input whole does not keep decisions.

// maxDecisions bounds the kept request shapes of one bundle; when full, it
// starts again empty.
const maxDecisions = 4096

// decisions are a bundle's kept decisions, by request shape (the input
// without its time).
type decisions struct {
	partial rego.PreparedPartialQuery
	mu      sync.RWMutex
	byHash  map[int][]decisionEntry
	n       int
}

type decisionEntry struct {
	shape ast.Value
	// timed: the decision depends on the time; evaluate every time.
	timed bool
	d     policy.Decision
}

// newDecisions prepares the partial evaluation of the bundle compiled in
// c, or returns nil when its decisions cannot be kept.
func newDecisions(ctx context.Context, c *ast.Compiler, rd reads) (*decisions, error) {
	if rd.all || rd.touches("status") || rd.touches("statusError") || !deterministic(c) {
		return nil, nil
	}
	pq, err := rego.New(rego.Compiler(c), rego.Query(Query), rego.Unknowns([]string{"input.time"})).PrepareForPartial(ctx)
	if err != nil {
		return nil, err
	}
	return &decisions{partial: pq, byHash: map[int][]decisionEntry{}}, nil
}

// deterministic: no module calls a nondeterministic builtin (time.now_ns,
// http.send, rand.intn...).
func deterministic(c *ast.Compiler) bool {
	ok := true
	for _, m := range c.Modules {
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if e.IsCall() {
				if b, found := ast.BuiltinMap[e.Operator().String()]; found && b.Nondeterministic {
					ok = false
				}
			}
			return !ok
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if call, isCall := t.Value.(ast.Call); isCall {
				if b, found := ast.BuiltinMap[call[0].String()]; found && b.Nondeterministic {
					ok = false
				}
			}
			return !ok
		})
	}
	return ok
}

// lookup is the entry kept for shape, if any.
func (ds *decisions) lookup(shape ast.Value) (decisionEntry, bool) {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	for _, e := range ds.byHash[shape.Hash()] {
		if e.shape.Compare(shape) == 0 {
			return e, true
		}
	}
	return decisionEntry{}, false
}

// learn finds out whether shape's decision depends on the time, and keeps
// d (decided on shape at some time) if it does not.
func (ds *decisions) learn(ctx context.Context, shape ast.Value, d policy.Decision) {
	pqs, err := ds.partial.Partial(ctx, rego.EvalParsedInput(shape))
	if err != nil {
		return // not kept: evaluated again next time
	}
	timed := false
	visit := func(x any) {
		ast.WalkRefs(x, func(r ast.Ref) bool {
			timed = timed || r[0].Equal(ast.InputRootDocument)
			return timed
		})
	}
	for _, q := range pqs.Queries {
		visit(q)
	}
	for _, m := range pqs.Support {
		visit(m)
	}
	e := decisionEntry{shape: shape, timed: timed}
	if !timed {
		e.d = d
		e.d.Reasons = slices.Clone(d.Reasons)
	}
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.n >= maxDecisions {
		clear(ds.byHash)
		ds.n = 0
	}
	h := shape.Hash()
	for _, x := range ds.byHash[h] {
		if x.shape.Compare(shape) == 0 {
			return // learnt meanwhile
		}
	}
	ds.byHash[h] = append(ds.byHash[h], e)
	ds.n++
}
