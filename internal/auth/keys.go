package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/alphaswarm/controller/workload"
)

// asymmetric lists the signature algorithms accepted when the issuer
// advertises them: never "none", never HMAC (an HMAC "key" would be the
// issuer's public key, known to everyone).
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// maxJWKSBytes bounds a JWKS or discovery response.
const maxJWKSBytes = 1 << 20

// keySet holds one issuer's discovery result and signing keys.
//
//   - Keys older than KeyRefresh are fetched again before use, so a key the
//     issuer withdrew stops verifying within KeyRefresh while the issuer
//     answers; a failed refresh keeps the last keys, but never past
//     MaxKeyAge: then tokens are Unavailable until the issuer answers.
//   - A token naming an unknown key id causes a fetch, at most one every
//     MinRefetch: anyone can send such tokens, and each must not cost the
//     issuer a request.
//   - Concurrent fetches are merged into one (single flight); every fetch is
//     bounded by FetchTimeout and by the caller's context.
//   - A token that needs keys the set cannot get is Unavailable, never
//     Unauthenticated: the token may be fine, the controller cannot tell.
type keySet struct {
	cfg OIDCConfig
	now func() time.Time

	mu       sync.Mutex
	doc      *discoveryDoc // nil until discovered
	algs     []jose.SignatureAlgorithm
	discErr  error
	discTry  time.Time // last discovery attempt
	keys     []jose.JSONWebKey
	fetched  time.Time // last successful JWKS fetch
	tried    time.Time // last JWKS fetch attempt
	fetchErr error     // error of the last attempt, nil when it succeeded
	flight   *flight   // the fetch under way, if any

	fetches atomic.Int64
}

// flight is one JWKS fetch that several callers may wait for.
type flight struct {
	done chan struct{}
	err  error
}

func newKeySet(cfg OIDCConfig, now func() time.Time) *keySet {
	return &keySet{cfg: cfg, now: now}
}

func (k *keySet) discovered() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.doc != nil
}

// discover fetches the discovery document once (if not done yet).
func (k *keySet) discover(ctx context.Context) error {
	k.mu.Lock()
	done := k.doc != nil
	k.discTry = k.now()
	k.mu.Unlock()
	if done {
		return nil
	}
	d, err := fetchDiscovery(ctx, k.cfg)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.discErr = err
		return err
	}
	if k.doc == nil {
		k.doc, k.discErr = &d, nil
		k.algs = nil
		for _, a := range d.Algs {
			if alg := jose.SignatureAlgorithm(a); containsAlg(asymmetric, alg) {
				k.algs = append(k.algs, alg)
			}
		}
		if len(d.Algs) == 0 {
			// OpenID Connect Discovery 1.0 §3: RS256 must be supported.
			k.algs = []jose.SignatureAlgorithm{jose.RS256}
		}
	}
	return nil
}

func containsAlg(algs []jose.SignatureAlgorithm, a jose.SignatureAlgorithm) bool {
	for _, x := range algs {
		if x == a {
			return true
		}
	}
	return false
}

func (k *keySet) status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := Status{Issuer: k.cfg.Issuer, State: "ok", KeysFetched: k.fetched, JWKSFetches: k.fetches.Load()}
	switch {
	case k.doc == nil:
		s.State = "discovering"
		if k.discErr != nil {
			s.Error = k.discErr.Error()
		}
	case k.fetchErr != nil:
		s.State = "keys_unavailable"
		s.Error = k.fetchErr.Error()
	}
	return s
}

// unavailable is a retryable Unavailable error whose cause (which may name
// internal addresses) is kept out of the message.
func unavailable(cause error, format string, args ...any) error {
	return &workload.Error{Code: workload.Unavailable, Retryable: true, Err: cause, Message: fmt.Sprintf(format, args...)}
}

