// chart.js: small SVG line charts of the last few minutes, one point a
// second, drawn without any library.

const NS = 'http://www.w3.org/2000/svg';
const W = 600, H = 160, PAD_L = 56, PAD_R = 8, PAD_T = 8, PAD_B = 20;

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

// niceMax rounds up to 1, 2 or 5 times a power of ten.
export function niceMax(v, floor) {
  v = Math.max(v, floor);
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export const fmt = {
  percent: (v) => `${v.toFixed(v < 10 ? 1 : 0)} %`,
  bytes: (v) => {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
  },
  rate: (v) => fmt.bytes(v) + '/s',
};

// Chart keeps one point a second per series for windowSec seconds.
export class Chart {
  constructor(figure, { series, format, floor = 1, windowSec = 300, label }) {
    this.figure = figure;
    this.series = series;
    this.format = format;
    this.floor = floor;
    this.windowMs = windowSec * 1000;
    this.label = label;
    this.points = []; // {t, v: [..]}
    this.output = figure.querySelector('[data-value]');
    this.svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${label}: no data yet`, class: 'chart-svg' });
    this.grid = el('g', { class: 'grid' }, this.svg);
    this.lines = series.map((s) => el('path', { class: 'line ' + s.cls, fill: 'none' }, this.svg));
    figure.append(this.svg);
    if (series.length > 1) {
      const legend = document.createElement('p');
      legend.className = 'legend';
      for (const s of series) {
        const k = document.createElement('span');
        k.className = 'key ' + s.cls;
        k.textContent = s.label;
        legend.append(k);
      }
      figure.append(legend);
    }
  }

  push(t, values) {
    const sec = Math.floor(t / 1000) * 1000;
    const last = this.points[this.points.length - 1];
    if (last && last.t === sec) last.v = values;
    else this.points.push({ t: sec, v: values });
    const cut = t - this.windowMs - 2000;
    while (this.points.length && this.points[0].t < cut) this.points.shift();
    this.dirty = true;
  }

  render(now = Date.now()) {
    const x0 = now - this.windowMs;
    const pts = this.points.filter((p) => p.t >= x0 - 1000);
    let max = 0;
    for (const p of pts) for (const v of p.v) if (v > max) max = v;
    const ymax = niceMax(max, this.floor);
    const x = (t) => PAD_L + ((t - x0) / this.windowMs) * (W - PAD_L - PAD_R);
    const y = (v) => PAD_T + (1 - v / ymax) * (H - PAD_T - PAD_B);
    this.grid.replaceChildren();
    for (const f of [0, 0.5, 1]) {
      const yy = y(ymax * f);
      el('line', { x1: PAD_L, x2: W - PAD_R, y1: yy, y2: yy }, this.grid);
      const tx = el('text', { x: PAD_L - 6, y: yy + 4, 'text-anchor': 'end' }, this.grid);
      tx.textContent = this.format(ymax * f);
    }
    for (const [f, text] of [[0, '-5m'], [0.5, '-2.5m'], [1, 'now']]) {
      const tx = el('text', { x: PAD_L + f * (W - PAD_L - PAD_R), y: H - 4, 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle' }, this.grid);
      tx.textContent = text;
    }
    this.series.forEach((s, i) => {
      let d = '';
      let prev = null;
      for (const p of pts) {
        const v = p.v[i];
        if (v == null || Number.isNaN(v)) { prev = null; continue; }
        // A gap of more than five seconds breaks the line.
        d += `${prev && p.t - prev <= 5000 ? 'L' : 'M'}${x(Math.max(p.t, x0)).toFixed(1)},${y(v).toFixed(1)}`;
        prev = p.t;
      }
      this.lines[i].setAttribute('d', d);
    });
    const last = pts[pts.length - 1];
    if (last) {
      const text = this.series.map((s, i) => (this.series.length > 1 ? s.label + ' ' : '') + this.format(last.v[i] || 0)).join(' · ');
      this.output.textContent = text;
      this.svg.setAttribute('aria-label', `${this.label}: ${text} now; peak ${this.format(max)} in the last five minutes`);
      this.figure.dataset.last = String(last.v[0]);
      this.figure.dataset.points = String(pts.length);
    }
    this.dirty = false;
  }
}
