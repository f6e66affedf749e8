package dockertest

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
)

// Target is a docker target of one test's own: the test workload image
// built for it and the docker provider opened on it.
type Target struct {
	// Name is the target's name; it labels the image and every container
	// and network the provider creates.
	Name string
	// Image is the test workload image, "alphaswarm-test-workload:<Name>".
	Image string
	// Provider is the docker provider on the target (stop timeout 2s, no
	// pulls).
	Provider provider.Provider
	// Engine is a raw Engine client, for checks beside the provider.
	Engine *client.Client
}

// TargetOptions are the choices NewTarget leaves to a test.
type TargetOptions struct {
	// Policy is the target's policy (default: the zero policy).
	Policy provider.Policy
	// Credentials is the provider's resolver (default: credentials.FromEnv).
	Credentials *credentials.Resolver
}

// NewTarget builds the test workload image for a target named name (which
// the test makes unique) and opens the docker provider on it, with ctx.
// It skips the test loudly when no Engine answers, and fails it under CI.
// When the test ends, t.Cleanup closes the provider, removes every
// container and network labelled with the target and the image, and
// closes the Engine client.
//
// The caller imports provider/docker, which registers "docker": this
// package cannot, as the provider's own tests import it.
func NewTarget(ctx context.Context, t TB, name string, o TargetOptions) *Target {
	t.Helper()
	cli := Require(t)
	tg := &Target{Name: name, Image: "alphaswarm-test-workload:" + name, Engine: cli}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, ok := tg.Provider.(io.Closer); ok {
			c.Close()
		}
		Sweep(ctx, cli, name)
		RemoveImage(ctx, cli, tg.Image)
		cli.Close()
	})
	if err := BuildImage(ctx, cli, tg.Image, name); err != nil {
		t.Fatalf("building the test workload image: %v", err)
	}
	creds := o.Credentials
	if creds == nil {
		creds = credentials.FromEnv()
	}
	p, err := provider.Open(ctx, provider.TargetConfig{Name: name, Provider: "docker", Policy: o.Policy,
		Options: map[string]json.RawMessage{"stopTimeout": json.RawMessage(`"2s"`), "pull": json.RawMessage(`"never"`)}}, creds)
	if err != nil {
		t.Fatalf("opening the docker provider: %v", err)
	}
	tg.Provider = p
	return tg
}