// verify checks rawJWT's signature and returns its payload.
func (k *keySet) verify(ctx context.Context, rawJWT string) ([]byte, error) {
	// While the issuer cannot be discovered, requests try again at most
	// every MinRefetch (the background loop keeps trying too): a caller
	// cannot make the controller call a failing issuer per request.
	k.mu.Lock()
	failing := k.doc == nil && !k.discTry.IsZero() && k.now().Sub(k.discTry) < k.cfg.MinRefetch
	discErr := k.discErr
	k.mu.Unlock()
	if failing {
		return nil, unavailable(discErr, "OIDC issuer %s cannot be discovered right now; retry later", k.cfg.Issuer)
	}
	if err := k.discover(ctx); err != nil {
		return nil, unavailable(err, "OIDC issuer %s cannot be discovered right now; retry later", k.cfg.Issuer)
	}
	k.mu.Lock()
	algs := k.algs
	k.mu.Unlock()
	jws, err := jose.ParseSignedCompact(rawJWT, algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, &workload.Error{Code: workload.Unauthenticated, Err: err,
			Message: "OIDC token is malformed, unsigned or uses an algorithm the issuer does not advertise"}
	}
	kid := jws.Signatures[0].Header.KeyID

	keys, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	if payload, found, ok := tryKeys(jws, keys, kid); ok {
		return payload, nil
	} else if found {
		return nil, workload.Errorf(workload.Unauthenticated, "OIDC token signature does not verify against the issuer's keys")
	}
	// No published key has this id: the issuer may have rotated. Fetch
	// again, unless a fetch was tried less than MinRefetch ago.
	keys, fetched, err := k.refetch(ctx)
	if err != nil {
		return nil, err
	}
	if fetched {
		if payload, _, ok := tryKeys(jws, keys, kid); ok {
			return payload, nil
		}
	}
	return nil, workload.Errorf(workload.Unauthenticated, "OIDC token is signed by a key the issuer does not publish")
}

// tryKeys verifies jws with the keys named kid (every key when kid is
// empty). found reports whether any key had that id.
func tryKeys(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, found, ok bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if kid != "" {
			found = true
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true, true
		}
	}
	return nil, found, false
}

// current returns the keys, fetching them first when none were fetched
// yet or they are older than KeyRefresh.
//
// A fetch that failed less than MinRefetch ago is not repeated: the keys
// fetched last are used (Unavailable when there are none), so a failing
// issuer is not called once per request.
func (k *keySet) current(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	now := k.now()
	stale := k.fetched.IsZero() || now.Sub(k.fetched) >= k.cfg.KeyRefresh
	recent := k.flight == nil && !k.tried.IsZero() && now.Sub(k.tried) < k.cfg.MinRefetch
	keys, lastErr := k.keys, k.fetchErr
	usable := !k.fetched.IsZero() && now.Sub(k.fetched) < k.cfg.MaxKeyAge
	k.mu.Unlock()
	switch {
	case !stale:
		return keys, nil
	case recent && usable:
		return keys, nil
	case recent:
		return nil, unavailable(lastErr, "OIDC issuer %s: signing keys cannot be fetched right now; retry later", k.cfg.Issuer)
	}
	err := k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil && (k.fetched.IsZero() || k.now().Sub(k.fetched) >= k.cfg.MaxKeyAge) {
		return nil, unavailable(err, "OIDC issuer %s: signing keys cannot be fetched right now; retry later", k.cfg.Issuer)
	}
	// A failed refresh keeps the keys fetched last, up to MaxKeyAge.
	return k.keys, nil
}

// refetch fetches the keys again if the last attempt is at least
// MinRefetch old, and reports whether it did.
func (k *keySet) refetch(ctx context.Context) ([]jose.JSONWebKey, bool, error) {
	k.mu.Lock()
	if k.flight == nil && k.now().Sub(k.tried) < k.cfg.MinRefetch {
		keys := k.keys
		k.mu.Unlock()
		return keys, false, nil
	}
	k.mu.Unlock()
	if err := k.fetch(ctx); err != nil {
		return nil, false, unavailable(err, "OIDC issuer %s: signing keys cannot be fetched right now; retry later", k.cfg.Issuer)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, true, nil
}

// fetch fetches the JWKS, joining a fetch already under way. It waits no
// longer than ctx allows; the fetch itself is bounded by FetchTimeout.
func (k *keySet) fetch(ctx context.Context) error {
	k.mu.Lock()
	f := k.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		k.flight = f
		k.tried = k.now()
		uri := k.doc.JWKSURI
		go func() {
			keys, err := k.download(uri)
			k.mu.Lock()
			if err == nil {
				k.keys, k.fetched = keys, k.now()
			}
			k.fetchErr, k.flight = err, nil
			f.err = err
			k.mu.Unlock()
			close(f.done)
		}()
	}
	k.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the issuer's keys: %w", ctx.Err())
	}
}

// download GETs the JWKS.
func (k *keySet) download(uri string) ([]jose.JSONWebKey, error) {
	k.fetches.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS: %s", resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("fetching JWKS: larger than 1 MiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	// Only public keys verify; a symmetric or private key in a JWKS is
	// skipped, never used.
	keys := set.Keys[:0]
	for _, key := range set.Keys {
		if key.Valid() && key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	return keys, nil
}
