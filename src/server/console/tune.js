// Tune: the stream's zones and lines drawn over its latest frame, to edit
// (drag a corner; click the picture to add corners to a new zone, two
// clicks for a line) and to copy into the pipeline file as TOML.

import { $, el, svg, clear, api, streams, fillStreams } from './dom.js';

let shapes = [];       // { type: 'zone'|'line', name, labels, points: [[x, y]…], open }
let picked = null;
let drawing = null;    // the shape being drawn
let stream = '';
let ready = false;

export function show() {
  if (!ready) setup();
  streams().then((list) => {
    fillStreams($('tn-stream'), list, false);
    if ($('tn-stream').value !== stream) load($('tn-stream').value);
  }).catch((e) => status(e.message, true));
}

export function hide() {}

function status(text, bad) {
  $('tn-status').textContent = text;
  $('tn-status').className = bad ? 'error' : 'hint';
}

function setup() {
  ready = true;
  $('tn-stream').addEventListener('change', () => load($('tn-stream').value));
  $('tn-zone').addEventListener('click', () => begin('zone'));
  $('tn-line').addEventListener('click', () => begin('line'));
  $('tn-close').addEventListener('click', finish);
  $('tn-delete').addEventListener('click', () => {
    shapes = shapes.filter((s) => s !== picked);
    if (drawing === picked) drawing = null;
    pick(null);
  });
  $('tn-name').addEventListener('input', () => { if (picked) { picked.name = $('tn-name').value.trim(); render(); } });
  $('tn-labels').addEventListener('input', () => {
    if (picked) { picked.labels = $('tn-labels').value.split(',').map((l) => l.trim()).filter(Boolean); render(); }
  });
  $('try-form').addEventListener('submit', (e) => { e.preventDefault(); tryRule(); });
  $('tn-copy').addEventListener('click', () => navigator.clipboard?.writeText($('tn-toml').textContent));
  $('tn-svg').addEventListener('click', (e) => {
    if (!drawing) return;
    drawing.points.push(at(e));
    if (drawing.type === 'line' && drawing.points.length === 2) drawing = null;
    render();
  });
}

// The picture's size in pixels: the drawing counts in them.
let W = 1, H = 1;

// The pointer's place on the picture, 0–1, rounded to 1/1000.
function at(e) {
  const r = $('tn-svg').getBoundingClientRect();
  const f = (v) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
  return [f((e.clientX - r.left) / r.width), f((e.clientY - r.top) / r.height)];
}

