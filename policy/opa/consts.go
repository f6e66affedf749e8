package opa

import (
	"context"
	"fmt"

	"github.com/alphaswarm/controller/policy"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Constants. A complete rule that reads no input, calls no
// nondeterministic builtin and no function, has no `with`, and uses only
// other such rules (the freeze windows, the replica limits, the allowed
// registries of the shipped policies) has the same value for every
// request. Its value is computed once, when the bundle is compiled, and
// served to every evaluation through OPA's virtual document cache
// (rego.EvalVirtualCache), which is where the evaluator would have kept it
// after computing it itself. A constant that is undefined or fails to
// evaluate is left to the evaluator.

// constsOf evaluates the constant rules of the compiled modules.
func constsOf(ctx context.Context, c *ast.Compiler) (map[string]*ast.Term, error) {
	pkg := ast.MustParseRef("data." + policy.Package)
	// Candidates: complete rules without arguments whose document is
	// data.alphaswarm.<name>, every definition of it such a rule.
	groups := map[string][]*ast.Rule{}
	for _, m := range c.Modules {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			if r.Module == nil {
				return false
			}
			name, ok := constName(r, pkg)
			if !ok {
				groups[ruleName(r, pkg)] = append(groups[ruleName(r, pkg)], nil) // spoils the group
				return false
			}
			groups[name] = append(groups[name], r)
			return false
		})
	}
	isConst := map[string]bool{}
	for name, rules := range groups {
		ok := name != ""
		for _, r := range rules {
			ok = ok && r != nil
		}
		if ok && len(c.GetRulesWithPrefix(pkg.Append(ast.InternedTerm(name)))) != len(rules) {
			ok = false // data.alphaswarm.name.x is defined too: not one document
		}
		isConst[name] = ok
	}
	// Drop rules that read input or a non-constant rule, until nothing
	// changes.
	for changed := true; changed; {
		changed = false
		for name, ok := range isConst {
			if !ok {
				continue
			}
			for _, r := range groups[name] {
				if !constBody(r, pkg, isConst) {
					isConst[name], changed = false, true
					break
				}
			}
		}
	}
	consts := map[string]*ast.Term{}
	for name, ok := range isConst {
		if !ok {
			continue
		}
		q, err := rego.New(rego.Compiler(c), rego.Query(pkg.Append(ast.InternedTerm(name)).String())).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("policy: constant %s: %w", name, err)
		}
		rs, err := q.Eval(ctx, rego.EvalGenerateJSON(termValue))
		if err != nil || len(rs) != 1 || len(rs[0].Expressions) != 1 {
			continue // undefined or an error: evaluated per request, as before
		}
		v, ok := rs[0].Expressions[0].Value.(ast.Value)
		if !ok {
			continue
		}
		consts[name] = ast.NewTerm(v)
	}
	return consts, nil
}

// constName is the name of r's document when r is a complete rule without
// arguments defining data.alphaswarm.<name>.
func constName(r *ast.Rule, pkg ast.Ref) (string, bool) {
	if len(r.Head.Args) > 0 || r.Head.RuleKind() != ast.SingleValue {
		return "", false
	}
	ref := r.Ref()
	if len(ref) != len(pkg)+1 || !ref.HasPrefix(pkg) {
		return "", false
	}
	name, ok := ref[len(pkg)].Value.(ast.String)
	return string(name), ok
}

// ruleName is the first name of r's document under pkg ("" if none).
func ruleName(r *ast.Rule, pkg ast.Ref) string {
	ref := r.Ref()
	if len(ref) > len(pkg) && ref.HasPrefix(pkg) {
		if s, ok := ref[len(pkg)].Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}

// constBody reports whether r, else branches included, reads no input, no
// rule but constant ones, has no `with`, and calls only deterministic
// builtins.
func constBody(r *ast.Rule, pkg ast.Ref, isConst map[string]bool) bool {
	ok := true
	ast.WalkExprs(r, func(e *ast.Expr) bool {
		if len(e.With) > 0 {
			ok = false
		}
		return !ok
	})
	ast.WalkTerms(r, func(t *ast.Term) bool {
		if !ok {
			return true
		}
		switch v := t.Value.(type) {
		case ast.Ref:
			switch {
			case v[0].Equal(ast.InputRootDocument):
				ok = false
			case v[0].Equal(ast.DefaultRootDocument):
				name, isStr := "", false
				if len(v) > len(pkg) && v.HasPrefix(pkg) {
					var s ast.String
					s, isStr = v[len(pkg)].Value.(ast.String)
					name = string(s)
				}
				ok = isStr && isConst[name]
			}
		case ast.Call:
			ok = deterministicBuiltin(v[0])
		}
		return !ok
	})
	ast.WalkExprs(r, func(e *ast.Expr) bool {
		if e.IsCall() && !deterministicBuiltin(e.Operator()) {
			ok = false
		}
		return !ok
	})
	return ok
}

// deterministicBuiltin: op names a builtin whose result depends only on
// its arguments (not time.now_ns, http.send, rand.intn...).
func deterministicBuiltin(op any) bool {
	var name string
	switch x := op.(type) {
	case *ast.Term:
		ref, ok := x.Value.(ast.Ref)
		if !ok {
			return false
		}
		name = ref.String()
	case ast.Ref:
		name = x.String()
	default:
		return false
	}
	b, ok := ast.BuiltinMap[name]
	return ok && !b.Nondeterministic
}

// constCache is an evaluation's virtual document cache with the bundle's
// constants already in it.
type constCache struct {
	topdown.VirtualCache
	consts map[string]*ast.Term
	pkgLen int
}

func (c constCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if len(ref) == c.pkgLen+1 {
		if s, ok := ref[c.pkgLen].Value.(ast.String); ok {
			if v, ok := c.consts[string(s)]; ok && ref.HasPrefix(constPkg) {
				return v, false
			}
		}
	}
	return c.VirtualCache.Get(ref)
}

var constPkg = ast.MustParseRef("data." + policy.Package)
