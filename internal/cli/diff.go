package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/workload"
	"github.com/alphaswarm/controller/workload/specfile"
	"github.com/spf13/cobra"
)

// The exit codes of `alphaswarm diff`: 0-2 those of diff(1) and kubectl
// diff; 3 when the previewed deploy (or rollback) would be refused, which
// a script must not take for "no change" nor for "apply it": like an
// error it is 2 or more, and unlike one the diff was computed and printed.
const (
	diffExitSame    = 0 // deploying would change nothing
	diffExitChanges = 1 // deploying would change something
	diffExitError   = 2 // the diff could not be computed (any error, usage included)
	diffExitRefused = 3 // the diff was computed, but the operation would be refused (admission)
)

func diffCmd(g *globals) *cobra.Command {
	var file string
	var native bool
	var revision int
	cmd := &cobra.Command{
		Use:   "diff (-f FILE | SERVICE --revision N)",
		Short: "Show what deploy -f FILE (or a rollback to revision N) would change on the backend, changing nothing (exit 0: no change, 1: changes, 2: error, 3: would be refused)",
		Long: "Show what `deploy -f FILE` would change on the backend, in the backend's own terms, without changing\n" +
			"anything: the action (none, create, update, replace, recreate), why, and one line per field that\n" +
			"differs (path: from → to), marked where the change alone replaces running instances. Secret values\n" +
			"are never shown, only their references; config values only as (set), (changed) or (removed).\n\n" +
			"With SERVICE --revision N instead of -f, the spec is the service's recorded revision N (see\n" +
			"`alphaswarm history SERVICE`): what `alphaswarm rollback SERVICE --to N` would change on the live\n" +
			"service. --revision 0 is the revision before the current one, as rollback's default.\n\n" +
			"The server also runs the checks the operation itself would meet before reaching the backend (halt\n" +
			"switch, the target's policy, the Rego policies; for a revision, that its image and secrets still\n" +
			"resolve), as a dry run: nothing recorded, no lock. A refusal is printed after the changes\n" +
			"(\"would be refused: CODE: why\", one line per field). The checks run only for a role that may\n" +
			"deploy (operator); for a viewer they are not checked (a note on stderr).\n\n" +
			"Exit status: 0 no change, 1 changes, 2 an error (no diff), 3 the operation would be refused (the\n" +
			"diff is printed). As with diff(1) and kubectl diff, 2 or more means: do not apply.",
		Example: "  alphaswarm diff -f web.yaml\n" +
			"  alphaswarm diff web --revision 3     # what rollback web --to 3 would change\n" +
			"  alphaswarm diff web --revision 0     # the same for the revision before the current one",
		RunE: func(cmd *cobra.Command, args []string) error {
			return diffExit(cmd, g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
				var d workload.Diff
				var err error
				if cmd.Flags().Changed("revision") {
					d, err = diffRevision(cmd, g, c, args, file, revision)
				} else {
					d, err = diffFile(cmd, g, c, args, file)
				}
				if err != nil {
					return err
				}
				if p.format == "table" { // the Native text may hold tabs: no tabwriter
					printDiff(p.w, d, native)
				} else if err := p.print(d, nil); err != nil {
					return err
				}
				switch a := d.Admission; {
				case d.Refused():
					if p.format != "table" { // the table said it
						fmt.Fprintf(cmd.ErrOrStderr(), "would be refused: %s: %s\n", a.Code, flat(a.Message))
					}
					return exitCodeError{diffExitRefused}
				case a != nil && a.Verdict == workload.AdmissionUnchecked:
					fmt.Fprintf(cmd.ErrOrStderr(), "note: admission %s\n", flat(a.Message))
				}
				if d.Changed() {
					return exitCodeError{diffExitChanges}
				}
				return nil
			})(cmd, args))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file (YAML or JSON; - reads stdin)")
	cmd.Flags().IntVar(&revision, "revision", 0, "diff the service's recorded revision N instead of a file (0: the one before the current)")
	cmd.Flags().BoolVar(&native, "native", false, "also print the backend's own rendering of the change, where it has one")
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return diffExit(cmd, err) })
	return cmd
}

