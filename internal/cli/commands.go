package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"github.com/alphaswarm/controller/workload/specfile"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// globals are the client flags shared by every client command.
type globals struct {
	server, token, output, target string
	idempotencyKey                string
	insecure                      bool
	// tokenFrom says where the token sent came from ("" if none);
	// tokenFile is the admin token file looked for ("" if none was).
	tokenFrom, tokenFile string
}

func (g *globals) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.server, "server", envOr("ALPHASWARM_SERVER", "http://127.0.0.1:7070"), "control plane URL ($ALPHASWARM_SERVER)")
	f.StringVar(&g.token, "token", "", "bearer token ($ALPHASWARM_TOKEN; default: the local admin token file)")
	f.StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	f.StringVar(&g.target, "target", envOr("ALPHASWARM_TARGET", "local"), "target ($ALPHASWARM_TARGET)")
	f.StringVar(&g.idempotencyKey, "idempotency-key", "", "make a retried mutating command return the first one's result")
	f.BoolVar(&g.insecure, "insecure", false, "allow sending a bearer token over plain http:// to a server that is not on this machine")
}

// client builds the API client. Without a token it falls back to
// $ALPHASWARM_TOKEN, then, for a server on this machine only, to the admin
// token that `serve` wrote on its first start (refused unless only its
// owner can read it). A token is never sent over plain http:// to another
// machine unless --insecure says the network is trusted.
func (g *globals) client() (*client.Client, error) {
	u, err := url.Parse(g.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, workload.Invalid(workload.FieldError{Path: "server", Message: "must be an http:// or https:// URL"})
	}
	local := isLoopback(u.Hostname())
	tok, from := g.token, "--token"
	if tok == "" {
		tok, from = os.Getenv("ALPHASWARM_TOKEN"), "$ALPHASWARM_TOKEN"
	}
	if tok == "" && local {
		g.tokenFile = filepath.Join(dataDir(), auth.AdminTokenFileName)
		t, err := auth.ReadAdminToken(g.tokenFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("local admin token: %w", err)
		}
		tok, from = t, "the admin token file "+g.tokenFile
	}
	if tok == "" {
		from = ""
	}
	g.tokenFrom = from
	if tok != "" && u.Scheme == "http" && !local && !g.insecure {
		return nil, workload.Errorf(workload.InvalidArgument,
			"refusing to send a bearer token over plain http:// to %s, which is not this machine: use https://, or pass --insecure if the network to it is trusted", u.Host)
	}
	return client.New(g.server, tok)
}

// isLoopback reports whether host names this machine: localhost or a
// loopback address (not resolved: a name that resolves to loopback is not
// trusted to keep doing so).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (g *globals) printer(cmd *cobra.Command) (printer, error) {
	p := printer{w: cmd.OutOrStdout(), format: g.output}
	return p, p.validate()
}

func (g *globals) ctx(cmd *cobra.Command) context.Context {
	if g.idempotencyKey != "" {
		return client.WithIdempotencyKey(cmd.Context(), g.idempotencyKey)
	}
	return cmd.Context()
}

// run wraps a command body that needs a client and a printer.
func (g *globals) run(f func(cmd *cobra.Command, args []string, c *client.Client, p printer) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		p, err := g.printer(cmd)
		if err != nil {
			return err
		}
		c, err := g.client()
		if err != nil {
			return err
		}
		return g.tokenHint(f(cmd, args, c, p))
	}
}

// addClientCommands registers the client flags on root and adds the
// commands that talk to a server; it returns the flags for the commands
// built elsewhere that use them too (ledger verify).
func addClientCommands(root *cobra.Command) *globals {
	g := &globals{}
	g.register(root)
	root.AddCommand(
		deployCmd(g), stopCmd(g), scaleCmd(g), restartCmd(g), statusCmd(g), configCmd(g),
		metricsCmd(g), logsCmd(g), execCmd(g), runsCmd(g), haltCmd(g), targetsCmd(g), tokenCmd(g),
	)
	root.AddCommand(diffCmd(g))
	root.AddCommand(historyCmd(g), rollbackCmd(g))
	return g
}

// printResult prints the outcome of a mutating command.
func printResult(p printer, res api.Result) error {
	return p.print(res, func(tw *tabwriter.Writer) {
		if res.Status != nil {
			statusTable(tw, []workload.DeploymentStatus{*res.Status})
		}
		replay := ""
		if res.Replayed {
			replay = " (replayed: the first request's result)"
		}
		if res.NoWait {
			replay += " (did not wait for the service; follow it with: alphaswarm status SERVICE --watch)"
		}
		fmt.Fprintf(tw, "run %s%s\n", res.RunID, replay)
	})
}

