package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alphaswarm/controller/internal/auth"

	"github.com/alphaswarm/controller/api"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"github.com/alphaswarm/controller/workload/specfile"
)

const svcPath = "/v1/targets/{target}/services/{service}"

func (s *Server) table() []route {
	return []route{
		{"GET", "/healthz", "", "", s.healthz},
		{"GET", "/readyz", "", "", s.readyz},
		{"GET", "/v1/openapi.json", "", "", s.openapi},
		{"GET", "/metrics", "", "", s.prometheus},
		{"GET", "/v1/targets", auth.RoleViewer, "", s.targets},
		{"GET", "/v1/services", auth.RoleViewer, "", s.listAll},
		{"GET", "/v1/services/events", auth.RoleViewer, "", s.servicesSSE},
		{"GET", "/v1/targets/{target}/services", auth.RoleViewer, "", s.listTarget},
		{"POST", "/v1/targets/{target}/services", auth.RoleOperator, workload.ActionStart, s.deploy},
		{"GET", svcPath, auth.RoleViewer, "", s.status},
		{"POST", svcPath + "/diff", auth.RoleViewer, "", s.diff},
		{"POST", svcPath + "/stop", auth.RoleOperator, workload.ActionStop, s.stop},
		{"POST", svcPath + "/scale", auth.RoleOperator, workload.ActionScale, s.scale},
		{"POST", svcPath + "/restart", auth.RoleOperator, workload.ActionRestart, s.restart},
		{"PUT", svcPath + "/config", auth.RoleOperator, workload.ActionApplyConfig, s.config},
		{"GET", svcPath + "/history", auth.RoleViewer, "", s.history},
		{"POST", svcPath + "/rollback", auth.RoleOperator, workload.ActionRollback, s.rollback},
		{"GET", svcPath + "/metrics", auth.RoleViewer, "", s.metricsSSE},
		{"GET", svcPath + "/logs", auth.RoleViewer, "", s.logsSSE},
		{"POST", svcPath + "/exec", auth.RoleAdmin, workload.ActionExec, s.execOnce},
		{"GET", svcPath + "/exec/ws", auth.RoleAdmin, workload.ActionExec, s.execWS},
		{"GET", "/v1/runs", auth.RoleViewer, "", s.runs},
		{"GET", "/v1/ledger/verify", auth.RoleViewer, "", s.verify},
		{"GET", "/v1/halt", auth.RoleViewer, "", s.haltGet},
		{"PUT", "/v1/halt", auth.RoleAdmin, workload.ActionHalt, s.haltSet},
		{"GET", "/v1/tokens", auth.RoleAdmin, "", s.tokenList},
		{"POST", "/v1/tokens", auth.RoleAdmin, control.ActionTokenCreate, s.tokenCreate},
		{"DELETE", "/v1/tokens/{id}", auth.RoleAdmin, control.ActionTokenRevoke, s.tokenRevoke},
		{"GET", "/v1/whoami", auth.RoleViewer, "", s.whoami},
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ control.Principal) {
	writeJSON(w, 200, map[string]string{"status": "alive"})
}

// readyz: the ledger answers a read and every target that can be pinged
// answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var problems []string
	if _, err := s.rt.Halts(ctx); err != nil {
		problems = append(problems, "ledger: "+workload.AsError(err).Message)
	}
	if s.ready != nil {
		problems = append(problems, s.ready(ctx)...)
	}
	// OIDC issuers are reported, never a reason to be unready: local
	// tokens work while an issuer is down.
	var issuers []auth.Status
	if s.authStatus != nil {
		issuers = s.authStatus()
	}
	if len(problems) > 0 {
		for _, st := range issuers {
			if st.State != "ok" {
				problems = append(problems, fmt.Sprintf("(not counted) OIDC issuer %s: %s", st.Issuer, st.State))
			}
		}
		writeError(w, workload.Errorf(workload.Unavailable, "not ready: %s", strings.Join(problems, "; ")))
		return
	}
	body := map[string]any{"status": "ready"}
	if issuers != nil {
		body["oidc"] = issuers
	}
	writeJSON(w, 200, body)
}

func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, p control.Principal) {
	writeJSON(w, 200, p)
}

func (s *Server) targets(w http.ResponseWriter, r *http.Request, p control.Principal) {
	ts, err := s.rt.Targets(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, slices.DeleteFunc(ts, func(t control.TargetInfo) bool { return !auth.RoleOn(p, t.Name).Allows(auth.RoleViewer) }))
}

