// The phone's device key and the device-signed pass (`KP2.`), as an ES module.
//
// At first use the phone makes an Ed25519 key in WebCrypto whose private half cannot be
// exported, keeps the key pair in IndexedDB (a CryptoKey is stored as an opaque handle), and
// asks the account key on the server to certify the public half (`POST /api/device`). From
// then on every pass is signed here, with no network:
//
//   "KP2." + base64url_nopad(version 2 | ticket_id u64 BE | window u32 BE | nonce 8 |
//                            device_sig 64 | device_key 32 | cert_expiry u64 BE | cert_sig 65)
//
// where device_sig is the device key's Ed25519 signature over
//   "kippu-pass-v2" | ticket_id u64 BE | window u32 BE | nonce 8        (33 bytes)
// exactly as kippu_domain::device_pass reads it.
//
// The encoding functions at the top are pure (no DOM, no network) so Node can test them
// (web/static/test/kp2.test.mjs). Nothing here runs on import.

export const PASS_PREFIX = 'KP2.';
export const PASS_VERSION = 2;
export const WIRE_LEN = 1 + 8 + 4 + 8 + 64 + 32 + 8 + 65; // 190
export const MESSAGE_LEN = 13 + 8 + 4 + 8; // 33
export const MESSAGE_TAG = 'kippu-pass-v2';
/** Seconds per pass window: `window = floor(unix_seconds / WINDOW_SECS)`. */
export const WINDOW_SECS = 10;
/** Renew the certificate when it has less than this left (and there is signal). */
export const RENEW_BEFORE_SECS = 3600;

const U64_MAX = (1n << 64n) - 1n;

// ---- pure encoding ----------------------------------------------------------------------

/** A u64 from a BigInt, a safe integer or a decimal string; throws when out of range. */
export function toU64(v, what = 'value') {
  let b;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'string' && /^[0-9]{1,20}$/.test(v)) b = BigInt(v);
  else throw new TypeError(what + ' must be an unsigned 64-bit integer');
  if (b < 0n || b > U64_MAX) throw new RangeError(what + ' is out of the u64 range');
  return b;
}

function toU32(v, what) {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(what + ' must be an unsigned 32-bit integer');
  return v;
}

function bytes(v, len, what) {
  if (!(v instanceof Uint8Array) || v.length !== len) throw new TypeError(what + ' must be ' + len + ' bytes');
  return v;
}

/** The pass window of a moment (milliseconds since the epoch, default now). */
export function windowAt(ms = Date.now()) {
  return Math.floor(ms / 1000 / WINDOW_SECS);
}

/** The 33 bytes the device key signs for one pass (Rust: `device_message`). */
export function passMessage(ticketId, windowIndex, nonce) {
  const m = new Uint8Array(MESSAGE_LEN);
  for (let i = 0; i < MESSAGE_TAG.length; i += 1) m[i] = MESSAGE_TAG.charCodeAt(i);
  const v = new DataView(m.buffer);
  v.setBigUint64(13, toU64(ticketId, 'ticketId'), false);
  v.setUint32(21, toU32(windowIndex, 'window'), false);
  m.set(bytes(nonce, 8, 'nonce'), 25);
  return m;
}

/** The 190 wire bytes of a pass (Rust: `DevicePass::encode` before base64). */
export function passWire({ ticketId, window: windowIndex, nonce, deviceSig, deviceKey, certExpiry, certSig }) {
  const w = new Uint8Array(WIRE_LEN);
  const v = new DataView(w.buffer);
  w[0] = PASS_VERSION;
  v.setBigUint64(1, toU64(ticketId, 'ticketId'), false);
  v.setUint32(9, toU32(windowIndex, 'window'), false);
  w.set(bytes(nonce, 8, 'nonce'), 13);
  w.set(bytes(deviceSig, 64, 'deviceSig'), 21);
  w.set(bytes(deviceKey, 32, 'deviceKey'), 85);
  v.setBigUint64(117, toU64(certExpiry, 'certExpiry'), false);
  w.set(bytes(certSig, 65, 'certSig'), 125);
  return w;
}

/** The QR text of a pass: `KP2.` + unpadded base64url of its wire bytes. */
export function encodePass(fields) {
  return PASS_PREFIX + base64url(passWire(fields));
}

