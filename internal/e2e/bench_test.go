package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

var benchUser = control.Principal{User: "bench", Role: "admin"}

func (s *stack) mustDo(b testing.TB, r control.Request) control.Result {
	b.Helper()
	r.Principal, r.Target = benchUser, target
	res, err := s.rt.Do(context.Background(), r)
	if err != nil {
		b.Fatalf("%s %s: %v", r.Action, r.Service, err)
	}
	return res
}

func (s *stack) deployN(b testing.TB, prefix string, n int) []string {
	names := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		s.cleanup(b, names[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			sp := spec(names[i], 1)
			s.mustDo(b, control.Request{Action: workload.ActionStart, Service: names[i], Spec: &sp})
		}()
	}
	wg.Wait()
	return names
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkConcurrentRestarts: 20 restarts of 20 different services through
// control.Runtime at once, against one restart alone and the same 20 one
// after another (goal: 20 concurrent <= 1.5x one).
func BenchmarkConcurrentRestarts(b *testing.B) {
	s := newStack(b)
	names := s.deployN(b, providertest.Name("cr"), 20)
	var one, conc, seq []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s.mustDo(b, control.Request{Action: workload.ActionRestart, Service: names[0]})
		one = append(one, time.Since(t0))
		t0 = time.Now()
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() { defer wg.Done(); s.mustDo(b, control.Request{Action: workload.ActionRestart, Service: n}) }()
		}
		wg.Wait()
		conc = append(conc, time.Since(t0))
		t0 = time.Now()
		for _, n := range names {
			s.mustDo(b, control.Request{Action: workload.ActionRestart, Service: n})
		}
		seq = append(seq, time.Since(t0))
	}
	// The peer on the same containers: `docker restart` of one, and of all
	// 20 at once, shows how much of the concurrency the Engine itself gives.
	var ids []string
	for _, n := range names {
		var got []string
		testkit.WaitFor(b, 30*time.Second, "one container of "+n, func() bool { got = dockerPS(b, n); return len(got) == 1 })
		ids = append(ids, got[0])
	}
	t0 := time.Now()
	if out, err := exec.Command("docker", "restart", ids[0]).CombinedOutput(); err != nil {
		b.Fatalf("docker restart: %v\n%s", err, out)
	}
	peerOne := time.Since(t0)
	t0 = time.Now()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); exec.Command("docker", "restart", id).Run() }()
	}
	wg.Wait()
	peerConc := time.Since(t0)
	b.ReportMetric(float64(peerOne.Milliseconds()), "docker-one-ms")
	b.ReportMetric(float64(peerConc.Milliseconds()), "docker-20-concurrent-ms")
	b.ReportMetric(float64(median(one).Milliseconds()), "one-ms")
	b.ReportMetric(float64(median(conc).Milliseconds()), "20-concurrent-ms")
	b.ReportMetric(float64(median(seq).Milliseconds()), "20-sequential-ms")
	b.ReportMetric(float64(median(conc))/float64(median(one)), "concurrent/one")
	b.ReportMetric(float64(median(seq))/float64(median(conc)), "sequential/concurrent")
}

// BenchmarkAPIvsRuntime: a docker restart through the HTTP API against the
// same restart through control.Runtime directly (goal: ratio <= 1.1).
func BenchmarkAPIvsRuntime(b *testing.B) {
	s := newStack(b)
	name := s.deployN(b, providertest.Name("api"), 1)[0]
	var viaAPI, direct []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if code, env := s.call(b, "operator", "POST", "/v1/targets/"+target+"/services/"+name+"/restart", ""); code != 200 {
			b.Fatalf("restart: %d %+v", code, env.Error)
		}
		viaAPI = append(viaAPI, time.Since(t0))
		t0 = time.Now()
		s.mustDo(b, control.Request{Action: workload.ActionRestart, Service: name})
		direct = append(direct, time.Since(t0))
	}
	b.ReportMetric(float64(median(viaAPI).Milliseconds()), "api-ms")
	b.ReportMetric(float64(median(direct).Milliseconds()), "runtime-ms")
	b.ReportMetric(float64(median(viaAPI))/float64(median(direct)), "api/runtime")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkSSEFanout: 500 subscribers to one service's metrics over HTTP
