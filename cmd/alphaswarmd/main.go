// Command alphaswarmd is the alphaswarm control plane: the HTTP API, the
// dashboard, the audit ledger and the providers. `alphaswarm serve` runs it.
package main

import (
	"os"

	"github.com/alphaswarm/controller/internal/server"
	_ "github.com/alphaswarm/controller/ledger/postgres"     // ledger "postgres://"
	_ "github.com/alphaswarm/controller/ledger/sqlite"       // ledger "sqlite:" (embedded default)
	_ "github.com/alphaswarm/controller/provider/aws"        // provider "aws" (ECS mode)
	_ "github.com/alphaswarm/controller/provider/azure"      // provider "azure" (ACI and AKS modes)
	_ "github.com/alphaswarm/controller/provider/docker"     // provider "docker"
	_ "github.com/alphaswarm/controller/provider/gcp"        // provider "gcp" (Cloud Run mode)
	_ "github.com/alphaswarm/controller/provider/kubernetes" // provider "kubernetes"
)

func main() { os.Exit(server.Main(os.Args[1:])) }
