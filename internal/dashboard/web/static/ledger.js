// ledger.js: the audit ledger, filtered; each run's intent and result side
// by side, and the chain verification as a badge.
import { $, $$, init, fragment } from './app.js';

await init();
const form = $('#ledger-filter');
const content = $('#content');
const FIELDS = ['service', 'target', 'user', 'run', 'action', 'outcome', 'window', 'from', 'to'];

// The page's URL holds the form's fields; the fragment gets the API's
// filter (since/until as RFC 3339 times).
function fromURL() {
  const q = new URLSearchParams(location.search);
  for (const k of FIELDS) if (form.elements[k]) form.elements[k].value = q.get(k) || '';
  if (q.get('since') && !q.get('window')) {
    form.elements.window.value = 'custom';
    form.elements.from.value = toLocalInput(new Date(q.get('since')));
  }
  showCustom();
  return q.get('cursor') || '';
}

function toLocalInput(d) {
  if (isNaN(d)) return '';
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 19);
}

function showCustom() {
  const custom = form.elements.window.value === 'custom';
  for (const l of $$('label.custom', form)) l.hidden = !custom;
}

const units = { m: 60000, h: 3600000 };
function apiFilter(cursor) {
  const q = new URLSearchParams();
  for (const k of ['service', 'target', 'user', 'run', 'action', 'outcome']) {
    const v = form.elements[k].value.trim();
    if (v) q.set(k, v);
  }
  const w = form.elements.window.value;
  if (w === 'custom') {
    const from = form.elements.from.value, to = form.elements.to.value;
    if (from) q.set('since', new Date(from).toISOString());
    if (to) q.set('until', new Date(to).toISOString());
  } else if (w) {
    const m = /^(\d+)([mh])$/.exec(w);
    if (m) q.set('since', new Date(Date.now() - Number(m[1]) * units[m[2]]).toISOString());
  }
  if (cursor) q.set('cursor', cursor);
  return q;
}

function pageURL(cursor) {
  const q = new URLSearchParams();
  for (const k of FIELDS) {
    const v = form.elements[k]?.value.trim();
    if (v && !((k === 'from' || k === 'to') && form.elements.window.value !== 'custom')) q.set(k, v);
  }
  if (cursor) q.set('cursor', cursor);
  return '/ledger' + (q.toString() ? '?' + q : '');
}

function verifyBadge() {
  const v = $('#verify-result');
  const b = $('#verify');
  if (!v || !b) return;
  if (v.dataset.problem) {
    b.className = 'badge bad';
    b.textContent = 'chain not verified';
    b.title = v.dataset.problem;
  } else if (v.dataset.ok === 'true') {
    b.className = 'badge ok';
    b.textContent = `chain verified · ${v.dataset.count} records`;
    b.title = 'head ' + v.dataset.head;
  } else {
    b.className = 'badge bad';
    b.textContent = `chain BROKEN at row ${v.dataset.firstBroken}`;
    b.title = v.dataset.reason;
  }
  b.dataset.ok = v.dataset.ok || 'false';
}

async function load(cursor = '') {
  if (await fragment(content, content.dataset.frag + '?' + apiFilter(cursor))) verifyBadge();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  history.replaceState(null, '', pageURL());
  load();
});
form.addEventListener('reset', () => setTimeout(() => { showCustom(); history.replaceState(null, '', '/ledger'); load(); }));
form.elements.window.addEventListener('change', showCustom);
content.addEventListener('click', (e) => {
  const a = e.target.closest('a#older');
  if (!a) return;
  e.preventDefault();
  history.pushState(null, '', pageURL(a.dataset.cursor));
  load(a.dataset.cursor);
  $('#main').focus();
});
window.addEventListener('popstate', () => load(fromURL()));

load(fromURL());
