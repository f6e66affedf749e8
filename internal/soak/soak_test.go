package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/internal/testproc"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/workload"
)

const (
	replicas   = 3
	services   = 20
	operations = 1000 // mutating operations in all, the first deploys included
	workers    = 24   // concurrent client requests
	// killEvery is the pause between a replica coming back and the next
	// SIGKILL; one replica is down at a time.
	killEvery = 3 * time.Second
	// budget bounds the whole workload; the soak fails beyond it. On a
	// loaded 2-core machine the workload took 4m07s (6 kills): a restart
	// takes ~45 s, because recovery holds an interrupted run's service
	// lock while it waits up to control.DefaultRecoverSettle (30 s) for a
	// settled state that a later run on that service may have superseded
	// (an interrupted scale to 2 waits for 2 after another replica scaled
	// to 3), and the operations on that service wait behind it.
	budget = 5 * time.Minute
	target = "kube"
	image  = "registry.k8s.io/pause:3.10" // runs on kwok's nodes, never pulled
)

func TestMain(m *testing.M) {
	code := m.Run()
	k8stest.Shutdown()
	pgtest.Shutdown()
	os.Exit(code)
}

// TestReplicasShareOneLedger is the soak of issue 19: three `serve`
// processes on one PostgreSQL ledger and one Kubernetes namespace, all
// active; a client spreading mixed operations over twenty services across
// them while one replica at a time is SIGKILLed and restarted. Then:
// every operation the client saw answered has its intent and its result
// (and the outcome it was told); no two runs on one service overlap; every
// interrupted intent belongs to a killed replica and was closed exactly
// once, by whichever replica's recovery found it; no intent is left open;
// `alphaswarm ledger verify` is clean. Meanwhile a `logs -f` and a
// `status --watch` follower go through a round-robin proxy and must ride
// through the kills (follow_test.go). The counts are logged.
func TestReplicasShareOneLedger(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: about 1.5 minutes on a quiet machine, 5 on a loaded one; skipped under -short")
	}
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	dsn := pgtest.CreateDB(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "alphaswarm")
	// The client and, beside it, the server binary `alphaswarm serve` runs.
	if out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../../cmd/alphaswarm", "../../cmd/alphaswarmd").CombinedOutput(); err != nil {
		t.Fatalf("build alphaswarm: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "alphaswarm.yaml")
	// One token store for every replica (each has its own data dir), so
	// that a token works on whichever replica a load balancer picks: the
	// followers go through a proxy.
	tokens := filepath.Join(dir, "auth", "tokens.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`noLocalTarget: true
recoveryInterval: 2s
auth:
  tokenFile: %s
targets:
  %s:
    provider: kubernetes
    options:
      kubeconfig: %s
      namespace: %s
      rolloutTimeout: 30s
`, tokens, target, c.Kubeconfig, ns)), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &soak{t: t, seed: uint64(time.Now().UnixNano())}
	t.Logf("seed %d", s.seed)
	for i := range replicas {
		r := &replica{i: i, bin: bin, cfg: cfg, dsn: dsn, data: filepath.Join(dir, fmt.Sprintf("r%d", i), "data"), token: filepath.Join(filepath.Dir(tokens), "admin.token"),
			log: filepath.Join(dir, fmt.Sprintf("r%d.log", i)), listen: freeAddr(t)}
		s.rs = append(s.rs, r)
		t.Cleanup(func() {
			r.stop(t)
			if t.Failed() {
				b, _ := os.ReadFile(r.log)
				t.Logf("replica %d log (last 4 KiB):\n%s", i, tail(b, 4096))
			}
		})
	}
	// All three start at once on an empty database: one migrates, under
	// the migration lock; the others wait for it.
	var wg sync.WaitGroup
	for _, r := range s.rs {
		wg.Go(func() {
			if err := r.start(); err != nil {
				t.Errorf("replica %d: %v", r.i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Followers through a load balancer, for the whole workload.
	tok, err := os.ReadFile(s.rs[0].token)
	if err != nil {
		t.Fatal(err)
	}
	f := s.startFollowers(c, strings.TrimSpace(string(tok)))

	start := time.Now()
	s.run()
	elapsed := time.Since(start)
	f.finish()
	s.check(dsn, bin, elapsed)
	f.check()
}

// replica is one `serve` process, restarted on the same address, data
// directory and log file.
type replica struct {
	i                                       int
	bin, cfg, dsn, data, token, log, listen string
	cl                                      *client.Client
	up                                      atomic.Bool
	mu                                      sync.Mutex
	child                                   *testproc.Child
	kills                                   []time.Time // just before each SIGKILL
	starts                                  int
	startTimes                              []time.Duration
}

// start runs serve and returns when it listens (after its recovery).
func (r *replica) start() error {
	began := time.Now()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, "serve", "--config", r.cfg, "--ledger", r.dsn, "--listen", r.listen)
	cmd.Env = append(os.Environ(), "ALPHASWARM_DATA_DIR="+r.data)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return err
	}
	cmd.SysProcAttr = testproc.DeathSignal(syscall.SIGKILL, nil)
	child, err := testproc.Start(cmd)
	if err != nil {
		logf.Close()
		return err
	}
	listening := make(chan string, 1)
	go func() { // stdout to the log, noting the address
		defer logf.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintf(logf, "stdout: %s\n", sc.Text())
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- u
			}
		}
	}()
	select {
	case u := <-listening:
		r.mu.Lock()
		r.child = child
		r.starts++
		r.startTimes = append(r.startTimes, time.Since(began))
		r.mu.Unlock()
		if r.cl == nil {
			tok, err := os.ReadFile(r.token)
			if err != nil {
				return err
			}
			if r.cl, err = client.New(u, strings.TrimSpace(string(tok))); err != nil {
				return err
			}
		}
		r.up.Store(true)
		return nil
	case <-child.Done:
		return fmt.Errorf("serve exited before listening: %v", child.Err())
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-child.Done
		return fmt.Errorf("serve did not listen within 2 minutes")
	}
}

// kill SIGKILLs the replica and returns once it is dead.
func (r *replica) kill() {
	r.up.Store(false)
	r.mu.Lock()
	child := r.child
	r.kills = append(r.kills, time.Now())
	r.mu.Unlock()
	_ = child.Cmd.Process.Signal(syscall.SIGKILL)
	<-child.Done
}

// stop ends the replica as an operator would (SIGTERM), at the end.
func (r *replica) stop(t *testing.T) {
	r.mu.Lock()
	child := r.child
	r.mu.Unlock()
	if child == nil {
		return
	}
	select {
	case <-child.Done:
		return
	default:
	}
	_ = child.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-child.Done:
	case <-time.After(30 * time.Second):
		_ = child.Cmd.Process.Kill()
		<-child.Done
		t.Errorf("replica %d did not stop within 30s of SIGTERM", r.i)
	}
}

// killsBetween counts the kills of r from a to b.
func (r *replica) killsBetween(a, b time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.kills {
		if !k.Before(a) && !k.After(b) {
			n++
		}
	}
	return n
}

// killedAfter returns the first kill of r after tm.
func (r *replica) killedAfter(tm time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.kills {
		if !k.Before(tm) {
			return k, true
		}
	}
	return time.Time{}, false
}

// op is one client request and what the client was told.
type op struct {
	n       int
	key     string // Idempotency-Key: soak-N-rI, I the replica it went to
	replica int
	service string
	action  workload.Action
	wait    bool
	acked   bool // the server answered: a result, or an error envelope
	runID   string
	code    workload.Code
	msg     string
}

type soak struct {
	t    *testing.T
	seed uint64
	rs   []*replica
	ops  []*op
}

// run sends the operations: first a deploy of every service, then a mix,
// while a killer SIGKILLs and restarts one replica every killEvery.
func (s *soak) run() {
	rng := rand.New(rand.NewPCG(s.seed, 19))
	for i := range operations {
		o := &op{n: i, service: fmt.Sprintf("s%02d", i%services)}
		if i < services {
			o.action, o.wait = workload.ActionStart, true
		} else {
			o.service = fmt.Sprintf("s%02d", rng.IntN(services))
			switch p := rng.IntN(100); {
			case p < 40:
				o.action = workload.ActionScale
			case p < 60:
				o.action = workload.ActionApplyConfig
			case p < 75:
				o.action = workload.ActionRestart
			case p < 92:
				o.action = workload.ActionStart
			default:
				o.action = workload.ActionStop
			}
			o.wait = rng.IntN(10) == 0
		}
		s.ops = append(s.ops, o)
	}
	deadline := time.Now().Add(budget)
	stopKiller := make(chan struct{})
	killerDone := make(chan struct{})
	go s.killer(stopKiller, killerDone)
	next := make(chan *op)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			wrng := rand.New(rand.NewPCG(s.seed, uint64(w)))
			for o := range next {
				s.send(o, wrng)
			}
		})
	}
	// The deploys first, all answered before the mix starts.
	for _, o := range s.ops[:services] {
		next <- o
	}
	close(next)
	wg.Wait()
	next = make(chan *op)
	for w := range workers {
		wg.Go(func() {
			wrng := rand.New(rand.NewPCG(s.seed, uint64(100+w)))
			for o := range next {
				s.send(o, wrng)
			}
		})
	}
	sent := services
	for _, o := range s.ops[services:] {
		if time.Now().After(deadline) {
			break
		}
		next <- o
		sent++
	}
	close(next)
	wg.Wait()
	close(stopKiller)
	<-killerDone
	if sent < operations {
		s.t.Fatalf("only %d of %d operations were sent within %v", sent, operations, budget)
	}
}

// killer SIGKILLs replica k%3 every killEvery and restarts it at once.
func (s *soak) killer(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-time.After(killEvery):
		}
		r := s.rs[k%replicas]
		r.kill()
		if err := r.start(); err != nil {
			s.t.Errorf("restart of replica %d: %v", r.i, err)
			return
		}
	}
}

// send makes one request to a replica that is up.
func (s *soak) send(o *op, rng *rand.Rand) {
	var r *replica
	for r == nil {
		if c := s.rs[rng.IntN(replicas)]; c.up.Load() {
			r = c
		}
	}
	o.replica = r.i
	o.key = fmt.Sprintf("soak-%04d-r%d", o.n, r.i)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx = client.WithIdempotencyKey(client.WithWait(ctx, o.wait, 0), o.key)
	var res api.Result
	var err error
	switch o.action {
	case workload.ActionStart:
		spec, _ := json.Marshal(workload.DeploymentSpec{Name: o.service, Image: image, Replicas: 1 + o.n%2,
			Config: map[string]string{"deployed-by": strconv.Itoa(o.n)}})
		res, err = r.cl.Deploy(ctx, target, spec, "application/json")
	case workload.ActionScale:
		res, err = r.cl.Scale(ctx, target, o.service, 1+o.n%3)
	case workload.ActionApplyConfig:
		res, err = r.cl.ApplyConfig(ctx, target, o.service, map[string]string{"n": strconv.Itoa(o.n)})
	case workload.ActionRestart:
		res, err = r.cl.Restart(ctx, target, o.service)
	case workload.ActionStop:
		res, err = r.cl.Stop(ctx, target, o.service)
	}
	if err == nil {
		o.acked, o.runID = true, res.RunID
		return
	}
	e := workload.AsError(err)
	o.code, o.msg = e.Code, e.Message
	// The client's own words for "no answer came" (client.do).
	o.acked = !strings.HasPrefix(e.Message, "cannot reach the server") && !strings.HasPrefix(e.Message, "reading the server's answer") &&
		!strings.Contains(e.Message, "not an alphaswarm envelope")
}

var recovered = regexp.MustCompile(`msg="recovery: closed an interrupted run" run=(\S+)`)

// check compares the ledger with what the client was told.
func (s *soak) check(dsn, bin string, elapsed time.Duration) {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	led, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	// An intent whose service was busy when a restarted replica's recovery
	// looked at it is closed by a later periodic pass (recoveryInterval
	// 2s above, plus up to the 30s a pass may wait for a backend to
	// settle): wait for the live replicas to close what the kills left.
	for wait := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		open, err := led.Unfinished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) == 0 || time.Now().After(wait) {
			break
		}
	}
	var all []ledger.Record
	for f := (ledger.Filter{Limit: ledger.MaxLimit}); ; {
		page, err := led.Query(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Records...)
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	intents := map[string]ledger.Record{}   // by run ID
	byKey := map[string]ledger.Record{}     // intents by Idempotency-Key
	results := map[string][]ledger.Record{} // by run ID
	rejected := map[string]ledger.Record{}  // by Idempotency-Key
	for _, rec := range all {
		switch rec.Kind {
		case ledger.KindIntent:
			intents[rec.RunID] = rec
			if rec.IdempotencyKey != "" {
				byKey[rec.IdempotencyKey] = rec
			}
		case ledger.KindResult:
			results[rec.RunID] = append(results[rec.RunID], rec)
		case ledger.KindRejected:
			rejected[rec.IdempotencyKey] = rec
		}
	}

	// 1. Every answered operation has its intent and its one result, with
	// the outcome the client was told.
	var ackOK, ackErr, unackRan, unackInterrupted, unackNever int
	codes := map[workload.Code]int{}
	for _, o := range s.ops {
		in, ran := byKey[o.key]
		switch {
		case o.acked && o.code == "":
			ackOK++
			res := results[o.runID]
			if !ran || in.RunID != o.runID || len(res) != 1 || res[0].Outcome != ledger.OutcomeOK {
				t.Errorf("op %s (%s %s) acknowledged as run %s: intent %v (run %s), results %+v", o.key, o.action, o.service, o.runID, ran, in.RunID, res)
			}
		case o.acked:
			ackErr++
			codes[o.code]++
			if _, ok := rejected[o.key]; ok && !ran {
				continue // refused before any intent: recorded as rejected
			}
			res := results[in.RunID]
			if !ran || len(res) != 1 || res[0].Outcome != ledger.OutcomeError || res[0].ErrorCode != string(o.code) {
				t.Errorf("op %s (%s %s) answered %s %q: intent %v, results %+v", o.key, o.action, o.service, o.code, o.msg, ran, res)
			}
		case !ran:
			unackNever++
		default:
			res := results[in.RunID]
			if len(res) == 1 && res[0].Outcome == ledger.OutcomeInterrupted {
				unackInterrupted++
			} else {
				unackRan++
			}
		}
	}

	// 2. Every intent has exactly one result; every interrupted one comes
	// from a replica that was killed after writing it.
	var interrupted []string
	for id, in := range intents {
		res := results[id]
		if len(res) != 1 {
			t.Errorf("run %s (%s %s, key %s) has %d results", id, in.Action, in.Service, in.IdempotencyKey, len(res))
			continue
		}
		if res[0].Outcome != ledger.OutcomeInterrupted {
			continue
		}
		interrupted = append(interrupted, id)
		if _, ok := s.rs[replicaOf(in.IdempotencyKey)].killedAfter(in.Time); !ok {
			t.Errorf("run %s (key %s) was closed as interrupted, but its replica was not killed after %v", id, in.IdempotencyKey, in.Time)
		}
	}
	for id := range results {
		if _, ok := intents[id]; !ok {
			t.Errorf("result of run %s has no intent", id)
		}
	}

	// 3. Recovery: each interrupted run closed once, by one replica.
	closedBy := map[string][]int{}
	perReplica := make([]int, replicas)
	for _, r := range s.rs {
		b, err := os.ReadFile(r.log)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range recovered.FindAllStringSubmatch(string(b), -1) {
			closedBy[m[1]] = append(closedBy[m[1]], r.i)
			perReplica[r.i]++
		}
	}
	for _, id := range interrupted {
		if by := closedBy[id]; len(by) != 1 {
			t.Errorf("interrupted run %s was closed by replicas %v, want exactly one", id, by)
		}
	}
	if len(closedBy) != len(interrupted) {
		t.Errorf("recovery logged %d closed runs, the ledger has %d interrupted", len(closedBy), len(interrupted))
	}
	open, err := led.Unfinished(ctx)
	if err != nil || len(open) != 0 {
		t.Errorf("intents left open: %d (%v)", len(open), err)
	}

	// 4. No two runs on one service overlap: a run holds its service from
	// its intent to its result, or, interrupted, to its replica's kill.
	type span struct {
		from, to time.Time
		run      string
	}
	spans := map[string][]span{}
	for id, in := range intents {
		res := results[id]
		if len(res) != 1 {
			continue
		}
		end := res[0].Time
		if res[0].Outcome == ledger.OutcomeInterrupted {
			if k, ok := s.rs[replicaOf(in.IdempotencyKey)].killedAfter(in.Time); ok {
				end = k
			}
		}
		spans[in.Service] = append(spans[in.Service], span{in.Time, end, id})
	}
	overlaps, runs := 0, 0
	for svc, sp := range spans {
		slices.SortFunc(sp, func(a, b span) int { return a.from.Compare(b.from) })
		runs += len(sp)
		for i := 1; i < len(sp); i++ {
			if sp[i].from.Before(sp[i-1].to) {
				overlaps++
				t.Errorf("%s: run %s [%v, %v] overlaps run %s from %v", svc, sp[i-1].run, sp[i-1].from.Format(time.StampMicro),
					sp[i-1].to.Format(time.StampMicro), sp[i].run, sp[i].from.Format(time.StampMicro))
			}
		}
	}

	// 5. The chain verifies, with the CLI an operator would use.
	verify, err := exec.Command(bin, "ledger", "verify", "--ledger", dsn).CombinedOutput()
	if err != nil || !strings.Contains(string(verify), "chain OK") {
		t.Errorf("ledger verify: %v\n%s", err, verify)
	}

	var kills, restarts int
	var startTimes []time.Duration
	for _, r := range s.rs {
		kills += len(r.kills)
		restarts += r.starts - 1
		startTimes = append(startTimes, r.startTimes[1:]...)
	}
	slices.Sort(startTimes)
	median := time.Duration(0)
	if len(startTimes) > 0 {
		median = startTimes[len(startTimes)/2]
	}
	t.Logf("soak: %d replicas, %d services, %d operations in %v (%d workers); %d SIGKILLs, %d restarts (median restart to listening %v)",
		replicas, services, len(s.ops), elapsed.Round(time.Millisecond), workers, kills, restarts, median.Round(time.Millisecond))
	t.Logf("soak: answered %d ok + %d error %v; unanswered %d (%d ran to a result, %d interrupted, %d never reached an intent)",
		ackOK, ackErr, codes, unackRan+unackInterrupted+unackNever, unackRan, unackInterrupted, unackNever)
	t.Logf("soak: ledger %d records, %d runs; every run has one result; %d interrupted, closed by replica %v (each once); %d open intents; %d overlapping runs",
		len(all), len(intents), len(interrupted), perReplica, len(open), overlaps)
	t.Logf("soak: ledger verify: %s", strings.TrimSpace(string(verify)))
}

// replicaOf reads the replica index out of an Idempotency-Key soak-N-rI.
func replicaOf(key string) int {
	i := strings.LastIndex(key, "-r")
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(key[i+2:])
	if err != nil || n < 0 || n >= replicas {
		return 0
	}
	return n
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