// hold one Engine stats stream per container; reports the process's CPU
// per second while they stream (server and the 500 clients together, as
// they share the process).
func BenchmarkSSEFanout(b *testing.B) {
	s := newStack(b)
	name := s.deployN(b, providertest.Name("sse"), 1)[0]
	const subscribers = 500
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		var got atomic.Int64
		var wg sync.WaitGroup
		tr := &http.Transport{MaxIdleConnsPerHost: subscribers, MaxConnsPerHost: 0}
		hc := &http.Client{Transport: tr}
		for range subscribers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/targets/"+target+"/services/"+name+"/metrics", nil)
				req.Header.Set("Authorization", "Bearer "+s.tokens["viewer"])
				resp, err := hc.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "event: sample") {
						got.Add(1)
					}
				}
			}()
		}
		deadline := time.Now().Add(60 * time.Second)
		for got.Load() < 2*subscribers && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got.Load() < 2*subscribers {
			b.Fatalf("only %d samples reached %d subscribers", got.Load(), subscribers)
		}
		streams := s.docker.StatsStreams()
		upstreams := s.rt.MetricsUpstreams()
		c0, t0, n0 := cpuSeconds(), time.Now(), got.Load()
		time.Sleep(5 * time.Second)
		cpu := (cpuSeconds() - c0) / time.Since(t0).Seconds()
		rate := float64(got.Load()-n0) / time.Since(t0).Seconds()
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
		b.ReportMetric(float64(streams), "engine-stats-streams")
		b.ReportMetric(float64(upstreams), "runtime-upstreams")
		b.ReportMetric(cpu, "cpu-s/s")
		b.ReportMetric(rate, "samples-delivered/s")
		if streams != 1 {
			b.Errorf("%d Engine stats streams for one container and %d subscribers, want 1", streams, subscribers)
		}
	}
}

// BenchmarkRestartCLIvsDockerVsTerraform: in one run on the same container,
// `alphaswarm restart` (the CLI process through the server), `docker
// restart`, and `terraform apply` of a terraform_data resource whose
// local-exec provisioner runs `docker restart` — the path the decision
// record replaces.
func BenchmarkRestartCLIvsDockerVsTerraform(b *testing.B) {
	if _, err := exec.LookPath("terraform"); err != nil {
		b.Skip("SKIPPING: terraform is not installed")
	}
	_, env := serveProcess(b)
	name := providertest.Name("tf")
	specFile := filepath.Join(b.TempDir(), "web.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf("name: %s\nimage: %s\nreplicas: 1\n", name, image)), 0o644)
	cli(b, env, "deploy", "-f", specFile)
	b.Cleanup(func() {
		cmd := exec.Command(binary, "stop", name)
		cmd.Env = env
		cmd.Run()
	})
	tf := b.TempDir()
	os.WriteFile(filepath.Join(tf, "main.tf"), []byte(`variable "container" { type = string }
variable "nonce" { type = string }
resource "terraform_data" "restart" {
  triggers_replace = [var.nonce]
  provisioner "local-exec" {
    command = "docker restart ${var.container}"
  }
}
`), 0o644)
	if out, err := exec.Command("terraform", "-chdir="+tf, "init", "-input=false").CombinedOutput(); err != nil {
		b.Fatalf("terraform init: %v\n%s", err, out)
	}
	// The replica a restart replaced is stopped in the background; wait
	// until it is gone so docker restarts the current one.
	container := func() string {
		var ids []string
		testkit.WaitFor(b, 30*time.Second, "one running container", func() bool { ids = dockerPS(b, name); return len(ids) == 1 })
		return ids[0]
	}
	var viaCLI, viaDocker, viaTF []time.Duration
	i := 0
	for b.Loop() {
		i++
		t0 := time.Now()
		cli(b, env, "restart", name)
		viaCLI = append(viaCLI, time.Since(t0))

		id := container()
		t0 = time.Now()
		if out, err := exec.Command("docker", "restart", id).CombinedOutput(); err != nil {
			b.Fatalf("docker restart: %v\n%s", err, out)
		}
		viaDocker = append(viaDocker, time.Since(t0))

		t0 = time.Now()
		if out, err := exec.Command("terraform", "-chdir="+tf, "apply", "-auto-approve", "-input=false",
			"-var", "container="+id, "-var", fmt.Sprintf("nonce=%d", i)).CombinedOutput(); err != nil {
			b.Fatalf("terraform apply: %v\n%s", err, out)
		}
		viaTF = append(viaTF, time.Since(t0))
	}
	mc, md, mt := median(viaCLI), median(viaDocker), median(viaTF)
	b.ReportMetric(float64(mc.Milliseconds()), "alphaswarm-ms")
	b.ReportMetric(float64(md.Milliseconds()), "docker-ms")
	b.ReportMetric(float64(mt.Milliseconds()), "terraform-ms")
	b.ReportMetric(float64(mc)/float64(md), "alphaswarm/docker")
	b.ReportMetric(float64(mt)/float64(mc), "terraform/alphaswarm")
}
