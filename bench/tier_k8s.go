package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alphaswarm/controller/internal/k8stest"
)

// k8sTier: a real API server (etcd, kube-apiserver, controller manager,
// scheduler, kwok nodes) from internal/k8stest, when its binaries are
// present; status and scale through alphaswarm against kubectl on the
// same Deployment.
func k8sTier(ctx context.Context, o options, bins string) ([]row, error) {
	c, err := k8stest.Launch()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes control plane: %w", err)
	}
	defer c.Stop()
	ns := "bench-" + randomSuffix()
	kctl := runner{env: append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)}
	if _, err := kctl.run(ctx, "kubectl", "create", "namespace", ns); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "alphaswarm-bench-k8s-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "alphaswarm.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nnoLocalTarget: true\ntargets:\n  kube:\n    provider: kubernetes\n    options: {kubeconfig: %s, namespace: %s}\n", c.Kubeconfig, ns)), 0o600); err != nil {
		return nil, err
	}
	env := append(withoutEnv(os.Environ(), "ALPHASWARM_LISTEN", "ALPHASWARM_LEDGER", "ALPHASWARM_CONFIG", "ALPHASWARM_TOKEN", "ALPHASWARM_SERVER"),
		"ALPHASWARM_DATA_DIR="+filepath.Join(dir, "data"), "ALPHASWARM_TARGET=kube", "KUBECONFIG="+c.Kubeconfig)
	srv, err := startServer(ctx, filepath.Join(bins, "alphaswarm"), env, cfg)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cli := runner{env: append(env, "ALPHASWARM_SERVER="+srv.url)}
	alpha := func(args ...string) []string { return append([]string{filepath.Join(bins, "alphaswarm")}, args...) }
	spec := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(spec, []byte("name: web\nimage: registry.example/web:1\nreplicas: 1\nports:\n  - container: 8080\n"), 0o644); err != nil {
		return nil, err
	}
	if _, err := cli.run(ctx, alpha("deploy", "-f", spec)...); err != nil {
		return nil, err
	}
	var rows []row
	name := deploymentName(ctx, kctl, ns)
	st, kg, err := pairedMedians(o.rounds,
		func() (time.Duration, error) { return cli.run(ctx, alpha("status", "web", "-o", "json")...) },
		func() (time.Duration, error) {
			return kctl.run(ctx, "kubectl", "get", "deploy", "-n", ns, "-o", "json", name)
		})
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{op: "status web -o json (kubernetes)", alpha: ms(st), peer: "kubectl get deploy -o json " + ms(kg), ratio: times(st, kg, "kubectl")})
	n := 2
	sc, ks, err := pairedMedians(max(o.rounds/2, 3),
		func() (time.Duration, error) {
			n = 3 - n // 1, 2, 1, ...
			return cli.run(ctx, alpha("scale", "web", fmt.Sprint(n), "--no-wait")...)
		},
		func() (time.Duration, error) {
			n = 3 - n
			return kctl.run(ctx, "kubectl", "scale", "deploy", name, "-n", ns, fmt.Sprintf("--replicas=%d", n))
		})
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{op: "scale web N --no-wait (kubernetes; kubectl scale does not wait)", alpha: ms(sc), peer: "kubectl scale " + ms(ks), ratio: times(sc, ks, "kubectl")})
	return rows, nil
}

// deploymentName is the Deployment the kubernetes provider made for web.
func deploymentName(ctx context.Context, kctl runner, ns string) string {
	out, _, err := kctl.output(ctx, "kubectl", "get", "deploy", "-n", ns, "-l", "alphaswarm.service=web", "-o", "name")
	if err != nil {
		return "web"
	}
	return strings.TrimPrefix(strings.TrimSpace(out), "deployment.apps/")
}
