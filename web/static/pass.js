// The rotating pass, signed on this phone. At first use the phone makes an Ed25519 key in
// WebCrypto that cannot be exported, keeps it in IndexedDB, and asks the account key (on the
// server) to certify its public half once. From then on every pass is signed here, with no
// network: `KP2.` + base64url(version 2 | ticket u64 | window u32 | nonce 8 | signature 64 |
// device key 32 | certificate expiry u64 | certificate signature 65), as
// kippu_domain::device_pass reads it.
(function () {
  'use strict';
  const WINDOW_SECS = 10;
  const ROTATE_MS = 5000;
  const RENEW_BEFORE_SECS = 3600;

  const section = document.getElementById('pass');
  const canvas = document.getElementById('qr');
  const status = document.getElementById('pass-status');
  const net = document.getElementById('net-status');
  const out = document.getElementById('verdict');
  if (!section || !canvas) return;
  const ticket = BigInt(section.dataset.ticket);
  const account = section.dataset.account;
  let device = null; // { keys: CryptoKeyPair, pub: Uint8Array(32), expiry: number, sig: Uint8Array(65) }
  let current = '';

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)));
  const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const say = (text) => { status.textContent = text; };

  // ---- the key, kept in IndexedDB (a CryptoKey is stored as an opaque handle) ----
  function db() {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open('kippu', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('device');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
  }
  async function load() {
    const d = await db();
    return new Promise((resolve, reject) => {
      const r = d.transaction('device').objectStore('device').get(account);
      r.onsuccess = () => resolve(r.result || null);
      r.onerror = () => reject(r.error);
    });
  }
  async function save(record) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction('device', 'readwrite');
      tx.objectStore('device').put(record, account);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  async function certify(keys, pub) {
    const r = await fetch('/api/device', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ public_key: hex(pub) }),
    });
    if (!r.ok) throw new Error('the server refused to certify this phone (' + r.status + ')');
    const c = await r.json();
    const record = { keys, pub, expiry: c.cert_expiry, sig: unhex(c.cert_sig) };
    await save(record);
    return record;
  }

  async function setUp() {
    let record = await load();
    const now = Date.now() / 1000;
    if (record && navigator.onLine) {
      // A revoked phone (lost, then found) must make a new key rather than keep signing.
      try {
        const s = await (await fetch('/api/device/' + hex(record.pub))).json();
        if (s.state !== 'certified') record = null;
      } catch (e) { /* no signal: keep what we have */ }
    }
    if (record && record.expiry - now > RENEW_BEFORE_SECS) return record;
    if (record && record.expiry > now && !navigator.onLine) return record;
    const keys = record ? record.keys : await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const pub = record ? record.pub : new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey));
    return certify(keys, pub);
  }

  // ---- one pass ----
  async function sign() {
    const window_ = Math.floor(Date.now() / 1000 / WINDOW_SECS);
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    const msg = new Uint8Array(33);
    msg.set(new TextEncoder().encode('kippu-pass-v2'), 0);
    const mv = new DataView(msg.buffer);
    mv.setBigUint64(13, ticket);
    mv.setUint32(21, window_);
    msg.set(nonce, 25);
    const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, device.keys.privateKey, msg));
    const wire = new Uint8Array(190);
    const wv = new DataView(wire.buffer);
    wire[0] = 2;
    wv.setBigUint64(1, ticket);
    wv.setUint32(9, window_);
    wire.set(nonce, 13);
    wire.set(sig, 21);
    wire.set(device.pub, 85);
    wv.setBigUint64(117, BigInt(device.expiry));
    wire.set(device.sig, 125);
    return 'KP2.' + b64url(wire);
  }

  function draw(text) {
    const qr = qrcode(0, 'M');
    qr.addData(text);
    qr.make();
    const n = qr.getModuleCount();
    const quiet = 4;
    const css = canvas.clientWidth || 300;
    const ratio = window.devicePixelRatio || 1;
    const cell = Math.max(1, Math.floor((css * ratio) / (n + 2 * quiet)));
    const size = cell * (n + 2 * quiet);
    canvas.width = size;
    canvas.height = size;
    const g = canvas.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, size, size);
    g.fillStyle = '#000000';
    for (let r = 0; r < n; r += 1) {
      for (let c = 0; c < n; c += 1) {
        if (qr.isDark(r, c)) g.fillRect((c + quiet) * cell, (r + quiet) * cell, cell, cell);
      }
    }
    canvas.dataset.pass = text;
  }

  async function rotate() {
    try {
      current = await sign();
      draw(current);
      const left = Math.round(device.expiry - Date.now() / 1000);
      say('Signed on this phone · renews every ' + ROTATE_MS / 1000 + ' s · certificate valid ' + Math.max(0, Math.floor(left / 86400)) + ' more days');
    } catch (e) {
      say('Could not sign the pass: ' + e.message);
    }
  }

  function showNet() {
    net.textContent = navigator.onLine ? '' : 'No signal: the pass keeps working, signed on this phone.';
    net.className = navigator.onLine ? '' : 'offline';
  }
  window.addEventListener('online', showNet);
  window.addEventListener('offline', showNet);
  showNet();

  (async function start() {
    if (!window.crypto || !crypto.subtle || !window.indexedDB) {
      say('This browser cannot keep a pass key (WebCrypto and IndexedDB are needed).');
      return;
    }
    say('Setting up this phone…');
    try {
      device = await setUp();
    } catch (e) {
      say('This phone has no pass key yet and could not get one certified: ' + e.message + '. Try again with signal.');
      return;
    }
    await rotate();
    let lastWindow = Math.floor(Date.now() / 1000 / WINDOW_SECS);
    setInterval(rotate, ROTATE_MS);
    // A new window makes the previous pass stale sooner: re-sign as it starts.
    setInterval(function () {
      const w = Math.floor(Date.now() / 1000 / WINDOW_SECS);
      if (w !== lastWindow) { lastWindow = w; rotate(); }
    }, 250);
  })();

  // ---- simulated gates: they read the very image on screen ----
  document.querySelectorAll('.gate-btn').forEach(function (b) {
    b.addEventListener('click', async function () {
      out.textContent = 'Scanning…';
      out.className = '';
      const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
      // An on-board validator names the run its vehicle is working (its AVL unit would).
      const run = document.querySelector('.run[data-for="' + b.dataset.gate + '"]');
      const query = run && run.value ? '?trip=' + encodeURIComponent(run.value) : '';
      try {
        const r = await fetch('/gates/' + b.dataset.gate + '/scan' + query, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
        const v = await r.json();
        out.textContent = v.open ? 'OPEN' + (v.rides_left != null ? ' · rides left ' + v.rides_left : '') : 'DENY · ' + (v.reason || v.error);
        out.className = v.open ? 'open' : 'deny';
      } catch (e) {
        out.textContent = 'The simulated gate is out of reach: ' + e.message;
        out.className = 'deny';
      }
    });
  });
})();
