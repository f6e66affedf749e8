// Package client is the Go client of the alphaswarm HTTP API (/v1). The
// CLI uses it; so can any Go program. Every method returns the server's
// error envelope as a *workload.Error, so callers can branch on its code.
//
// It speaks only the wire contract (packages api and workload) and must not
// import the server's packages (control, ledger, internal/...): a program
// using it does not link the runtime.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Client talks to one server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client for server ("http://127.0.0.1:7070") authenticating
// with a bearer token.
func New(server, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, workload.Errorf(workload.InvalidArgument, "server %q: want http(s)://host:port", server)
	}
	return &Client{base: u, token: token, hc: &http.Client{}}, nil
}

type ctxKey int

const (
	idemKey ctxKey = iota
	waitKey
	reconnectKey
)

type waitOpt struct {
	wait    bool
	timeout time.Duration
}

// WithWait makes the mutating call (Deploy, Stop, Scale, Restart,
// ApplyConfig) made with ctx send the server's wait options: wait false
// returns as soon as the backend accepted the change (the result has
// NoWait set); timeout, when not 0, replaces the action's deadline.
func WithWait(ctx context.Context, wait bool, timeout time.Duration) context.Context {
	return context.WithValue(ctx, waitKey, waitOpt{wait: wait, timeout: timeout})
}

// WithIdempotencyKey makes the mutating call made with ctx send key as its
// Idempotency-Key.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idemKey, key)
}

func (c *Client) request(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Request, error) {
	u := *c.base
	u.Path += path
	if w, ok := ctx.Value(waitKey).(waitOpt); ok && method != "GET" {
		if q == nil {
			q = url.Values{}
		}
		if !w.wait {
			q.Set("wait", "false")
		}
		if w.timeout != 0 {
			q.Set("timeout", w.timeout.String())
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if k, ok := ctx.Value(idemKey).(string); ok && k != "" {
		req.Header.Set("Idempotency-Key", k)
	}
	return req, nil
}

// do sends a request and decodes the envelope's data into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in any, out any) error {
	var body io.Reader
	ct := ""
	switch v := in.(type) {
	case nil:
	case rawBody:
		body, ct = bytes.NewReader(v.b), v.contentType
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	req, err := c.request(ctx, method, path, q, body, ct)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return workload.Errorf(workload.Unavailable, "cannot reach the server at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return workload.Errorf(workload.Unavailable, "reading the server's answer: %w", err)
	}
	if err := workload.DecodeEnvelope(b, out); err != nil {
		var we *workload.Error
		if errors.As(err, &we) {
			return we
		}
		return workload.Errorf(workload.Internal, "HTTP %d from %s: not an alphaswarm envelope: %.200s", resp.StatusCode, c.base, b)
	}
	return nil
}

type rawBody struct {
	b           []byte
	contentType string
}

func svc(target, service string) string {
	return "/v1/targets/" + url.PathEscape(target) + "/services/" + url.PathEscape(service)
}

// WhoAmI returns the authenticated principal.
func (c *Client) WhoAmI(ctx context.Context) (api.Principal, error) {
	var p api.Principal
	return p, c.do(ctx, "GET", "/v1/whoami", nil, nil, &p)
}

// Targets lists the configured targets.
func (c *Client) Targets(ctx context.Context) ([]api.TargetInfo, error) {
	var ts []api.TargetInfo
	return ts, c.do(ctx, "GET", "/v1/targets", nil, nil, &ts)
}

// Services lists services, of one target or ("") of all.
func (c *Client) Services(ctx context.Context, target string) ([]workload.DeploymentStatus, error) {
	var sts []workload.DeploymentStatus
	q := url.Values{}
	if target != "" {
		q.Set("target", target)
	}
	return sts, c.do(ctx, "GET", "/v1/services", q, nil, &sts)
}

// Status returns one service's status.
func (c *Client) Status(ctx context.Context, target, service string) (workload.DeploymentStatus, error) {
	var st workload.DeploymentStatus
	return st, c.do(ctx, "GET", svc(target, service), nil, nil, &st)
}

// Deploy sends a spec document (YAML or JSON, as contentType says).
func (c *Client) Deploy(ctx context.Context, target string, spec []byte, contentType string) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "POST", "/v1/targets/"+url.PathEscape(target)+"/services", nil, rawBody{spec, contentType}, &res)
}

// Stop stops a service.
func (c *Client) Stop(ctx context.Context, target, service string) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "POST", svc(target, service)+"/stop", nil, nil, &res)
}

// Restart restarts a service.
func (c *Client) Restart(ctx context.Context, target, service string) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "POST", svc(target, service)+"/restart", nil, nil, &res)
}

// Scale sets a service's replica count.
func (c *Client) Scale(ctx context.Context, target, service string, replicas int) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "POST", svc(target, service)+"/scale", nil, api.ScaleRequest{Replicas: &replicas}, &res)
}

// ApplyConfig replaces a service's config.
func (c *Client) ApplyConfig(ctx context.Context, target, service string, config map[string]string) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "PUT", svc(target, service)+"/config", nil, api.ConfigRequest{Config: config}, &res)
}

