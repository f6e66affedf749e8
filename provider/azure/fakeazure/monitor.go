package fakeazure

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"
	monfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor/fake"
)

// Metrics are the per-group values the fake's Azure Monitor reports.
type Metrics struct {
	CPUMillicores, MemoryBytes, RxBytesPerSecond, TxBytesPerSecond float64
}

// MonitorTransport is the Azure Monitor metrics transport.
func (f *Fake) MonitorTransport() policy.Transporter {
	return rbac{f: f, next: monfake.NewMetricsServerTransport(&monfake.MetricsServer{List: f.listMetrics})}
}

// SetMetrics sets what Azure Monitor reports for every running group.
func (f *Fake) SetMetrics(m Metrics) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metrics = m
}

// parseISODuration parses the PT…H/M/S durations Azure Monitor takes.
func parseISODuration(s string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(s, "PT")
	if !ok {
		return 0, false
	}
	var d time.Duration
	for rest != "" {
		i := strings.IndexAny(rest, "HMS")
		if i <= 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, false
		}
		unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second}[rest[i]]
		d += time.Duration(v * float64(unit))
		rest = rest[i+1:]
	}
	return d, d > 0
}

func (f *Fake) listMetrics(_ context.Context, resourceURI string, o *armmonitor.MetricsClientListOptions) (resp azfake.Responder[armmonitor.MetricsClientListResponse], e azfake.ErrorResponder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["MetricsList"]++
	prefix := strings.TrimPrefix(f.groupID(""), "/")
	name, ok := strings.CutPrefix(strings.TrimPrefix(resourceURI, "/"), prefix)
	g := f.groups[name]
	if !ok || g == nil {
		e.SetResponseError(http.StatusNotFound, "ResourceNotFound")
		return
	}
	if o == nil || o.Interval == nil || o.Metricnames == nil {
		e.SetResponseError(http.StatusBadRequest, "BadRequest")
		return
	}
	every, ok := parseISODuration(*o.Interval)
	// Time grains of Microsoft.ContainerInstance/containerGroups metrics:
	// PT1M, PT5M, PT15M, PT30M, PT1H, PT6H, PT12H ("Supported metrics for
	// Microsoft.ContainerInstance/containerGroups", learn.microsoft.com).
	// Sub-minute grains stay accepted: the tests run at millisecond
	// intervals (the provider holds real targets to the list).
	if !ok || (every >= time.Minute && !slices.Contains(aciTimeGrains, every)) {
		e.SetResponseError(http.StatusBadRequest, "BadRequest")
		return
	}
	now := time.Now().UTC().Truncate(every)
	values := map[string]float64{
		"CpuUsage": f.metrics.CPUMillicores, "MemoryUsage": f.metrics.MemoryBytes,
		"NetworkBytesReceivedPerSecond": f.metrics.RxBytesPerSecond, "NetworkBytesTransmittedPerSecond": f.metrics.TxBytesPerSecond,
	}
	units := map[string]armmonitor.MetricUnit{"CpuUsage": armmonitor.MetricUnitCount, "MemoryUsage": armmonitor.MetricUnitBytes,
		"NetworkBytesReceivedPerSecond": armmonitor.MetricUnitBytesPerSecond, "NetworkBytesTransmittedPerSecond": armmonitor.MetricUnitBytesPerSecond}
	out := armmonitor.Response{Timespan: o.Timespan, Interval: o.Interval, Namespace: to.Ptr("Microsoft.ContainerInstance/containerGroups")}
	for _, m := range strings.Split(*o.Metricnames, ",") {
		v, known := values[m]
		if !known {
			e.SetResponseError(http.StatusBadRequest, "BadRequest")
			return
		}
		var data []*armmonitor.MetricValue
		for i := 2; i >= 0; i-- {
			t := now.Add(-time.Duration(i) * every)
			mv := &armmonitor.MetricValue{TimeStamp: to.Ptr(t)}
			// Points exist only while the container runs.
			if g.state == "Running" && !t.Before(g.started.Truncate(every)) {
				mv.Average = to.Ptr(v)
			}
			data = append(data, mv)
		}
		out.Value = append(out.Value, &armmonitor.Metric{ID: to.Ptr(resourceURI + "/providers/Microsoft.Insights/metrics/" + m),
			Name: &armmonitor.LocalizableString{Value: to.Ptr(m), LocalizedValue: to.Ptr(m)}, Type: to.Ptr("Microsoft.Insights/metrics"),
			Unit: to.Ptr(units[m]), Timeseries: []*armmonitor.TimeSeriesElement{{Data: data}}})
	}
	resp.SetResponse(http.StatusOK, armmonitor.MetricsClientListResponse{Response: out}, nil)
	return
}

var aciTimeGrains = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 6 * time.Hour, 12 * time.Hour}