// listAll lists the services of every target p may view (GET /v1/services;
// ?target= one of them). A principal with grants on some targets only sees
// those targets' services.
func (s *Server) listAll(w http.ResponseWriter, r *http.Request, p control.Principal) {
	t := r.URL.Query().Get("target")
	visible, err := viewable(p, t)
	if err != nil {
		writeError(w, err)
		return
	}
	if visible == nil {
		sts, err := s.rt.List(r.Context(), t)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, 200, sts)
		return
	}
	out := []workload.DeploymentStatus{}
	for _, t := range visible {
		sts, err := s.rt.List(r.Context(), t)
		if err != nil {
			if code := workload.AsError(err).Code; code == workload.Unsupported || code == workload.NotFound {
				continue // as GET /v1/services skips a provider that cannot list; a grant may name an unconfigured target
			}
			writeError(w, err)
			return
		}
		out = append(out, sts...)
	}
	writeJSON(w, 200, out)
}

// viewable says which targets a scoped route shows p, asked about target
// (its ?target=, "" for all): nil for every target — p is a viewer of
// every target, or target is one p may view (the route's own filter then
// keeps to it) — else the targets of p's grants that allow viewing,
// sorted. A target p may not view is permission_denied, as the routes
// naming it are.
func viewable(p control.Principal, target string) ([]string, error) {
	if target != "" {
		if !auth.RoleOn(p, target).Allows(auth.RoleViewer) {
			return nil, auth.Denied(p, auth.RoleViewer, target)
		}
		return nil, nil
	}
	if auth.RoleOn(p, "").Allows(auth.RoleViewer) {
		return nil, nil
	}
	out := []string{}
	for _, t := range slices.Sorted(maps.Keys(p.TargetRoles)) {
		if auth.RoleOn(p, t).Allows(auth.RoleViewer) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *Server) listTarget(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	sts, err := s.rt.List(r.Context(), r.PathValue("target"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, sts)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	st, err := s.rt.Status(r.Context(), r.PathValue("target"), r.PathValue("service"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, st)
}

// do runs a mutating request through the runtime (which records a refusal
// itself); a bad wait/timeout query is recorded as rejected here. Body
// decoding failures are recorded by the handlers, through rejectBody.
func (s *Server) do(w http.ResponseWriter, r *http.Request, req control.Request, status int) {
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	if err := waitOptions(r, &req); err != nil {
		s.rejectBody(w, r, req.Principal, req.Action, err)
		return
	}
	res, err := s.rt.Do(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, status, res)
}

func (s *Server) rejectBody(w http.ResponseWriter, r *http.Request, p control.Principal, action workload.Action, err error) {
	_ = s.rt.Reject(r.Context(), p, action, r.PathValue("target"), r.PathValue("service"), err)
	writeError(w, err)
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, p control.Principal) {
	b, err := readBody(r)
	if err != nil {
		s.rejectBody(w, r, p, workload.ActionStart, err)
		return
	}
	spec, err := specfile.Decode(b, specfile.FormatOf(r.Header.Get("Content-Type")))
	if err != nil {
		s.rejectBody(w, r, p, workload.ActionStart, err)
		return
	}
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionStart, Target: r.PathValue("target"),
		Service: spec.Name, Spec: &spec}, http.StatusOK)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request, p control.Principal) {
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionStop, Target: r.PathValue("target"), Service: r.PathValue("service")}, 200)
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request, p control.Principal) {
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionRestart, Target: r.PathValue("target"), Service: r.PathValue("service")}, 200)
}

// jsonBody reads the body of a JSON-only route: Content-Type JSON, within
// the size limit, strictly decoded, with the field named required present
// (as present tells; required "" when no field is). A failure is answered
// and recorded as a rejected action; ok is false then.
func jsonBody[T any](s *Server, w http.ResponseWriter, r *http.Request, p control.Principal, action workload.Action,
	required string, present func(T) bool) (body T, ok bool) {
	err := requireJSON(r)
	var b []byte
	if err == nil {
		b, err = readBody(r)
	}
	if err == nil {
		body, err = decodeStrict[T](b)
	}
	if err == nil && required != "" && !present(body) {
		err = workload.Invalid(workload.FieldError{Path: required, Message: "is required"})
	}
	if err != nil {
		s.rejectBody(w, r, p, action, err)
		return body, false
	}
	return body, true
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request, p control.Principal) {
	body, ok := jsonBody(s, w, r, p, workload.ActionScale, "replicas", func(b api.ScaleRequest) bool { return b.Replicas != nil })
	if !ok {
		return
	}
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionScale, Target: r.PathValue("target"),
		Service: r.PathValue("service"), Replicas: *body.Replicas}, 200)
}

