// Cameras: what runs, attaching and detaching through the API; the API's
// own refusals are shown as they are.

import { $, el, clear, api, every, seconds } from './dom.js';

let on = false;
let stop = null;
let ready = false;

export function show() {
  on = true;
  if (!ready) setup();
  stop = every(2000, refresh, () => on);
}

export function hide() {
  on = false;
  if (stop) stop();
}

function problem(text) {
  $('at-error').textContent = text || '';
}

function setup() {
  ready = true;
  $('attach').addEventListener('submit', async (e) => {
    e.preventDefault();
    problem('');
    let body = {};
    const more = $('at-more').value.trim();
    if (more) {
      try { body = JSON.parse(more); } catch (err) { problem(`More (JSON): ${err.message}`); return; }
      if (typeof body !== 'object' || Array.isArray(body) || body === null) { problem('More (JSON): an object, like {"transport": "tcp"}'); return; }
    }
    body.name = $('at-name').value.trim();
    body.uri = $('at-uri').value.trim();
    const fps = $('at-fps').value.trim();
    if (fps) body.fps = Number(fps);
    try {
      await api('/streams', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      $('at-name').value = '';
      $('at-uri').value = '';
      $('at-fps').value = '';
      $('at-more').value = '';
      await refresh();
    } catch (err) {
      problem(err.message);
    }
  });
}

async function detach(name) {
  problem('');
  if (!window.confirm(`Detach ${name}? Its analysis stops; what it recorded stays.`)) return;
  try {
    await api(`/streams/${encodeURIComponent(name)}`, { method: 'DELETE' });
    await refresh();
  } catch (err) {
    problem(err.message);
  }
}

async function refresh() {
  const list = await api('/streams');
  const body = clear($('cams').tBodies[0]);
  for (const s of list) {
    body.append(el('tr', { 'data-stream': s.name },
      el('td', {}, s.name), el('td', {}, s.uri),
      el('td', {}, el('span', { class: `state ${s.state}` }, s.state)),
      el('td', {}, seconds(s.uptime_s)),
      el('td', {}, `${s.fps_in.toFixed(1)} / ${s.fps_out.toFixed(1)}`),
      el('td', {}, String(s.dropped)),
      el('td', {}, s.reason || s.last_error || ''),
      el('td', {}, el('button', { type: 'button', onclick: () => detach(s.name) }, 'Detach'))));
  }
}
