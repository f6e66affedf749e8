package auth

import (
	"fmt"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// DefaultMaxTokenTTL is the longest life of a token created through the
// API unless configured otherwise (auth.tokenMaxTTL).
const DefaultMaxTokenTTL = 90 * 24 * time.Hour

// TokenPolicy is the TokenStore as the API's token routes see it: a token
// created there lives at most MaxTTL. A request without a ttl gets MaxTTL,
// a longer one is refused; so an admin (an OIDC admin among them) cannot
// mint a local token that outlives its own account indefinitely. The
// first-start admin token is created by the store directly and is not
// subject to it.
type TokenPolicy struct {
	*TokenStore
	// MaxTTL bounds tokens created through Create; 0 means
	// DefaultMaxTokenTTL.
	MaxTTL time.Duration
}

// Create issues a token through the store after applying the TTL policy.
func (p TokenPolicy) Create(user string, role Role, ttl time.Duration) (string, TokenInfo, error) {
	limit := p.MaxTTL
	if limit <= 0 {
		limit = DefaultMaxTokenTTL
	}
	switch {
	case ttl == 0:
		ttl = limit
	case ttl > limit:
		return "", TokenInfo{}, workload.Invalid(workload.FieldError{Path: "ttl",
			Message: fmt.Sprintf("must be at most %s (auth.tokenMaxTTL)", limit)})
	}
	return p.TokenStore.Create(user, role, ttl)
}
