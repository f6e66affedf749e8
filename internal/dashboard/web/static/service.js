// service.js: one service — status and instances (kept live by the
// services event stream), actions, live metric charts and a log panel.
import { $, $$, init, fragment, stream, liveState, api, randomID, confirmAction, can, fmtTime } from './app.js';
import { Chart, fmt } from './chart.js';
import { initHistory } from './history.js';

const who = await init();
const { target, service } = document.body.dataset;
const id = `${target}/${service}`;
const base = `/v1/targets/${encodeURIComponent(target)}/services/${encodeURIComponent(service)}`;
const content = $('#content');
const actions = $('#actions');
const runs = $('#runs');

const loadStatus = () => fragment(content, content.dataset.frag);
const loadRuns = () => fragment(runs, runs.dataset.frag);
const loadHistory = initHistory({ target, service, base, onChange: () => { loadStatus(); loadRuns(); } });
await Promise.all([loadStatus(), fragment(actions, actions.dataset.frag), loadRuns(), loadHistory()]);
if (!can(who, 'operator')) $('#actions-card').classList.add('readonly');

// --- live status: the one services stream, this service's events ---------

let lastKey = '';
let reload;
stream('/v1/services/events', {
  onEvent(name, st) {
    if (name !== 'status' || st.id !== id) return;
    const key = JSON.stringify([st.phase, st.replicas, st.revision, st.message, (st.instances || []).map((i) => [i.id, i.state, i.healthy, i.restarts])]);
    if (key === lastKey) return;
    const first = lastKey === '';
    lastKey = key;
    const facts = $('#facts');
    if (first && facts && facts.dataset.phase === st.phase && Number(facts.dataset.ready) === st.replicas.ready &&
        Number(facts.dataset.desired) === st.replicas.desired && $$('#instances tbody tr').length === (st.instances || []).length) return;
    clearTimeout(reload);
    reload = setTimeout(loadStatus, 100);
  },
  onState: liveState($('#live')),
});

// --- actions ---------------------------------------------------------------

function parseConfig(text) {
  const config = {};
  const bad = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const eq = l.indexOf('=');
    if (eq <= 0) { bad.push(i + 1); return; }
    config[l.slice(0, eq).trim()] = l.slice(eq + 1);
  });
  return { config, bad };
}

const verbs = {
  scale: (form) => {
    const n = Number(form.elements.replicas.value);
    return {
      title: `Scale ${service}`, text: `Scale ${id} to ${n} replica${n === 1 ? '' : 's'}?`, okLabel: 'Scale',
      run: () => api('POST', base + '/scale', { replicas: n }, { idempotencyKey: randomID() }),
    };
  },
  restart: () => ({
    title: `Restart ${service}`, text: `Restart every instance of ${id}?`, okLabel: 'Restart',
    run: () => api('POST', base + '/restart', undefined, { idempotencyKey: randomID() }),
  }),
  stop: () => ({
    title: `Stop ${service}`, text: `Stop ${id}? Every instance is stopped.`, okLabel: 'Stop', danger: true,
    run: () => api('POST', base + '/stop', undefined, { idempotencyKey: randomID() }),
  }),
  apply_config: (form) => {
    const { config, bad } = parseConfig(form.elements.config.value);
    if (bad.length) return { error: `line ${bad.join(', ')}: expected KEY=value` };
    const keys = Object.keys(config);
    return {
      title: `Apply config to ${service}`,
      text: keys.length ? `Replace the config of ${id} with ${keys.join(', ')}? Keys not given are removed.` : `Remove every config key of ${id}?`,
      okLabel: 'Apply',
      run: () => api('PUT', base + '/config', { config }, { idempotencyKey: randomID() }),
    };
  },
};

actions.addEventListener('submit', async (e) => {
  const form = e.target.closest('form[data-action]');
  if (!form) return;
  e.preventDefault();
  const action = form.dataset.action;
  const spec = verbs[action](form);
  if (spec.error) {
    form.querySelector('.reason')?.remove();
    const s = document.createElement('span');
    s.className = 'reason error';
    s.textContent = spec.error;
    form.append(s);
    return;
  }
  await confirmAction({
    ...spec,
    run: async () => {
      const res = await spec.run();
      const st = res.status;
      return { runId: res.runId, summary: st ? `${st.phase} · ${st.replicas.ready}/${st.replicas.desired} ready · revision ${st.revision || '–'}` : '' };
    },
    lookup: { action, target, service },
    onDone: () => { loadStatus(); loadRuns(); loadHistory(); },
  });
});

// --- metrics ---------------------------------------------------------------

