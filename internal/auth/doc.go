// Package auth authenticates callers of the HTTP API and defines their roles.
//
// It owns three things:
//
//   - the roles (viewer ⊂ operator ⊂ admin) and the order between them;
//   - the file-backed store of the control plane's own bearer tokens
//     ("asw_…"), including the first-start admin token;
//   - verification of OIDC JWTs from one or more issuers (discovery retried
//     in the background while an issuer is down, a JWKS cache with single
//     flight, a minimum interval between fetches and a bounded key age;
//     issuer/audience/date/signature checks) and mapping their claims to a
//     control.Principal: an unambiguous id ("oidc:<issuer>#<subject>"), a
//     display name, and roles from a roles claim and claim grants, on every
//     target or on some.
//
// Authenticator combines the two behind the single method the HTTP layer
// needs. Deciding what a role may do (route → required role) belongs to the
// HTTP layer; this package only answers "who is this and what role do they
// hold" (RoleOn: on a given target). A verified identity without a role is
// not an error here: the HTTP layer's role check refuses (and audits) it.
//
// What it must not do:
//
//   - It never stores a plaintext token. The store file holds SHA-256 hashes
//     only; the one exception is the first-start admin token, which is
//     written on purpose to its own 0600 file (admin.token) for the operator
//     to read, and which this package never reads back.
//   - It never logs a token, and never puts a token (or any part of one)
//     into an error message. Errors say what was wrong ("expired",
//     "unknown token"), never what was presented.
//   - It never trusts an unverified JWT claim: claims are read only after
//     go-jose has checked the signature (the unverified "iss" only picks
//     which issuer's verifier checks the token).
//
// Every error it returns is a *workload.Error: Unauthenticated for
// credentials that do not prove an identity, Unavailable (retryable) when an
// OIDC issuer's discovery or keys cannot be fetched, InvalidArgument for bad input
// to the token-management methods, NotFound for an unknown token id, and
// Internal when the store cannot be read or written.
package auth
