package cli

import (
	"os"
	"path/filepath"
)

// dataDir is where the embedded defaults keep their files:
// $ALPHASWARM_DATA_DIR, else $XDG_DATA_HOME/alphaswarm, else
// ~/.local/share/alphaswarm.
func dataDir() string {
	if d := os.Getenv("ALPHASWARM_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "alphaswarm")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "alphaswarm")
	}
	return filepath.Join(home, ".local", "share", "alphaswarm")
}

func defaultLedgerURL() string {
	return "sqlite:" + filepath.Join(dataDir(), "ledger.db")
}

// envOr is the environment variable name, else def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
