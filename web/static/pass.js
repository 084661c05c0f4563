// The pass page: a rotating QR signed on this phone (an ES module; see device.js for the key,
// its certificate and the `KP2.` format). It keeps rotating with no signal: every
// ROTATE_MS, and at once when the pass window changes, it signs a pass with a fresh nonce and
// draws it. The simulated-gate buttons (demo only: the page has them only when `kippu dev`
// runs with its development routes) post the very image on screen to a gate.
//
// Needs, before this module: <script src="/static/vendor/qrcode-generator.js"></script>
// (the global `qrcode`), and on the page #pass[data-ticket][data-account], canvas#qr,
// #pass-status, #net-status, and in the demo #verdict, .gate-btn[data-gate], optional .run[data-for].
import { WINDOW_SECS, RENEW_BEFORE_SECS, CertError, certValid, ensureDevice, loadDevice, qrLayout, signPass, toU64, windowAt } from './device.js';

const ROTATE_MS = 5000;
const TICK_MS = 250;
const QUIET = 4;
const RENEW_RETRY_MS = 60000;

const section = document.getElementById('pass');
const canvas = document.getElementById('qr');
const status = document.getElementById('pass-status');
const net = document.getElementById('net-status');
const out = document.getElementById('verdict');

const say = (text) => {
  if (status) status.textContent = text;
};

// The page's texts in its language (#pass[data-texts], a JSON object); English when absent.
const TEXTS = (() => {
  try {
    return JSON.parse((section && section.dataset.texts) || '{}');
  } catch (e) {
    return {};
  }
})();
const ENGLISH = {
  cert_renewing: 'This phone’s certificate has expired; renewing it…',
  cert_expired: 'This phone’s certificate has expired: gates will refuse this pass. Connect to the internet to renew it.',
  sign_failed: 'Could not sign the pass: {}',
  needs_signal: 'This phone needs signal once to get its pass key certified (then the pass works offline). Connect to the internet: the pass appears by itself.',
  signed_out: 'You are signed out: sign in again so this phone can be certified.',
  revoked: 'This phone’s pass key was revoked. Connect to the internet so it can make and certify a new one.',
  refused: 'Kippu refused to certify this phone. Reload the page to try again; if it persists, check this phone under Account.',
  server: 'Kippu could not certify this phone just now. Try again in a moment.',
  setup_failed: 'This phone could not set up its pass key: {}',
  missing: 'This page is missing its ticket or account.',
  no_qr: 'The QR encoder did not load; reload the page.',
  no_crypto: 'This browser cannot keep a pass key (WebCrypto and IndexedDB are needed).',
  cannot_sign: 'This browser cannot sign passes here: {}',
  no_pass: 'No pass on screen yet.',
  scanning: 'Scanning…',
  no_picture: 'Could not take a picture of the pass.',
  open: 'OPEN',
  rides_left: ' · rides left {}',
  deny: 'DENY · {}',
  unreachable: 'The simulated gate is out of reach: {}',
};
/** The text `key`, with `{}` replaced by `arg` when given. */
const tr = (key, arg) => {
  const text = TEXTS[key] || ENGLISH[key] || key;
  return arg === undefined ? text : text.replace('{}', () => String(arg));
};

let device = null; // { keys, pub, expiry, sig, chainId }
let shown = { text: '', window: -1, at: 0 };
let signing = false;
let refreshing = null;
let lastRenewal = 0;

function ticketOf(el) {
  try {
    return toU64(el.dataset.ticket, 'ticket');
  } catch (e) {
    return null;
  }
}

// ---- drawing ----------------------------------------------------------------------------

