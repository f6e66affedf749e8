package dashboard

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/alphaswarm/controller/workload"
)

// apiClient calls the /v1 API in process on behalf of one browser request,
// with that request's Authorization header: the API authenticates and
// authorises every call exactly as if the browser had made it.
type apiClient struct {
	h      http.Handler
	ctx    context.Context
	authz  string
	remote string
}

func (d *Dashboard) client(r *http.Request) (*apiClient, error) {
	h := d.api
	if h == nil {
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
			h = srv.Handler
		}
	}
	if h == nil {
		return nil, workload.Errorf(workload.Internal, "the dashboard has no API to call")
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, workload.Errorf(workload.Unauthenticated, "sign in first: the dashboard sends your token in the Authorization header")
	}
	return &apiClient{h: h, ctx: r.Context(), authz: authz, remote: r.RemoteAddr}, nil
}

// get calls GET path?query and decodes the envelope's data into out.
func (c *apiClient) get(path string, query url.Values, out any) error {
	return c.call(http.MethodGet, path, query, out)
}

// call calls method path?query without a body (the dashboard's fragments
// only read: GET, and POST .../diff?revision=N) and decodes the
// envelope's data into out.
func (c *apiClient) call(method, path string, query url.Values, out any) error {
	u := path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(c.ctx, method, u, http.NoBody) // a server's request always has a Body
	if err != nil {
		return workload.Errorf(workload.InvalidArgument, "bad API path %q", path)
	}
	req.Header.Set("Authorization", c.authz)
	req.Header.Set("Accept", "application/json")
	req.RemoteAddr = c.remote
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	c.h.ServeHTTP(rec, req)
	if ct := rec.header.Get("Content-Type"); ct != "" && !bytes.HasPrefix([]byte(ct), []byte("application/json")) {
		return workload.Errorf(workload.Internal, "%s %s answered %d %s, not JSON", method, path, rec.status, ct)
	}
	return workload.DecodeEnvelope(rec.body.Bytes(), out)
}

// recorder is the in-process ResponseWriter for API calls.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// writeError answers a fragment request with the API's error envelope and
// status, so the page handles both alike.
func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Cache-Control", "no-store")
	workload.WriteError(w, err)
}
