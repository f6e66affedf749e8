package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the table: an operation, what alphaswarm took, the
// peer or bound it is compared with in the same run, and the ratio.
type row struct {
	op    string
	alpha string
	peer  string // "docker restart 0.91 s", or ""
	bound string // "ledger alone 7,012 ops/s", or ""
	ratio string // "0.43× docker", "84 % of bound"
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "operation\talphaswarm\tpeer\tbound\tratio")
	fmt.Fprintln(tw, "---------\t----------\t----\t-----\t-----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.op, dash(r.alpha), dash(r.peer), dash(r.bound), dash(r.ratio))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// ms formats a duration in milliseconds (or seconds above 10 s).
func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

// times is "a/b×" for durations: below 1 alphaswarm is faster.
func times(a, b time.Duration, peer string) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f× %s", float64(a)/float64(b), peer)
}

// perSec formats a rate with thousands separators.
func perSec(v float64, unit string) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + " " + unit
}
