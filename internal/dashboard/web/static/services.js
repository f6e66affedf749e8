// services.js: the service list, rendered by the server, then kept live by
// one server-sent event stream carrying every service's status.
import { $, $$, init, fragment, stream, liveState, timeEl, localTimes } from './app.js';

await init();
const content = $('#content');
// Without the list there is nothing to keep live (the error is shown).
if (!(await fragment(content, content.dataset.frag))) await new Promise(() => {});

performance.mark('services-rendered');

const rows = new Map();
for (const tr of $$('#services-table tbody tr')) rows.set(tr.dataset.id, tr);
const filter = $('#svc-filter');

function cell(label, f, cls) {
  const td = document.createElement('td');
  td.dataset.label = label;
  if (f) td.dataset.f = f;
  if (cls) td.className = cls;
  return td;
}

function createRow(st) {
  const tr = document.createElement('tr');
  tr.dataset.id = st.id;
  const th = document.createElement('th');
  th.scope = 'row';
  th.dataset.label = 'Service';
  const a = document.createElement('a');
  a.href = `/services/${encodeURIComponent(st.target)}/${encodeURIComponent(st.name)}`;
  a.textContent = st.name;
  th.append(a);
  const target = cell('Target');
  target.textContent = st.target;
  const phase = cell('Phase');
  const b = document.createElement('span');
  b.dataset.f = 'phase';
  phase.append(b);
  const last = cell('Last change', 'last');
  last.textContent = '–';
  tr.append(th, target, phase, cell('Ready', 'ready'), cell('Revision', 'revision'), cell('Image', 'image', 'wide'), last);
  const tbody = $('#services-table tbody');
  const after = Array.from(rows.keys()).filter((k) => k < st.id).sort().pop();
  if (after) rows.get(after).after(tr); else tbody.prepend(tr);
  rows.set(st.id, tr);
  $('#no-services').hidden = true;
  return tr;
}

function field(tr, f) { return tr.querySelector(`[data-f="${f}"]`); }

function update(st) {
  let tr = rows.get(st.id);
  const fresh = !tr;
  if (fresh) tr = createRow(st);
  const ready = `${st.replicas.ready}/${st.replicas.desired}`;
  const revision = st.revision || '';
  const changed = !fresh && (field(tr, 'phase').textContent !== st.phase || field(tr, 'ready').textContent !== ready ||
    field(tr, 'revision').textContent !== revision);
  const badge = field(tr, 'phase');
  badge.className = 'badge phase-' + st.phase.toLowerCase();
  badge.textContent = st.phase;
  field(tr, 'ready').textContent = ready;
  field(tr, 'revision').textContent = revision;
  field(tr, 'image').textContent = st.image || '';
  if (changed || fresh) {
    const last = field(tr, 'last');
    last.replaceChildren(timeEl(new Date(st.observedAt)), ` ${fresh ? 'appeared' : 'status changed'}`);
    tr.classList.remove('flash');
    void tr.offsetWidth;
    tr.classList.add('flash');
  }
  applyFilter(tr);
  count();
}

function applyFilter(tr) {
  const q = filter.value.trim().toLowerCase();
  tr.hidden = q !== '' && !tr.textContent.toLowerCase().includes(q);
}

function count() {
  const shown = Array.from(rows.values()).filter((tr) => !tr.hidden).length;
  const noun = rows.size === 1 ? 'service' : 'services';
  $('#svc-count').textContent = shown === rows.size ? `${rows.size} ${noun}` : `${shown} of ${rows.size} ${noun}`;
}

filter.addEventListener('input', () => { rows.forEach(applyFilter); count(); });
count();
localTimes(content);

const problems = document.createElement('div');
content.before(problems);
stream('/v1/services/events', {
  onEvent(name, data) {
    if (name === 'status') update(data);
    else if (name === 'error') {
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = `${data.error.code}: ${data.error.message}`;
      problems.replaceChildren(p);
    }
  },
  onState: liveState($('#live')),
});
