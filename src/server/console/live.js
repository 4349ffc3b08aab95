// Live: every stream's latest analysed frame with its tracks, zones and
// lines, its state and rates; the records of the chosen stream as they
// are stored (Server-Sent Events from /events/live). On a node of a
// cluster, every node's streams (their pictures come through this node).

import { $, el, svg, clear, api, every, utc, seconds } from './dom.js';

const cards = new Map();
let on = false;
let stop = null;
let feed = null;
let chosen = null;
// This node's name, on a cluster.
let here = null;

export function show() {
  on = true;
  api('/cluster').then((v) => { here = v.node; }).catch(() => {});
  stop = every(1000, refresh, () => on);
  if (chosen) follow(chosen);
}

export function hide() {
  on = false;
  if (stop) stop();
  if (feed) { feed.close(); feed = null; }
}

async function refresh() {
  const list = await api('/streams?from=cluster');
  const grid = $('grid');
  const names = new Set(list.map((s) => s.name));
  for (const [name, c] of cards) {
    if (!names.has(name)) { c.root.remove(); cards.delete(name); }
  }
  if (!list.length && !grid.querySelector('.hint')) {
    grid.append(el('p', { class: 'hint' }, 'No streams run. Attach one under Cameras.'));
  }
  if (list.length) grid.querySelector('.hint')?.remove();
  for (const s of list) {
    let c = cards.get(s.name);
    if (!c) {
      c = card(s.name);
      cards.set(s.name, c);
      grid.append(c.root);
    }
    c.node = s.node || null;
    c.state.textContent = s.state;
    c.state.className = `state ${s.state}`;
    c.stats.textContent = `${s.fps_in.toFixed(1)} fps in · ${s.fps_out.toFixed(1)} analysed · ${s.dropped} dropped · ${seconds(s.media_s)}`
      + (s.reason ? ` · ${s.reason}` : '') + (s.node ? ` · on node ${s.node}` : '');
    picture(s.name, c).catch(() => {});
  }
}

function card(name) {
  const state = el('span', { class: 'state' });
  const img = el('img', { alt: `latest frame of ${name}` });
  const overlay = svg('svg', { viewBox: '0 0 1 1', preserveAspectRatio: 'none' });
  const wait = el('div', { class: 'wait' }, 'waiting for a picture');
  const stage = el('div', { class: 'stage' }, img, overlay, wait);
  const stats = el('div', { class: 'stats' });
  const root = el('div', { class: 'card', 'data-stream': name }, el('h3', {}, el('span', { class: 'name' }, name), state), stage, stats);
  root.addEventListener('click', () => follow(name));
  if (name === chosen) root.classList.add('on');
  return { root, state, stats, img, overlay, wait, stage, seq: 0, busy: false };
}

async function picture(name, c) {
  if (c.busy) return;
  c.busy = true;
  try {
    let v;
    try {
      v = await api(`/streams/${encodeURIComponent(name)}/live`);
    } catch (e) {
      c.wait.hidden = false;
      c.wait.textContent = e.status === 503 ? 'waiting for a picture' : e.message;
      return;
    }
    if (v.seq === c.seq) return;
    const loaded = await new Promise((resolve) => {
      const next = new Image();
      next.onload = () => { c.img.src = next.src; resolve(true); };
      next.onerror = () => resolve(false);
      next.src = `/streams/${encodeURIComponent(name)}/live.jpg?seq=${v.seq}`;
    });
    if (!loaded) return;
    c.seq = v.seq;
    c.wait.hidden = true;
    c.stage.style.aspectRatio = `${v.width} / ${v.height}`;
    draw(c.overlay, v);
  } finally {
    c.busy = false;
  }
}

// Zones, lines and boxes over the picture. The overlay counts in the
// frame's pixels (so that text keeps its shape); the API's 0–1 units are
// scaled to them.
export function draw(overlay, v) {
  const W = v.width, H = v.height;
  overlay.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const fs = Math.max(8, Math.round(H / 40));
  const tag = (x, y, text) => svg('text', { class: 'tag', x: x * W, y: y * H, 'font-size': fs, 'stroke-width': fs / 6 }, text);
  clear(overlay);
  for (const z of v.zones) {
    overlay.append(svg('polygon', { class: z.occupancy ? 'zone busy' : 'zone', points: z.polygon.map((p) => `${p[0] * W},${p[1] * H}`).join(' ') }));
    const [x, y] = z.polygon[0];
    overlay.append(tag(x + 0.005, y + fs / H + 0.005, `${z.name} (${z.occupancy})`));
  }
  for (const l of v.lines) {
    overlay.append(svg('line', { class: 'cline', x1: l.from[0] * W, y1: l.from[1] * H, x2: l.to[0] * W, y2: l.to[1] * H }));
    overlay.append(tag(l.from[0], l.from[1], l.name));
  }
  for (const t of v.tracks) {
    const [x, y, w, h] = t.bbox;
    overlay.append(svg('rect', { class: t.matched ? 'box' : 'box predicted', x: x * W, y: y * H, width: w * W, height: h * H, 'data-track': t.id }));
    overlay.append(tag(x, Math.max(fs / H, y - 0.005), `${t.label} #${t.id}`));
  }
}

function follow(name) {
  chosen = name;
  for (const [n, c] of cards) c.root.classList.toggle('on', n === name);
  $('feed-stream').textContent = `· ${name}`;
  const list = clear($('feed-list'));
  if (feed) { feed.close(); feed = null; }
  const node = cards.get(name)?.node;
  if (node && here && node !== here) {
    list.append(el('li', { class: 'hint' }, `${name} runs on node ${node}: its records as they are stored are in that node's console (Review shows the whole cluster's)`));
    return;
  }
  feed = new EventSource(`/events/live?stream=${encodeURIComponent(name)}`);
  // Each record comes as an SSE event named by its type.
  const add = (m) => {
    let r;
    try { r = JSON.parse(m.data); } catch (_) { return; }
    list.prepend(row(r, m.lastEventId));
    while (list.children.length > 200) list.lastChild.remove();
  };
  for (const type of ['event', 'caption', 'transcript']) feed.addEventListener(type, add);
  feed.onerror = () => {
    if (!list.querySelector('.error')) list.prepend(el('li', { class: 'error' }, 'the live records stopped; reconnecting…'));
  };
  feed.onopen = () => list.querySelector('.error')?.remove();
}

function row(r, seq) {
  let what;
  if (r.type === 'event') {
    what = `${r.kind} ${r.phase}${r.labels?.length ? ' [' + r.labels.join(', ') + ']' : ''}`;
    if (r.kind === 'rule' && r.details?.severity) what += ` · ${r.details.severity}`;
  } else if (r.type === 'caption' || r.type === 'transcript') {
    what = r.text;
  } else {
    what = r.type;
  }
  return el('li', { 'data-seq': seq, 'data-id': r.id, 'data-type': r.type },
    el('span', { class: 't' }, utc(r.utc).slice(11, 23)), what);
}
