// Helpers shared by the views. Untrusted text (names, labels, transcripts)
// only ever goes into the page through textContent or attribute values:
// nothing here parses HTML.

const SVG = 'http://www.w3.org/2000/svg';

// An element with attributes and children (strings become text nodes).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// An SVG element with attributes; `text` becomes its text.
export function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    // Handlers only as functions: never an inline handler attribute.
    if (k.startsWith('on')) {
      if (typeof v === 'function') e.addEventListener(k.slice(2), v);
      continue;
    }
    e.setAttribute(k, v === true ? '' : String(v));
  }
}

export const $ = (id) => document.getElementById(id);

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// Called when the API says the session is gone.
let onSignedOut = () => {};
export function whenSignedOut(f) { onSignedOut = f; }

// A request to the API: the JSON answer, or an Error carrying the API's
// own message. The session cookie goes with it.
export async function api(path, options = {}) {
  const r = await fetch(path, { credentials: 'same-origin', ...options });
  if (r.status === 401) onSignedOut();
  const type = r.headers.get('content-type') || '';
  if (!r.ok) {
    let message = `${r.status} ${r.statusText}`;
    if (type.startsWith('application/json')) {
      try { message = (await r.json()).error || message; } catch (_) { /* keep the status */ }
    }
    const e = new Error(message);
    e.status = r.status;
    throw e;
  }
  if (r.status === 204) return null;
  return type.startsWith('application/json') ? r.json() : r.text();
}

// Seconds as `1m 05.2s`.
export function seconds(s) {
  if (s === null || s === undefined) return '';
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${(s - m * 60).toFixed(1).padStart(4, '0')}s`;
}

// An RFC 3339 time as `2026-12-06 08:00:01.200` (UTC).
export function utc(t) {
  return t ? t.replace('T', ' ').replace('Z', '') : '';
}

// Every `ms` while `alive()` says so, starting now; a failed step is
// shown by the step itself and does not stop the loop.
export function every(ms, step, alive) {
  let timer = null;
  const run = async () => {
    if (!alive()) { timer = null; return; }
    try { await step(); } catch (e) { console.warn(e); }
    timer = setTimeout(run, ms);
  };
  run();
  return () => { if (timer) clearTimeout(timer); timer = null; };
}

// The streams the server runs, by name.
export async function streams() {
  return api('/streams');
}

export function fillStreams(select, list, keepAll) {
  const was = select.value;
  clear(select);
  if (keepAll) select.append(el('option', { value: '' }, 'all'));
  for (const s of list) select.append(el('option', { value: s.name }, s.name));
  if ([...select.options].some((o) => o.value === was)) select.value = was;
}
