package aws_test

import (
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider/aws/fakeaws"
)

func TestMetricsSample(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{}, nil)
	if _, err := p.Start(ctx(t), spec("m", 2)); err != nil {
		t.Fatal(err)
	}
	for s, err := range p.StreamMetrics(ctx(t), "m") {
		if err != nil {
			t.Fatal(err)
		}
		// 25% of 256 units on 2 tasks = 12.5% of a core; 40% of 512 MiB x2.
		if s.Instances != 2 || s.CPUPercent != 12.5 || s.MemoryBytes != 2*512<<20*40/100 ||
			s.Resolution.D() != time.Second || s.Extra["runningTaskCount"] != 2 {
			t.Fatalf("sample = %+v", s)
		}
		break
	}
}
