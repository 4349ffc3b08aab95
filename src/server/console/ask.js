// Ask: a question of everything seen, heard and said (`/search`, as `vigil
// ask` answers it). Each answer shows its stream and time, what happened,
// why it matched, its snapshot or clip, and a link that opens its span in
// Review. `#ask?q=siren near people` asks at once.

import { $, el, clear, api, utc, seconds } from './dom.js';

// Seconds of context around an answer opened in Review.
const AROUND_MS = 5000;

export function show(params = new URLSearchParams()) {
  if (!$('ask-form').dataset.ready) {
    $('ask-form').dataset.ready = '1';
    $('ask-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
  }
  if (params.has('q')) {
    $('ask-q').value = params.get('q');
    run();
  }
  $('ask-q').focus();
}

export function hide() {}

// An RFC 3339 time moved by `ms`.
function moved(t, ms) {
  const d = Date.parse(t);
  return Number.isNaN(d) ? t : new Date(d + ms).toISOString();
}

function answer(a) {
  const review = new URLSearchParams({
    stream: a.stream, since: moved(a.utc, -AROUND_MS), until: moved(a.utc_end, AROUND_MS),
  });
  const media = a.clip
    ? el('video', { controls: true, src: `/media/${a.clip}`, poster: a.snapshot ? `/media/${a.snapshot}` : null, preload: 'metadata' })
    : a.snapshot ? el('img', { src: `/media/${a.snapshot}`, alt: `snapshot on ${a.stream}` }) : null;
  const why = [];
  if (a.words.length) why.push(`words: ${a.words.join(', ')}`);
  if (a.meaning !== null && a.meaning !== undefined) why.push(`meaning ${a.meaning.toFixed(2)}`);
  return el('li', { 'data-stream': a.stream, 'data-utc': a.utc },
    el('div', { class: 'head' },
      el('b', {}, a.stream), ' ', utc(a.utc),
      el('span', { class: 'hint' }, ` ${seconds(a.start)} – ${seconds(a.end)} into the stream${a.node ? `, on node ${a.node}` : ''}`),
      ' ', el('a', { class: 'review', href: `#review?${review}` }, 'Review')),
    el('ul', { class: 'said' }, a.said.map((s) => el('li', {}, s))),
    el('p', { class: 'hint' }, [why.join(' · '), a.why.length ? ` · ${a.why.join('; ')}` : ''].join('')),
    media);
}

async function run() {
  const q = $('ask-q').value.trim();
  if (!q) return;
  const p = new URLSearchParams({ q, top: $('ask-top').value || '10', mode: $('ask-mode').value });
  const status = $('ask-status');
  const list = clear($('ask-list'));
  status.textContent = 'asking…';
  status.className = 'hint';
  let a;
  try {
    a = await api(`/search?${p}`);
  } catch (e) {
    status.textContent = e.message;
    status.className = 'error';
    return;
  }
  const parts = [`${a.answers.length} answers`];
  if (a.understood.length) parts.push(`understood: ${a.understood.join(', ')}`);
  if (a.words) parts.push(`words matched: “${a.words}”`);
  parts.push(`by ${a.mode}`);
  status.textContent = [parts.join(' · '), ...a.notes].join('\n');
  for (const x of a.answers) list.append(answer(x));
}
