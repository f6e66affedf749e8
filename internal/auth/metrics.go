package auth

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Statuses reports every OIDC issuer's state (for /readyz).
func (a *Authenticator) Statuses() []Status {
	out := []Status{}
	for _, o := range a.AllIssuers() {
		out = append(out, o.Status())
	}
	return out
}

// Close stops the issuers' background discovery.
func (a *Authenticator) Close() {
	for _, o := range a.AllIssuers() {
		o.Close()
	}
}

var (
	issuerUpDesc = prometheus.NewDesc("alphaswarm_oidc_issuer_up",
		"1 when the OIDC issuer is discovered and its last JWKS fetch succeeded, 0 otherwise.", []string{"issuer", "state"}, nil)
	jwksFetchesDesc = prometheus.NewDesc("alphaswarm_oidc_jwks_fetches_total",
		"JWKS fetch attempts per OIDC issuer.", []string{"issuer"}, nil)
	keysAgeDesc = prometheus.NewDesc("alphaswarm_oidc_keys_fetched_timestamp_seconds",
		"When the OIDC issuer's signing keys were last fetched (Unix time; 0: never).", []string{"issuer"}, nil)
)

// Collector exports the OIDC issuers' state to Prometheus.
func (a *Authenticator) Collector() prometheus.Collector { return collector{a} }

type collector struct{ a *Authenticator }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- issuerUpDesc
	ch <- jwksFetchesDesc
	ch <- keysAgeDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.a.Statuses() {
		up := 0.0
		if st.State == "ok" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(issuerUpDesc, prometheus.GaugeValue, up, st.Issuer, st.State)
		ch <- prometheus.MustNewConstMetric(jwksFetchesDesc, prometheus.CounterValue, float64(st.JWKSFetches), st.Issuer)
		ts := 0.0
		if !st.KeysFetched.IsZero() {
			ts = float64(st.KeysFetched.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(keysAgeDesc, prometheus.GaugeValue, ts, st.Issuer)
	}
}
