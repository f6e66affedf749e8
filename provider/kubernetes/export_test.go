package kubernetes

import "context"

// Test seams for package kubernetes_test.

// CheckMetricsAPI settles the metrics.k8s.io discovery check now, so that
// a test reads settled capabilities.
func (p *Provider) CheckMetricsAPI(ctx context.Context) { p.checkMetricsAPI(ctx) }

// AccessChecked reports whether a permission check has completed.
func (p *Provider) AccessChecked() bool {
	p.accessMu.Lock()
	defer p.accessMu.Unlock()
	return p.access.checked
}
