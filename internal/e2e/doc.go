// Package e2e holds the end-to-end tests and benchmarks that run the whole
// control plane — router, authentication, runtime, SQLite ledger, the docker
// provider on the machine's Docker Engine, and the alphaswarm binary — and
// compare it with its peers (the docker CLI, terraform apply). It has no
// code outside its tests.
package e2e
