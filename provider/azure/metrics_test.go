package azure

import (
	"context"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

func TestMetricsValues(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	f.SetMetrics(fakeazure.Metrics{CPUMillicores: 300, MemoryBytes: 100 << 20, RxBytesPerSecond: 2000, TxBytesPerSecond: 1000})
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("m", 2)); err != nil {
		t.Fatal(err)
	}
	var prev time.Time
	n := 0
	for s, err := range p.StreamMetrics(ctx, "m") {
		if err != nil {
			t.Fatal(err)
		}
		every := 50 * time.Millisecond
		want := workload.MetricSample{Service: testTarget + "/m", Time: s.Time, Instances: 2, CPUPercent: 60,
			MemoryBytes: 200 << 20, MemoryLimitBytes: 2 * uint64(0.5*(1<<30)),
			NetRxBytes: uint64(2 * 2000 * every.Seconds()), NetTxBytes: uint64(2 * 1000 * every.Seconds()),
			Resolution: workload.Duration(every), Extra: map[string]float64{"netRxBytesPerSecond": 4000, "netTxBytesPerSecond": 2000}}
		if s.Service != want.Service || s.Instances != want.Instances || s.CPUPercent != want.CPUPercent ||
			s.MemoryBytes != want.MemoryBytes || s.MemoryLimitBytes != want.MemoryLimitBytes || s.NetRxBytes != want.NetRxBytes ||
			s.NetTxBytes != want.NetTxBytes || s.Resolution != want.Resolution || s.Extra["netRxBytesPerSecond"] != 4000 {
			t.Fatalf("sample = %+v\nwant     %+v", s, want)
		}
		if !s.Time.After(prev) {
			t.Fatalf("sample time %v not after %v: a point was yielded twice", s.Time, prev)
		}
		prev = s.Time
		if n++; n == 3 {
			break
		}
	}
	if _, err := p.Stop(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	// A stopped service has no running group: the stream yields nothing
	// until its context ends, then ends without error.
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for s, err := range p.StreamMetrics(sctx, "m") {
		t.Fatalf("stopped service yielded %+v, %v", s, err)
	}
	for _, err := range p.StreamMetrics(ctx, "absent") {
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("metrics of an unknown service: %v", err)
		}
	}
}
