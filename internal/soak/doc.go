// Package soak holds the multi-replica soak test (issue 19): several
// `alphaswarm serve` processes on one PostgreSQL ledger, all active, a
// client spreading mixed operations over them while one replica at a time
// is SIGKILLed and restarted, and, at the end, the ledger checked against
// what the client was told. The package has no code of its own; see
// soak_test.go.
//
// Two followers run through the whole workload, as a user runs `logs -f`
// and `status --watch` behind a load balancer: each through a round-robin
// TCP proxy (testkit.Proxy) in front of the three replicas, with the real
// client and client.WithReconnect. When the replica serving a follower is
// SIGKILLed, the follower must resume on another one: the log lines the
// test appends shown exactly once and in order, no status shown twice in a
// row nor a rollout revision going back, the last status of each service
// the one the replicas report, and every connection a replica ended ended
// by its SIGKILL.
//
// The backend every replica manages is one namespace of the Kubernetes API
// server tier (internal/k8stest): its state lives in the API server, so
// every replica sees the same Deployments, and an operation a killed
// replica started is finished (or not) by the cluster, as in production.
package soak
