package config

import (
	"fmt"
	"path/filepath"

	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/workload"
)

// Checkpoints configures the ledger's signed checkpoints and export sinks
// (package ledger/checkpoint).
type Checkpoints struct {
	// Disabled turns checkpoints and export off (not recommended: without
	// them truncating the ledger's tail goes unnoticed across restarts).
	Disabled bool `json:"disabled,omitempty"`
	// SigningKeyFile is the ed25519 private key (PKCS#8 PEM, mode 0600);
	// default <dataDir>/checkpoint.key, created on first start.
	SigningKeyFile string `json:"signingKeyFile,omitempty"`
	// File is the append-only checkpoint file; default
	// <dataDir>-checkpoints/checkpoints.jsonl, a directory beside the data
	// directory rather than inside it (point it at another disk or owner).
	File string `json:"file,omitempty"`
	// Every and Interval: a checkpoint every Every rows (default 10000), or
	// after Interval (default 10s) when rows were appended.
	Every    int               `json:"every,omitempty"`
	Interval workload.Duration `json:"interval,omitzero"`
	// Sinks receive every ledger row (JSON lines with its hash) and every
	// checkpoint: jsonl files, syslog, HTTP webhooks.
	Sinks []checkpoint.SinkConfig `json:"sinks,omitempty"`
}

func (c *Checkpoints) fill(dataDir string) {
	if c.SigningKeyFile == "" {
		c.SigningKeyFile = filepath.Join(dataDir, "checkpoint.key")
	}
	if c.File == "" {
		c.File = filepath.Join(filepath.Clean(dataDir)+"-checkpoints", "checkpoints.jsonl")
	}
}

func (c *Checkpoints) validate() []workload.FieldError {
	var errs []workload.FieldError
	if c.Every < 0 {
		errs = append(errs, workload.FieldError{Path: "checkpoints.every", Message: "must be >= 0"})
	}
	if c.Interval < 0 {
		errs = append(errs, workload.FieldError{Path: "checkpoints.interval", Message: "must be >= 0"})
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		p := fmt.Sprintf("checkpoints.sinks[%d]", i)
		if err := s.Validate(); err != nil {
			errs = append(errs, workload.FieldError{Path: p, Message: err.Error()})
		}
		if names[s.Name] {
			errs = append(errs, workload.FieldError{Path: p + ".name", Message: fmt.Sprintf("%q is used twice", s.Name)})
		}
		names[s.Name] = true
	}
	return errs
}
