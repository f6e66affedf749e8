// app.js: what every page shares — the token, API calls, HTML fragments,
// server-sent event streams read from fetch bodies, the header, the halt
// banner and the confirmation dialog.
//
// The token lives in this tab's sessionStorage and travels only in the
// Authorization header; it never appears in a URL.

const KEY = 'alphaswarm.token';

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }

// safeNext keeps a post-sign-in destination on this origin.
export function safeNext(next) {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return next;
}

export function signOut(reason) {
  sessionStorage.removeItem(KEY);
  const here = location.pathname + location.search;
  const q = new URLSearchParams();
  if (!here.startsWith('/signin')) q.set('next', here);
  if (reason) q.set('reason', reason);
  location.assign('/signin' + (q.toString() ? '?' + q : ''));
}

export class APIError extends Error {
  constructor(status, e = {}) {
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'internal';
    this.retryable = !!e.retryable;
    this.fields = e.fields || [];
  }
  describe() {
    const f = this.fields.map((x) => `${x.path}: ${x.message}`).join('; ');
    return `${this.code}: ${this.message}${f && !this.message.includes(f) ? ' (' + f + ')' : ''}`;
  }
}

function authHeaders(extra = {}) {
  const h = { Authorization: 'Bearer ' + (token() || ''), ...extra };
  return h;
}

export function randomID(bytes = 16) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

// request is fetch, retried twice when the network fails (not when the
// server answers) for requests that are safe to repeat: reads, and
// mutations that carry an Idempotency-Key.
async function request(url, init) {
  const repeatable = !init.method || init.method === 'GET' || init.headers['Idempotency-Key'];
  for (let attempt = 0; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (!repeatable || attempt >= 2 || err.name === 'AbortError') throw err;
      await sleep(300 * (attempt + 1));
    }
  }
}

