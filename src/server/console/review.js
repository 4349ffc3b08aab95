// Review: the stored records over a time range, as a timeline per stream
// (a lane per kind, rule alerts outlined) and a table; an event opens its
// snapshot, clip, evidence, and the transcripts and captions of its span.
// Export links ask /events for the same filters as CSV or JSONL.

import { $, el, svg, clear, api, utc, seconds, streams, fillStreams } from './dom.js';

// Records read at most: the rest is left for narrower filters.
const MOST = 20000;
const COLOURS = {
  rule: '#ff4d4f', object: '#3ecf8e', zone: '#4da3ff', line: '#ff7ae0', sound: '#f5a623',
  speech: '#b38bff', motion: '#6b7a8f', loud_sound: '#e0c341', face: '#4dd0e1', stream_gap: '#8b95a3',
};

let spans = [];
let texts = [];
let loaded = false;

// Filters given in the address (`#review?since=-7d&kind=rule`) are
// filled in and shown at once.
const FIELDS = { stream: 'rv-stream', kind: 'rv-kind', label: 'rv-label', severity: 'rv-severity', since: 'rv-since', until: 'rv-until' };

export function show(params = new URLSearchParams()) {
  if (!$('review-form').dataset.ready) {
    $('review-form').dataset.ready = '1';
    $('review-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  }
  let given = false;
  for (const [key, id] of Object.entries(FIELDS)) {
    if (!params.has(key)) continue;
    const input = $(id);
    if (input.tagName === 'SELECT' && ![...input.options].some((o) => o.value === params.get(key))) {
      input.append(el('option', { value: params.get(key) }, params.get(key)));
    }
    input.value = params.get(key);
    given = true;
  }
  streams().then((list) => fillStreams($('rv-stream'), list, true)).catch(() => {});
  if (!loaded || given) load();
}

export function hide() {}

function query(format) {
  const p = new URLSearchParams({ format });
  const add = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  add('stream', 'rv-stream');
  add('kind', 'rv-kind');
  add('label', 'rv-label');
  add('since', 'rv-since');
  add('until', 'rv-until');
  return `/events?${p}`;
}

async function load() {
  loaded = true;
  $('rv-csv').href = query('csv');
  $('rv-jsonl').href = query('jsonl');
  const status = $('rv-status');
  status.textContent = 'reading…';
  status.className = 'hint';
  let text;
  try {
    text = await api(query('jsonl'));
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error';
    return;
  }
  const records = [];
  let cut = false;
  for (const line of (typeof text === 'string' ? text : '').split('\n')) {
    if (!line.trim()) continue;
    if (records.length >= MOST) { cut = true; break; }
    try { records.push(JSON.parse(line)); } catch (_) { /* a cut line */ }
  }
  const severity = $('rv-severity').value;
  ({ spans, texts } = pair(records));
  if (severity) spans = spans.filter((s) => s.severity === severity);
  status.textContent = `${spans.length} events, ${texts.length} captions and transcripts`
    + (cut ? ` (the first ${MOST} records: narrow the filters for the rest)` : '');
  timeline();
  table();
}

// Start and end records of one event become one span; captions and
// transcripts are kept aside for the details.
function pair(records) {
  const byEvent = new Map();
  const texts = [];
  for (const r of records) {
    if (r.type === 'caption' || r.type === 'transcript') {
      texts.push(r);
      continue;
    }
    if (r.type !== 'event') continue;
    const key = `${r.stream}\u0000${r.run}\u0000${r.event}`;
    const s = byEvent.get(key) || { key, stream: r.stream, kind: r.kind, labels: r.labels, start: r.start, end: null, utc: r.utc, records: [] };
    s.records.push(r);
    if (r.end !== null && r.end !== undefined) s.end = r.end;
    for (const k of ['snapshot', 'clip', 'clip_start', 'zone', 'track', 'bbox']) if (r[k] !== null && r[k] !== undefined) s[k] = r[k];
    s.details = { ...(s.details || {}), ...r.details };
    s.score = Math.max(s.score || 0, r.score || 0);
    if (r.labels?.length) s.labels = r.labels;
    s.severity = s.details.severity || null;
    byEvent.set(key, s);
  }
  const spans = [...byEvent.values()].sort((a, b) => Date.parse(a.utc) - Date.parse(b.utc));
  for (const s of spans) {
    s.t0 = Date.parse(s.utc);
    s.t1 = s.t0 + Math.max(0, ((s.end ?? s.start) - s.start) * 1000);
  }
  return { spans, texts };
}

function timeline() {
  const box = clear($('timeline'));
  if (!spans.length) return;
  const t0 = Math.min(...spans.map((s) => s.t0));
  const t1 = Math.max(...spans.map((s) => s.t1), t0 + 1000);
  const byStream = new Map();
  for (const s of spans) {
    if (!byStream.has(s.stream)) byStream.set(s.stream, new Map());
    // A lane per kind and label: `object · person`, `sound · siren`.
    const lanes = byStream.get(s.stream);
    const lane = s.labels?.length ? `${s.kind} · ${s.labels[0]}` : s.kind;
    if (!lanes.has(lane)) lanes.set(lane, []);
    lanes.get(lane).push(s);
  }
  const W = 1000, LEFT = 170, LANE = 16;
  const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (W - LEFT - 10);
  for (const [stream, lanes] of byStream) {
    // Events of a kind that overlap go on rows of their own (at most ROWS).
    let rows = 0;
    for (const list of lanes.values()) rows += pack(list, x);
    const H = 24 + rows * LANE + 18;
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, 'data-stream': stream });
    g.append(svg('text', { class: 'lane', x: 4, y: 14 }, stream));
    for (let i = 0; i <= 10; i++) {
      const t = t0 + ((t1 - t0) * i) / 10;
      g.append(svg('line', { class: 'tick', x1: x(t), x2: x(t), y1: 20, y2: H - 16 }));
      g.append(svg('text', { class: 'axis', x: x(t), y: H - 4, 'text-anchor': 'middle' }, new Date(t).toISOString().slice(11, t1 - t0 < 20000 ? 23 : 19)));
    }
    let row = 0;
    for (const [lane, list] of lanes) {
      g.append(svg('text', { class: 'lane', x: 4, y: 22 + row * LANE + 11 }, lane));
      for (const s of list) {
        const y = 22 + (row + s.row) * LANE;
        const bar = svg('rect', {
          class: s.kind === 'rule' ? 'bar alert' : 'bar',
          x: x(s.t0), y: y + 2, width: Math.max(3, x(s.t1) - x(s.t0)), height: LANE - 4, rx: 2,
          fill: COLOURS[s.kind] || '#aaa', 'data-kind': s.kind, 'data-start': s.start,
          'data-label': (s.labels || []).join(','),
        });
        bar.append(svg('title', {}, `${s.kind} ${(s.labels || []).join(', ')} at ${seconds(s.start)}`));
        bar.addEventListener('click', () => pick(s));
        s.bar = bar;
        g.append(bar);
      }
      row += 1 + Math.max(0, ...list.map((s) => s.row));
    }
    box.append(g);
  }
}

