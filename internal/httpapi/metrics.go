package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	_ control.Observer     = (*Metrics)(nil)
	_ control.DiffObserver = (*Metrics)(nil)
)

// Metrics holds the Prometheus collectors of the control plane. It
// implements control.Observer and control.DiffObserver.
type Metrics struct {
	reg         *prometheus.Registry
	ops         *prometheus.CounterVec
	opLatency   *prometheus.HistogramVec
	ledgerAdd   prometheus.Histogram
	ledgerFails prometheus.Counter
	diffRefused *prometheus.CounterVec
	streams     *prometheus.GaugeVec
	streamDur   *prometheus.HistogramVec
	httpReqs    *prometheus.CounterVec
	httpLatency *prometheus.HistogramVec
}

// NewMetrics builds the collectors on a fresh registry (with the Go and
// process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alphaswarm_operations_total",
			Help: "Mutating workload operations by action, provider and outcome."}, []string{"action", "provider", "outcome"}),
		opLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "alphaswarm_operation_duration_seconds",
			Help: "Provider call latency of mutating operations.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12)},
			[]string{"action", "provider"}),
		ledgerAdd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "alphaswarm_ledger_append_duration_seconds",
			Help: "Durable ledger append latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)}),
		ledgerFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "alphaswarm_ledger_append_failures_total",
			Help: "Ledger appends that failed (operations refused or results left open)."}),
		diffRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alphaswarm_diff_admission_refused_total",
			Help: "Diffs (dry runs, no ledger row) whose admission verdict was refused, by target and error code."},
			[]string{"target", "code"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "alphaswarm_open_streams",
			Help: "Open client streams by kind (metrics, logs, services, exec)."}, []string{"kind"}),
		// Streams last seconds to hours: they have their own histogram and
		// stay out of the request latency one, whose buckets end at 10 s.
		streamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "alphaswarm_stream_duration_seconds",
			Help:    "How long client streams (SSE, exec WebSocket) stayed open, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}, []string{"kind"}),
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alphaswarm_http_requests_total",
			Help: "HTTP requests by route and status."}, []string{"route", "status"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "alphaswarm_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.DefBuckets}, []string{"route"}),
	}
	m.reg.MustRegister(m.ops, m.opLatency, m.ledgerAdd, m.ledgerFails, m.diffRefused, m.streams, m.streamDur, m.httpReqs, m.httpLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry exposes the registry for additional collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Operation implements control.Observer.
func (m *Metrics) Operation(action workload.Action, providerName string, outcome ledger.Outcome, d time.Duration) {
	m.ops.WithLabelValues(string(action), providerName, string(outcome)).Inc()
	if d > 0 {
		m.opLatency.WithLabelValues(string(action), providerName).Observe(d.Seconds())
	}
}

// LedgerAppend implements control.Observer.
func (m *Metrics) LedgerAppend(d time.Duration, err error) {
	m.ledgerAdd.Observe(d.Seconds())
	if err != nil {
		m.ledgerFails.Inc()
	}
}

// DiffRefused implements control.DiffObserver.
func (m *Metrics) DiffRefused(target string, code workload.Code) {
	m.diffRefused.WithLabelValues(target, string(code)).Inc()
}

func (m *Metrics) streamOpened(kind string) func() {
	if m == nil {
		return func() {}
	}
	g := m.streams.WithLabelValues(kind)
	g.Inc()
	start := time.Now()
	return func() {
		m.streamDur.WithLabelValues(kind).Observe(time.Since(start).Seconds())
		g.Dec() // after the duration: a stream shown closed has its duration recorded
	}
}

// request counts a request; its latency goes into the request histogram
// unless it became a stream (alphaswarm_stream_duration_seconds has those).
func (m *Metrics) request(route string, status int, d time.Duration, stream bool) {
	m.httpReqs.WithLabelValues(route, strconv.Itoa(status)).Inc()
	if !stream {
		m.httpLatency.WithLabelValues(route).Observe(d.Seconds())
	}
}

func (s *Server) prometheus(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	if s.metrics == nil {
		writeError(w, workload.Errorf(workload.Unsupported, "metrics are not enabled"))
		return
	}
	s.metrics.Handler().ServeHTTP(w, r)
}
