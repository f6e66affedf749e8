// Package api holds the wire contract of the alphaswarm HTTP API (/v1):
// every request and response body, shared by the server (internal/httpapi)
// and the Go client (package client). A body is defined here unless it is
// part of the shared vocabulary: workload (DeploymentSpec,
// DeploymentStatus, MetricSample, LogLine, Error and the envelope) and
// provider (ExecResult, Capability, TermSize). Package control uses the
// types it returns from here (control.Result, control.TargetInfo and
// control.Principal are aliases), so the runtime cannot drift from the wire.
//
// It has no behaviour and must not import control or ledger: the client
// and any other program speaking the API depend on this package alone.
package api

import (
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// ScaleRequest is the body of POST .../scale.
type ScaleRequest struct {
	Replicas *int `json:"replicas"`
}

// ConfigRequest is the body of PUT .../config.
type ConfigRequest struct {
	Config map[string]string `json:"config"`
}

// HaltRequest is the body of PUT /v1/halt.
type HaltRequest struct {
	On *bool `json:"on"`
	// Target is the target to halt; empty or "*" for all.
	Target string `json:"target,omitempty"`
}

// ExecRequest is the body of POST .../exec (the non-interactive form).
type ExecRequest struct {
	Command  []string `json:"command"`
	Instance string   `json:"instance,omitempty"`
	// Stdin is written to the command's standard input, then closed.
	Stdin string `json:"stdin,omitempty"`
}

// ExecResponse is the answer of POST .../exec.
type ExecResponse struct {
	RunID    string `json:"runId"`
	Instance string `json:"instance"`
	ExitCode int    `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	// Truncated is set when output exceeded the response limit.
	Truncated bool `json:"truncated,omitempty"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	User string            `json:"user"`
	Role string            `json:"role"`
	TTL  workload.Duration `json:"ttl,omitzero"`
}

// TokenResponse answers POST /v1/tokens; Token is shown this once.
type TokenResponse struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// TokenInfo describes a bearer token, never its value or hash.
type TokenInfo struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

// HaltState is the answer of GET /v1/halt.
type HaltState struct {
	Global  bool     `json:"global"`
	Targets []string `json:"targets"`
}

// The interactive exec protocol over WebSocket (GET .../exec/ws):
//
//   - before the upgrade the server authorises the caller and checks the
//     query, the target's policy and halt switch and that the service
//     exists; a refusal is a plain HTTP answer with the error envelope
//     (400, 403, 404, 423, ...; 426 for a request that is not a WebSocket
//     handshake), never an in-band message;
//   - the command is given in the query: ?command=sh&command=-c&command=ls
//     (repeated), optional instance=, tty=true, cols=, rows=;
//   - binary messages from the client are the command's stdin; a text
//     message is a control message: {"resize":{"cols":120,"rows":40}} or
//     {"eof":true} to close stdin (with a TTY, it sends the terminal's EOF
//     character, Ctrl-D, which ends input at the start of a line as typing
//     it would; a binary 0x04 does the same);
//   - binary messages from the server are output, prefixed by one byte:
//     StreamStdout or StreamStderr (with a TTY everything is stdout);
//   - the server's last message is a text message {"exit":{"code":N,"runId":...}}
//     or {"error":{...}}, then it closes the connection.
const (
	StreamStdout byte = 1
	StreamStderr byte = 2
)

// ExecControl is a client's text message.
type ExecControl struct {
	Resize *provider.TermSize `json:"resize,omitempty"`
	EOF    bool               `json:"eof,omitempty"`
}

// ExecEnd is the server's last text message.
type ExecEnd struct {
	Exit  *ExecExit       `json:"exit,omitempty"`
	Error *workload.Error `json:"error,omitempty"`
}

// ExecExit reports the command's exit.
type ExecExit struct {
	Code  int    `json:"code"`
	RunID string `json:"runId"`
}
