// Package httpapi is the control plane's HTTP API under /v1: JSON
// envelopes, bearer/OIDC authentication, role checks, SSE streams for
// metrics and logs, WebSocket exec, the OpenAPI document, health and
// Prometheus metrics. Every operation goes through control.Runtime; this
// package never touches a provider or the ledger directly.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/internal/auth"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// Authenticator identifies the caller of a request. Failures are
// Unauthenticated errors.
type Authenticator interface {
	Authenticate(r *http.Request) (control.Principal, error)
}

// TokenAdmin manages bearer tokens (the admin's /v1/tokens routes).
type TokenAdmin interface {
	Create(user string, role auth.Role, ttl time.Duration) (token string, info auth.TokenInfo, err error)
	List() []auth.TokenInfo
	Revoke(id string) error
}

// Options configures a Server.
type Options struct {
	Runtime *control.Runtime
	Auth    Authenticator
	Tokens  TokenAdmin // may be nil: the token routes answer unsupported
	Logger  *slog.Logger
	Metrics *Metrics // may be nil
	// MaxBodyBytes bounds request bodies; default 1 MiB.
	MaxBodyBytes int64
	// Ready reports extra readiness problems (targets that do not answer).
	Ready func(ctx context.Context) []string
	// AuthStatus reports the OIDC issuers' state for /readyz (shown, never
	// making the server unready).
	AuthStatus func() []auth.Status
	// WriteTimeout bounds each write to a client, so a slow client cannot
	// pin a handler; default 10s.
	WriteTimeout time.Duration
	// ReadTimeout bounds reading a request's body (and discarding what a
	// handler did not read), counted from when its headers were read, on
	// every route but the streams (SSE, WebSocket), which clear it; default
	// 10s. The http.Server's ReadHeaderTimeout bounds the headers.
	ReadTimeout time.Duration
	// MaxStreamsPerPrincipal caps the SSE and WebSocket streams one user
	// holds open at once; more are refused with rate_limited (429).
	// Default 32.
	MaxStreamsPerPrincipal int
	// Extra routes registered on the same mux (the dashboard), served
	// without authentication: they must authenticate through the API.
	Extra map[string]http.Handler
}

// Server serves the API.
type Server struct {
	rt       *control.Runtime
	auth     Authenticator
	tokens   TokenAdmin
	log      *slog.Logger
	metrics  *Metrics
	maxBody  int64
	ready    func(ctx context.Context) []string
	wtimeout time.Duration
	rtimeout time.Duration
	mux      *http.ServeMux
	root     http.Handler
	routes   []route

	authStatus func() []auth.Status // OIDC issuers for /readyz

	streamsCtx    context.Context
	cancelStreams context.CancelFunc
	inflight      sync.WaitGroup
	draining      atomic.Bool

	maxStreams int
	streamsMu  sync.Mutex
	streams    map[string]int // open streams per user
}

type route struct {
	method, pattern string
	need            auth.Role       // "" = no authentication
	action          workload.Action // audited action for denials; "" for reads
	h               func(w http.ResponseWriter, r *http.Request, p control.Principal)
}

// scoped are the routes naming no target whose need is met by the role on
// every target or by a grant on at least one: their handlers show only the
// targets the principal's roles cover (viewable), so a principal with
// grants on some targets only can ask who it is and list what it may see,
// its targets' ledger records included. Verify and the halt switches are
// not scoped: they answer for every target.
var scoped = map[string]bool{"GET /v1/whoami": true, "GET /v1/targets": true, "GET /v1/services": true,
	"GET /v1/services/events": true, "GET /v1/runs": true}

// New builds the server and its routes.
func New(o Options) *Server {
	s := &Server{rt: o.Runtime, auth: o.Auth, tokens: o.Tokens, log: o.Logger, metrics: o.Metrics,
		maxBody: o.MaxBodyBytes, ready: o.Ready, authStatus: o.AuthStatus, wtimeout: o.WriteTimeout, rtimeout: o.ReadTimeout,
		mux: http.NewServeMux(), maxStreams: o.MaxStreamsPerPrincipal, streams: map[string]int{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody == 0 {
		s.maxBody = 1 << 20
	}
	if s.wtimeout == 0 {
		s.wtimeout = 10 * time.Second
	}
	if s.rtimeout == 0 {
		s.rtimeout = 10 * time.Second
	}
	if s.maxStreams == 0 {
		s.maxStreams = 32
	}
	s.streamsCtx, s.cancelStreams = context.WithCancel(context.Background())
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		closeUnreadBody(w, r)
		writeError(w, workload.Errorf(workload.NotFound, "no route %s %s (see /v1/openapi.json)", r.Method, r.URL.Path))
	})
	for pattern, h := range o.Extra {
		s.mux.Handle(pattern, h)
	}
	s.root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every request body is read against a deadline, so a client
		// trickling one (authenticated or not) is answered or cut off
		// instead of holding a goroutine and a socket. The deadline ends
		// with the body: once it is read (or when there is none), net/http
		// watches the idle connection to notice a client that goes, and a
		// deadline still set there would cancel the request's context in
		// the middle of an operation longer than it. Streams clear it too.
		s.bodyDeadline(w, r)
		if s.methodNotAllowed(w, r) {
			return
		}
		s.mux.ServeHTTP(w, r)
	})
	return s
}

// bodyDeadline sets the read deadline for r's body and clears it when the
// body has been read to its end; a request without a body gets none.
func (s *Server) bodyDeadline(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.rtimeout))
	r.Body = &deadlineBody{ReadCloser: r.Body, clear: sync.OnceFunc(func() { _ = rc.SetReadDeadline(time.Time{}) })}
}

// deadlineBody clears the read deadline when its body ends.
type deadlineBody struct {
	io.ReadCloser
	clear func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.clear()
	}
	return n, err
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.root }

// closeUnreadBody marks the connection to close after a response that is
// sent before (or instead of) reading the request's body: net/http would
// otherwise read up to 256 KiB of it before sending the answer.
func closeUnreadBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// openStream counts a stream of p's and clears the request's read
// deadline (a stream reads nothing more, or reads WebSocket frames for as
// long as it lasts). It refuses with rate_limited when p already holds
// MaxStreamsPerPrincipal streams. Call the returned function when the
// stream ends.
func (s *Server) openStream(w http.ResponseWriter, p control.Principal) (func(), error) {
	s.streamsMu.Lock()
	if s.streams[p.User] >= s.maxStreams {
		s.streamsMu.Unlock()
		return nil, workload.Errorf(workload.RateLimited,
			"user %q already has %d streams open (the most allowed); close one and retry", p.User, s.maxStreams)
	}
	s.streams[p.User]++
	s.streamsMu.Unlock()
	if sw, ok := w.(*statusWriter); ok {
		sw.stream = true
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		if s.streams[p.User]--; s.streams[p.User] <= 0 {
			delete(s.streams, p.User)
		}
	}, nil
}

// Drain ends every open stream and waits for in-flight mutating requests
// until ctx ends. Call it before http.Server.Shutdown.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	s.cancelStreams()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("panic in handler", "route", rt.pattern, "panic", v)
				if !sw.wrote {
					writeError(sw, workload.Errorf(workload.Internal, "internal error"))
				}
			}
			if s.metrics != nil {
				s.metrics.request(rt.method+" "+rt.pattern, sw.status, time.Since(start), sw.stream)
			}
		}()
		r.Body = http.MaxBytesReader(sw, r.Body, s.maxBody)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		var p control.Principal
		if rt.need != "" {
			var err error
			p, err = s.auth.Authenticate(r)
			if err != nil {
				closeUnreadBody(sw, r)
				writeError(sw, err)
				return
			}
			if !allowed(p, rt, r.PathValue("target")) {
				closeUnreadBody(sw, r)
				err := auth.Denied(p, rt.need, r.PathValue("target"))
				if rt.action != "" {
					_ = s.rt.Reject(r.Context(), p, rt.action, r.PathValue("target"), r.PathValue("service"), err)
				}
				writeError(sw, err)
				return
			}
		}
		if rt.action != "" {
			if s.draining.Load() {
				writeError(sw, workload.Errorf(workload.Unavailable, "the server is shutting down; retry against another replica or after restart"))
				return
			}
			s.inflight.Add(1)
			defer s.inflight.Done()
		}
		rt.h(sw, r, p)
	})
}

// allowed reports whether p may use rt on target (the route's path
// value; "" when it names none).
func allowed(p control.Principal, rt route, target string) bool {
	if auth.RoleOn(p, target).Allows(rt.need) {
		return true
	}
	if scoped[rt.method+" "+rt.pattern] && target == "" {
		for t := range p.TargetRoles {
			if auth.RoleOn(p, t).Allows(rt.need) {
				return true
			}
		}
	}
	return false
}

// statusWriter remembers the status for metrics and passes Flush and
// deadlines through (http.ResponseController uses Unwrap).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	stream bool // the request became a stream (openStream)
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// writeJSON writes an OK envelope.
func writeJSON(w http.ResponseWriter, status int, data any) {
	b, err := json.Marshal(workload.OK(data))
	if err != nil {
		writeError(w, workload.Errorf(workload.Internal, "encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError writes an error envelope with the status its code implies.
func writeError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = workload.Invalid(workload.FieldError{Path: "body", Message: "is larger than the server accepts"})
	}
	// Causes are never serialised; the message is the caller's.
	workload.WriteError(w, err)
}

// readBody reads the (size-limited) body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, workload.Invalid(workload.FieldError{Path: "body", Message: "is larger than the server accepts"})
		}
		return nil, workload.Errorf(workload.InvalidArgument, "reading body: %v", err)
	}
	return b, nil
}

func isJSON(ct string) bool { return ct == "" || strings.Contains(ct, "json") }
