package cli

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/provider"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// exitCodeError makes Main exit with a command's own exit code.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("command exited with status %d", e.code) }

func execCmd(g *globals) *cobra.Command {
	var interactive, tty bool
	var instance string
	cmd := &cobra.Command{
		Use:   "exec SERVICE [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in one of a service's instances (admin; audited)",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			service, command := args[0], args[1:]
			if !interactive && !tty {
				res, err := c.Exec(g.ctx(cmd), g.target, service, api.ExecRequest{Command: command, Instance: instance})
				if err != nil {
					return err
				}
				if p.format != "table" {
					if err := p.print(res, nil); err != nil {
						return err
					}
				} else {
					fmt.Fprint(cmd.OutOrStdout(), res.Stdout)
					fmt.Fprint(cmd.ErrOrStderr(), res.Stderr)
				}
				if res.ExitCode != 0 {
					return exitCodeError{res.ExitCode}
				}
				return nil
			}
			e := client.ExecStream{Command: command, Instance: instance, TTY: tty, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			if interactive {
				e.Stdin = cmd.InOrStdin()
			}
			if tty {
				if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					state, err := term.MakeRaw(int(f.Fd()))
					if err != nil {
						return err
					}
					defer term.Restore(int(f.Fd()), state)
					if w, h, err := term.GetSize(int(f.Fd())); err == nil {
						e.Size = provider.TermSize{Cols: uint16(w), Rows: uint16(h)}
					}
					resize := make(chan provider.TermSize, 1)
					winch := make(chan os.Signal, 1)
					signal.Notify(winch, syscall.SIGWINCH)
					defer signal.Stop(winch)
					go func() {
						for range winch {
							if w, h, err := term.GetSize(int(f.Fd())); err == nil {
								select {
								case resize <- provider.TermSize{Cols: uint16(w), Rows: uint16(h)}:
								default:
								}
							}
						}
					}()
					e.Resize = resize
				}
			}
			exit, err := c.ExecInteractive(cmd.Context(), g.target, service, e)
			if err != nil {
				return err
			}
			if exit.Code != 0 {
				return exitCodeError{exit.Code}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&interactive, "stdin", "i", false, "pass stdin to the command")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	cmd.Flags().StringVar(&instance, "instance", "", "instance id (default: any ready one)")
	return cmd
}