async function load(name) {
  stream = name;
  shapes = [];
  drawing = null;
  pick(null);
  if (!name) { status('No stream runs: attach one under Cameras.', true); return; }
  status(`waiting for a picture of ${name}…`);
  for (let i = 0; i < 30 && stream === name; i++) {
    try {
      const v = await api(`/streams/${encodeURIComponent(name)}/live`);
      $('tn-picture').src = `/streams/${encodeURIComponent(name)}/live.jpg?seq=${v.seq}`;
      $('tn-stage').style.aspectRatio = `${v.width} / ${v.height}`;
      W = v.width;
      H = v.height;
      $('tn-svg').setAttribute('viewBox', `0 0 ${W} ${H}`);
      shapes = v.zones.map((z) => ({ type: 'zone', name: z.name, labels: z.labels, points: z.polygon, open: false }))
        .concat(v.lines.map((l) => ({ type: 'line', name: l.name, labels: l.labels, points: [l.from, l.to] })));
      status(`${name}: frame ${v.seq} at ${v.utc}. The stream's zones and lines are shown: click one to edit it.`);
      render();
      return;
    } catch (e) {
      if (e.status !== 503) { status(e.message, true); return; }
      // A stream that no longer runs gives no picture.
      if (/state: (ended|failed|stopped)/.test(e.message)) {
        status(`${name} does not run now: no picture to draw on (rules can still be tried below).`, true);
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (stream === name) status(`no picture of ${name} came: is it running?`, true);
}

function begin(type) {
  const n = shapes.filter((s) => s.type === type).length + 1;
  drawing = { type, name: `${type}${n}`, labels: type === 'zone' ? ['people'] : [], points: [], open: type === 'zone' };
  shapes.push(drawing);
  pick(drawing);
  status(type === 'zone' ? 'Click the corners of the zone, then Close zone.' : 'Click where the line starts, then where it ends.');
}

function finish() {
  if (drawing && drawing.type === 'zone' && drawing.points.length >= 3) {
    drawing.open = false;
    drawing = null;
    status('Zone closed. Drag its corners to move them.');
  } else if (drawing) {
    status('A zone needs at least three corners.', true);
  }
  render();
}

function pick(s) {
  picked = s;
  for (const id of ['tn-name', 'tn-labels', 'tn-delete']) $(id).disabled = !s;
  $('tn-name').value = s ? s.name : '';
  $('tn-labels').value = s ? s.labels.join(', ') : '';
  render();
}

function render() {
  $('tn-close').disabled = !(drawing && drawing.type === 'zone');
  const g = clear($('tn-svg'));
  const fs = Math.max(8, Math.round(H / 40));
  for (const s of shapes) {
    const pts = s.points.map((p) => `${p[0] * W},${p[1] * H}`).join(' ');
    const cls = (s.type === 'zone' ? 'zone' : 'cline') + (s === picked ? ' selected' : '');
    const shape = svg(s.type === 'zone' && !s.open ? 'polygon' : 'polyline', { class: cls, points: pts, 'data-name': s.name });
    shape.addEventListener('click', (e) => { if (!drawing) { e.stopPropagation(); pick(s); } });
    g.append(shape);
    if (s.points.length) {
      g.append(svg('text', { class: 'tag', x: s.points[0][0] * W, y: s.points[0][1] * H - fs / 3, 'font-size': fs, 'stroke-width': fs / 6 }, s.name));
    }
    s.points.forEach((p, i) => {
      const h = svg('circle', { class: 'handle', cx: p[0] * W, cy: p[1] * H, r: fs / 3 });
      h.addEventListener('pointerdown', (e) => drag(e, s, i));
      g.append(h);
    });
  }
  toml();
}

function drag(e, s, i) {
  e.preventDefault();
  e.stopPropagation();
  pick(s);
  const move = (m) => { s.points[i] = at(m); render(); };
  const up = () => { window.removeEventListener('pointermove', move); window.removeEventListener('pointerup', up); };
  window.addEventListener('pointermove', move);
  window.addEventListener('pointerup', up);
}

// TOML strings: quoted, with `"` and `\` escaped.
const q = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const num = (v) => {
  const t = String(Math.round(v * 1000) / 1000);
  return t.includes('.') ? t : `${t}.0`;
};
const point = (p) => `[${num(p[0])}, ${num(p[1])}]`;

function toml() {
  const out = [];
  for (const s of shapes) {
    if (s.type === 'zone' && s.points.length < 3) continue;
    if (s.type === 'line' && s.points.length < 2) continue;
    out.push(s.type === 'zone' ? '[[zones]]' : '[[lines]]');
    out.push(`name = ${q(s.name || s.type)}`);
    if (stream) out.push(`streams = [${q(stream)}]`);
    if (s.type === 'zone') out.push(`polygon = [${s.points.map(point).join(', ')}]`);
    else out.push(`from = ${point(s.points[0])}`, `to = ${point(s.points[1])}`);
    if (s.labels.length) out.push(`labels = [${s.labels.map(q).join(', ')}]`);
    out.push('');
  }
  $('tn-toml').textContent = out.join('\n');
}

// The dry run: when the rule would have fired on the stream's records.
async function tryRule() {
  const status = $('try-status');
  const list = clear($('try-list'));
  if (!stream) { status.textContent = 'Choose a stream first.'; status.className = 'error'; return; }
  const body = { stream, when: $('try-when').value };
  for (const [key, id] of [['within', 'try-within'], ['min_duration', 'try-min'], ['cooldown', 'try-cooldown'], ['since', 'try-since'], ['until', 'try-until']]) {
    const v = $(id).value.trim();
    if (v) body[key] = v;
  }
  status.textContent = 'trying…';
  status.className = 'hint';
  let r;
  try {
    r = await api('/rules/try', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error';
    return;
  }
  status.textContent = `${r.fired.length === 0 ? 'It would not have fired' : `It would have fired ${r.fired.length} time(s)`} on ${r.stream} from ${r.since} to ${r.until} (${r.records} records, ${r.facts} facts).`;
  for (const f of r.fired) {
    const says = Array.isArray(f.evidence) ? f.evidence.map((e) => e.says).filter(Boolean).join('; ') : '';
    list.append(el('li', { 'data-start': f.start }, `${f.start.replace('T', ' ')} · ${f.length === null ? 'still holding at the end' : `${f.length.toFixed(1)} s`}${says ? ` · ${says}` : ''}`));
  }
}
