package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/alphaswarm/controller/workload"
)

// ServerBinary is the name of the control plane's binary (cmd/alphaswarmd).
// The command line does not link the providers, the API server or the
// dashboard, so that a client command starts in a few milliseconds;
// `alphaswarm serve` runs the server binary in its place (exec: same
// process id, signals and exit status).
const ServerBinary = "alphaswarmd"

func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the control plane (runs " + ServerBinary + ", installed beside alphaswarm)",
		Long: `Run the control plane: executes ` + ServerBinary + ` (from the directory of this
binary, else from PATH) with the same arguments. ` + "`" + ServerBinary + ` --help` + "`" + ` lists its flags.`,
		DisableFlagParsing: true, // every flag is the server's
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := findServer()
			if err != nil {
				return err
			}
			argv := append([]string{path, "serve"}, args...)
			if err := syscall.Exec(path, argv, os.Environ()); err != nil {
				return fmt.Errorf("running %s: %w", path, err)
			}
			return nil // not reached
		},
	}
}

// findServer finds the server binary beside the running executable, else
// on PATH.
func findServer() (string, error) {
	var beside string
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			beside = filepath.Join(filepath.Dir(self), ServerBinary)
			if st, err := os.Stat(beside); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return beside, nil
			}
		}
	}
	if p, err := exec.LookPath(ServerBinary); err == nil {
		return p, nil
	} else if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return "", workload.Errorf(workload.NotFound, "alphaswarm serve runs the server binary %s, which is neither beside this binary (%s) nor on PATH; "+
		"install both with `go install github.com/alphaswarm/controller/cmd/...@latest` (in a checkout: `go install ./cmd/...`), "+
		"or run the server directly: `go run ./cmd/%s`", ServerBinary, beside, ServerBinary)
}