// api calls the /v1 API and returns the envelope's data, or throws an
// APIError. An unauthenticated answer signs the tab out.
export async function api(method, path, body, opts = {}) {
  const headers = authHeaders({ Accept: 'application/json' });
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
  const resp = await request(path, {
    method, headers, cache: 'no-store', signal: opts.signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let env;
  try { env = await resp.json(); } catch { throw new APIError(resp.status, { message: `${method} ${path}: HTTP ${resp.status}` }); }
  if (env.status !== 'ok') {
    const err = new APIError(resp.status, env.error || {});
    if (err.code === 'unauthenticated' && !opts.noSignOut) signOut(err.message);
    throw err;
  }
  return env.data;
}

// fragment replaces el's content with the server-rendered fragment at url
// (rendered from the API with this tab's token). On failure it shows the
// error in el and resolves to false.
export async function fragment(el, url) {
  el.setAttribute('aria-busy', 'true');
  try {
    const resp = await request(url, { headers: authHeaders(), cache: 'no-store' });
    if (!resp.ok) {
      let e = {};
      try { e = (await resp.json()).error || {}; } catch { /* not an envelope */ }
      const err = new APIError(resp.status, e);
      if (err.code === 'unauthenticated') signOut(err.message);
      throw err;
    }
    el.innerHTML = await resp.text();
    localTimes(el);
    return true;
  } catch (err) {
    showError(el, err);
    return false;
  } finally {
    el.setAttribute('aria-busy', 'false');
  }
}

export function showError(el, err) {
  const p = document.createElement('p');
  p.className = 'error';
  p.setAttribute('role', 'alert');
  p.textContent = err instanceof APIError ? err.describe() : String(err.message || err);
  el.replaceChildren(p);
}

// localTimes shows <time datetime> elements in the browser's time zone.
export function localTimes(root = document) {
  for (const t of $$('time[datetime]', root)) {
    const d = new Date(t.getAttribute('datetime'));
    if (isNaN(d)) continue;
    t.title = t.getAttribute('datetime');
    t.textContent = fmtTime(d);
  }
}

export function fmtTime(d) {
  const pad = (n) => String(n).padStart(2, '0');
  const today = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

export function timeEl(d, text) {
  const t = document.createElement('time');
  t.setAttribute('datetime', d.toISOString());
  t.title = d.toISOString();
  t.textContent = text || fmtTime(d);
  return t;
}

// stream reads a server-sent event stream with fetch (so the token goes in
// the Authorization header) and calls onEvent(name, data) for each event.
// It reconnects with backoff when the stream ends or breaks, and gives up
// on an error that retrying cannot fix (unknown service, denied). While
// the tab is hidden it lets go of the connection (browsers allow only six
// per server over HTTP/1.1, so background tabs must not hold them). path
// may be a function, called at each (re)connection.
export function stream(path, { onEvent, onState = () => {} }) {
  let closed = false;
  let current = null;
  const onVisibility = () => { if (document.hidden && current) current.abort(); };
  document.addEventListener('visibilitychange', onVisibility);
  const visible = () => new Promise((resolve) => {
    if (!document.hidden) { resolve(); return; }
    const h = () => { if (!document.hidden) { document.removeEventListener('visibilitychange', h); resolve(); } };
    document.addEventListener('visibilitychange', h);
  });
  (async () => {
    let delay = 1000;
    while (!closed) {
      if (document.hidden) { onState('paused'); await visible(); }
      if (closed) return;
      onState('connecting');
      current = new AbortController();
      try {
        const url = typeof path === 'function' ? path() : path;
        const resp = await fetch(url, { headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal: current.signal });
        const ct = resp.headers.get('Content-Type') || '';
        if (!resp.ok || !ct.startsWith('text/event-stream')) {
          let e = {};
          try { e = (await resp.json()).error || {}; } catch { /* not an envelope */ }
          const err = new APIError(resp.status, e);
          if (err.code === 'unauthenticated') { signOut(err.message); return; }
          onState('error', err);
          if (!err.retryable && resp.status < 500) return;
          throw err;
        }
        onState('live');
        delay = 1000;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let ended = false;
        while (!ended) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let name = 'message';
            const data = [];
            for (const line of block.split('\n')) {
              if (line === '' || line.startsWith(':')) continue;
              const c = line.indexOf(':');
              const field = c < 0 ? line : line.slice(0, c);
              const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
              if (field === 'event') name = val;
              else if (field === 'data') data.push(val);
            }
            if (!data.length) continue;
            let parsed;
            try { parsed = JSON.parse(data.join('\n')); } catch { continue; }
            if (name === 'end') { ended = true; break; }
            onEvent(name, parsed);
          }
        }
        reader.cancel().catch(() => {});
      } catch (err) {
        if (closed) return;
        if (err.name === 'AbortError') continue; // hidden: wait to be visible
      }
      if (closed) return;
      onState('reconnecting');
      await sleep(delay);
      delay = Math.min(delay * 2, 30000);
    }
  })();
  return {
    close() {
      closed = true;
      current?.abort();
      document.removeEventListener('visibilitychange', onVisibility);
    },
  };
}

// liveState renders a stream's state into an indicator element.
export function liveState(el) {
  return (state, err) => {
    if (!el) return;
    el.dataset.state = state;
    el.textContent = { connecting: 'connecting…', live: 'live', paused: 'paused while hidden', reconnecting: 'reconnecting…', error: err ? err.describe() : 'error' }[state] || state;
  };
}

// --- the caller, the header and the halt switch ---------------------------

let whoPromise;
export function whoami() {
  whoPromise ||= api('GET', '/v1/whoami');
  return whoPromise;
}

const rank = { viewer: 1, operator: 2, admin: 3 };
export function can(who, need) { return (rank[who?.role] || 0) >= rank[need]; }

let haltState = null;

export async function refreshHalt() {
  const banner = $('#halt-banner');
  if (!banner) return;
  let h;
  try { h = await api('GET', '/v1/halt'); } catch { return; }
  haltState = h;
  const on = h.global || (h.targets || []).length > 0;
  banner.hidden = !on;
  $('#halt-text').textContent = h.global
    ? 'Workload operations are halted on every target; the server refuses them.'
    : `Workload operations are halted on ${h.targets.join(', ')}; the server refuses them there.`;
  document.body.classList.toggle('halted', on);
  const who = await whoami().catch(() => null);
  const btn = $('#halt-toggle');
  if (btn && can(who, 'admin')) {
    btn.hidden = false;
    btn.textContent = on ? 'Lift halt' : 'Halt all';
    btn.classList.toggle('danger', !on);
  }
}

async function toggleHalt() {
  const h = haltState || { global: false, targets: [] };
  const on = h.global || h.targets.length > 0;
  const scopes = on ? (h.global ? [''] : h.targets) : [''];
  const text = on
    ? `Lift the halt ${h.global ? 'on every target' : 'on ' + h.targets.join(', ')}? Operations will be accepted again.`
    : 'Halt workload operations on every target? The server will refuse start, stop, scale, restart, config and exec until an admin lifts it.';
  await confirmAction({
    title: on ? 'Lift halt' : 'Halt all operations',
    text, okLabel: on ? 'Lift halt' : 'Halt', danger: !on,
    run: async () => {
      let last;
      for (const target of scopes) {
        last = await api('PUT', '/v1/halt', target ? { on: !on, target } : { on: !on }, { idempotencyKey: randomID() });
      }
      return { runId: last.runId, summary: on ? 'halt lifted' : 'halt on' };
    },
    lookup: { action: 'halt' },
  });
  refreshHalt();
}

// init checks the tab is signed in, fills the header and starts the halt
// banner. It resolves to the caller (never, while redirecting).
export async function init() {
  if (!token()) {
    signOut();
    return new Promise(() => {});
  }
  $('#signout')?.addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.assign('/signin');
  });
  $('#halt-toggle')?.addEventListener('click', toggleHalt);
  let who;
  try {
    who = await whoami();
  } catch (err) {
    // Unauthenticated: signing out. Anything else: say so and stop here.
    if (err.code !== 'unauthenticated') showError($('#main'), err);
    return new Promise(() => {});
  }
  const w = $('#who');
  if (w) w.textContent = `${who.user} · ${who.role}`;
  document.body.dataset.role = who.role;
  refreshHalt();
  setInterval(refreshHalt, 15000);
  return who;
}

