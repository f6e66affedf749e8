package aws

import (
	"testing"

	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
)

// BenchmarkEKSScale: scale and status through the aws provider in mode eks
// (DescribeCluster once, then presigned-STS tokens checked by the API
// server's webhook) against the kubernetes provider on the same cluster,
// in the same run.
func BenchmarkEKSScale(b *testing.B) {
	e := newEKSEnv(b, "alpha-eks", "alpha-eks")
	kubetest.CompareScale(b, e.c, e.ns, e.p)
}