/** Reads a pass's text back (format only, like Rust's `DevicePass::decode`). */
export function decodePass(text) {
  if (typeof text !== 'string' || !text.startsWith(PASS_PREFIX)) throw new Error('not a KP2 pass');
  const w = base64urlDecode(text.slice(PASS_PREFIX.length));
  if (w.length && w[0] !== PASS_VERSION) throw new Error('unsupported pass version ' + w[0]);
  if (w.length !== WIRE_LEN) throw new Error('malformed pass');
  const v = new DataView(w.buffer, w.byteOffset, w.byteLength);
  return {
    ticketId: v.getBigUint64(1, false),
    window: v.getUint32(9, false),
    nonce: w.slice(13, 21),
    deviceSig: w.slice(21, 85),
    deviceKey: w.slice(85, 117),
    certExpiry: v.getBigUint64(117, false),
    certSig: w.slice(125, 190),
  };
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Unpadded base64url (RFC 4648 §5), as Rust's `URL_SAFE_NO_PAD`. */
export function base64url(data) {
  let out = '';
  let i = 0;
  for (; i + 2 < data.length; i += 3) {
    const n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63] + B64URL[n & 63];
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i] << 16;
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (data[i] << 16) | (data[i + 1] << 8);
    out += B64URL[n >> 18] + B64URL[(n >> 12) & 63] + B64URL[(n >> 6) & 63];
  }
  return out;
}

/** Decodes unpadded base64url; throws on any other character or an impossible length. */
export function base64urlDecode(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new Error('not base64url');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < text.length; i += 1) {
    acc = (acc << 6) | B64URL.indexOf(text[i]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j] = (acc >> bits) & 0xff;
      j += 1;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

export function hex(data) {
  return Array.from(data, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(text, len) {
  const s = String(text).trim().replace(/^0x/i, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s) || (len != null && s.length !== 2 * len)) {
    throw new Error('expected ' + (len != null ? len + ' bytes of ' : '') + 'hex');
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

/**
 * Where a QR of `moduleCount` modules goes on a square of `pixels` device pixels: whole
 * pixels per module (crisp edges), at least `quiet` modules of white around it, centred.
 * If `pixels` is too small for one pixel per module the square grows to fit.
 */
export function qrLayout(moduleCount, pixels, quiet = 4) {
  const total = moduleCount + 2 * quiet;
  const cell = Math.max(1, Math.floor(pixels / total));
  const size = Math.max(pixels, cell * total);
  const offset = Math.floor((size - cell * moduleCount) / 2);
  return { cell, size, offset };
}

// ---- signing (WebCrypto; works in browsers and Node 18+) -------------------------------

const ED25519 = { name: 'Ed25519' };

/** A fresh device key pair: the private half cannot be exported, the public half always can. */
export async function createKeyPair(subtle = globalThis.crypto.subtle) {
  const keys = await subtle.generateKey(ED25519, false, ['sign', 'verify']);
  return { keys, pub: await publicKeyBytes(keys, subtle) };
}

/** The raw 32-byte public key of a pair. */
export async function publicKeyBytes(keys, subtle = globalThis.crypto.subtle) {
  return new Uint8Array(await subtle.exportKey('raw', keys.publicKey));
}

/**
 * Signs one pass with the device (`{keys, pub, expiry, sig}`) and returns its QR text.
 * `nonce` defaults to 8 fresh random bytes, `windowIndex` to the current window.
 */
export async function signPass(device, ticketId, windowIndex = windowAt(), nonce = undefined, cryptoImpl = globalThis.crypto) {
  const n = nonce || cryptoImpl.getRandomValues(new Uint8Array(8));
  const msg = passMessage(ticketId, windowIndex, n);
  const deviceSig = new Uint8Array(await cryptoImpl.subtle.sign(ED25519, device.keys.privateKey, msg));
  return encodePass({
    ticketId,
    window: windowIndex,
    nonce: n,
    deviceSig,
    deviceKey: device.pub,
    certExpiry: device.expiry,
    certSig: device.sig,
  });
}

// ---- the key and its certificate, kept in IndexedDB --------------------------------------
//
// Database `kippu` (version 1), object store `device`, key = the account address (lower
// case), value = { keys: CryptoKeyPair, pub: Uint8Array(32), expiry: unix seconds,
// sig: Uint8Array(65), chainId: number }.

const DB_NAME = 'kippu';
const DB_VERSION = 1;
const STORE = 'device';

function idb(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function openDb() {
  const open = indexedDB.open(DB_NAME, DB_VERSION);
  open.onupgradeneeded = () => {
    if (!open.result.objectStoreNames.contains(STORE)) open.result.createObjectStore(STORE);
  };
  return idb(open);
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('IndexedDB transaction aborted'));
    });
    const result = await idb(fn(tx.objectStore(STORE)));
    await done; // a write counts once it is committed
    return result;
  } finally {
    db.close();
  }
}

const accountKey = (account) => String(account).trim().toLowerCase();

/** The stored device of `account`, checked for shape, or null. */
export async function loadDevice(account) {
  const r = await withStore('readonly', (s) => s.get(accountKey(account)));
  if (!r || !r.keys || !r.keys.privateKey || !r.keys.publicKey) return null;
  const sig = r.sig instanceof Uint8Array ? r.sig : null;
  if (!sig || sig.length !== 65 || !Number.isFinite(r.expiry)) return null;
  // The public key is read back from the key itself, not trusted from the record.
  const pub = await publicKeyBytes(r.keys);
  return { keys: r.keys, pub, expiry: r.expiry, sig, chainId: r.chainId ?? null };
}

export function saveDevice(account, device) {
  const { keys, pub, expiry, sig, chainId } = device;
  return withStore('readwrite', (s) => s.put({ keys, pub, expiry, sig, chainId }, accountKey(account)));
}

export function forgetDevice(account) {
  return withStore('readwrite', (s) => s.delete(accountKey(account)));
}

// ---- the server: certificate and status -----------------------------------------------

/** Why no certificate could be had. `kind`: offline | signed-out | refused | revoked | server. */
export class CertError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'CertError';
    this.kind = kind;
  }
}