// withProgress runs op; while it runs and stderr is a terminal, it shows
// the service's ready/desired replicas on one updating line.
func withProgress(cmd *cobra.Command, c *client.Client, target, service string, wait bool, op func() (api.Result, error)) (api.Result, error) {
	stderr := cmd.ErrOrStderr()
	if !wait || !isTerminal(stderr) {
		return op()
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprint(stderr, "\r\033[K")
				return
			case <-t.C:
				if st, err := c.Status(ctx, target, service); err == nil {
					fmt.Fprintf(stderr, "\r\033[K%s: %s, %d/%d ready", st.ID, st.Phase, st.Replicas.Ready, st.Replicas.Desired)
				}
			}
		}
	}()
	res, err := op()
	cancel()
	<-done
	return res, err
}

func deployCmd(g *globals) *cobra.Command {
	var file string
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "deploy -f FILE",
		Short: "Start a service, or roll it to a changed spec (YAML or JSON; - reads stdin)",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string, c *client.Client, p printer) error {
			var b []byte
			var err error
			if file == "-" {
				b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), workload.MaxSpecBytes+1))
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			format := specfile.FormatOf(file)
			spec, err := specfile.Decode(b, format)
			if err != nil {
				return err
			}
			if err := spec.Validate(); err != nil {
				return err
			}
			target := g.target
			if spec.Target != "" && !cmd.Flags().Changed("target") {
				target = spec.Target
			}
			ct := "application/yaml"
			if format == specfile.JSON {
				ct = "application/json"
			}
			res, err := withProgress(cmd, c, target, spec.Name, wf.waits(), func() (api.Result, error) {
				return c.Deploy(wf.ctx(g.ctx(cmd)), target, b, ct)
			})
			if err != nil {
				return err
			}
			return printResult(p, res)
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file")
	cmd.MarkFlagRequired("file")
	wf.register(cmd)
	return cmd
}

// serviceAction builds a command that runs one mutating call on SERVICE,
// showing progress on a terminal and printing the result.
func serviceAction(g *globals, use, short string, call func(c *client.Client, ctx context.Context, target, service string) (api.Result, error)) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			res, err := withProgress(cmd, c, g.target, args[0], wf.waits(), func() (api.Result, error) {
				return call(c, wf.ctx(g.ctx(cmd)), g.target, args[0])
			})
			if err != nil {
				return err
			}
			return printResult(p, res)
		}),
	}
	wf.register(cmd)
	return cmd
}

func stopCmd(g *globals) *cobra.Command {
	return serviceAction(g, "stop SERVICE", "Stop a service", (*client.Client).Stop)
}

func restartCmd(g *globals) *cobra.Command {
	return serviceAction(g, "restart SERVICE", "Rolling restart of a service", (*client.Client).Restart)
}

func scaleCmd(g *globals) *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "scale SERVICE REPLICAS",
		Short: "Set a service's replica count (0 keeps it known)",
		Args:  cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return workload.Invalid(workload.FieldError{Path: "replicas", Message: "must be a whole number"})
			}
			res, err := withProgress(cmd, c, g.target, args[0], wf.waits(), func() (api.Result, error) {
				return c.Scale(wf.ctx(g.ctx(cmd)), g.target, args[0], n)
			})
			if err != nil {
				return err
			}
			return printResult(p, res)
		}),
	}
	wf.register(cmd)
	return cmd
}

func statusCmd(g *globals) *cobra.Command {
	var all, watch bool
	cmd := &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Show one service with its instances, or list the services",
		Args:  cobra.MaximumNArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			if watch {
				target, service := g.target, ""
				if len(args) == 1 {
					service = args[0]
				} else if all {
					target = ""
				}
				return watchStatus(cmd, c, p, target, service)
			}
			if len(args) == 1 {
				st, err := c.Status(cmd.Context(), g.target, args[0])
				if err != nil {
					return err
				}
				return p.print(st, func(tw *tabwriter.Writer) { instancesTable(tw, st) })
			}
			target := g.target
			if all {
				target = ""
			}
			sts, err := c.Services(cmd.Context(), target)
			if err != nil {
				return err
			}
			return p.print(sts, func(tw *tabwriter.Writer) { statusTable(tw, sts) })
		}),
	}
	cmd.Flags().BoolVarP(&all, "all-targets", "A", false, "list the services of every target")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print each change as it happens; with SERVICE, until it is Running or Stopped (exit 0) or Failed (exit 1), like kubectl rollout status")
	return cmd
}

