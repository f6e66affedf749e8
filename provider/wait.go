package provider

import "context"

type noWaitKey struct{}

// WithoutWait returns a context under which the mutating methods (Start,
// Stop, Scale, Restart, ApplyConfig) return as soon as the backend has
// accepted the change, without waiting for the service to become ready
// (or for its instances to go): the status they return is whatever the
// backend reports at that moment, typically Progressing. This is
// `kubectl scale` without `kubectl rollout status`. Every provider honours
// it in its readiness wait; a provider that drives a rollout itself
// (Docker replaces one replica at a time) answers once the first new
// replica has started and continues the rollout in the background, and
// documents that.
//
// The choice travels in the context, not in the method signatures, so the
// Provider interface stays the decision record's six methods.
func WithoutWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, true)
}

// Waits reports whether a mutating call made with ctx waits for readiness:
// true unless ctx comes from WithoutWait.
func Waits(ctx context.Context) bool {
	v, _ := ctx.Value(noWaitKey{}).(bool)
	return !v
}
