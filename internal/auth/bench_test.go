package auth

import (
	"context"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// BenchmarkUnavailableHangingJWKS measures how long a token that needs
// keys from an issuer whose JWKS never answers waits for its 503, as a
// multiple of FetchTimeout measured in the same run (main waited the HTTP
// client's 10 s and answered 401).
//
//	go test ./internal/auth -run '^$' -bench UnavailableHangingJWKS -benchtime 20x
func BenchmarkUnavailableHangingJWKS(b *testing.B) {
	is := newIssuer(b, "k1")
	const fetch = 50 * time.Millisecond
	o, err := NewOIDC(context.Background(), OIDCConfig{Issuer: is.srv.URL, Audience: testAudience, HTTPClient: is.srv.Client(),
		FetchTimeout: fetch, MinRefetch: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(o.Close)
	is.jwksMode.Store(2)
	tok := sign(b, "k1", is.claims(map[string]any{"roles": "viewer"}))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := o.Authenticate(context.Background(), tok); workload.CodeOf(err) != workload.Unavailable {
			b.Fatalf("want unavailable, got %v", err)
		}
	}
	b.ReportMetric(float64(time.Since(start))/float64(b.N)/float64(fetch), "fetchTimeouts/op")
}
