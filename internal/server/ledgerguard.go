package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/user"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alphaswarm/controller/internal/cli"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
)

// openCheckpoints wraps led with signed checkpoints and export sinks (unless
// the config turns them off), verifies it against the checkpoint file, and
// prints the start-up lines: the ledger's size and state, the public key.
// A ledger that does not verify is left read-only unless acceptBroken.
func openCheckpoints(ctx context.Context, out io.Writer, log *slog.Logger, cfg config.Config, led ledger.Ledger, acceptBroken bool) (ledger.Ledger, *checkpoint.Ledger, error) {
	accept := ""
	if acceptBroken {
		who := "unknown"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		host, _ := os.Hostname()
		accept = fmt.Sprintf("admin:%s@%s (serve --ledger-accept-broken)", who, host)
	}
	c := cfg.Checkpoints
	if c.Disabled {
		rep, err := checkpoint.VerifyLedger(ctx, led, nil, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("verifying ledger: %w", err)
		}
		state := "chain OK"
		if !rep.OK {
			state = "CHAIN BROKEN: " + rep.Reason
			if g, ok := led.(ledger.Guarded); ok && !acceptBroken {
				g.HeadWatch().Refuse("the ledger's chain does not verify (" + rep.Reason + "); it is read-only until an admin restarts with --ledger-accept-broken")
				state += "; READ-ONLY"
			}
			log.Error("ledger chain broken", "reason", rep.Reason)
		}
		fmt.Fprintf(out, "ledger: %s (%d records, %s; checkpoints disabled)\n", cli.RedactURL(cfg.Ledger), rep.Rows, state)
		return led, nil, nil
	}
	key, created, err := checkpoint.LoadOrCreateKey(c.SigningKeyFile)
	if err != nil {
		return nil, nil, err
	}
	var sinks []checkpoint.Sink
	for _, sc := range c.Sinks {
		s, err := checkpoint.OpenSink(sc)
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, s)
	}
	cpl, rep, err := checkpoint.Open(ctx, led, checkpoint.Options{Key: key, File: c.File, Every: c.Every, Interval: c.Interval.D(),
		Sinks: sinks, AcceptBroken: accept, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	state := fmt.Sprintf("chain OK, %d of %d checkpoints present", rep.Matched, rep.Checkpoints)
	if !rep.OK {
		state = "DOES NOT VERIFY: " + rep.Reason
		if acceptBroken {
			state += "; started anyway (--ledger-accept-broken), recorded in the ledger"
		} else {
			state += "; READ-ONLY until an admin restarts with --ledger-accept-broken"
		}
	}
	fmt.Fprintf(out, "ledger: %s (%d records, %s)\n", cli.RedactURL(cfg.Ledger), rep.Rows, state)
	pub := cpl.PublicKey()
	if created {
		fmt.Fprintf(out, "first start: checkpoint signing key written to %s (mode 0600)\n", c.SigningKeyFile)
	}
	fmt.Fprintf(out, "ledger checkpoints: %s (key %s) -> %s\n", checkpoint.PublicKeyString(pub), checkpoint.KeyID(pub), c.File)
	for _, sc := range c.Sinks {
		fmt.Fprintf(out, "ledger export sink %s: %s\n", sc.Name, sc.Type)
	}
	return cpl, cpl, nil
}

// ledgerReady reports the ledger's own readiness problems: tampering seen,
// read-only mode, or failing appends (disk full).
func ledgerReady(led ledger.Ledger) func(context.Context) []string {
	return func(context.Context) []string {
		if g, ok := led.(ledger.Guarded); ok && g.HeadWatch() != nil {
			if err := g.HeadWatch().Health(); err != nil {
				return []string{"ledger: " + err.Error()}
			}
		}
		return nil
	}
}

// registerLedgerMetrics exports the guard's state and the checkpoint and
// sink counters.
func registerLedgerMetrics(reg *prometheus.Registry, led ledger.Ledger, cpl *checkpoint.Ledger) {
	g, ok := led.(ledger.Guarded)
	if !ok || g.HeadWatch() == nil {
		return
	}
	hw := g.HeadWatch()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "alphaswarm_ledger_writable",
			Help: "1 while the ledger takes appends; 0 when tampering was detected, it is read-only, or appends fail."},
			func() float64 { return b(hw.Health() == nil) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "alphaswarm_ledger_tampered",
			Help: "1 when the ledger's head moved back or changed, a checkpointed halt vanished, or it did not verify at start."},
			func() float64 { return b(hw.Tampered() != nil) }),
	)
	if cpl == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "alphaswarm_ledger_checkpoints_total",
			Help: "Signed checkpoints written to the checkpoint file."}, func() float64 { return float64(cpl.Stats().Checkpoints) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "alphaswarm_ledger_checkpoint_errors_total",
			Help: "Checkpoints that could not be written."}, func() float64 { return float64(cpl.Stats().CheckpointErrors) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "alphaswarm_ledger_checkpoint_seq",
			Help: "Row number of the last checkpoint."}, func() float64 { return float64(cpl.Stats().LastSeq) }),
	)
	for i, s := range cpl.Stats().Sinks {
		sink := func() checkpoint.SinkStats { return cpl.Stats().Sinks[i] }
		labels := prometheus.Labels{"sink": s.Name}
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "alphaswarm_ledger_export_cursor", ConstLabels: labels,
				Help: "Last ledger row delivered to the sink."}, func() float64 { return float64(sink().Cursor) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "alphaswarm_ledger_export_down", ConstLabels: labels,
				Help: "1 while the sink refuses deliveries (rows are re-sent from the ledger when it answers)."},
				func() float64 { return b(sink().Down) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "alphaswarm_ledger_export_failures_total", ConstLabels: labels,
				Help: "Failed deliveries to the sink."}, func() float64 { return float64(sink().Failures) }),
		)
	}
}

// checkpointKeyHandler serves GET /v1/ledger/checkpoint-key: the public key
// that verifies the checkpoints (public information; no authentication).
func checkpointKeyHandler(cpl *checkpoint.Ledger) http.Handler {
	pub := cpl.PublicKey()
	body, _ := json.Marshal(map[string]any{"status": "ok", "error": nil, "data": map[string]string{
		"publicKey": checkpoint.PublicKeyString(pub), "keyId": checkpoint.KeyID(pub), "pem": string(checkpoint.PublicKeyPEM(pub)),
	}})
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	})
}
