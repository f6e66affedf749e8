package opa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/alphaswarm/controller/policy"
	"github.com/open-policy-agent/opa/v1/ast"
)

// reads are the parts of the input a bundle's compiled modules can read,
// from their refs: input.<key> (and input.principal.<field>,
// input.request.<field>). A module that reads input whole, or with a key
// known only when it runs (input[k]), reads everything.
type reads struct {
	all   bool
	top   map[string]bool // keys some part of which is read
	whole map[string]bool // keys read whole
	sub   map[string]bool // "request.replicas"
}

// readsOf walks the compiled modules (imports and bare "input" are
// resolved to refs by then).
func readsOf(mods map[string]*ast.Module) reads {
	rd := reads{top: map[string]bool{}, whole: map[string]bool{}, sub: map[string]bool{}}
	for _, m := range mods {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if rd.all || !r[0].Equal(ast.InputRootDocument) {
				return rd.all
			}
			k, ok := key(r, 1)
			if !ok {
				rd.all = true
				return true
			}
			rd.top[k] = true
			if f, ok := key(r, 2); ok && (k == "principal" || k == "request") {
				rd.sub[k+"."+f] = true
			} else {
				rd.whole[k] = true
			}
			return false
		})
	}
	return rd
}

// key is r[i] when it is a string known before evaluation.
func key(r ast.Ref, i int) (string, bool) {
	if len(r) <= i {
		return "", false
	}
	s, ok := r[i].Value.(ast.String)
	return string(s), ok
}

// allReads is every part of the input.
var allReads = reads{all: true}

func (rd reads) touches(k string) bool { return rd.all || rd.top[k] }

func (rd reads) field(k, f string) bool { return rd.all || rd.whole[k] || rd.sub[k+"."+f] }

// value is in as a Rego value, built term by term, with only the parts rd
// says the bundle can read: the same value, where it is read, as
// policy.Input's JSON encoding read back by OPA (TestValueIsTheJSONValue
// holds the two equal), without encoding and parsing JSON on every
// request. Without withTime, the time is left out (the request's shape,
// cache.go). Only a start's spec and the service's status, nested structs
// that only some requests carry, still go through JSON.
func value(in policy.Input, rd reads, withTime bool) (ast.Value, error) {
	items := make([][2]*ast.Term, 0, 10)
	if rd.touches("principal") {
		items = append(items, [2]*ast.Term{keyPrincipal, ast.NewTerm(principal(in.Principal, rd))})
	}
	for _, kv := range [...]struct {
		k *ast.Term
		v string
	}{{keyAction, in.Action}, {keyTarget, in.Target}, {keyProvider, in.Provider}, {keyService, in.Service}} {
		if rd.touches(string(kv.k.Value.(ast.String))) {
			items = append(items, [2]*ast.Term{kv.k, str(kv.v)})
		}
	}
	if rd.touches("request") {
		req, err := request(in.Request, rd)
		if err != nil {
			return nil, err
		}
		items = append(items, [2]*ast.Term{keyRequest, ast.NewTerm(req)})
	}
	if rd.touches("status") {
		status := ast.NullTerm()
		if in.Status != nil {
			v, err := viaJSON(in.Status)
			if err != nil {
				return nil, err
			}
			status = ast.NewTerm(v)
		}
		items = append(items, [2]*ast.Term{keyStatus, status})
	}
	if in.StatusError != "" && rd.touches("statusError") {
		items = append(items, [2]*ast.Term{keyStatusError, str(in.StatusError)})
	}
	if withTime && rd.touches("time") {
		items = append(items, [2]*ast.Term{keyTime, timeTerm(in.Time)})
	}
	return ast.NewObject(items...), nil
}

// timeTerm is t as its JSON form (UTC).
func timeTerm(t time.Time) *ast.Term { return ast.StringTerm(t.UTC().Format(time.RFC3339Nano)) }

