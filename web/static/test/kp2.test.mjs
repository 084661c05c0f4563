// Checks the browser's device-signed pass (`KP2.`) against the Rust definition in
// services/kippu-domain/src/device_pass.rs. No dependencies: `node web/static/test/kp2.test.mjs`
// (Node 18+, for WebCrypto Ed25519). Expected values are built here independently with
// Node's Buffer, and the fixed vector is also pinned as a literal computed with Python's
// struct/base64.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import nodeCrypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const staticDir = join(here, '..');
const subtle = globalThis.crypto.subtle;

// device.js is an ES module served to browsers as `.js`; with no package.json around it Node
// would read `.js` as CommonJS, so import a byte-identical `.mjs` copy.
const tmp = mkdtempSync(join(tmpdir(), 'kp2-test-'));
const deviceSrc = readFileSync(join(staticDir, 'device.js'), 'utf8');
writeFileSync(join(tmp, 'device.mjs'), deviceSrc);
const D = await import(pathToFileURL(join(tmp, 'device.mjs')).href);

let passed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log('ok   ' + name);
  } catch (e) {
    console.log('FAIL ' + name);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const fill = (len, byte) => new Uint8Array(len).fill(byte);
// Rust's DevicePass::encode, written again with Buffer.
const rustEncode = (p) => 'KP2.' + Buffer.concat([
  Buffer.from([2]), u64(p.ticketId), u32(p.window), Buffer.from(p.nonce), Buffer.from(p.deviceSig),
  Buffer.from(p.deviceKey), u64(p.certExpiry), Buffer.from(p.certSig),
]).toString('base64url');
const rustMessage = (ticket, win, nonce) => Buffer.concat([Buffer.from('kippu-pass-v2', 'ascii'), u64(ticket), u32(win), Buffer.from(nonce)]);

const NONCE = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const FIXED = {
  ticketId: 42n,
  window: 180_000_000,
  nonce: NONCE,
  deviceSig: fill(64, 0x11),
  deviceKey: fill(32, 0x22),
  certExpiry: 2_000_000_000,
  certSig: fill(65, 0x33),
};
// python3: 'KP2.' + urlsafe_b64encode(b'\x02' + pack('>Q',42) + pack('>I',180000000) + bytes(range(1,9))
//          + b'\x11'*64 + b'\x22'*32 + pack('>Q',2000000000) + b'\x33'*65).rstrip('=')
const FIXED_TEXT =
  'KP2.AgAAAAAAAAAqCrqVAAECAwQFBgcIERERERERERERERERERERERERERERERERERERERERERERERERERERERERERERERERERER' +
  'ERERERERERERERERESIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiAAAAAHc1lAAzMzMzMzMzMzMzMzMzMzMzMzMzMzMz' +
  'MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMw';

// RFC 8032 §7.1, TEST 1: WebCrypto's Ed25519 is the standard's (so ed25519-dalek verifies it).
const RFC_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const RFC_PUB = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC_SIG = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
const pkcs8 = (seedHex) => Buffer.from('302e020100300506032b657004220420' + seedHex, 'hex');
const importSeed = async (seedHex) => ({
  privateKey: await subtle.importKey('pkcs8', pkcs8(seedHex), { name: 'Ed25519' }, false, ['sign']),
  publicKey: await subtle.importKey('raw', Buffer.from(RFC_PUB, 'hex'), { name: 'Ed25519' }, true, ['verify']),
});

await test('message: 33 bytes, "kippu-pass-v2" then ticket u64 BE, window u32 BE, nonce', () => {
  const m = D.passMessage(42n, 180_000_000, NONCE);
  assert.equal(m.length, 33);
  assert.equal(Buffer.from(m.subarray(0, 13)).toString('ascii'), 'kippu-pass-v2');
  assert.deepEqual(Buffer.from(m), rustMessage(42, 180_000_000, NONCE));
  assert.equal(Buffer.from(m).toString('hex'), '6b697070752d706173732d7632000000000000002a0aba95000102030405060708');
  assert.deepEqual(D.passMessage(42, 180_000_000, NONCE), m, 'number and BigInt tickets agree');
  assert.deepEqual(D.passMessage('42', 180_000_000, NONCE), m, 'decimal-string tickets agree');
});

await test('wire: 190 bytes in Rust field order; text is KP2. + unpadded base64url', () => {
  const w = D.passWire(FIXED);
  assert.equal(w.length, 190);
  assert.equal(D.WIRE_LEN, 190);
  const text = D.encodePass(FIXED);
  assert.equal(text, rustEncode(FIXED), 'matches the Buffer-built encoding');
  assert.equal(text, FIXED_TEXT, 'matches the pinned vector');
  assert.ok(!text.includes('=') && !text.includes('+') && !text.includes('/'));
  assert.equal(text.length, 4 + 254);
  const back = D.decodePass(text);
  assert.equal(back.ticketId, 42n);
  assert.equal(back.window, 180_000_000);
  assert.equal(back.certExpiry, 2_000_000_000n);
  assert.deepEqual(back.nonce, NONCE);
  assert.deepEqual(back.deviceSig, FIXED.deviceSig);
  assert.deepEqual(back.deviceKey, FIXED.deviceKey);
  assert.deepEqual(back.certSig, FIXED.certSig);
});

await test('u64 extremes and bad inputs', () => {
  const max = { ...FIXED, ticketId: (1n << 64n) - 1n, window: 0xffffffff, certExpiry: (1n << 64n) - 1n };
  assert.equal(D.encodePass(max), rustEncode(max));
  assert.throws(() => D.encodePass({ ...FIXED, ticketId: 1n << 64n }), RangeError);
  assert.throws(() => D.encodePass({ ...FIXED, ticketId: -1 }), RangeError);
  assert.throws(() => D.encodePass({ ...FIXED, ticketId: 2 ** 60 }), TypeError, 'unsafe number');
  assert.throws(() => D.encodePass({ ...FIXED, window: 2 ** 32 }), RangeError);
  assert.throws(() => D.encodePass({ ...FIXED, window: 1.5 }), RangeError);
  assert.throws(() => D.encodePass({ ...FIXED, deviceSig: fill(63, 0) }), TypeError);
  assert.throws(() => D.encodePass({ ...FIXED, certSig: fill(64, 0) }), TypeError);
  assert.throws(() => D.passMessage(1, 1, fill(7, 0)), TypeError);
  // Same errors as Rust's decode tests.
  assert.throws(() => D.decodePass('KP2.***'));
  assert.throws(() => D.decodePass('KP2.AgID'), /malformed/);
  assert.throws(() => D.decodePass('KP2.AwID'), /version 3/);
  assert.throws(() => D.decodePass('KP1.AwID'), /not a KP2/);
  assert.throws(() => D.decodePass(FIXED_TEXT.slice(0, -3)), /malformed/);
});

await test('base64url agrees with Buffer for every length 0..300', () => {
  for (let n = 0; n <= 300; n += 1) {
    const b = nodeCrypto.randomBytes(n);
    const s = D.base64url(new Uint8Array(b));
    assert.equal(s, b.toString('base64url'), 'length ' + n);
    assert.deepEqual(Buffer.from(D.base64urlDecode(s)), b, 'decode length ' + n);
  }
  assert.equal(D.hex(D.unhex('0x00ff10', 3)), '00ff10');
  assert.throws(() => D.unhex('abc'));
  assert.throws(() => D.unhex('00', 2));
});

await test('RFC 8032 test 1: WebCrypto Ed25519 is standard Ed25519', async () => {
  const keys = await importSeed(RFC_SEED);
  const sig = Buffer.from(await subtle.sign({ name: 'Ed25519' }, keys.privateKey, new Uint8Array(0)));
  assert.equal(sig.toString('hex'), RFC_SIG);
  assert.equal(Buffer.from(await D.publicKeyBytes(keys)).toString('hex'), RFC_PUB);
});

await test('a fixed-key pass equals one signed by node:crypto and assembled by hand', async () => {
  const keys = await importSeed(RFC_SEED);
  const device = { keys, pub: await D.publicKeyBytes(keys), expiry: 2_000_000_000, sig: fill(65, 0x33) };
  const text = await D.signPass(device, 42n, 180_000_000, NONCE);
  const nodeKey = nodeCrypto.createPrivateKey({ key: pkcs8(RFC_SEED), format: 'der', type: 'pkcs8' });
  const sig = nodeCrypto.sign(null, rustMessage(42, 180_000_000, NONCE), nodeKey);
  const expected = rustEncode({ ...FIXED, deviceSig: sig, deviceKey: Buffer.from(RFC_PUB, 'hex') });
  assert.equal(text, expected);
});

await test('sign/verify round trip with a fresh non-extractable WebCrypto key', async () => {
  const { keys, pub } = await D.createKeyPair();
  assert.equal(keys.privateKey.extractable, false, 'private half stays in the phone');
  assert.equal(keys.publicKey.extractable, true, 'public half of a non-extractable pair is still exportable');
  assert.equal(pub.length, 32);
  await assert.rejects(subtle.exportKey('pkcs8', keys.privateKey));
  const device = { keys, pub, expiry: 2_000_000_000, sig: fill(65, 0x33) };
  const win = D.windowAt(1_800_000_000_000);
  assert.equal(win, 180_000_000);
  const text = await D.signPass(device, 7n, win); // random nonce
  const p = D.decodePass(text);
  assert.equal(p.ticketId, 7n);
  assert.equal(p.window, win);
  assert.deepEqual(p.deviceKey, pub);
  const ok = await subtle.verify({ name: 'Ed25519' }, keys.publicKey, p.deviceSig, D.passMessage(p.ticketId, p.window, p.nonce));
  assert.equal(ok, true);
  // Verified from the 32 wire bytes alone, as a gate does.
  const gateKey = await subtle.importKey('raw', p.deviceKey, { name: 'Ed25519' }, false, ['verify']);
  assert.equal(await subtle.verify({ name: 'Ed25519' }, gateKey, p.deviceSig, D.passMessage(p.ticketId, p.window, p.nonce)), true);
  assert.equal(await subtle.verify({ name: 'Ed25519' }, gateKey, p.deviceSig, D.passMessage(8n, p.window, p.nonce)), false, 'another ticket');
  assert.equal(await subtle.verify({ name: 'Ed25519' }, gateKey, p.deviceSig, D.passMessage(p.ticketId, p.window + 1, p.nonce)), false, 'another window');
  const again = await D.signPass(device, 7n, win);
  assert.notEqual(again, text, 'a fresh nonce each time');
});

await test('QR: the vendored encoder fits a pass at level M, with a 4-module quiet zone', () => {
  const require = createRequire(import.meta.url);
  const qrcode = require(join(staticDir, 'vendor', 'qrcode-generator.js'));
  const qr = qrcode(0, 'M');
  qr.addData(FIXED_TEXT, 'Byte');
  qr.make();
  const n = qr.getModuleCount();
  assert.equal(n, 65, 'version 12 (258 bytes at level M)');
  for (const [css, dpr] of [[300, 1], [300, 2], [300, 3], [288, 2.625], [240, 1.5], [50, 1]]) {
    const px = Math.round(css * dpr);
    const { cell, size, offset } = D.qrLayout(n, px, 4);
    assert.ok(Number.isInteger(cell) && cell >= 1);
    assert.ok(size >= px && size >= cell * (n + 8));
    assert.ok(offset >= 4 * cell, 'quiet zone left/top');
    assert.ok(size - offset - n * cell >= 4 * cell, 'quiet zone right/bottom');
    if (px >= n + 8) assert.equal(size, px, 'fills the canvas');
  }
});

await test('no eval or new Function in the page scripts or the vendored encoder', () => {
  const files = ['device.js', 'pass.js', 'vendor/qrcode-generator.js'];
  for (const f of files) {
    const src = readFileSync(join(staticDir, f), 'utf8');
    assert.ok(!/\beval\s*\(/.test(src), f + ' uses eval');
    assert.ok(!/new\s+Function\b|\bFunction\s*\(/.test(src), f + ' uses Function()');
    assert.ok(!/setTimeout\s*\(\s*['"`]|setInterval\s*\(\s*['"`]/.test(src), f + ' passes a string to a timer');
  }
  // pass.js parses as a module.
  writeFileSync(join(tmp, 'pass.mjs'), readFileSync(join(staticDir, 'pass.js'), 'utf8'));
  execFileSync(process.execPath, ['--check', join(tmp, 'pass.mjs')]);
});

rmSync(tmp, { recursive: true, force: true });
console.log(passed + ' passed');