func (s *Server) config(w http.ResponseWriter, r *http.Request, p control.Principal) {
	body, ok := jsonBody(s, w, r, p, workload.ActionApplyConfig, "config", func(b api.ConfigRequest) bool { return b.Config != nil })
	if !ok {
		return
	}
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionApplyConfig, Target: r.PathValue("target"),
		Service: r.PathValue("service"), Config: body.Config}, 200)
}

// maxExecOutput bounds what the non-interactive exec returns per stream.
const maxExecOutput = 1 << 20

type cappedBuffer struct {
	bytes.Buffer
	truncated bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxExecOutput - c.Len(); room < len(p) {
		c.truncated = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

func (s *Server) execOnce(w http.ResponseWriter, r *http.Request, p control.Principal) {
	body, ok := jsonBody[api.ExecRequest](s, w, r, p, workload.ActionExec, "", nil)
	if !ok {
		return
	}
	var stdout, stderr cappedBuffer
	req := &provider.ExecRequest{Instance: body.Instance, Command: body.Command, Stdout: &stdout, Stderr: &stderr}
	if body.Stdin != "" {
		req.Stdin = strings.NewReader(body.Stdin)
	}
	// The request's context ends before the handler returns only when the
	// client closes the connection: the run records that cause
	// (control.ErrClientGone), not a failure.
	ctx, clientGone := context.WithCancelCause(context.WithoutCancel(r.Context()))
	defer clientGone(nil)
	defer context.AfterFunc(r.Context(), func() {
		clientGone(fmt.Errorf("%w: the client closed the connection", control.ErrClientGone))
	})()
	res, err := s.rt.Do(ctx, control.Request{Principal: p, Action: workload.ActionExec, Target: r.PathValue("target"),
		Service: r.PathValue("service"), Exec: req, IdempotencyKey: r.Header.Get("Idempotency-Key")})
	if err != nil {
		writeError(w, err)
		return
	}
	// The runtime redacts command output as it streams, before the output
	// cap cuts it (interactive WebSocket exec too); a secret registered
	// while the command ran is caught by redacting the whole buffer again.
	out := api.ExecResponse{RunID: res.RunID, Stdout: s.rt.Redact(stdout.String()), Stderr: s.rt.Redact(stderr.String()),
		Truncated: stdout.truncated || stderr.truncated}
	if res.Exec != nil {
		out.Instance, out.ExitCode = res.Exec.Instance, res.Exec.ExitCode
	}
	writeJSON(w, 200, out)
}

// runs lists ledger records (GET /v1/runs). A principal whose roles cover
// some targets only gets those targets' records and the global halt
// switch's (ledger.Filter.Targets: the query's condition, so pages and
// cursors count only what it may see); a run of another target is
// answered as a run that does not exist, and ?target= naming one is
// permission_denied.
func (s *Server) runs(w http.ResponseWriter, r *http.Request, p control.Principal) {
	q := r.URL.Query()
	visible, err := viewable(p, q.Get("target"))
	if err != nil {
		writeError(w, err)
		return
	}
	f := ledger.Filter{Service: q.Get("service"), Target: q.Get("target"), Targets: visible, UserID: q.Get("user"), Action: q.Get("action"),
		Kind: ledger.Kind(q.Get("kind")), Outcome: ledger.Outcome(q.Get("outcome")), RunID: q.Get("run"), Cursor: q.Get("cursor"),
		Descending: q.Get("order") == "desc"}
	var errs []workload.FieldError
	for _, tc := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(tc.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs = append(errs, workload.FieldError{Path: tc.name, Message: "must be an RFC 3339 time"})
			}
			*tc.dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ledger.MaxLimit {
			errs = append(errs, workload.FieldError{Path: "limit", Message: "must be between 1 and 1000"})
		}
		f.Limit = n
	}
	if o := q.Get("order"); o != "" && o != "asc" && o != "desc" {
		errs = append(errs, workload.FieldError{Path: "order", Message: "must be asc or desc"})
	}
	if f.Kind != "" && !slices.Contains(ledger.Kinds, f.Kind) {
		errs = append(errs, workload.FieldError{Path: "kind", Message: "must be intent, result or rejected"})
	}
	if f.Outcome != "" && !slices.Contains(ledger.Outcomes, f.Outcome) {
		errs = append(errs, workload.FieldError{Path: "outcome", Message: "must be ok, error, interrupted, invalid, denied or halted"})
	}
	if f.Action != "" && !slices.Contains(control.RecordedActions, workload.Action(f.Action)) {
		errs = append(errs, workload.FieldError{Path: "action", Message: "must be one of " + actionList()})
	}
	if len(errs) > 0 {
		writeError(w, workload.Invalid(errs...))
		return
	}
	page, err := s.rt.Runs(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, runsPage(page))
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	res, err := s.rt.Verify(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, api.VerifyResult(res))
}

func (s *Server) haltGet(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	h, err := s.rt.Halts(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	st := api.HaltState{Global: h[ledger.GlobalScope], Targets: []string{}}
	for t, on := range h {
		if on && t != ledger.GlobalScope {
			st.Targets = append(st.Targets, t)
		}
	}
	writeJSON(w, 200, st)
}

func (s *Server) haltSet(w http.ResponseWriter, r *http.Request, p control.Principal) {
	b, err := readBody(r)
	var body api.HaltRequest
	if err == nil {
		body, err = decodeStrict[api.HaltRequest](b)
	}
	if err == nil && body.On == nil {
		err = workload.Invalid(workload.FieldError{Path: "on", Message: "is required"})
	}
	if err != nil {
		s.rejectBody(w, r, p, workload.ActionHalt, err)
		return
	}
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionHalt, Target: body.Target, HaltOn: *body.On}, 200)
}

