package cli

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
)

// What the server binary (internal/server) shares with the command line:
// the same data directory, flag checks and messages.

// DataDir is where the embedded defaults keep their files:
// $ALPHASWARM_DATA_DIR, else $XDG_DATA_HOME/alphaswarm, else
// ~/.local/share/alphaswarm.
func DataDir() string { return dataDir() }

// OneOf refuses a flag value outside allowed, naming the flag and the
// allowed values.
func OneOf[T ~string](flag string, v T, allowed []T) error { return oneOf(flag, v, allowed) }

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool { return isLoopback(host) }

// WarnPrivileges says when the ledger connection can rewrite the ledger.
func WarnPrivileges(ctx context.Context, out io.Writer, log *slog.Logger, l ledger.Ledger) {
	warnPrivileges(ctx, out, log, l)
}

// RedactURL hides a password in a ledger URL.
func RedactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		if at := strings.Index(s[i+3:], "@"); at >= 0 {
			cred := s[i+3 : i+3+at]
			if user, _, ok := strings.Cut(cred, ":"); ok {
				return s[:i+3] + user + ":" + credentials.Redacted + s[i+3+at:]
			}
		}
	}
	return s
}

// PrintError writes an error as the command line does: "error: code:
// message" (and the fields of an invalid_argument).
func PrintError(w io.Writer, err error) { printError(w, err) }

// BuildVersion is the version line of `alphaswarm --version`.
func BuildVersion() string { return readBuildInfo().String() }
