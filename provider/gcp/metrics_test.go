package gcp_test

import (
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestStreamMetricsValidatesName(t *testing.T) {
	p, f := openFake(t, nil)
	for _, err := range p.StreamMetrics(ctx(t), "Bad_Name") {
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Fatalf("StreamMetrics(Bad_Name) = %v, want invalid_argument", err)
		}
		break
	}
	if f.Calls("GetService") != 0 {
		t.Fatal("GetService called for an invalid name")
	}
}