func (s *Server) tokenList(w http.ResponseWriter, _ *http.Request, _ control.Principal) {
	if s.tokens == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "this server has no token store"))
		return
	}
	infos := s.tokens.List()
	out := make([]api.TokenInfo, len(infos))
	for i, in := range infos {
		out[i] = tokenInfo(in)
	}
	writeJSON(w, 200, out)
}

func (s *Server) tokenCreate(w http.ResponseWriter, r *http.Request, p control.Principal) {
	if s.tokens == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "this server has no token store"))
		return
	}
	b, err := readBody(r)
	var body api.TokenRequest
	if err == nil {
		body, err = decodeStrict[api.TokenRequest](b)
	}
	var role auth.Role
	if err == nil {
		role, err = auth.ParseRole(body.Role)
	}
	if err == nil && body.TTL < 0 {
		err = workload.Invalid(workload.FieldError{Path: "ttl", Message: "must be >= 0"})
	}
	if err == nil {
		err = auth.ValidateTokenRequest(body.User, role, body.TTL.D())
	}
	if err != nil {
		s.rejectBody(w, r, p, control.ActionTokenCreate, err)
		return
	}
	// One intent and one result row: who created a token for whom, with
	// which role; never the token.
	var tok string
	var info auth.TokenInfo
	_, err = s.rt.Administer(r.Context(), p, control.ActionTokenCreate,
		map[string]any{"user": body.User, "role": role, "ttl": body.TTL},
		func() (any, error) {
			var err error
			tok, info, err = s.tokens.Create(body.User, role, body.TTL.D())
			if err != nil {
				return nil, err
			}
			return tokenInfo(info), nil
		})
	if err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("token created", "id", info.ID, "user", info.User, "role", info.Role, "by", p.User)
	writeJSON(w, http.StatusCreated, api.TokenResponse{Token: tok, Info: tokenInfo(info)})
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request, p control.Principal) {
	if s.tokens == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "this server has no token store"))
		return
	}
	id := r.PathValue("id")
	if _, err := s.rt.Administer(r.Context(), p, control.ActionTokenRevoke, map[string]string{"tokenId": id},
		func() (any, error) { return nil, s.tokens.Revoke(id) }); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("token revoked", "id", r.PathValue("id"), "by", p.User)
	writeJSON(w, 200, map[string]string{"revoked": r.PathValue("id")})
}

// actionList names the actions a ledger query may select.
func actionList() string {
	names := make([]string, len(control.RecordedActions))
	for i, a := range control.RecordedActions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

func tokenInfo(in auth.TokenInfo) api.TokenInfo {
	return api.TokenInfo{ID: in.ID, User: in.User, Role: string(in.Role), Created: in.Created, Expires: in.Expires}
}