const FETCH_TIMEOUT_MS = 8000;

async function api(path, init = {}) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
  let r;
  try {
    r = await fetch(path, {
      ...init,
      credentials: 'same-origin',
      redirect: 'manual', // signed out: the server redirects to /signin
      cache: 'no-store',
      signal: abort.signal,
      headers: { accept: 'application/json', ...(init.headers || {}) },
    });
  } catch (e) {
    throw new CertError('offline', 'no connection to Kippu');
  } finally {
    clearTimeout(timer);
  }
  if (r.type === 'opaqueredirect' || r.status === 401) throw new CertError('signed-out', 'you are signed out');
  if (r.status === 400 || r.status === 403 || r.status === 409 || r.status === 422) {
    throw new CertError('refused', 'Kippu refused to certify this phone (' + r.status + ')');
  }
  if (!r.ok) throw new CertError('server', 'Kippu answered ' + r.status);
  try {
    return await r.json();
  } catch (e) {
    throw new CertError('server', 'Kippu sent an unreadable answer');
  }
}

/**
 * Asks the account key to certify `pub`: `POST /api/device {"public_key": hex}` →
 * `{"cert_expiry": u64, "cert_sig": 130 hex, "chain_id": u64}`.
 */
export async function requestCertificate(pub) {
  const c = await api('/api/device', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ public_key: hex(pub) }),
  });
  let sig;
  try {
    sig = unhex(c.cert_sig, 65);
  } catch (e) {
    throw new CertError('server', 'Kippu sent a malformed certificate');
  }
  if (!Number.isSafeInteger(c.cert_expiry) || c.cert_expiry <= 0) throw new CertError('server', 'Kippu sent a malformed certificate');
  return { expiry: c.cert_expiry, sig, chainId: c.chain_id ?? null };
}

/** `GET /api/device/{hex}` → 'certified' | 'revoked' | 'unknown', or null if it cannot tell. */
export async function deviceStatus(pub) {
  try {
    const s = await api('/api/device/' + hex(pub));
    return ['certified', 'revoked', 'unknown'].includes(s.state) ? s.state : null;
  } catch (e) {
    return null;
  }
}

const nowSecs = () => Math.floor(Date.now() / 1000);

/** Whether a device's certificate still vouches for it (now, or for `margin` more seconds). */
export function certValid(device, margin = 0, now = nowSecs()) {
  return !!device && device.expiry - now > margin;
}

// Two tabs of the same account must not each make and certify a key.
function exclusive(account, fn) {
  if (typeof navigator !== 'undefined' && navigator.locks && navigator.locks.request) {
    return navigator.locks.request('kippu-device-' + accountKey(account), fn);
  }
  return fn();
}

/**
 * The device to sign with, asking the server only when needed: no key yet, the certificate
 * expires within RENEW_BEFORE_SECS, or the server no longer knows it. A revoked key is
 * forgotten and a new one made. With no signal a stored certificate that has not expired
 * is used as is. Throws a CertError when no usable certificate can be had.
 */
export function ensureDevice(account, { checkStatus = true } = {}) {
  return exclusive(account, async () => {
    let device = await loadDevice(account);
    let need = !certValid(device, RENEW_BEFORE_SECS);
    let revoked = false;
    if (device && checkStatus) {
      const state = await deviceStatus(device.pub);
      if (state === 'revoked') {
        await forgetDevice(account);
        device = null;
        need = true;
        revoked = true;
      } else if (state === 'unknown') {
        need = true;
      }
    }
    if (!need) return device;
    try {
      if (device) {
        try {
          const cert = await requestCertificate(device.pub);
          const renewed = { ...device, ...cert };
          await saveDevice(account, renewed);
          return renewed;
        } catch (e) {
          if (!(e instanceof CertError) || e.kind !== 'refused') throw e;
          // This key may not be certified again (revoked meanwhile): make a new one.
          await forgetDevice(account);
          device = null;
        }
      }
      const fresh = await createKeyPair();
      const cert = await requestCertificate(fresh.pub);
      const made = { ...fresh, ...cert };
      await saveDevice(account, made);
      return made;
    } catch (e) {
      if (device && certValid(device)) return device; // offline is the point
      if (revoked) throw new CertError('revoked', 'this phone’s key was revoked and a new one could not be certified: ' + e.message);
      throw e;
    }
  });
}