function draw(text) {
  const qr = globalThis.qrcode(0, 'M'); // type 0: the smallest version that holds the text
  qr.addData(text, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  // One canvas pixel per device pixel of the displayed width, so modules stay crisp.
  const css = canvas.getBoundingClientRect().width || canvas.clientWidth || 300;
  const ratio = window.devicePixelRatio || 1;
  const { cell, size, offset } = qrLayout(n, Math.round(css * ratio), QUIET);
  if (canvas.width !== size) canvas.width = size;
  if (canvas.height !== size) canvas.height = size;
  const g = canvas.getContext('2d', { alpha: false });
  g.imageSmoothingEnabled = false;
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, size, size);
  g.fillStyle = '#000000';
  for (let r = 0; r < n; r += 1) {
    // Runs of dark modules in a row as one rectangle: fewer calls, no seams.
    let c = 0;
    while (c < n) {
      if (!qr.isDark(r, c)) {
        c += 1;
        continue;
      }
      const start = c;
      while (c < n && qr.isDark(r, c)) c += 1;
      g.fillRect(offset + start * cell, offset + r * cell, (c - start) * cell, cell);
    }
  }
  canvas.dataset.pass = text;
}

function blank() {
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  delete canvas.dataset.pass;
  shown = { text: '', window: -1, at: 0 };
}

// ---- status --------------------------------------------------------------------------------

function showStatus() {
  if (!device) return;
  const now = Date.now();
  const nowS = now / 1000;
  if (!certValid(device, 0, nowS)) {
    say(tr(navigator.onLine ? 'cert_renewing' : 'cert_expired'));
    return;
  }
  const nextWindow = (windowAt(now) + 1) * WINDOW_SECS * 1000;
  const next = Math.max(0, Math.min(shown.at + ROTATE_MS, nextWindow) - now);
  const until = new Date(device.expiry * 1000).toLocaleDateString(document.documentElement.lang || undefined, { day: 'numeric', month: 'short' });
  // The page carries its language's texts (data-t-*); English when it does not.
  const text = (section && section.dataset.tSigned) || 'Signed on this phone · new code in {s} s · certified until {until}';
  say(text.replace('{s}', String(Math.ceil(next / 1000))).replace('{until}', until));
}

function showNet() {
  if (!net) return;
  const on = navigator.onLine;
  net.textContent = on ? '' : (section && section.dataset.tOffline) || 'No signal: the pass keeps working, signed on this phone.';
  net.className = on ? '' : 'offline';
}

// ---- rotation ------------------------------------------------------------------------------

async function rotate(ticket) {
  if (signing || !device) return;
  signing = true;
  const win = windowAt();
  try {
    const text = await signPass(device, ticket, win);
    draw(text);
    shown = { text, window: win, at: Date.now() };
    showStatus();
  } catch (e) {
    say(tr('sign_failed', e.message));
  } finally {
    signing = false;
  }
}

function tick(ticket) {
  if (!device) return;
  const now = Date.now();
  if (windowAt(now) !== shown.window || now - shown.at >= ROTATE_MS) {
    rotate(ticket);
  } else {
    showStatus();
  }
  // Renew a certificate about to lapse while there is signal (at most once a minute).
  if (navigator.onLine && !certValid(device, RENEW_BEFORE_SECS, now / 1000) && now - lastRenewal > RENEW_RETRY_MS) {
    lastRenewal = now;
    refresh(false, ticket);
  }
}