func configCmd(g *globals) *cobra.Command {
	var setWait, applyWait waitFlags
	cmd := &cobra.Command{Use: "config", Short: "Replace a service's config (the workload sees it after a roll)"}
	set := &cobra.Command{
		Use:   "set SERVICE KEY=VALUE...",
		Short: "Replace the service's config with these keys (keys not given are removed)",
		Args:  cobra.MinimumNArgs(2),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			config := map[string]string{}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return workload.Invalid(workload.FieldError{Path: "config", Message: fmt.Sprintf("%q is not KEY=VALUE", kv)})
				}
				config[k] = v
			}
			res, err := c.ApplyConfig(setWait.ctx(g.ctx(cmd)), g.target, args[0], config)
			if err != nil {
				return err
			}
			return printResult(p, res)
		}),
	}
	var file string
	apply := &cobra.Command{
		Use:   "apply SERVICE -f FILE",
		Short: "Replace the service's config with a YAML or JSON map of strings",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var config map[string]string
			if err := yaml.UnmarshalStrict(b, &config); err != nil {
				return workload.Invalid(workload.FieldError{Path: "config", Message: "must be a map of strings: " + err.Error()})
			}
			res, err := c.ApplyConfig(applyWait.ctx(g.ctx(cmd)), g.target, args[0], config)
			if err != nil {
				return err
			}
			return printResult(p, res)
		}),
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "config file")
	apply.MarkFlagRequired("file")
	setWait.register(set)
	applyWait.register(apply)
	cmd.AddCommand(set, apply)
	return cmd
}

func metricsCmd(g *globals) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "metrics SERVICE",
		Short: "Show a service's resource use (--watch streams it)",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			if watch {
				ctx = client.WithReconnect(ctx, followReconnect, reconnecting(cmd))
			}
			header := false
			for s, err := range c.Metrics(ctx, g.target, args[0]) {
				if err != nil {
					return err
				}
				if p.format == "table" {
					if !header {
						fmt.Fprintf(p.w, metricsRowFormat, "TIME", "INSTANCES", "CPU%", "MEMORY", "NET RX", "NET TX")
						header = true
					}
					fmt.Fprintf(p.w, metricsRowFormat, s.Time.Local().Format("15:04:05"), s.Instances, fmt.Sprintf("%.1f", s.CPUPercent),
						bytesStr(s.MemoryBytes), bytesStr(s.NetRxBytes), bytesStr(s.NetTxBytes))
				} else if err := p.record(s, nil); err != nil {
					return err
				}
				if !watch {
					return nil
				}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep streaming samples")
	return cmd
}

// followReconnect is how long a follower (logs -f, metrics --watch,
// status --watch) keeps reconnecting after its server went away: long
// enough for a load balancer to send it to another replica, or for a
// restarted server to come back.
const followReconnect = 2 * time.Minute

// reconnecting tells the user on stderr that a follower lost its server
// and is reconnecting.
func reconnecting(cmd *cobra.Command) func(error) {
	return func(err error) {
		fmt.Fprintf(cmd.ErrOrStderr(), "connection lost (%s); reconnecting for up to %s\n", workload.AsError(err).Message, followReconnect)
	}
}

func bytesStr(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func logsCmd(g *globals) *cobra.Command {
	var follow bool
	var tail int
	var since string
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print a service's logs across its instances",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			opts := provider.LogOptions{Follow: follow, Tail: tail}
			if since != "" {
				if t, err := time.Parse(time.RFC3339, since); err == nil {
					opts.Since = t
				} else if d, err := time.ParseDuration(since); err == nil {
					opts.Since = time.Now().Add(-d)
				} else {
					return workload.Invalid(workload.FieldError{Path: "since", Message: "must be an RFC 3339 time or a duration like 10m"})
				}
			}
			ctx := cmd.Context()
			if follow {
				ctx = client.WithReconnect(ctx, followReconnect, reconnecting(cmd))
			}
			for l, err := range c.Logs(ctx, g.target, args[0], opts) {
				if err != nil {
					return err
				}
				if p.format == "table" {
					// The whole instance name: pods of one ReplicaSet
					// differ only in their last characters.
					fmt.Fprintf(p.w, "[%s] %s\n", l.Instance, l.Text)
				} else if err := p.record(l, nil); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new lines")
	cmd.Flags().IntVar(&tail, "tail", 100, "lines per instance to start with (-1 for all)")
	cmd.Flags().StringVar(&since, "since", "", "only lines after this time (RFC 3339) or duration ago (10m)")
	return cmd
}

func runsCmd(g *globals) *cobra.Command {
	var f api.RunsQuery
	var since string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "Query the workload_runs audit ledger (newest first)",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string, c *client.Client, p printer) error {
			f.Descending = true
			if err := oneOf("kind", ledger.Kind(f.Kind), ledger.Kinds); err != nil {
				return err
			}
			if err := oneOf("outcome", ledger.Outcome(f.Outcome), ledger.Outcomes); err != nil {
				return err
			}
			if err := oneOf("action", workload.Action(f.Action), control.RecordedActions); err != nil {
				return err
			}
			if since != "" {
				d, err := time.ParseDuration(since)
				if err != nil {
					return workload.Invalid(workload.FieldError{Path: "since", Message: "must be a duration like 1h"})
				}
				f.Since = time.Now().Add(-d)
			}
			page, err := c.Runs(cmd.Context(), f)
			if err != nil {
				return err
			}
			return p.print(page, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "SEQ\tTIME\tRUN\tKIND\tUSER\tACTION\tSERVICE\tOUTCOME\tCODE\tDURATION")
				for _, r := range page.Records {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format(time.RFC3339),
						r.RunID, r.Kind, r.UserID, r.Action, dash(workload.ServiceID(r.Target, r.Service)), dash(r.Outcome),
						dash(r.ErrorCode), durStr(r.Duration))
				}
				if page.Next != "" {
					fmt.Fprintf(tw, "more: --cursor %s\n", page.Next)
				}
			})
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Service, "service", "", "only this service")
	fl.StringVar(&f.User, "user", "", "only this principal: its id (local user name, oidc:<issuer>#<subject>) or display name")
	fl.StringVar(&f.Action, "action", "", "only this action: start, stop, scale, restart, apply_config, exec, halt, token_create, token_revoke or ledger_accept")
	fl.StringVar(&f.Kind, "kind", "", "intent, result or rejected")
	fl.StringVar(&f.Outcome, "outcome", "", "ok, error, interrupted, invalid, denied or halted")
	fl.StringVar(&since, "since", "", "only runs in the last duration (1h)")
	fl.StringVar(&f.Cursor, "cursor", "", "continue from a previous page")
	fl.IntVar(&f.Limit, "limit", 50, "rows per page (1..1000)")
	return cmd
}

