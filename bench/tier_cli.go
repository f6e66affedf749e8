package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cliTier: process start of the client (alphaswarm version, to exit)
// against the peers' CLIs and an empty Go program, and the package
// initialisation before main of the client and of the server binary.
func cliTier(ctx context.Context, o options, bins string) ([]row, error) {
	var rows []row
	r := runner{}
	alpha := filepath.Join(bins, "alphaswarm")
	n := max(o.rounds*2, 10)
	a, err := median(n, func() (time.Duration, error) { return r.run(ctx, alpha, "version") })
	if err != nil {
		return nil, err
	}
	floor, err := median(n, func() (time.Duration, error) { return r.run(ctx, filepath.Join(bins, "empty-go-program")) })
	if err != nil {
		return nil, err
	}
	// CPU time (user+system) is what a busy machine distorts least.
	aCPU, err := median(n, func() (time.Duration, error) { return cpuTime(ctx, alpha, "version") })
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("docker"); err == nil {
		dCPU, err := median(n, func() (time.Duration, error) { return cpuTime(ctx, "docker", "--version") })
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{op: "CLI start, CPU time (user+sys): alphaswarm version", alpha: ms(aCPU),
			peer: "docker --version " + ms(dCPU), ratio: times(aCPU, dCPU, "docker")})
	}
	start := row{op: "CLI start: alphaswarm version (exec to exit)", alpha: ms(a), bound: "empty Go program " + ms(floor)}
	var peers, ratios []string
	for _, p := range [][]string{{"docker", "--version"}, {"kubectl", "version", "--client"}} {
		if _, err := exec.LookPath(p[0]); err != nil {
			continue
		}
		d, err := median(n, func() (time.Duration, error) { return r.run(ctx, p...) })
		if err != nil {
			return nil, err
		}
		peers = append(peers, strings.Join(p, " ")+" "+ms(d))
		ratios = append(ratios, times(a, d, p[0]))
	}
	start.peer, start.ratio = strings.Join(peers, "; "), strings.Join(append(ratios, times(a, floor, "floor")), ", ")
	rows = append([]row{start}, rows...)

	ci, err := initTime(ctx, alpha, "version")
	if err != nil {
		return rows, err
	}
	si, err := initTime(ctx, filepath.Join(bins, "alphaswarmd"), "--version")
	if err != nil {
		return rows, err
	}
	rows = append(rows, row{op: "package init before main (GODEBUG=inittrace=1): alphaswarm", alpha: ms(ci),
		bound: "alphaswarmd (every provider) " + ms(si), ratio: fmt.Sprintf("%.2f× alphaswarmd", float64(ci)/float64(si))})
	return rows, nil
}

// initTime is the sum of the init clock times GODEBUG=inittrace=1 reports.
func initTime(ctx context.Context, argv ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(cmd.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	var total float64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// init pkg @0.5 ms, 0.021 ms clock, 96 bytes, 2 allocs
		f := strings.Fields(sc.Text())
		if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
			v, err := strconv.ParseFloat(f[4], 64)
			if err == nil {
				total += v
			}
		}
	}
	return time.Duration(total * float64(time.Millisecond)), nil
}

// cpuTime runs argv and returns the user+system CPU time it used.
func cpuTime(ctx context.Context, argv ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
