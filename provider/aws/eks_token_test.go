package aws

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/alphaswarm/controller/workload"
)

// TestEKSTokenSlowCredentials: while one caller retrieves credentials
// (a network call for web identity), the others wait for that one token,
// or give up when their own context ends; they do not queue on a lock.
func TestEKSTokenSlowCredentials(t *testing.T) {
	release := make(chan struct{})
	var retrievals, presigns atomic.Int64
	src := &tokenSource{cluster: "c", now: time.Now,
		creds: sdkaws.CredentialsProviderFunc(func(ctx context.Context) (sdkaws.Credentials, error) {
			retrievals.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return sdkaws.Credentials{}, ctx.Err()
			}
			return sdkaws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		}),
		presign: func(context.Context) (string, error) {
			presigns.Add(1)
			return "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity", nil
		}}
	var wg sync.WaitGroup
	tokens := make([]string, 5)
	errs := make([]error, 5)
	for i := range tokens {
		wg.Go(func() { tokens[i], errs[i] = src.Token(context.Background()) })
	}
	time.Sleep(30 * time.Millisecond)
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := src.Token(short); workload.CodeOf(err) != workload.Timeout {
		t.Errorf("Token with a context that ends while another caller fetches = %v, want timeout", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("the caller with a short context waited %v", d)
	}
	close(release)
	wg.Wait()
	for i := range tokens {
		if errs[i] != nil || tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("caller %d: %q, %v; want the one token", i, tokens[i], errs[i])
		}
	}
	if r, p := retrievals.Load(), presigns.Load(); r != 1 || p != 1 {
		t.Errorf("%d credential retrievals and %d presigns for 6 callers, want 1 each", r, p)
	}
}
