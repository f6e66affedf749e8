package kubernetes

import (
	"context"
	"fmt"
	"iter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// metricsGroupVersion is the API StreamMetrics reads.
const metricsGroupVersion = "metrics.k8s.io/v1beta1"

// StreamMetrics implements provider.Provider from the metrics.k8s.io API
// (Metrics Server): the PodMetrics of the service's pods, summed per
// sample. It asks every Options.MetricsInterval and yields a sample when
// Metrics Server has a newer window (and at once). CPU is in percent of
// one core; memory is the working set; NetRxBytes and NetTxBytes stay 0,
// because metrics.k8s.io has no network figures. A service with no pods
// yields samples with 0 instances. When the cluster does not serve
// metrics.k8s.io the stream ends with an Unavailable error that says so:
// no number is ever made up.
func (p *Provider) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		fail := func(err error) { yield(workload.MetricSample{}, err) }
		if err := workload.CheckName("name", name); err != nil {
			fail(err)
			return
		}
		if err := p.permitted(provider.OpStreamMetrics); err != nil {
			fail(err)
			return
		}
		if err := p.cache.waitSynced(ctx); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		if _, ok := p.cache.deployment(name); !ok {
			fail(notFound(name))
			return
		}
		sel := labels.Set(selector(p.target, name)).String()
		tick := time.NewTicker(p.opts.MetricsInterval.D())
		defer tick.Stop()
		var last time.Time
		first := true
		for {
			list, err := p.metrics.MetricsV1beta1().PodMetricses(p.opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				fail(p.metricsError(err))
				return
			}
			s, newest := p.aggregate(name, list.Items)
			if first || len(list.Items) == 0 || newest.After(last) {
				first = false
				last = newest
				if !yield(s, nil) {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-p.ctx.Done():
				fail(provider.Wrap(Name, p.classified, errClosed, ""))
				return
			case <-tick.C:
			}
		}
	}
}

// aggregate sums the PodMetrics of one service into a sample, and returns
// the newest window's time.
func (p *Provider) aggregate(name string, items []metricsv1beta1.PodMetrics) (workload.MetricSample, time.Time) {
	s := workload.MetricSample{Service: name, Instances: len(items)}
	limits := map[string]int64{}
	for _, pod := range p.cache.podsOf(name) {
		limits[pod.Name] = memoryLimit(pod)
	}
	var newest time.Time
	for _, pm := range items {
		if pm.Timestamp.After(newest) {
			newest = pm.Timestamp.Time
		}
		if w := workload.Duration(pm.Window.Duration); w > s.Resolution {
			s.Resolution = w
		}
		for _, c := range pm.Containers {
			if q, ok := c.Usage[corev1.ResourceCPU]; ok {
				s.CPUPercent += float64(q.MilliValue()) / 10
			}
			if q, ok := c.Usage[corev1.ResourceMemory]; ok && q.Value() > 0 {
				s.MemoryBytes += uint64(q.Value())
			}
		}
		if l := limits[pm.Name]; l > 0 {
			s.MemoryLimitBytes += uint64(l)
		}
	}
	s.Time = newest.UTC()
	if len(items) == 0 {
		s.Time = time.Now().UTC()
	}
	return s, newest
}

func memoryLimit(pod *corev1.Pod) int64 {
	var n int64
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			n += q.Value()
		}
	}
	return n
}

// metricsError explains a failed PodMetrics list. 404 (no such API) and
// 503 (an APIService whose backend is down) mean the cluster does not
// serve metrics.k8s.io.
func (p *Provider) metricsError(err error) error {
	if !metricsAPIAbsent(err) {
		return provider.Wrap(Name, p.classified, err, "list pod metrics")
	}
	why := p.noMetricsReason()
	p.setMetricsAbsent(why)
	e := provider.Errorf(Name, workload.Unavailable, "%s", why)
	e.Err = fmt.Errorf("%w: %v", errNoMetricsAPI, err)
	return e
}

// metricsAPIAbsent reports whether err is the API server saying it does
// not serve metrics.k8s.io: 404, or 503 from an APIService whose backend
// is missing.
func metricsAPIAbsent(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsServiceUnavailable(err)
}

func (p *Provider) noMetricsReason() string {
	return fmt.Sprintf("the cluster at %s does not serve %s: Metrics Server is not installed (or its APIService is unavailable), so there are no metrics to stream", p.host, metricsGroupVersion)
}

func (p *Provider) setMetricsAbsent(why string) {
	p.metricsMu.Lock()
	p.metricsAbsent = why
	p.metricsMu.Unlock()
}

// watchMetricsAPI keeps UnsupportedReason's answer for stream_metrics
// current: it asks the API server whether it serves metrics.k8s.io now,
// then every 30 seconds.
func (p *Provider) watchMetricsAPI(ctx context.Context) {
	for {
		p.checkMetricsAPI(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(30 * time.Second):
		}
	}
}

// checkMetricsAPI asks discovery for metrics.k8s.io/v1beta1. An answer
// other than yes or no (the API server is unreachable) changes nothing.
func (p *Provider) checkMetricsAPI(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if rc := p.kube.Discovery().RESTClient(); rc != nil {
		err = rc.Get().AbsPath("/apis/" + metricsGroupVersion).Do(ctx).Error()
	} else {
		_, err = p.kube.Discovery().ServerResourcesForGroupVersion(metricsGroupVersion)
	}
	switch {
	case err == nil:
		p.setMetricsAbsent("")
	case metricsAPIAbsent(err):
		p.setMetricsAbsent(p.noMetricsReason())
	}
}
