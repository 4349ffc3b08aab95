// The console: signs in when the server wants a token, then shows one view
// at a time (the page's #hash names it).

import { $, api, whenSignedOut } from './dom.js';
import * as live from './live.js';
import * as review from './review.js';
import * as ask from './ask.js';
import * as tune from './tune.js';
import * as cameras from './cameras.js';
import * as health from './health.js';

const VIEWS = { live, review, ask, tune, cameras, health };
let current = null;

// `#review?since=-7d&kind=rule`: the view, and what it starts from.
function show(hash) {
  const [view, query] = hash.split('?');
  const name = VIEWS[view] ? view : 'live';
  const params = new URLSearchParams(query || '');
  if (current === name && !query) return;
  if (current) VIEWS[current].hide();
  for (const v of document.querySelectorAll('.view')) v.classList.toggle('on', v.id === `view-${name}`);
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('on', a.dataset.view === name);
  current = name;
  VIEWS[name].show(params);
}

function signedIn(required) {
  $('signin').hidden = true;
  $('views').hidden = false;
  $('signout').hidden = !required;
  $('who').textContent = required ? 'signed in' : 'loopback, no token';
  current = null;
  show(location.hash.slice(1));
}

function signIn() {
  if (current) VIEWS[current].hide();
  current = null;
  $('views').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  $('signin').hidden = false;
  $('token').focus();
}

async function start() {
  whenSignedOut(signIn);
  window.addEventListener('hashchange', () => { if (!$('views').hidden) show(location.hash.slice(1)); });
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('signin-error').textContent = '';
    const token = $('token').value.trim();
    try {
      await api('/session', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      $('token').value = '';
      signedIn(true);
    } catch (err) {
      $('signin-error').textContent = err.status === 401 ? 'That is not the token.' : err.message;
    }
  });
  $('signout').addEventListener('click', async () => {
    try { await api('/session', { method: 'DELETE' }); } finally { signIn(); }
  });
  try {
    const s = await api('/session');
    if (s.signed_in) signedIn(s.required);
    else signIn();
  } catch (err) {
    $('signin').hidden = false;
    $('signin-error').textContent = `vigil does not answer: ${err.message}`;
  }
}

start();