func principal(p policy.Principal, rd reads) ast.Value {
	items := make([][2]*ast.Term, 0, 4)
	if rd.field("principal", "user") {
		items = append(items, [2]*ast.Term{keyUser, str(p.User)})
	}
	if p.Name != "" && rd.field("principal", "name") {
		items = append(items, [2]*ast.Term{keyName, str(p.Name)})
	}
	if p.Auth != "" && rd.field("principal", "auth") {
		items = append(items, [2]*ast.Term{keyAuth, str(p.Auth)})
	}
	if rd.field("principal", "role") {
		items = append(items, [2]*ast.Term{keyRole, str(p.Role)})
	}
	return ast.NewObject(items...)
}

func request(r policy.Request, rd reads) (ast.Value, error) {
	items := make([][2]*ast.Term, 0, 7)
	if r.Spec != nil && rd.field("request", "spec") {
		v, err := viaJSON(r.Spec)
		if err != nil {
			return nil, err
		}
		items = append(items, [2]*ast.Term{keySpec, ast.NewTerm(v)})
	}
	if r.Replicas != 0 && rd.field("request", "replicas") {
		items = append(items, [2]*ast.Term{keyReplicas, ast.InternedTerm(r.Replicas)})
	}
	if len(r.ConfigKeys) > 0 && rd.field("request", "configKeys") {
		items = append(items, [2]*ast.Term{keyConfigKeys, stringArray(r.ConfigKeys)})
	}
	if len(r.EnvKeys) > 0 && rd.field("request", "envKeys") {
		items = append(items, [2]*ast.Term{keyEnvKeys, stringArray(r.EnvKeys)})
	}
	if r.Exec != nil && rd.field("request", "exec") {
		exec := [][2]*ast.Term{
			{keyArgv0, str(r.Exec.Argv0)},
			{keyArgc, ast.InternedTerm(r.Exec.Argc)},
		}
		if r.Exec.TTY {
			exec = append(exec, [2]*ast.Term{keyTTY, ast.InternedTerm(true)})
		}
		items = append(items, [2]*ast.Term{keyExec, ast.ObjectTerm(exec...)})
	}
	if r.HaltOn != nil && rd.field("request", "haltOn") {
		items = append(items, [2]*ast.Term{keyHaltOn, ast.InternedTerm(*r.HaltOn)})
	}
	if r.NoWait && rd.field("request", "noWait") {
		items = append(items, [2]*ast.Term{keyNoWait, ast.InternedTerm(true)})
	}
	return ast.NewObject(items...), nil
}

func stringArray(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = str(s)
	}
	return ast.ArrayTerm(ts...)
}

// str is s as a Rego string, as its JSON encoding reads back: invalid
// UTF-8 comes out as encoding/json writes it (U+FFFD per bad byte).
func str(s string) *ast.Term {
	if !utf8.ValidString(s) {
		b, _ := json.Marshal(s) // a string always encodes
		_ = json.Unmarshal(b, &s)
	}
	return ast.InternedTerm(s)
}

// viaJSON is v as OPA reads its JSON encoding.
func viaJSON(v any) (ast.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	x, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	return x, nil
}

// The input's keys (policy.Input's JSON names), built once.
var (
	keyPrincipal   = ast.StringTerm("principal")
	keyAction      = ast.StringTerm("action")
	keyTarget      = ast.StringTerm("target")
	keyProvider    = ast.StringTerm("provider")
	keyService     = ast.StringTerm("service")
	keyRequest     = ast.StringTerm("request")
	keyStatus      = ast.StringTerm("status")
	keyStatusError = ast.StringTerm("statusError")
	keyTime        = ast.StringTerm("time")
	keyUser        = ast.StringTerm("user")
	keyName        = ast.StringTerm("name")
	keyAuth        = ast.StringTerm("auth")
	keyRole        = ast.StringTerm("role")
	keySpec        = ast.StringTerm("spec")
	keyReplicas    = ast.StringTerm("replicas")
	keyConfigKeys  = ast.StringTerm("configKeys")
	keyEnvKeys     = ast.StringTerm("envKeys")
	keyExec        = ast.StringTerm("exec")
	keyArgv0       = ast.StringTerm("argv0")
	keyArgc        = ast.StringTerm("argc")
	keyTTY         = ast.StringTerm("tty")
	keyHaltOn      = ast.StringTerm("haltOn")
	keyNoWait      = ast.StringTerm("noWait")
)