// Rows of one lane: each event on the first row free where it starts
// (3 px apart on screen); returns how many rows.
const ROWS = 6;
function pack(list, x) {
  const ends = [];
  for (const s of list) {
    let r = ends.findIndex((e) => e + 3 <= x(s.t0));
    if (r < 0) r = ends.length < ROWS ? ends.length : ROWS - 1;
    ends[r] = Math.max(ends[r] ?? 0, x(s.t1), x(s.t0) + 3);
    s.row = r;
  }
  return Math.max(1, ends.length);
}

function table() {
  const body = clear($('rv-table').tBodies[0]);
  for (const s of spans) {
    const tr = el('tr', { class: s.kind === 'rule' ? 'alert' : null, 'data-kind': s.kind },
      el('td', {}, utc(s.utc)), el('td', {}, s.stream), el('td', {}, s.kind),
      el('td', {}, (s.labels || []).join(', ')),
      el('td', {}, s.end === null ? 'open' : seconds(s.end - s.start)), el('td', {}, s.severity || ''));
    tr.addEventListener('click', () => pick(s));
    s.row = tr;
    body.append(tr);
  }
}

function pick(s) {
  for (const o of spans) o.bar?.classList.remove('picked');
  s.bar?.classList.add('picked');
  const d = clear($('detail'));
  d.append(el('h2', {}, `${s.kind} ${(s.labels || []).join(', ')}`));
  if (s.clip) {
    d.append(el('video', { controls: true, src: `/media/${s.clip}`, poster: s.snapshot ? `/media/${s.snapshot}` : null, preload: 'metadata' }));
  } else if (s.snapshot) {
    d.append(el('img', { src: `/media/${s.snapshot}`, alt: `snapshot of ${s.kind}` }));
  } else {
    d.append(el('p', { class: 'hint' }, 'no snapshot or clip'));
  }
  const facts = [
    ['stream', s.stream],
    ['start', `${utc(s.utc)} UTC (${seconds(s.start)} into the stream)`],
    ['length', s.end === null ? 'still open' : seconds(s.end - s.start)],
    ['score', s.score?.toFixed(3)],
    ['severity', s.severity],
    ['zone', s.zone],
    ['track', s.track],
  ];
  const dl = el('dl');
  for (const [k, v] of facts) if (v !== null && v !== undefined && v !== '') dl.append(el('dt', {}, k), el('dd', {}, String(v)));
  for (const [k, v] of Object.entries(s.details || {})) {
    if (k === 'path' || k === 'severity') continue;
    if (k === 'evidence' && Array.isArray(v)) {
      // Each term of the rule, and what made it hold.
      const ul = el('ul', { class: 'evidence' });
      for (const e of v) ul.append(el('li', {}, el('code', {}, String(e.term ?? '')), ` ${e.says ?? ''}`));
      dl.append(el('dt', {}, 'evidence'), el('dd', {}, ul));
      continue;
    }
    dl.append(el('dt', {}, k), el('dd', {}, typeof v === 'string' ? v : JSON.stringify(v)));
  }
  d.append(dl);
  const end = (s.end ?? s.start);
  const near = texts.filter((t) => t.stream === s.stream && t.start <= end + 1 && (t.end ?? t.start) >= s.start - 1);
  for (const t of near) {
    d.append(el('p', { class: t.type }, el('strong', {}, `${t.type} ${seconds(t.start)}: `), t.text));
  }
}
