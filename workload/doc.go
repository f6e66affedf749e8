// Package workload is the vocabulary of alphaswarm: what a service is
// (DeploymentSpec), what state it is in (DeploymentStatus), what flows out of
// it (MetricSample, LogLine), what can be done to it (Action), and how things
// go wrong (Error and its Code) and are reported (Envelope).
//
// It imports nothing beyond the standard library and does no I/O: every other
// package depends on it, and it depends on none of them.
package workload