// --- confirmation dialog --------------------------------------------------

// confirmAction asks before run(); then shows the ledger run id and the
// outcome the ledger recorded. run returns {runId, summary}. When the API
// refuses (no run id in an error), the caller's latest matching run is
// looked up in the ledger with lookup's filter.
export function confirmAction({ title, text, okLabel = 'Confirm', danger = false, run, lookup = {}, onDone = () => {} }) {
  const dlg = $('#confirm');
  const form = $('form', dlg);
  const ok = $('#confirm-ok');
  const cancel = $('#confirm-cancel');
  const result = $('#confirm-result');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  result.hidden = true;
  result.replaceChildren();
  ok.hidden = false;
  ok.disabled = false;
  ok.textContent = okLabel;
  ok.classList.toggle('danger', danger);
  ok.classList.toggle('primary', !danger);
  cancel.textContent = 'Cancel';
  cancel.disabled = false;
  let busy = false;
  return new Promise((resolve) => {
    const onCancel = (e) => { if (busy) e.preventDefault(); };
    const onSubmit = async (e) => {
      if (e.submitter !== ok) return; // Cancel / Close close the dialog
      e.preventDefault();
      busy = true;
      ok.disabled = cancel.disabled = true;
      result.hidden = false;
      result.className = 'result';
      result.textContent = 'Working…';
      let outcome;
      try {
        const r = await run();
        outcome = await describeRun(r.runId, r.summary);
      } catch (err) {
        outcome = await describeFailure(err, lookup);
      }
      result.replaceChildren(...outcome.nodes);
      result.className = 'result ' + (outcome.ok ? 'ok' : 'bad');
      result.dataset.runId = outcome.runId || '';
      result.dataset.outcome = outcome.outcome || '';
      busy = false;
      ok.hidden = true;
      cancel.disabled = false;
      cancel.textContent = 'Close';
      cancel.focus();
      onDone(outcome);
    };
    const onClose = () => {
      // A close event queued by the previous dialog can arrive after this
      // one opened: it is not ours.
      if (dlg.open) return;
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('cancel', onCancel);
      dlg.removeEventListener('close', onClose);
      resolve();
    };
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('cancel', onCancel);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    (danger ? cancel : ok).focus();
  });
}

function runLink(runId) {
  const a = document.createElement('a');
  a.href = '/ledger?run=' + encodeURIComponent(runId);
  a.className = 'run-id';
  a.textContent = runId;
  return a;
}

function line(...parts) {
  const p = document.createElement('p');
  p.append(...parts);
  return p;
}

// describeRun reads the run's result from the ledger itself.
async function describeRun(runId, summary) {
  let outcome = 'ok';
  try {
    const page = await api('GET', '/v1/runs?run=' + encodeURIComponent(runId));
    const res = page.records.find((r) => r.kind === 'result' || r.kind === 'rejected');
    if (res) outcome = res.outcome;
  } catch { /* the API answered the action: keep ok */ }
  return {
    ok: outcome === 'ok', runId, outcome,
    nodes: [line('Ledger run ', runLink(runId)), line('Outcome: ', badge(outcome)), ...(summary ? [line(summary)] : [])],
  };
}

async function describeFailure(err, lookup) {
  const nodes = [line('Refused: ', err instanceof APIError ? err.describe() : String(err))];
  let runId = '', outcome = err.code || 'error';
  try {
    const who = await whoami();
    const q = new URLSearchParams({ order: 'desc', limit: '1', user: who.user });
    for (const [k, v] of Object.entries(lookup)) if (v) q.set(k, v);
    const page = await api('GET', '/v1/runs?' + q);
    const rec = page.records[0];
    if (rec && Date.now() - new Date(rec.time).getTime() < 60000) {
      runId = rec.runId;
      outcome = rec.outcome || outcome;
      nodes.unshift(line('Ledger run ', runLink(runId)), line('Outcome: ', badge(outcome)));
    }
  } catch { /* nothing more to show */ }
  return { ok: false, runId, outcome, nodes };
}

export function badge(text, cls = 'outcome-' + text) {
  const s = document.createElement('span');
  s.className = 'badge ' + cls;
  s.textContent = text;
  return s;
}
