package azure

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// The Azure Monitor metrics of Microsoft.ContainerInstance/containerGroups
// that StreamMetrics reads (aggregation Average).
const (
	metricCPU   = "CpuUsage"                         // millicores
	metricMem   = "MemoryUsage"                      // bytes
	metricNetRx = "NetworkBytesReceivedPerSecond"    // bytes/s
	metricNetTx = "NetworkBytesTransmittedPerSecond" // bytes/s
)

// isoDuration formats d as an ISO 8601 duration as Azure Monitor takes it
// ("PT1M"; fractions of seconds only for the in-process fake).
func isoDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("PT%dH", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("PT%dM", d/time.Minute)
	}
	return fmt.Sprintf("PT%gS", d.Seconds())
}

// StreamMetrics implements provider.Provider: every metricsInterval it
// asks Azure Monitor for the running groups' metrics over the last five
// intervals at that granularity and yields one sample when a newer point
// than the last one yielded exists.
func (p *Provider) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		if err := p.permitted(provider.OpStreamMetrics); err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		var last time.Time
		for {
			s, ok, err := p.sample(ctx, name, last)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				yield(workload.MetricSample{}, err)
				return
			}
			if ok {
				last = s.Time
				if !yield(s, nil) {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.opts.MetricsInterval.D()):
			}
		}
	}
}

// sample reads one window; ok is false when no group has a point newer
// than after.
func (p *Provider) sample(ctx context.Context, name string, after time.Time) (workload.MetricSample, bool, error) {
	groups, err := p.existing(ctx, name)
	if err != nil {
		return workload.MetricSample{}, false, err
	}
	every := p.opts.MetricsInterval.D()
	end := p.now().UTC()
	start := end.Add(-5 * every)
	s := workload.MetricSample{Service: workload.ServiceID(p.target, name), Resolution: workload.Duration(every),
		Extra: map[string]float64{}}
	var newest time.Time
	for _, g := range groups {
		if g.stopped() || g.cg.ID == nil {
			continue
		}
		resp, err := p.metrics.List(ctx, strings.TrimPrefix(*g.cg.ID, "/"), &armmonitor.MetricsClientListOptions{
			Metricnames: to.Ptr(strings.Join([]string{metricCPU, metricMem, metricNetRx, metricNetTx}, ",")),
			Aggregation: to.Ptr("Average"),
			Interval:    to.Ptr(isoDuration(every)),
			Timespan:    to.Ptr(start.Format(time.RFC3339Nano) + "/" + end.Format(time.RFC3339Nano)),
		})
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return workload.MetricSample{}, false, mapErr("Azure Monitor metrics of "+g.name, err)
		}
		got := false
		for _, m := range resp.Value {
			if m == nil || m.Name == nil {
				continue
			}
			t, v, ok := latest(m)
			if !ok {
				continue
			}
			got = true
			if t.After(newest) {
				newest = t
			}
			switch str(m.Name.Value) {
			case metricCPU:
				s.CPUPercent += v / 10 // millicores; 100 = one core
			case metricMem:
				s.MemoryBytes += uint64(v)
			case metricNetRx:
				s.NetRxBytes += uint64(v * every.Seconds())
				s.Extra["netRxBytesPerSecond"] += v
			case metricNetTx:
				s.NetTxBytes += uint64(v * every.Seconds())
				s.Extra["netTxBytesPerSecond"] += v
			}
		}
		if got {
			s.Instances++
			if c := g.container(); c != nil && c.Resources != nil && c.Resources.Requests != nil {
				s.MemoryLimitBytes += uint64(deref(c.Resources.Requests.MemoryInGB) * (1 << 30))
			}
		}
	}
	if s.Instances == 0 || !newest.After(after) {
		return workload.MetricSample{}, false, nil
	}
	s.Time = newest
	return s, true, nil
}

// latest returns the newest point with an average of a metric.
func latest(m *armmonitor.Metric) (time.Time, float64, bool) {
	var t time.Time
	var v float64
	ok := false
	for _, ts := range m.Timeseries {
		if ts == nil {
			continue
		}
		for _, d := range ts.Data {
			if d == nil || d.Average == nil || d.TimeStamp == nil {
				continue
			}
			if !ok || d.TimeStamp.After(t) {
				t, v, ok = *d.TimeStamp, *d.Average, true
			}
		}
	}
	return t, v, ok
}