// diffFile is `diff -f FILE`: the spec in the file against the live service.
func diffFile(cmd *cobra.Command, g *globals, c *client.Client, args []string, file string) (workload.Diff, error) {
	if len(args) > 0 {
		return workload.Diff{}, workload.Invalid(workload.FieldError{Path: "args",
			Message: "diff -f takes no arguments (the service is the spec's name); diff SERVICE needs --revision N"})
	}
	if file == "" {
		return workload.Diff{}, workload.Invalid(workload.FieldError{Path: "file", Message: "is required (-f FILE, or -f - for stdin; or SERVICE --revision N)"})
	}
	spec, err := readSpecFile(cmd, file)
	if err != nil {
		return workload.Diff{}, err
	}
	target := g.target
	if spec.Target != "" && !cmd.Flags().Changed("target") {
		target = spec.Target
	}
	return c.Diff(cmd.Context(), target, spec)
}

// diffRevision is `diff SERVICE --revision N`: the service's recorded
// revision N (0: the one before the current) against the live service.
func diffRevision(cmd *cobra.Command, g *globals, c *client.Client, args []string, file string, rev int) (workload.Diff, error) {
	var errs []workload.FieldError
	if file != "" {
		errs = append(errs, workload.FieldError{Path: "file", Message: "cannot be used with --revision (the revision is the spec)"})
	}
	if len(args) != 1 {
		errs = append(errs, workload.FieldError{Path: "args", Message: "diff --revision N takes the service's name: diff SERVICE --revision N"})
	}
	if rev < 0 {
		errs = append(errs, workload.FieldError{Path: "revision", Message: "must be a revision number (1 or more), or 0 for the revision before the current one"})
	}
	if len(errs) > 0 {
		return workload.Diff{}, workload.Invalid(errs...)
	}
	return c.DiffRevision(cmd.Context(), g.target, args[0], rev)
}

// diffExit turns an error of diff into exit status 2 (printed here, since
// Main's own path exits 1), leaving the changes' status 1 and an
// interrupt's 130 as they are.
func diffExit(cmd *cobra.Command, err error) error {
	var ec exitCodeError
	switch {
	case err == nil, errors.As(err, &ec):
		return err
	case interrupted(cmd.Context(), cmd.ErrOrStderr(), err):
		return exitCodeError{130}
	}
	printError(cmd.ErrOrStderr(), err)
	return exitCodeError{diffExitError}
}

// readSpecFile reads and validates the spec in file (- is stdin) as deploy
// does before sending it.
func readSpecFile(cmd *cobra.Command, file string) (workload.DeploymentSpec, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), workload.MaxSpecBytes+1))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return workload.DeploymentSpec{}, err
	}
	spec, err := specfile.Decode(b, specfile.FormatOf(file))
	if err != nil {
		return workload.DeploymentSpec{}, err
	}
	return spec, spec.Validate()
}

// printDiff writes a diff for people: the service, its provider (and the
// revision, for a revision's diff) and the action with its reason, then
// one line per change, "path: from → to", "(replaces)" after a change that
// alone replaces running instances; then, when the operation would be
// refused, "would be refused: CODE: message" and a "! path: message" line
// per field.
func printDiff(w io.Writer, d workload.Diff, native bool) {
	fmt.Fprintf(w, "%s (%s)", workload.ServiceID(d.Target, d.Service), d.Provider)
	if d.Revision > 0 {
		fmt.Fprintf(w, ", revision %d", d.Revision)
	}
	fmt.Fprintf(w, ": %s", d.Action)
	if d.Reason != "" {
		fmt.Fprintf(w, ": %s", flat(d.Reason))
	}
	fmt.Fprintln(w)
	for _, c := range d.Changes {
		mark := ""
		if c.Replaces {
			mark = " (replaces)"
		}
		fmt.Fprintf(w, "  %s: %s → %s%s\n", c.Path, dash(flat(c.From)), dash(flat(c.To)), mark)
	}
	if d.Refused() {
		a := d.Admission
		fmt.Fprintf(w, "would be refused: %s: %s\n", a.Code, flat(a.Message))
		for _, f := range a.Fields {
			fmt.Fprintf(w, "  ! %s: %s\n", f.Path, flat(f.Message))
		}
	}
	if native && d.Native != "" {
		fmt.Fprintf(w, "\n%s", d.Native)
		if d.Native[len(d.Native)-1] != '\n' {
			fmt.Fprintln(w)
		}
	} else if native {
		fmt.Fprintf(w, "(the %s provider has no native rendering of this change)\n", d.Provider)
	}
}

// flat keeps a value on its line, whole (oneLine would cut it).
func flat(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }
