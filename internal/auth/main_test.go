package auth

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// TestMain checks that no test leaves a goroutine behind: go-oidc's key set
// refreshes keys on a goroutine, and the test issuers' HTTP connections
// run on others.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wantCode fails unless err is a *workload.Error with code want (want ""
// means no error).
func wantCode(t *testing.T, err error, want workload.Code) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var we *workload.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) is not a *workload.Error; want %s", err, err, want)
	}
	if we.Code != want {
		t.Fatalf("code %s (%v); want %s", we.Code, err, want)
	}
}

// principalIs compares a principal with want: every field, except Auth
// when want leaves it empty.
func principalIs(p, want control.Principal) bool {
	if want.Auth == "" {
		p.Auth = ""
	}
	return reflect.DeepEqual(p, want)
}

// noSecret fails if s contains secret or its random part.
func noSecret(t *testing.T, s, secret string) {
	t.Helper()
	body := strings.TrimPrefix(secret, TokenPrefix)
	if len(body) < 8 {
		return // too short to be recognisable
	}
	body = body[:8]
	if strings.Contains(s, secret) || strings.Contains(s, body) {
		t.Fatalf("token leaked into %q", s)
	}
}
