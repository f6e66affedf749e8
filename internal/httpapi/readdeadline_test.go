package httpapi_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/provider"
)

// TestLongOperationOutlivesTheReadTimeout: the read timeout bounds reading
// a request, not answering it. An operation that takes longer than it —
// a restart or a scale waiting for its rollout, with or without a body —
// completes; before, net/http's background read hit the deadline and
// cancelled the request's context, so the operation failed with
// "context canceled" (seen on a loaded machine in e2e's restart).
func TestLongOperationOutlivesTheReadTimeout(t *testing.T) {
	const readTimeout = 200 * time.Millisecond
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.ReadTimeout = readTimeout })
	f.deploy(t, "web", 1)
	f.mem.Enter = func(ctx context.Context, op provider.Operation, _ string) error {
		select {
		case <-time.After(4 * readTimeout):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/targets/local/services/web/restart", ""},
		{"POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`},
	} {
		if r := f.call(t, "operator", c.method, c.path, c.body, "Content-Type", "application/json"); r.status != 200 {
			t.Errorf("%s %s taking %v (read timeout %v): %d %s", c.method, c.path, 4*readTimeout, readTimeout, r.status, r.raw)
		}
	}
}