// Asks the server about the key in the background (revoked? unknown? renew?) and swaps in
// whatever it settles on; the pass on screen keeps rotating meanwhile.
function refresh(checkStatus, ticket) {
  if (refreshing) return refreshing;
  refreshing = ensureDevice(section.dataset.account, { checkStatus })
    .then((d) => {
      const changed = !device || d.pub.some((b, i) => b !== device.pub[i]) || d.expiry !== device.expiry;
      device = d;
      if (changed && ticket != null) rotate(ticket);
    })
    .catch((e) => {
      // A revoked key must stop signing; otherwise a pass that still holds stays on screen.
      if ((e instanceof CertError && e.kind === 'revoked') || (device && !certValid(device))) {
        device = null;
        blank();
        say(explain(e));
      }
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

function explain(e) {
  if (e instanceof CertError) {
    switch (e.kind) {
      case 'offline':
        return tr('needs_signal');
      case 'signed-out':
        return tr('signed_out');
      case 'revoked':
        return tr('revoked');
      case 'refused':
        console.warn(e.message);
        return tr('refused');
      default:
        console.warn(e.message);
        return tr('server');
    }
  }
  return tr('setup_failed', e && e.message ? e.message : e);
}

// Keep this page for opening again with no signal (see /sw.js). The page that registered the
// worker was loaded before it, so it is stored here directly.
async function keepForOffline() {
  if (!('serviceWorker' in navigator) || !globalThis.caches) return;
  try {
    await navigator.serviceWorker.register('/sw.js');
    const cache = await caches.open('kippu-pass-v1');
    if (navigator.onLine) await cache.add(location.pathname);
    section.dataset.offlineReady = 'true';
  } catch (e) {
    console.warn('pass page not kept for offline use', e);
  }
}

async function start() {
  keepForOffline();
  const ticket = ticketOf(section);
  if (ticket == null || !section.dataset.account) {
    say(tr('missing'));
    return;
  }
  if (typeof globalThis.qrcode !== 'function') {
    say(tr('no_qr'));
    return;
  }
  if (!globalThis.crypto || !crypto.subtle || !globalThis.indexedDB) {
    say(tr('no_crypto'));
    return;
  }
  // The page says "Setting up this phone…" (in its language) until the first pass is drawn.
  try {
    // Offline first: a stored certificate that still holds is used at once, and the server
    // is asked about it (revoked? renew?) afterwards, in the background.
    const stored = await loadDevice(section.dataset.account);
    device = certValid(stored) ? stored : await ensureDevice(section.dataset.account, { checkStatus: false });
  } catch (e) {
    say(e instanceof CertError ? explain(e) : tr('cannot_sign', e.message));
    if (e instanceof CertError && e.kind === 'offline') {
      window.addEventListener('online', () => location.reload(), { once: true });
    }
    return;
  }
  await rotate(ticket);
  if (navigator.onLine) refresh(true, ticket);
  setInterval(() => tick(ticket), TICK_MS);
  // Timers sleep in a hidden tab: re-sign as soon as the pass is looked at again.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') tick(ticket);
  });
  window.addEventListener('online', () => refresh(true, ticket));
  // A rotated phone or a zoom changes the pixels per module: redraw the same pass.
  window.addEventListener('resize', () => {
    if (shown.text) draw(shown.text);
  });
}

// ---- simulated gates: they read the very image on screen ----------------------------------

function gates() {
  document.querySelectorAll('.gate-btn').forEach((b) => {
    b.addEventListener('click', async () => {
      if (!out) return;
      if (!canvas.dataset.pass) {
        out.textContent = tr('no_pass');
        out.className = 'deny';
        return;
      }
      out.textContent = tr('scanning');
      out.className = '';
      const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
      if (!png) {
        out.textContent = tr('no_picture');
        out.className = 'deny';
        return;
      }
      // An on-board validator names the run its vehicle is working (its AVL unit would).
      const run = Array.from(document.querySelectorAll('.run[data-for]')).find((i) => i.dataset.for === b.dataset.gate);
      const query = run && run.value ? '?trip=' + encodeURIComponent(run.value) : '';
      const path = b.dataset.gate.split('/').map(encodeURIComponent).join('/');
      try {
        const r = await fetch('/gates/' + path + '/scan' + query, {
          method: 'POST',
          body: png,
          credentials: 'same-origin',
          headers: { 'content-type': 'image/png', accept: 'application/json' },
        });
        const v = await r.json();
        out.textContent = v.open
          ? tr('open') + (v.rides_left != null ? tr('rides_left', v.rides_left) : '')
          : tr('deny', v.reason || v.error || 'HTTP ' + r.status);
        out.className = v.open ? 'open' : 'deny';
      } catch (e) {
        out.textContent = tr('unreachable', e.message);
        out.className = 'deny';
      }
    });
  });
}

if (section && canvas) {
  window.addEventListener('online', showNet);
  window.addEventListener('offline', showNet);
  showNet();
  gates();
  start();
}
