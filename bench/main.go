// Command bench measures alphaswarm's own cost against its peers and its
// bounds in one run and prints one table (issue 18):
//
//	go run ./bench
//	go run ./bench -only overhead -ledgers postgres -history both
//
// It brings up what it needs: the alphaswarm binaries (built into a temp
// directory), the Docker Engine on the machine (a test image built FROM
// scratch, as the tests build it), a throwaway PostgreSQL cluster (as
// internal/pgtest starts one) and, when its binaries are present in
// /var/cache/alphaswarm/k8s-v1.37.2/bin, the Kubernetes tier
// (internal/k8stest). A tier whose parts are missing is reported as
// skipped, with the reason, in the table.
//
// Every figure is compared with a peer (docker, kubectl, terraform) or a
// bound (the ledger alone, an fsync) measured in the same run, because on a
// shared machine only such ratios mean anything. The load average is
// printed with the table. Nothing here is a test: `go test ./...` asserts
// no time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
)

type options struct {
	only   map[string]bool // tiers to run; empty: all
	rounds int             // repetitions of whole-process measurements
	pairs  int             // alternating rounds of the overhead measurement
	// history: "on" (the runtime records revisions, as serve does), "off"
	// (on ledgers that keep none: the pipeline without history's cost,
	// labelled so) or "both".
	history string
	// ledgers: the overhead tier's ledgers ("sqlite", "postgres"); empty:
	// both.
	ledgers map[string]bool
	// pgstat: the overhead tier prints PostgreSQL's server time by
	// statement (pgstat.go) after the table.
	pgstat bool
	// report is printed after the table (-pgstat's sections).
	report *strings.Builder
}

func (o options) want(tier string) bool { return len(o.only) == 0 || o.only[tier] }

func (o options) wantLedger(name string) bool { return len(o.ledgers) == 0 || o.ledgers[name] }

// tiers, in the order they run.
var tiers = []string{"cli", "docker", "overhead", "k8s"}

func main() {
	var only string
	var o options
	flag.StringVar(&only, "only", "", "comma-separated tiers to run: "+strings.Join(tiers, ","))
	flag.IntVar(&o.rounds, "rounds", 10, "repetitions of each whole-process measurement (the median is reported)")
	flag.IntVar(&o.pairs, "pairs", 7, "alternating runtime/bound rounds of the overhead measurement")
	flag.StringVar(&o.history, "history", "on", "overhead tier: on (revisions recorded, as serve does), off (ledgers keeping no revisions, rows labelled \"no history\") or both")
	var ledgers, cpuProfile string
	flag.StringVar(&ledgers, "ledgers", "sqlite,postgres", "overhead tier: comma-separated ledgers to measure (sqlite, postgres)")
	flag.BoolVar(&o.pgstat, "pgstat", false, "overhead tier: print PostgreSQL's server time by statement, runtime rounds against bound rounds (pg_stat_statements)")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (the overhead tier's callers carry the label round=runtime or round=bound: go tool pprof -tagfocus)")
	flag.Parse()
	o.report = &strings.Builder{}
	if o.history != "on" && o.history != "off" && o.history != "both" {
		fmt.Fprintln(os.Stderr, "bench: -history must be on, off or both")
		os.Exit(2)
	}
	o.only = map[string]bool{}
	for _, t := range strings.Split(only, ",") {
		if t = strings.TrimSpace(t); t != "" {
			o.only[t] = true
		}
	}
	o.ledgers = map[string]bool{}
	for _, l := range strings.Split(ledgers, ",") {
		switch l = strings.TrimSpace(l); l {
		case "":
		case "sqlite", "postgres":
			o.ledgers[l] = true
		default:
			fmt.Fprintf(os.Stderr, "bench: -ledgers: unknown ledger %q (sqlite, postgres)\n", l)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			os.Exit(2)
		}
		defer f.Close()
	}
	err := run(ctx, o)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	before := loadAvg()
	var rows []row
	add := func(rs []row, err error, tier string) {
		rows = append(rows, rs...)
		if err != nil {
			rows = append(rows, row{op: tier + " tier", alpha: "not measured: " + err.Error()})
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", tier, err)
		}
	}
	if o.want("cli") || o.want("docker") || o.want("k8s") {
		dir, err := os.MkdirTemp("", "alphaswarm-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintln(os.Stderr, "bench: building alphaswarm and alphaswarmd")
		if err := buildBinaries(ctx, dir); err != nil {
			return err
		}
		if o.want("cli") {
			rs, err := cliTier(ctx, o, dir)
			add(rs, err, "cli")
		}
		if o.want("docker") {
			fmt.Fprintln(os.Stderr, "bench: docker tier")
			rs, err := dockerTier(ctx, o, dir)
			add(rs, err, "docker")
		}
		if o.want("k8s") {
			fmt.Fprintln(os.Stderr, "bench: kubernetes tier")
			rs, err := k8sTier(ctx, o, dir)
			add(rs, err, "k8s")
		}
	}
	if o.want("overhead") {
		fmt.Fprintln(os.Stderr, "bench: runtime overhead tier")
		rs, err := overheadTier(ctx, o)
		add(rs, err, "overhead")
	}
	fmt.Printf("\nload average before: %s, after: %s (2 cores shared: compare ratios, not absolute figures)\n\n", before, loadAvg())
	printTable(os.Stdout, rows)
	fmt.Print(o.report.String())
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
