// signin.js: sign in by pasting an API token, or with OIDC (authorization
// code + PKCE) when the server offers it. The token is kept in this tab's
// sessionStorage.
import { $, api, setToken, safeNext, APIError } from './app.js';

const params = new URLSearchParams(location.search);
const errBox = $('#signin-error');

function fail(msg) {
  errBox.textContent = msg;
  errBox.hidden = false;
}

if (params.get('reason')) fail(params.get('reason'));

async function accept(tok, next) {
  setToken(tok);
  try {
    await api('GET', '/v1/whoami', undefined, { noSignOut: true });
  } catch (err) {
    sessionStorage.removeItem('alphaswarm.token');
    fail(err instanceof APIError ? err.describe() : String(err));
    return;
  }
  location.replace(safeNext(next));
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  errBox.hidden = true;
  const tok = $('#token').value.trim();
  if (tok) accept(tok, params.get('next'));
});

// --- OIDC ---------------------------------------------------------------

const PKCE = 'alphaswarm.pkce';

function b64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(n) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return b64url(a);
}

$('#oidc')?.addEventListener('click', async () => {
  if (!crypto.subtle) {
    fail('OIDC sign-in needs a secure context: open the dashboard over https or on localhost.');
    return;
  }
  const verifier = random(32);
  const state = random(24);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE, JSON.stringify({ verifier, state, next: safeNext(params.get('next')) }));
  location.assign('/ui/oidc/authorize?' + new URLSearchParams({ code_challenge: challenge, state }));
});

async function callback() {
  const saved = JSON.parse(sessionStorage.getItem(PKCE) || 'null');
  sessionStorage.removeItem(PKCE);
  history.replaceState(null, '', '/signin');
  if (params.get('error')) {
    fail(`The identity provider refused: ${params.get('error')}${params.get('error_description') ? ' — ' + params.get('error_description') : ''}`);
    return;
  }
  if (!saved || !params.get('code') || params.get('state') !== saved.state) {
    fail('This sign-in did not start here (state mismatch); try again.');
    return;
  }
  const resp = await fetch('/ui/oidc/token', {
    method: 'POST', cache: 'no-store',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ code: params.get('code'), verifier: saved.verifier }),
  });
  const env = await resp.json().catch(() => ({ status: 'error', error: { message: 'HTTP ' + resp.status } }));
  if (env.status !== 'ok') {
    fail(new APIError(resp.status, env.error).describe());
    return;
  }
  accept(env.data.token, saved.next);
}

if (location.pathname === '/signin/callback') callback();
