// Command alphaswarm is the command-line client of the control plane.
// `alphaswarm serve` runs the control plane itself, the alphaswarmd binary
// installed beside it: this one links no provider, so that every client
// command starts in milliseconds.
package main

import (
	"os"

	"github.com/alphaswarm/controller/internal/cli"
	_ "github.com/alphaswarm/controller/ledger/postgres" // `ledger verify|migrate --ledger postgres://...`
	_ "github.com/alphaswarm/controller/ledger/sqlite"   // `ledger verify --ledger sqlite:...`
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
