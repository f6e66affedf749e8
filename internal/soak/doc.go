// Package soak holds the multi-replica soak test (issue 19): several
// `alphaswarm serve` processes on one PostgreSQL ledger, all active, a
// client spreading mixed operations over them while one replica at a time
// is SIGKILLed and restarted, and, at the end, the ledger checked against
// what the client was told. The package has no code of its own; see
// soak_test.go.
//
// The backend every replica manages is one namespace of the Kubernetes API
// server tier (internal/k8stest): its state lives in the API server, so
// every replica sees the same Deployments, and an operation a killed
// replica started is finished (or not) by the cluster, as in production.
package soak
