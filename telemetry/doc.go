// Package telemetry fans one upstream stream out to many subscribers: however
// many clients watch a key (a service, a container), the backend is asked for
// exactly one stream per key. The path of a metrics sample from a provider
// to an SSE client, through the two hubs it crosses (the runtime's per
// service, docker's per container), is described in package control.
//
// A Hub owns, per key, the upstream's lifetime and the per-subscriber
// buffers. It opens the upstream lazily when the first subscriber starts
// iterating, under a context the hub owns (never a subscriber's), and cancels
// it when the last subscriber leaves; the next subscriber opens a new one, and
// only once the old one's open func has returned, so two upstreams for one key
// never run at the same time. A subscriber that reads slowly never slows the
// upstream or the other subscribers: its bounded buffer drops its oldest
// value, and the next value it reads says how many it lost (MarkDropped;
// workload.MetricSample.Dropped for NewMetricsHub).
//
// What it must not do: it never opens a backend connection, resolves
// credentials, checks authorization or writes to the ledger. The open func
// given to NewHub (typically a provider's StreamMetrics, reached through the
// control runtime) does all of that; the hub only calls it and copies what it
// yields. It keeps no history: a subscriber sees the values produced while it
// is subscribed, nothing from before.
//
// # Concurrency
//
// Every Hub method may be called from any goroutine. The iterator returned by
// Subscribe is single-use and synchronous: range over it once, from one
// goroutine; the loop body runs on that goroutine, and a slow body only fills
// that subscriber's buffer. The only goroutines the hub starts are one pump
// per open upstream, and Close waits for all of them.
//
// The same value is handed to every subscriber of a key (as a shallow copy):
// subscribers, and MarkDropped, must not modify what a value refers to (maps,
// slices, pointers such as MetricSample.Extra).
package telemetry