// Exec runs a command to completion and returns its output.
func (c *Client) Exec(ctx context.Context, target, service string, req api.ExecRequest) (api.ExecResponse, error) {
	var res api.ExecResponse
	return res, c.do(ctx, "POST", svc(target, service)+"/exec", nil, req, &res)
}

// Runs queries the ledger.
func (c *Client) Runs(ctx context.Context, f api.RunsQuery) (api.RunsPage, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("service", f.Service)
	set("target", f.Target)
	set("user", f.User)
	set("action", f.Action)
	set("kind", f.Kind)
	set("outcome", f.Outcome)
	set("run", f.RunID)
	set("cursor", f.Cursor)
	if !f.Since.IsZero() {
		set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		set("until", f.Until.Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		set("limit", strconv.Itoa(f.Limit))
	}
	if f.Descending {
		set("order", "desc")
	}
	var page api.RunsPage
	return page, c.do(ctx, "GET", "/v1/runs", q, nil, &page)
}

// Verify checks the ledger chain on the server.
func (c *Client) Verify(ctx context.Context) (api.VerifyResult, error) {
	var v api.VerifyResult
	return v, c.do(ctx, "GET", "/v1/ledger/verify", nil, nil, &v)
}

// Halts returns the halt switches.
func (c *Client) Halts(ctx context.Context) (api.HaltState, error) {
	var h api.HaltState
	return h, c.do(ctx, "GET", "/v1/halt", nil, nil, &h)
}

// SetHalt turns a halt switch on or off; target "" is global.
func (c *Client) SetHalt(ctx context.Context, target string, on bool) (api.Result, error) {
	var res api.Result
	return res, c.do(ctx, "PUT", "/v1/halt", nil, api.HaltRequest{On: &on, Target: target}, &res)
}

// CreateToken creates a bearer token; the token is shown only here.
func (c *Client) CreateToken(ctx context.Context, user, role string, ttl time.Duration) (api.TokenResponse, error) {
	var res api.TokenResponse
	return res, c.do(ctx, "POST", "/v1/tokens", nil, api.TokenRequest{User: user, Role: role, TTL: workload.Duration(ttl)}, &res)
}

// Tokens lists bearer tokens.
func (c *Client) Tokens(ctx context.Context) ([]api.TokenInfo, error) {
	var ts []api.TokenInfo
	return ts, c.do(ctx, "GET", "/v1/tokens", nil, nil, &ts)
}

// RevokeToken revokes a bearer token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
}

// Metrics streams a service's metrics until ctx ends or the caller stops.
func (c *Client) Metrics(ctx context.Context, target, service string) iter.Seq2[workload.MetricSample, error] {
	var last time.Time
	return stream(c, ctx, svc(target, service)+"/metrics", nil, "sample", resume[workload.MetricSample]{
		fresh: func(s workload.MetricSample) bool {
			if !s.Time.After(last) && !last.IsZero() {
				return false
			}
			last = s.Time
			return true
		},
	})
}

// Logs streams a service's logs.
func (c *Client) Logs(ctx context.Context, target, service string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	q := url.Values{}
	q.Set("tail", strconv.Itoa(opts.Tail))
	if opts.Follow {
		q.Set("follow", "true")
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.Format(time.RFC3339Nano))
	}
	if !opts.Follow {
		return stream(c, ctx, svc(target, service)+"/logs", q, "line", resume[workload.LogLine]{})
	}
	// Resumed from the earliest of the instances' last line times, every
	// line since; per instance (an instance's lines are in time order, the
	// merged stream's are not), lines older than its last one, or of the
	// same instant and already yielded, are skipped.
	type position struct {
		last time.Time
		seen map[workload.LogLine]bool
	}
	pos := map[string]*position{}
	return stream(c, ctx, svc(target, service)+"/logs", q, "line", resume[workload.LogLine]{
		query: func(first url.Values) url.Values {
			var since time.Time
			for _, p := range pos {
				if since.IsZero() || p.last.Before(since) {
					since = p.last
				}
			}
			if since.IsZero() {
				return first
			}
			return url.Values{"follow": {"true"}, "tail": {"-1"}, "since": {since.Format(time.RFC3339Nano)}}
		},
		fresh: func(l workload.LogLine) bool {
			if l.Time.IsZero() {
				return true // no time: cannot tell
			}
			p := pos[l.Instance]
			if p == nil {
				p = &position{seen: map[workload.LogLine]bool{}}
				pos[l.Instance] = p
			}
			switch {
			case l.Time.Before(p.last):
				return false
			case l.Time.After(p.last):
				p.last = l.Time
				clear(p.seen)
			}
			if p.seen[l] {
				return false
			}
			p.seen[l] = true
			return true
		},
	})
}

// ServiceEvents streams every service's status, then each change. The
// stream ends at the first error the server reports.
func (c *Client) ServiceEvents(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error] {
	last := map[string]string{}
	return stream(c, ctx, "/v1/services/events", nil, "status", resume[workload.DeploymentStatus]{
		fresh: func(st workload.DeploymentStatus) bool {
			st.ObservedAt = time.Time{}
			b, _ := json.Marshal(st)
			if last[st.ID] == string(b) {
				return false
			}
			last[st.ID] = string(b)
			return true
		},
	})
}
