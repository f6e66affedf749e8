package gcp

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Cloud Monitoring metric types read by StreamMetrics.
const (
	metricInstances = "run.googleapis.com/container/instance_count"
	metricRequests  = "run.googleapis.com/request_count"
	metricCPU       = "run.googleapis.com/container/cpu/utilizations"
	metricMemory    = "run.googleapis.com/container/memory/utilizations"
)

// Cloud Run defaults when the container sets no limit.
const (
	defaultMilliCPU    = 1000
	defaultMemoryBytes = 512 << 20
)

// metricsLag is how late Cloud Monitoring shows Cloud Run's points: "data
// is not visible for up to 180 seconds" after sampling, up to 240 for some
// Google Cloud metrics (cloud.google.com/monitoring/api/metrics_gcp;
// "Retention and latency of metric data").
const metricsLag = 240 * time.Second

// metricsWindow is how far back a sample looks: the visibility delay plus
// two periods, and at least five periods.
func metricsWindow(period time.Duration) time.Duration {
	return max(metricsLag+2*period, 5*period)
}

// StreamMetrics implements provider.Provider. Every MetricsPeriod it asks
// Cloud Monitoring for each series over metricsWindow (the visibility
// delay of Cloud Monitoring plus two periods),
// aligned to MetricsPeriod and summed (instances, requests) or averaged
// (utilisations) across the service's revisions and instances, and yields
// one sample built from the newest aligned point. Periods without an
// instance_count point yield nothing.
func (p *Provider) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		svc, err := p.existing(ctx, provider.OpStreamMetrics, name, nil)
		if err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		milli, mem := int64(defaultMilliCPU), int64(defaultMemoryBytes)
		if cs := svc.GetTemplate().GetContainers(); len(cs) > 0 {
			l := cs[0].GetResources().GetLimits()
			if v, err := workload.ParseMilliCPU(l["cpu"]); err == nil && v > 0 {
				milli = v
			}
			if v, err := workload.ParseBytes(l["memory"]); err == nil && v > 0 {
				mem = v
			}
		}
		period := p.opts.MetricsPeriod.D()
		var last time.Time
		for {
			s, ok, err := p.sample(ctx, name, period, milli, mem)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				yield(workload.MetricSample{}, err)
				return
			}
			if ok && s.Time.After(last) {
				last = s.Time
				if !yield(s, nil) {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(period):
			}
		}
	}
}

func (p *Provider) sample(ctx context.Context, name string, period time.Duration, milliCPU, memLimit int64) (workload.MetricSample, bool, error) {
	now := p.now()
	s := workload.MetricSample{Service: workload.ServiceID(p.target, name), Resolution: workload.Duration(period), MemoryLimitBytes: uint64(memLimit), Extra: map[string]float64{}}
	inst, t, ok, err := p.latest(ctx, name, metricInstances, now, period, monitoringpb.Aggregation_ALIGN_MAX, monitoringpb.Aggregation_REDUCE_SUM)
	if err != nil || !ok {
		return s, false, err
	}
	s.Time, s.Instances = t, int(inst)
	if v, _, ok, err := p.latest(ctx, name, metricRequests, now, period, monitoringpb.Aggregation_ALIGN_DELTA, monitoringpb.Aggregation_REDUCE_SUM); err != nil {
		return s, false, err
	} else if ok {
		s.Extra["requests"] = v
	}
	if v, _, ok, err := p.latest(ctx, name, metricCPU, now, period, monitoringpb.Aggregation_ALIGN_MEAN, monitoringpb.Aggregation_REDUCE_MEAN); err != nil {
		return s, false, err
	} else if ok {
		s.Extra["cpuUtilization"] = v
		// utilisation is a fraction of the CPU limit, per instance.
		s.CPUPercent = v * float64(milliCPU) / 10 * float64(s.Instances)
	}
	if v, _, ok, err := p.latest(ctx, name, metricMemory, now, period, monitoringpb.Aggregation_ALIGN_MEAN, monitoringpb.Aggregation_REDUCE_MEAN); err != nil {
		return s, false, err
	} else if ok {
		s.Extra["memoryUtilization"] = v
		s.MemoryBytes = uint64(v * float64(memLimit) * float64(s.Instances))
	}
	return s, true, nil
}

// latest returns the newest aligned point of a metric for the service.
func (p *Provider) latest(ctx context.Context, name, metric string, now time.Time, period time.Duration, align monitoringpb.Aggregation_Aligner, reduce monitoringpb.Aggregation_Reducer) (float64, time.Time, bool, error) {
	it := p.metrics.ListTimeSeries(ctx, &monitoringpb.ListTimeSeriesRequest{
		Name: "projects/" + p.project,
		Filter: fmt.Sprintf(`metric.type = %q AND resource.type = "cloud_run_revision" AND resource.labels.service_name = %q AND resource.labels.location = %q`,
			metric, name, p.opts.Region),
		Interval: &monitoringpb.TimeInterval{StartTime: timestamppb.New(now.Add(-metricsWindow(period))), EndTime: timestamppb.New(now)},
		Aggregation: &monitoringpb.Aggregation{
			AlignmentPeriod: durationpb.New(period), PerSeriesAligner: align, CrossSeriesReducer: reduce,
		},
		View: monitoringpb.ListTimeSeriesRequest_FULL,
	})
	var (
		best  float64
		bestT time.Time
		found bool
	)
	for {
		ts, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return 0, time.Time{}, false, mapErr("ListTimeSeries "+metric, err)
		}
		for _, pt := range ts.Points {
			t := pt.GetInterval().GetEndTime().AsTime()
			if found && !t.After(bestT) {
				continue
			}
			v := pt.GetValue()
			switch x := v.GetValue().(type) {
			case *monitoringpb.TypedValue_DoubleValue:
				best = x.DoubleValue
			case *monitoringpb.TypedValue_Int64Value:
				best = float64(x.Int64Value)
			case *monitoringpb.TypedValue_DistributionValue:
				best = x.DistributionValue.GetMean()
			default:
				continue
			}
			bestT, found = t, true
		}
	}
	return best, bestT, found, nil
}