const charts = {
  cpu: new Chart($('#chart-cpu'), { label: 'CPU', series: [{ label: 'CPU', cls: 's1' }], format: fmt.percent, floor: 1 }),
  mem: new Chart($('#chart-mem'), { label: 'Memory', series: [{ label: 'used', cls: 's2' }], format: fmt.bytes, floor: 1024 * 1024 }),
  net: new Chart($('#chart-net'), { label: 'Network', series: [{ label: 'rx', cls: 's3' }, { label: 'tx', cls: 's4' }], format: fmt.rate, floor: 1024 }),
};
let prev = null;
stream(base + '/metrics', {
  onEvent(name, s) {
    if (name !== 'sample') return;
    const now = Date.now();
    const t = new Date(s.time).getTime();
    charts.cpu.push(now, [s.cpuPercent]);
    charts.mem.push(now, [s.memoryBytes]);
    if (prev && t > prev.t) {
      // Counters are cumulative; a drop is a restart, not negative traffic.
      const dt = (t - prev.t) / 1000;
      const rate = (a, b) => (a >= b ? (a - b) / dt : 0);
      charts.net.push(now, [rate(s.netRxBytes, prev.rx), rate(s.netTxBytes, prev.tx)]);
    }
    prev = { t, rx: s.netRxBytes, tx: s.netTxBytes };
    if (!charts.cpu.drawn) { Object.values(charts).forEach((c) => c.render(now)); charts.cpu.drawn = true; }
  },
  onState: liveState($('#metrics-live')),
});
setInterval(() => { const now = Date.now(); Object.values(charts).forEach((c) => c.render(now)); }, 1000);

// --- logs ------------------------------------------------------------------

const MAX_LINES = 2000;
const list = $('#logs');
const pauseBtn = $('#logs-pause');
const follow = $('#logs-follow');
const filterIn = $('#logs-filter');
const streamSel = $('#logs-stream');
const held = [];
let paused = false;

function matches(li) {
  const q = filterIn.value.trim().toLowerCase();
  const s = streamSel.value;
  return (!q || li.dataset.text.includes(q)) && (!s || li.dataset.stream === s);
}

function append(line) {
  const li = document.createElement('li');
  li.dataset.text = line.text.toLowerCase();
  li.dataset.stream = line.stream;
  li.className = 'stream-' + line.stream;
  const t = document.createElement('time');
  t.setAttribute('datetime', line.time);
  t.textContent = fmtTime(new Date(line.time));
  const inst = document.createElement('span');
  inst.className = 'inst';
  inst.textContent = line.instance;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = line.text;
  li.append(t, inst, text);
  li.hidden = !matches(li);
  list.append(li);
  while (list.childElementCount > MAX_LINES) list.firstElementChild.remove();
}

function scrollDown() { if (follow.checked) list.scrollTop = list.scrollHeight; }

function showHeld() { $('#logs-held').textContent = paused ? `paused · ${held.length} new line${held.length === 1 ? '' : 's'} held` : ''; }

pauseBtn.addEventListener('click', () => {
  paused = !paused;
  pauseBtn.setAttribute('aria-pressed', String(paused));
  pauseBtn.textContent = paused ? 'Resume' : 'Pause';
  if (!paused) { held.splice(0).forEach(append); scrollDown(); }
  showHeld();
});
follow.addEventListener('change', scrollDown);
const refilter = () => { for (const li of list.children) li.hidden = !matches(li); scrollDown(); };
filterIn.addEventListener('input', refilter);
streamSel.addEventListener('change', refilter);
$('#logs-clear').addEventListener('click', () => { list.replaceChildren(); held.length = 0; showHeld(); });
list.addEventListener('scroll', () => {
  // Scrolling up to read stops following; back at the bottom resumes it.
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
  if (follow.checked !== atBottom && list.scrollHeight > list.clientHeight) follow.checked = atBottom;
});

// After a reconnection only lines from the newest one seen on are asked
// for, and lines already shown are recognised and skipped.
let newest = '';
let newestMs = -Infinity;
const seen = new Set();
const logsPath = () => base + '/logs?' + new URLSearchParams(newest ? { follow: 'true', tail: '-1', since: newest } : { follow: 'true', tail: '100' });
stream(logsPath, {
  onEvent(name, line) {
    if (name !== 'line') return;
    const key = [line.time, line.instance, line.stream, line.text].join('\n');
    if (seen.has(key)) return;
    seen.add(key);
    if (seen.size > 2 * MAX_LINES) seen.delete(seen.values().next().value);
    const ms = Date.parse(line.time);
    if (ms > newestMs) { newestMs = ms; newest = line.time; }
    if (paused) { held.push(line); if (held.length > MAX_LINES) held.shift(); showHeld(); return; }
    append(line);
    scrollDown();
  },
  onState: liveState($('#logs-live')),
});
