package fakegcp

import (
	"context"
	"regexp"
	"time"

	"cloud.google.com/go/monitoring/apiv3/v2/monitoringpb"
	"google.golang.org/genproto/googleapis/api/distribution"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type metricService struct {
	monitoringpb.UnimplementedMetricServiceServer
	f *Server
}

var (
	reMetricType  = regexp.MustCompile(`metric\.type\s*=\s*"([^"]+)"`)
	reServiceName = regexp.MustCompile(`resource\.labels\.service_name\s*=\s*"([^"]+)"`)
)

// ListTimeSeries serves one aligned point per call for the Cloud Run
// metrics the provider reads, computed from the fake's state: instance
// count = running instances, request_count grows by 10 per call, CPU and
// memory utilisation distributions with means 0.25 and 0.4.
func (m *metricService) ListTimeSeries(_ context.Context, req *monitoringpb.ListTimeSeriesRequest) (*monitoringpb.ListTimeSeriesResponse, error) {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListTimeSeries"); err != nil {
		return nil, err
	}
	if req.GetInterval().GetEndTime() == nil {
		return nil, status.Error(codes.InvalidArgument, "interval.end_time is required")
	}
	mt := reMetricType.FindStringSubmatch(req.Filter)
	sn := reServiceName.FindStringSubmatch(req.Filter)
	if mt == nil {
		return nil, status.Error(codes.InvalidArgument, "filter must name a metric.type")
	}
	var s *service
	for _, x := range f.services {
		if sn != nil && shortName(x.svc.Name) == sn[1] {
			s = x
		}
	}
	if s == nil || len(s.instances) == 0 {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	// Points arrive late: Cloud Run's metrics are "Sampled every 60
	// seconds. After sampling, data is not visible for up to 180 seconds"
	// (cloud.google.com/monitoring/api/metrics_gcp, run.googleapis.com;
	// "Retention and latency of metric data",
	// cloud.google.com/monitoring/quotas). The newest point ends
	// MetricLatency ago, and only a point inside the requested interval
	// is returned.
	end := timestamppb.New(time.Now().Add(-f.MetricLatency))
	if iv := req.GetInterval(); end.AsTime().After(iv.GetEndTime().AsTime()) || (iv.GetStartTime() != nil && end.AsTime().Before(iv.GetStartTime().AsTime())) {
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	start := timestamppb.New(end.AsTime().Add(-req.GetAggregation().GetAlignmentPeriod().AsDuration()))
	var v *monitoringpb.TypedValue
	switch mt[1] {
	case "run.googleapis.com/container/instance_count":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: int64(len(s.instances))}}
	case "run.googleapis.com/request_count":
		f.requests += 10
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_Int64Value{Int64Value: 10}}
	case "run.googleapis.com/container/cpu/utilizations":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DistributionValue{DistributionValue: &distribution.Distribution{Count: int64(len(s.instances)), Mean: 0.25}}}
	case "run.googleapis.com/container/memory/utilizations":
		v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DistributionValue{DistributionValue: &distribution.Distribution{Count: int64(len(s.instances)), Mean: 0.4}}}
	default:
		return &monitoringpb.ListTimeSeriesResponse{}, nil
	}
	if req.GetAggregation().GetPerSeriesAligner() == monitoringpb.Aggregation_ALIGN_MEAN {
		if d := v.GetDistributionValue(); d != nil {
			v = &monitoringpb.TypedValue{Value: &monitoringpb.TypedValue_DoubleValue{DoubleValue: d.Mean}}
		}
	}
	return &monitoringpb.ListTimeSeriesResponse{TimeSeries: []*monitoringpb.TimeSeries{{
		Resource: &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": shortName(s.svc.Name)}},
		Points:   []*monitoringpb.Point{{Interval: &monitoringpb.TimeInterval{StartTime: start, EndTime: end}, Value: v}},
	}}}, nil
}