func durStr(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func haltCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:       "halt on|off|status",
		Short:     "The kill switch: refuse every mutating operation (globally with --all, else for --target)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"on", "off", "status"},
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			target := g.target
			if all {
				target = ""
			}
			switch args[0] {
			case "status":
				h, err := c.Halts(cmd.Context())
				if err != nil {
					return err
				}
				return p.print(h, func(tw *tabwriter.Writer) {
					fmt.Fprintf(tw, "global\t%s\n", onOff(h.Global))
					for _, t := range h.Targets {
						fmt.Fprintf(tw, "%s\ton\n", t)
					}
				})
			case "on", "off":
				res, err := c.SetHalt(g.ctx(cmd), target, args[0] == "on")
				if err != nil {
					return err
				}
				return printResult(p, res)
			}
			return workload.Invalid(workload.FieldError{Path: "halt", Message: "want on, off or status"})
		}),
	}
	cmd.Flags().BoolVar(&all, "all", false, "the global switch (every target)")
	return cmd
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func targetsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "targets",
		Short: "List targets and what each can do",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string, c *client.Client, p printer) error {
			ts, err := c.Targets(cmd.Context())
			if err != nil {
				return err
			}
			return p.print(ts, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "TARGET\tPROVIDER\tHALTED\tUNSUPPORTED")
				for _, t := range ts {
					var un []string
					for _, c := range t.Capabilities {
						if !c.Supported {
							un = append(un, string(c.Op))
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", t.Name, t.Provider, t.Halted, dash(strings.Join(un, ",")))
				}
			})
		}),
	}
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage bearer tokens (admin)"}
	var user, role string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --user NAME --role viewer|operator|admin",
		Short: "Create a token; it is printed once and stored only as a hash",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string, c *client.Client, p printer) error {
			res, err := c.CreateToken(cmd.Context(), user, role, ttl)
			if err != nil {
				return err
			}
			return p.print(res, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%s\n", res.Token)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s for %s (%s); store it now, it is not shown again\n", res.Info.ID, res.Info.User, res.Info.Role)
			})
		}),
	}
	create.Flags().StringVar(&user, "user", "", "user the token authenticates")
	create.Flags().StringVar(&role, "role", "viewer", "viewer, operator or admin")
	create.Flags().DurationVar(&ttl, "ttl", 0, "expiry (0: never)")
	create.MarkFlagRequired("user")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their values)",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string, c *client.Client, p printer) error {
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			return p.print(ts, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tUSER\tROLE\tCREATED\tEXPIRES")
				for _, t := range ts {
					exp := "-"
					if !t.Expires.IsZero() {
						exp = t.Expires.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.User, t.Role, t.Created.UTC().Format(time.RFC3339), exp)
				}
			})
		}),
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			return p.print(map[string]string{"revoked": args[0]}, func(tw *tabwriter.Writer) { fmt.Fprintf(tw, "revoked %s\n", args[0]) })
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
