// Package dashboard is the web dashboard that `alphaswarm serve` mounts at
// "/" next to the HTTP API: services and their live status, targets and
// their capability matrices, a service page with live CPU, memory and
// network charts, a log panel, the workload actions and the service's
// history (its spec revisions, the diff of one against the live service,
// a confirmed rollback to it for the roles that may roll back), and the
// audit ledger with its chain verification.
//
// Everything is embedded (go:embed) and works offline. Pages are shells
// rendered with html/template; small vanilla JavaScript modules add the
// data. The dashboard holds no credentials and no session of its own: the
// browser keeps the caller's bearer token in sessionStorage and sends it
// in the Authorization header, either straight to the /v1 API (actions and
// the server-sent event streams, read from fetch bodies so that tokens
// never travel in URLs) or to the dashboard's fragment routes
// (/ui/frag/...), which call the API in process with that same header and
// render the answer as HTML. The API therefore authenticates and
// authorises every byte of data a page shows; the dashboard only hides the
// controls a role cannot use.
//
// Every response carries a strict Content-Security-Policy: scripts, styles
// and connections from the dashboard's own origin only, no inline script.
// Charts are SVG drawn by the dashboard's own code.
//
// When the server accepts OIDC tokens and the configuration names a
// client id, the sign-in page also offers the authorization-code flow with
// PKCE: the browser makes the verifier and challenge, the dashboard
// redirects to the issuer's authorization endpoint and exchanges the code
// at its token endpoint (so connect-src stays 'self').
package dashboard
