package cli

import (
	"fmt"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// buildInfo is what `alphaswarm version` reports: the module version and the
// VCS revision the Go toolchain stamped into the binary.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion,omitempty"`
}

// Revision is a fallback set with -ldflags "-X .../internal/cli.Revision=<sha>"
// by scripts/image.sh and scripts/release.sh: the Go toolchain stamps
// vcs.revision only when the module sits in a git directory, not in a git
// worktree (whose .git is a file). The build info's revision wins when present.
var Revision = ""

// readBuildInfo reads the running binary's build information.
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoFrom(bi, Version, Revision)
}

// buildInfoFrom derives the reported version: a Version set with -ldflags
// wins; else the main module's version (a tag for `go install …@v1.2.3`, a
// pseudo-version for a build in a git checkout); else "dev".
func buildInfoFrom(bi *debug.BuildInfo, ldflagsVersion, ldflagsRevision string) buildInfo {
	out := buildInfo{Version: ldflagsVersion, Revision: ldflagsRevision}
	if bi == nil {
		return out
	}
	out.GoVersion = bi.GoVersion
	if out.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		out.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value // the toolchain's stamp wins over the fallback
		case "vcs.time":
			out.Time = s.Value
		case "vcs.modified":
			out.Modified = s.Value == "true"
		}
	}
	return out
}

// String is the one-line form: "v1.2.3 (rev abc123…, 2026-12-04T22:00:00Z, modified)".
func (b buildInfo) String() string {
	s := b.Version
	if b.Revision == "" {
		return s
	}
	s += " (rev " + b.Revision
	if b.Time != "" {
		s += ", " + b.Time
	}
	if b.Modified {
		s += ", modified"
	}
	return s + ")"
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and VCS revision this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := printer{w: cmd.OutOrStdout(), format: output}
			if err := p.validate(); err != nil {
				return err
			}
			bi := readBuildInfo()
			return p.print(bi, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "alphaswarm", bi.String())
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}
