package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/alphaswarm/controller/internal/config"
)

//go:embed web
var webFS embed.FS

// ContentSecurityPolicy is sent with every dashboard response: nothing but
// the dashboard's own origin, no inline script or style, images also as
// data: URLs (the favicon).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configures the dashboard.
type Options struct {
	// API serves the /v1 routes, called in process by the fragment routes
	// with the caller's Authorization header. Nil: the handler of the
	// http.Server the request arrived on (http.ServerContextKey), which is
	// the API's mux when the dashboard is mounted through
	// httpapi.Options.Extra.
	API http.Handler
	// OIDC, when set with a ClientID, adds the authorization-code + PKCE
	// sign-in. Issuer and Audience are the ones the API verifies tokens
	// against.
	OIDC *config.OIDC
	// HTTPClient reaches the OIDC issuer (discovery, token endpoint);
	// default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Dashboard serves the pages, assets and fragments.
type Dashboard struct {
	api    http.Handler
	log    *slog.Logger
	oidc   *oidcClient
	pages  map[string]*template.Template
	frags  *template.Template
	assets map[string]asset
	// version changes with any asset; it is appended to asset URLs in the
	// page shells so that a new binary is never served stale scripts.
	version string
}

type asset struct {
	body        []byte
	etag, ctype string
}

// Routes returns the dashboard's handlers keyed by http.ServeMux pattern,
// for httpapi.Options.Extra.
func Routes(o Options) map[string]http.Handler { return New(o).Routes() }

// New builds the dashboard; it panics if the embedded templates do not
// parse (a build defect, caught by the tests).
func New(o Options) *Dashboard {
	d := &Dashboard{api: o.API, log: o.Logger, pages: map[string]*template.Template{}, assets: map[string]asset{}}
	if d.log == nil {
		d.log = slog.Default()
	}
	if o.OIDC != nil && o.OIDC.ClientID != "" && o.OIDC.Issuer != "" {
		hc := o.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		d.oidc = &oidcClient{issuer: o.OIDC.Issuer, clientID: o.OIDC.ClientID, audience: o.OIDC.Audience, http: hc}
	}
	d.loadAssets()
	d.loadTemplates()
	return d
}

// Routes returns the handlers keyed by http.ServeMux pattern.
func (d *Dashboard) Routes() map[string]http.Handler {
	m := map[string]http.Handler{
		"GET /{$}":                                        d.page("services"),
		"GET /targets":                                    d.page("targets"),
		"GET /services/{target}/{service}":                d.page("service"),
		"GET /ledger":                                     d.page("ledger"),
		"GET /signin":                                     d.page("signin"),
		"GET /signin/callback":                            d.page("signin"),
		"GET /ui/assets/{name}":                           http.HandlerFunc(d.serveAsset),
		"GET /ui/frag/services":                           d.fragment("frag-services", d.loadServices),
		"GET /ui/frag/targets":                            d.fragment("frag-targets", d.loadTargets),
		"GET /ui/frag/service/{target}/{service}":         d.fragment("frag-service", d.loadService),
		"GET /ui/frag/service/{target}/{service}/actions": d.fragment("frag-actions", d.loadActions),
		"GET /ui/frag/service/{target}/{service}/runs":    d.fragment("frag-runs", d.loadServiceRuns),
		"GET /ui/frag/service/{target}/{service}/history": d.fragment("frag-history", d.loadHistory),
		"GET /ui/frag/service/{target}/{service}/diff":    d.fragment("frag-diff", d.loadDiff),
		"GET /ui/frag/ledger":                             d.fragment("frag-ledger", d.loadLedger),
		"GET /ui/oidc/authorize":                          http.HandlerFunc(d.oidcAuthorize),
		"POST /ui/oidc/token":                             http.HandlerFunc(d.oidcToken),
	}
	for p, h := range m {
		m[p] = secure(h)
	}
	return m
}

// secure adds the security headers every dashboard response carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

func (d *Dashboard) loadAssets() {
	sum := sha256.New()
	err := fs.WalkDir(webFS, "web/static", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := webFS.ReadFile(p)
		if err != nil {
			return err
		}
		h := sha256.Sum256(b)
		sum.Write(h[:])
		d.assets[path.Base(p)] = asset{body: b, etag: `"` + hex.EncodeToString(h[:8]) + `"`, ctype: contentType(p)}
		return nil
	})
	if err != nil {
		panic("dashboard: embedded assets: " + err.Error())
	}
	d.version = hex.EncodeToString(sum.Sum(nil))[:12]
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

// serveAsset serves an embedded file. Assets are revalidated on each use
// (ETag): module imports carry no version, and a loopback 304 is cheap.
func (d *Dashboard) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := d.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", a.etag)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Write(a.body)
}

var funcs = template.FuncMap{
	"phaseClass": func(p any) string { return "phase-" + strings.ToLower(fmt.Sprint(p)) },
	"ts":         formatTime,
	"iso":        isoTime,
	"short":      shortRun,
	"dur":        formatDuration,
	"bytes":      formatBytes,
	"pretty":     prettyJSON,
	"join":       strings.Join,
	"deref":      func(b *bool) bool { return b != nil && *b },
}

func (d *Dashboard) loadTemplates() {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(webFS, "web/templates/layout.html", "web/templates/fragments.html"))
	for _, name := range []string{"services", "targets", "service", "ledger", "signin"} {
		t := template.Must(template.Must(base.Clone()).ParseFS(webFS, "web/templates/"+name+".html"))
		d.pages[name] = t
	}
	d.frags = base
}

// pageData is what a page shell is rendered with.
type pageData struct {
	Page, Title, Version string
	// Target and Service name the service page's service.
	Target, Service string
	// OIDC is set when the sign-in page offers the OIDC flow.
	OIDC       bool
	OIDCIssuer string
}

var titles = map[string]string{"services": "Services", "targets": "Targets", "service": "Service",
	"ledger": "Ledger", "signin": "Sign in"}

// page renders a page shell. Shells hold no data: the scripts fetch it
// with the token the browser keeps.
func (d *Dashboard) page(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := pageData{Page: name, Title: titles[name], Version: d.version}
		if name == "service" {
			data.Target, data.Service = r.PathValue("target"), r.PathValue("service")
			data.Title = data.Service + " · " + data.Target
		}
		if d.oidc != nil {
			data.OIDC, data.OIDCIssuer = true, d.oidc.issuer
		}
		var buf bytes.Buffer
		if err := d.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
			d.log.Error("dashboard: rendering page", "page", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(buf.Bytes())
	})
}
