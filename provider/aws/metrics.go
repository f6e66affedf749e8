package aws

import (
	"context"
	"iter"
	"strconv"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// StreamMetrics implements provider.Provider: GetMetricData for the
// service's CPUUtilization and MemoryUtilization (AWS/ECS, Average) and
// RunningTaskCount (ECS/ContainerInsights, present only where Container
// Insights is on), polled every period. The instance count is the
// service's runningCount. CPU and memory utilisation are percentages of
// the task reservation; they are converted to the sample's units (100 =
// one core; bytes) with the task definition's cpu units and MiB.
func (p *Provider) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		s, err := p.existing(ctx, provider.OpStreamMetrics, name)
		if err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		period := p.opts.MetricsPeriod.D()
		var cpuUnits, memMiB float64
		tdArn := ""
		for {
			if tdArn != sdkaws.ToString(s.TaskDefinition) {
				tdArn = sdkaws.ToString(s.TaskDefinition)
				td, err := p.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: s.TaskDefinition})
				if err != nil {
					yield(workload.MetricSample{}, mapErr("DescribeTaskDefinition", err))
					return
				}
				cpuUnits, _ = strconv.ParseFloat(sdkaws.ToString(td.TaskDefinition.Cpu), 64)
				memMiB, _ = strconv.ParseFloat(sdkaws.ToString(td.TaskDefinition.Memory), 64)
			}
			sample, err := p.sample(ctx, name, period, int(s.RunningCount), cpuUnits, memMiB)
			if err != nil {
				if ctx.Err() == nil {
					yield(workload.MetricSample{}, err)
				}
				return
			}
			if !yield(sample, nil) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(period):
			}
			s, err = p.describe(ctx, name)
			if err == nil && s == nil {
				err = provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
			}
			if err != nil {
				if ctx.Err() == nil {
					yield(workload.MetricSample{}, err)
				}
				return
			}
		}
	}
}

func (p *Provider) sample(ctx context.Context, name string, period time.Duration, running int, cpuUnits, memMiB float64) (workload.MetricSample, error) {
	secs := int32(max(period.Seconds(), 1))
	dims := []cwtypes.Dimension{
		{Name: sdkaws.String("ClusterName"), Value: sdkaws.String(p.clusterName())},
		{Name: sdkaws.String("ServiceName"), Value: sdkaws.String(name)},
	}
	q := func(id, ns, metric, stat string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: sdkaws.String(id), ReturnData: sdkaws.Bool(true),
			MetricStat: &cwtypes.MetricStat{Period: sdkaws.Int32(secs), Stat: sdkaws.String(stat),
				Metric: &cwtypes.Metric{Namespace: sdkaws.String(ns), MetricName: sdkaws.String(metric), Dimensions: dims}}}
	}
	end := p.now()
	out, err := p.cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: sdkaws.Time(end.Add(-5 * period)), EndTime: sdkaws.Time(end),
		ScanBy: cwtypes.ScanByTimestampDescending,
		MetricDataQueries: []cwtypes.MetricDataQuery{
			q("cpu", "AWS/ECS", "CPUUtilization", "Average"),
			q("mem", "AWS/ECS", "MemoryUtilization", "Average"),
			q("tasks", "ECS/ContainerInsights", "RunningTaskCount", "Average"),
		},
	})
	if err != nil {
		return workload.MetricSample{}, mapErr("GetMetricData "+name, err)
	}
	sm := workload.MetricSample{Service: workload.ServiceID(p.target, name), Time: end, Instances: running,
		Resolution: workload.Duration(period), Extra: map[string]float64{}}
	latest := func(r cwtypes.MetricDataResult) (float64, time.Time, bool) {
		var bestT time.Time
		var v float64
		for i, t := range r.Timestamps {
			if i < len(r.Values) && t.After(bestT) {
				bestT, v = t, r.Values[i]
			}
		}
		return v, bestT, !bestT.IsZero()
	}
	for _, r := range out.MetricDataResults {
		v, t, ok := latest(r)
		if !ok {
			continue
		}
		if t.Before(sm.Time) || sm.Time.Equal(end) {
			sm.Time = t
		}
		switch sdkaws.ToString(r.Id) {
		case "cpu":
			sm.Extra["cpuUtilization"] = v
			sm.CPUPercent = v * cpuUnits / 1024 * float64(running)
		case "mem":
			sm.Extra["memoryUtilization"] = v
			sm.MemoryBytes = uint64(v / 100 * memMiB * (1 << 20) * float64(running))
			sm.MemoryLimitBytes = uint64(memMiB * (1 << 20) * float64(running))
		case "tasks":
			sm.Extra["runningTaskCount"] = v
		}
	}
	return sm, nil
}

func (p *Provider) clusterName() string {
	c := p.opts.Cluster
	for i := len(c) - 1; i >= 0; i-- {
		if c[i] == '/' {
			return c[i+1:]
		}
	}
	return c
}
