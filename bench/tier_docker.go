package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider/docker/dockertest"
)

// dockerEnv is the docker tier's world: alphaswarmd with one docker
// target on the machine's Engine, the test image, and the CLI's
// environment.
type dockerEnv struct {
	raw    *client.Client
	bins   string
	target string
	image  string
	cli    runner // alphaswarm with ALPHASWARM_SERVER/TARGET/DATA_DIR set
	srv    *server
	dir    string
}

func (e *dockerEnv) alpha(args ...string) []string {
	return append([]string{filepath.Join(e.bins, "alphaswarm")}, args...)
}

// running lists the running containers of service (of the target).
func (e *dockerEnv) running(ctx context.Context, service string) ([]string, error) {
	f := make(client.Filters).Add("label", "alphaswarm.target="+e.target).Add("label", "alphaswarm.service="+service).Add("status", "running")
	list, err := e.raw.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// one waits until service has exactly one running container (a replica a
// restart replaced stops in the background) and returns it.
func (e *dockerEnv) one(ctx context.Context, service string) (string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		ids, err := e.running(ctx, service)
		if err != nil {
			return "", err
		}
		if len(ids) == 1 {
			return ids[0], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: %d running containers after a minute, want 1", service, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// downtime runs op while polling the Engine every 10 ms, and returns op's
// time and how long service had no running container in that time.
func (e *dockerEnv) downtime(ctx context.Context, service string, op func() (time.Duration, error)) (time.Duration, time.Duration, error) {
	stop := make(chan struct{})
	var down time.Duration
	var pollErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for {
			ids, err := e.running(ctx, service)
			now := time.Now()
			if err != nil {
				pollErr = err
				return
			}
			if len(ids) == 0 {
				down += now.Sub(last)
			}
			last = now
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	d, err := op()
	time.Sleep(100 * time.Millisecond) // a gap right at the end is counted too
	close(stop)
	wg.Wait()
	if err == nil {
		err = pollErr
	}
	return d, down, err
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withoutEnv drops the variables that would override the harness's config.
func withoutEnv(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func setupDocker(ctx context.Context, bins string) (*dockerEnv, func(), error) {
	raw, err := dockertest.Client(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("no Docker Engine answers: %w", err)
	}
	e := &dockerEnv{raw: raw, bins: bins, target: "bench" + randomSuffix()}
	e.image = "alphaswarm-bench-workload:" + e.target
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if e.srv != nil {
			e.srv.stop()
		}
		dockertest.Sweep(ctx, raw, e.target)
		sweepLabel(ctx, raw, "alphaswarm.bench="+e.target)
		sweepNetworks(ctx, raw, e.target)
		dockertest.RemoveImage(ctx, raw, e.image)
		if e.dir != "" {
			os.RemoveAll(e.dir)
		}
		raw.Close()
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := dockertest.BuildImage(bctx, raw, e.image, e.target); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("building the test image: %w", err)
	}
	if e.dir, err = os.MkdirTemp("", "alphaswarm-bench-docker-"); err != nil {
		cleanup()
		return nil, nil, err
	}
	data := filepath.Join(e.dir, "data")
	cfg := filepath.Join(e.dir, "alphaswarm.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nnoLocalTarget: true\ntargets:\n  %s:\n    provider: docker\n", e.target)), 0o600); err != nil {
		cleanup()
		return nil, nil, err
	}
	env := append(withoutEnv(os.Environ(), "ALPHASWARM_LISTEN", "ALPHASWARM_LEDGER", "ALPHASWARM_CONFIG", "ALPHASWARM_TOKEN", "ALPHASWARM_SERVER"),
		"ALPHASWARM_DATA_DIR="+data, "ALPHASWARM_TARGET="+e.target)
	if e.srv, err = startServer(ctx, filepath.Join(bins, "alphaswarm"), env, cfg); err != nil {
		cleanup()
		return nil, nil, err
	}
	e.cli = runner{env: append(env, "ALPHASWARM_SERVER="+e.srv.url)}
	return e, cleanup, nil
}

// sweepLabel removes the containers (the peers' own) and networks
// carrying label.
func sweepLabel(ctx context.Context, raw *client.Client, label string) {
	f := make(client.Filters).Add("label", label)
	if list, err := raw.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range list.Items {
			_, _ = raw.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

// sweepNetworks removes the networks the provider created for target.
func sweepNetworks(ctx context.Context, raw *client.Client, target string) {
	f := make(client.Filters).Add("label", "alphaswarm.target="+target)
	if list, err := raw.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range list.Items {
			_, _ = raw.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
}

func (e *dockerEnv) deploy(ctx context.Context, name string) error {
	spec := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf("name: %s\nimage: %s\nreplicas: 1\nports:\n  - container: 8080\n", name, e.image)), 0o644); err != nil {
		return err
	}
	_, err := e.cli.run(ctx, e.alpha("deploy", "-f", spec)...)
	return err
}

// dockerTier: status, scale, restart (time and time without a running
// replica) and 20 concurrent restarts, each against the docker CLI doing
// the same in the same run; restart against terraform apply too.
func dockerTier(ctx context.Context, o options, bins string) ([]row, error) {
	e, cleanup, err := setupDocker(ctx, bins)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var rows []row
	if err := e.deploy(ctx, "web"); err != nil {
		return nil, err
	}
	id, err := e.one(ctx, "web")
	if err != nil {
		return nil, err
	}

	// status: the CLI through the server against docker inspect.
	st, di, err := pairedMedians(o.rounds,
		func() (time.Duration, error) { return e.cli.run(ctx, e.alpha("status", "web", "-o", "json")...) },
		func() (time.Duration, error) { return e.cli.run(ctx, "docker", "inspect", id) })
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{op: "status web -o json (docker)", alpha: ms(st), peer: "docker inspect " + ms(di), ratio: times(st, di, "docker")})

	// scale: one replica more and back, against docker run -d + docker rm -f.
	sc, dr, err := pairedMedians(max(o.rounds/2, 3),
		func() (time.Duration, error) {
			d1, err := e.cli.run(ctx, e.alpha("scale", "web", "2")...)
			if err != nil {
				return 0, err
			}
			d2, err := e.cli.run(ctx, e.alpha("scale", "web", "1")...)
			return d1 + d2, err
		},
		func() (time.Duration, error) { return e.dockerRunRm(ctx) })
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{op: "scale web 2, then 1 (docker)", alpha: ms(sc), peer: "docker run -d + docker rm -f " + ms(dr), ratio: times(sc, dr, "docker")})

	// restart: time, and time with no running replica, against docker
	// restart of the same container; the floor is docker run -d + rm -f.
	var aT, aDown, dT, dDown []time.Duration
	for i := range max(o.rounds/2, 3) {
		alphaRestart := func() error {
			if _, err := e.one(ctx, "web"); err != nil {
				return err
			}
			d, down, err := e.downtime(ctx, "web", func() (time.Duration, error) { return e.cli.run(ctx, e.alpha("restart", "web")...) })
			aT, aDown = append(aT, d), append(aDown, down)
			return err
		}
		dockerRestart := func() error {
			id, err := e.one(ctx, "web")
			if err != nil {
				return err
			}
			d, down, err := e.downtime(ctx, "web", func() (time.Duration, error) { return e.cli.run(ctx, "docker", "restart", id) })
			dT, dDown = append(dT, d), append(dDown, down)
			return err
		}
		first, second := alphaRestart, dockerRestart
		if i%2 == 1 {
			first, second = dockerRestart, alphaRestart
		}
		if err := first(); err != nil {
			return rows, err
		}
		if err := second(); err != nil {
			return rows, err
		}
	}
	floor, err := median(max(o.rounds/2, 3), func() (time.Duration, error) { return e.dockerRunRm(ctx) })
	if err != nil {
		return rows, err
	}
	ra, rd := quantile(aT, 0.5), quantile(dT, 0.5)
	rows = append(rows,
		row{op: "restart web, 1 replica, 1 published port (docker)", alpha: ms(ra), peer: "docker restart " + ms(rd),
			bound: "docker run -d + docker rm -f " + ms(floor), ratio: times(ra, rd, "docker") + ", " + times(ra, floor, "floor")},
		row{op: "restart web: time with no running replica (max)", alpha: ms(maxD(aDown)), peer: "docker restart " + ms(maxD(dDown)),
			ratio: fmt.Sprintf("%s vs %s", ms(maxD(aDown)), ms(maxD(dDown)))})
	if tf, err := e.terraformRestart(ctx, o); err != nil {
		rows = append(rows, row{op: "restart web: terraform apply (terraform_data + local-exec docker restart)", alpha: ms(ra), peer: "not measured: " + err.Error()})
	} else {
		rows = append(rows, row{op: "restart web vs terraform apply (terraform_data + local-exec docker restart)", alpha: ms(ra), peer: "terraform apply " + ms(tf), ratio: times(ra, tf, "terraform")})
	}

	// 20 concurrent restarts of 20 services: 20 CLI processes at once
	// against 20 docker restart processes at once.
	r, err := e.concurrentRestarts(ctx, o, 20)
	if err != nil {
		return rows, err
	}
	rows = append(rows, r)
	return rows, nil
}

func maxD(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// dockerRunRm is what one replica costs by hand: docker run -d with one
// published port, then docker rm -f.
func (e *dockerEnv) dockerRunRm(ctx context.Context) (time.Duration, error) {
	out, d1, err := e.cli.output(ctx, "docker", "run", "-d", "--label", "alphaswarm.bench="+e.target, "-p", "127.0.0.1::8080", e.image)
	if err != nil {
		return 0, err
	}
	d2, err := e.cli.run(ctx, "docker", "rm", "-f", strings.TrimSpace(out))
	return d1 + d2, err
}

func (e *dockerEnv) terraformRestart(ctx context.Context, o options) (time.Duration, error) {
	tf := filepath.Join(e.dir, "tf")
	if err := os.MkdirAll(tf, 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(tf, "main.tf"), []byte(`variable "container" { type = string }
variable "nonce" { type = string }
resource "terraform_data" "restart" {
  triggers_replace = [var.nonce]
  provisioner "local-exec" {
    command = "docker restart ${var.container}"
  }
}
`), 0o644); err != nil {
		return 0, err
	}
	r := runner{env: append(e.cli.env, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")}
	if _, err := r.run(ctx, "terraform", "-chdir="+tf, "init", "-input=false", "-no-color"); err != nil {
		return 0, err
	}
	i := 0
	return median(max(o.rounds/2, 3), func() (time.Duration, error) {
		id, err := e.one(ctx, "web")
		if err != nil {
			return 0, err
		}
		i++
		return r.run(ctx, "terraform", "-chdir="+tf, "apply", "-auto-approve", "-input=false", "-no-color",
			"-var", "container="+id, "-var", fmt.Sprintf("nonce=%d", i))
	})
}

func (e *dockerEnv) concurrentRestarts(ctx context.Context, o options, n int) (row, error) {
	names := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := range names {
		names[i] = fmt.Sprintf("cr-%d", i)
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- e.deploy(ctx, names[i])
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			return row{}, err
		}
	}
	all := func(cmd func(i int) ([]string, error)) (time.Duration, error) {
		argvs := make([][]string, n)
		for i := range argvs {
			argv, err := cmd(i)
			if err != nil {
				return 0, err
			}
			argvs[i] = argv
		}
		t0 := time.Now()
		errs := make(chan error, n)
		for _, argv := range argvs {
			go func() { _, err := e.cli.run(ctx, argv...); errs <- err }()
		}
		var first error
		for range argvs {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return time.Since(t0), first
	}
	a, d, err := pairedMedians(3,
		func() (time.Duration, error) {
			return all(func(i int) ([]string, error) {
				_, err := e.one(ctx, names[i])
				return e.alpha("restart", names[i]), err
			})
		},
		func() (time.Duration, error) {
			return all(func(i int) ([]string, error) {
				id, err := e.one(ctx, names[i])
				return []string{"docker", "restart", id}, err
			})
		})
	if err != nil {
		return row{}, err
	}
	return row{op: fmt.Sprintf("%d concurrent restarts of %d services (docker)", n, n), alpha: ms(a),
		peer: fmt.Sprintf("%d concurrent docker restart %s", n, ms(d)), ratio: times(a, d, "docker")}, nil
}
