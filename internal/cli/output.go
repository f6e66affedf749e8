package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alphaswarm/controller/workload"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"
)

// printer writes results in the format chosen with -o.
type printer struct {
	w      io.Writer
	format string // table, json or yaml
}

func (p printer) validate() error {
	switch p.format {
	case "table", "json", "yaml":
		return nil
	}
	return workload.Invalid(workload.FieldError{Path: "output", Message: "must be table, json or yaml"})
}

// print writes v as JSON or YAML, or calls table for the table format.
func (p printer) print(v any, table func(tw *tabwriter.Writer)) error {
	switch p.format {
	case "json":
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = p.w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func statusTable(tw *tabwriter.Writer, sts []workload.DeploymentStatus) {
	fmt.Fprintln(tw, "SERVICE\tPHASE\tREADY\tREVISION\tIMAGE\tMESSAGE")
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", s.ID, s.Phase, s.Replicas.Ready, s.Replicas.Desired,
			dash(s.Revision), dash(s.Image), oneLine(s.Message))
	}
}

func instancesTable(tw *tabwriter.Writer, s workload.DeploymentStatus) {
	statusTable(tw, []workload.DeploymentStatus{s})
	if len(s.Instances) == 0 {
		return
	}
	fmt.Fprintln(tw, "")
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tSTARTED\tRESTARTS")
	for _, in := range s.Instances {
		started := "-"
		if !in.Started.IsZero() {
			started = in.Started.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", in.ID, in.State, started, in.Restarts)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
