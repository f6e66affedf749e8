package cli

import (
	"fmt"
	"text/tabwriter"
)

// record writes one record of a stream (logs, metrics --watch, status
// --watch). In YAML each record is its own document, opened with "---"
// (YAML 1.2, section 9.2 "Streams"), so a YAML reader gets every record,
// not only the last; JSON and the table are as print writes them.
func (p printer) record(v any, table func(tw *tabwriter.Writer)) error {
	if p.format == "yaml" {
		if _, err := fmt.Fprintln(p.w, "---"); err != nil {
			return err
		}
	}
	return p.print(v, table)
}

// metricsRowFormat lays out `metrics` table rows with fixed widths: each
// sample of --watch is written as it arrives, so a tabwriter cannot align
// later rows with the header.
const metricsRowFormat = "%-8s  %9v  %6v  %9s  %9s  %9s\n"
