// Health: sparklines of the last few minutes, from /streams (rates) and
// /metrics (latency, model batches, sinks): per stream and per model.

import { $, el, svg, clear, api, every } from './dom.js';

const POINTS = 90;
const series = new Map();   // key → { name, unit, values: [] }
let last = null;            // the previous scrape's counters
let on = false;
let stop = null;

export function show() {
  on = true;
  stop = every(2000, sample, () => on);
}

export function hide() {
  on = false;
  if (stop) stop();
}

// `name{a="x",b="y"} value` lines of the Prometheus text format.
export function parse(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.set(line.slice(0, line.length - m[4].length).trim(), { name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function put(key, name, unit, value) {
  if (!Number.isFinite(value)) return;
  if (!series.has(key)) series.set(key, { name, unit, values: [] });
  const s = series.get(key);
  s.values.push(value);
  if (s.values.length > POINTS) s.values.shift();
}

// Per label value: the mean of a histogram over the last interval.
function means(now, prev, metric, label) {
  const out = new Map();
  for (const [k, m] of now) {
    if (m.name !== `${metric}_sum`) continue;
    const countKey = k.replace(`${metric}_sum`, `${metric}_count`);
    const c = now.get(countKey);
    const ps = prev?.get(k), pc = prev?.get(countKey);
    if (!c || !ps || !pc) continue;
    const dc = c.value - pc.value;
    if (dc > 0) out.set(m.labels[label], (m.value - ps.value) / dc);
  }
  return out;
}

async function sample() {
  const [list, text] = await Promise.all([api('/streams'), api('/metrics')]);
  const now = parse(text);
  for (const s of list) {
    put(`fps:${s.name}`, `${s.name} · frames analysed per second`, 'fps', s.fps_out);
    put(`cpu:${s.name}`, `${s.name} · CPU`, '% of a core', s.cpu_percent);
    put(`drop:${s.name}`, `${s.name} · dropped`, 'chunks', s.dropped);
  }
  for (const [stream, v] of means(now, last, 'vigil_latency_seconds', 'stream')) put(`lat:${stream}`, `${stream} · latency`, 's', v);
  for (const [model, v] of means(now, last, 'vigil_batch_size', 'model')) put(`bs:${model}`, `${model} · batch size`, 'items', v);
  for (const [model, v] of means(now, last, 'vigil_batch_seconds', 'model')) put(`bt:${model}`, `${model} · model run`, 's', v);
  for (const m of now.values()) {
    if (m.name === 'vigil_delivery_pending') put(`pend:${m.labels.sink}`, `${m.labels.sink} · pending`, 'records', m.value);
  }
  for (const [sink, v] of means(now, last, 'vigil_delivery_lag_seconds', 'sink')) put(`lag:${sink}`, `${sink} · delivery lag`, 's', v);
  last = now;
  draw();
  $('hl-status').textContent = `${list.length} streams · every 2 s · ${new Date().toISOString().slice(11, 19)} UTC`;
}

function draw() {
  const box = $('health');
  const have = new Map([...box.children].map((c) => [c.dataset.key, c]));
  for (const [key, s] of series) {
    let card = have.get(key);
    if (!card) {
      card = el('div', { class: 'spark', 'data-key': key }, el('div', { class: 'name' }, s.name), el('div', { class: 'value' }),
        svg('svg', { viewBox: `0 0 ${POINTS - 1} 1`, preserveAspectRatio: 'none' }));
      box.append(card);
    }
    const v = s.values[s.values.length - 1];
    card.querySelector('.value').textContent = `${v < 10 ? v.toFixed(3) : v.toFixed(1)} ${s.unit}`;
    const hi = Math.max(...s.values), lo = Math.min(0, ...s.values);
    const span = hi - lo || 1;
    const pts = s.values.map((y, i) => `${i + POINTS - s.values.length},${1 - (y - lo) / span}`).join(' ');
    const g = clear(card.querySelector('svg'));
    g.append(svg('polyline', { points: pts }));
  }
}
