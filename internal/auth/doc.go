// Package auth authenticates callers of the HTTP API and defines their roles.
//
// It owns three things:
//
//   - the roles (viewer ⊂ operator ⊂ admin) and the order between them;
//   - the file-backed store of the control plane's own bearer tokens
//     ("asw_…"), including the first-start admin token;
//   - verification of OIDC JWTs (issuer discovery, remote JWKS with key
//     rotation, issuer/audience/expiry/signature checks) and mapping their
//     claims to a control.Principal.
//
// Authenticator combines the two behind the single method the HTTP layer
// needs. Deciding what a role may do (route → required role) belongs to the
// HTTP layer; this package only answers "who is this and what role do they
// hold".
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
//     go-oidc has checked signature, issuer, audience and expiry.
//
// Every error it returns is a *workload.Error: Unauthenticated for
// credentials that do not prove an identity, PermissionDenied for a valid
// OIDC identity that carries no known role, InvalidArgument for bad input
// to the token-management methods, NotFound for an unknown token id, and
// Internal when the store cannot be read or written.
package auth
