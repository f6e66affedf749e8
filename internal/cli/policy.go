package cli

import (
	"fmt"
	"os"
	"syscall"

	"github.com/spf13/cobra"
)

// newPolicyCmd is `alphaswarm policy ...`, which the server binary runs:
// the policy engine (OPA) is linked by the server only, as the providers
// are (see ServerBinary).
func newPolicyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "policy test -f EXAMPLES [--policy PATH | --config FILE]",
		Short: "Test the admin's Rego policies against example inputs (runs " + ServerBinary + " policy)",
		Long: `Evaluate the policies against the examples in a file, each an input and its
expected decision; exits 1 when one does not get it. Executes ` + ServerBinary + ` policy
with the same arguments (` + "`" + ServerBinary + ` policy test --help` + "`" + ` describes the file).`,
		DisableFlagParsing: true, // every flag is the server's
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findServer()
			if err != nil {
				return err
			}
			argv := append([]string{path, "policy"}, args...)
			if err := syscall.Exec(path, argv, os.Environ()); err != nil {
				return fmt.Errorf("running %s: %w", path, err)
			}
			return nil // not reached
		},
	}
}
