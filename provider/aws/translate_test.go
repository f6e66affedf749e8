package aws

import (
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestTaskSize(t *testing.T) {
	cases := []struct {
		cpu, mem         string
		fargate          bool
		wantCPU, wantMem int64
	}{
		{"", "", true, 256, 512},
		{"250m", "512Mi", true, 256, 512},
		{"250m", "1536Mi", true, 256, 2048},
		{"300m", "", true, 512, 1024},
		{"1", "3Gi", true, 1024, 3072},
		{"1", "9Gi", true, 2048, 9216},
		{"4", "100Mi", true, 4096, 8192},
		{"100m", "100Mi", false, 256, 512},
		{"2", "3000Mi", false, 2048, 3000},
	}
	for _, c := range cases {
		cpu, mem, err := taskSize(workload.Resources{CPU: c.cpu, Memory: c.mem}, c.fargate)
		if err != nil || cpu != c.wantCPU || mem != c.wantMem {
			t.Errorf("taskSize(%q, %q, fargate %v) = %d, %d, %v; want %d, %d", c.cpu, c.mem, c.fargate, cpu, mem, err, c.wantCPU, c.wantMem)
		}
	}
	if _, _, err := taskSize(workload.Resources{CPU: "32"}, true); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("32 vCPU on Fargate: %v", err)
	}
}
