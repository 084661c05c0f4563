#!/usr/bin/env node
// Self-test of the interop harness: `node tests/interop/selftest.mjs`.
// Drives vc.mjs as a subprocess, exactly as Kippu's Rust tests do, and checks
// it against third-party vectors (tests/vectors). Exits non-zero on failure.
import {spawnSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {createHash} from 'node:crypto';
import {gunzipSync} from 'node:zlib';
import {fileURLToPath} from 'node:url';
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {createList, createCredential} from
  '@digitalbazaar/vc-bitstring-status-list';
import {makeDocumentLoader, DID_V1, MULTIKEY_V1} from './vc.mjs';

const VC_MJS = fileURLToPath(new URL('./vc.mjs', import.meta.url));
const vectors = path => new URL(`../vectors/${path}`, import.meta.url);
const readText = path => readFileSync(vectors(path), 'utf8');
const readJson = path => JSON.parse(readText(path));

let passed = 0;
let failed = 0;
// Expected failures print their error, so the log shows why they failed.
function check(name, ok, detail) {
  if(ok) {
    passed++;
    const why = detail?.verified === false ? ` [${detail.error}]` : '';
    console.log(`ok - ${name}${why}`);
  } else {
    failed++;
    console.log(`FAIL - ${name}${detail === undefined ? '' :
      `\n    ${JSON.stringify(detail)}`}`);
  }
}

// Run vc.mjs the way the Rust tests will: JSON on stdin, JSON on stdout.
function cli(command, input) {
  const run = spawnSync(process.execPath, [VC_MJS, command], {
    input: JSON.stringify(input), encoding: 'utf8'
  });
  if(run.status !== 0) {
    throw new Error(`vc.mjs ${command} exited ${run.status}: ${run.stderr}`);
  }
  return JSON.parse(run.stdout);
}

// Sign in-process with an arbitrary verification method id, to stand in for
// what Kippu emits (a did:web issuer) and to replay the W3C vector.
async function signWith({key, credential, created}) {
  const suite = new DataIntegrityProof({
    signer: key.signer(), cryptosuite: eddsaRdfc2022, date: created
  });
  return vc.issue({
    credential: structuredClone(credential), suite,
    documentLoader: makeDocumentLoader()
  });
}

const clone = x => structuredClone(x);
const SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
const sample = JSON.parse(readFileSync(
  new URL('./sample-unsigned.json', import.meta.url), 'utf8'));

// --- 1. issue -> verify round trip (did:key issuer) -------------------------
const issued = cli('issue', {seedHex: SEED, credential: sample});
const {credential: signed, issuer, didDocument} = issued;
check('issue: issuer is the did:key and the VC names it',
  issuer.startsWith('did:key:z6Mk') && signed.issuer === issuer &&
  didDocument.id === issuer, issued);
check('issue: DataIntegrityProof / eddsa-rdfc-2022 / assertionMethod',
  signed.proof?.type === 'DataIntegrityProof' &&
  signed.proof.cryptosuite === 'eddsa-rdfc-2022' &&
  signed.proof.proofPurpose === 'assertionMethod' &&
  signed.proof.verificationMethod ===
    `${issuer}#${issuer.slice('did:key:'.length)}`, signed.proof);

// sample-unsigned.json has a credentialStatus; no statusLists => not checked.
let r = cli('verify', {credential: signed, didDocuments: [didDocument]});
check('verify: untouched credential verifies',
  r.verified === true && r.error === null && r.statusChecked === false &&
  r.revoked === null, r);

const tampered = clone(signed);
tampered.credentialSubject.concession = 'senior';
r = cli('verify', {credential: tampered, didDocuments: [didDocument]});
check('verify: tampered concession fails with an error',
  r.verified === false && typeof r.error === 'string' && r.error.length > 0, r);

const otherDoc = cli('issue', {seedHex: '11'.repeat(32), credential: sample});
// A DID document under the right DID and VM id but holding another key.
const wrongKeyDoc = {...clone(didDocument), verificationMethod: [{
  ...didDocument.verificationMethod[0],
  publicKeyMultibase: otherDoc.didDocument.verificationMethod[0]
    .publicKeyMultibase}]};
r = cli('verify', {credential: signed, didDocuments: [wrongKeyDoc]});
check('verify: a DID document with another key fails', r.verified === false, r);

// --- 2. Bitstring status list ----------------------------------------------
const STATUS_URL = 'http://127.0.0.1:8080/credentials/status/1';
const list = await createList({length: 131072}); // the spec's 16 KiB minimum
list.setStatus(5, true);
const unsignedList = await createCredential({
  id: STATUS_URL, list, statusPurpose: 'revocation'
});
const statusList = cli('issue', {seedHex: SEED, credential: unsignedList})
  .credential;

// Our own decoding of encodedList, to pin the bit order Kippu must produce:
// multibase 'u' + base64url(GZIP(bits)), bit i = bit (7 - i % 8) of byte i/8.
const bits = gunzipSync(Buffer.from(
  statusList.credentialSubject.encodedList.slice(1), 'base64url'));
const bit = i => (bits[i >> 3] >> (7 - (i % 8))) & 1;
check('status list: MSB-first bit order, bit 5 is 0x04 of byte 0',
  bits.length === 16384 && bits[0] === 0x04 && bit(5) === 1 && bit(6) === 0,
  {len: bits.length, byte0: bits[0]});

for(const [index, expected] of [['5', true], ['6', false]]) {
  const cred = clone(signed);
  delete cred.proof;
  cred.credentialStatus = {...cred.credentialStatus,
    id: `${STATUS_URL}#${index}`, statusListIndex: index,
    statusListCredential: STATUS_URL};
  const withStatus = cli('issue', {seedHex: SEED, credential: cred}).credential;
  r = cli('verify', {credential: withStatus, didDocuments: [didDocument],
    statusLists: {[STATUS_URL]: statusList}});
  check(`status: index ${index} -> revoked ${expected}`,
    r.verified === true && r.statusChecked === true && r.revoked === expected,
    r);
  if(expected) {
    const forged = clone(statusList);
    forged.credentialSubject.encodedList = unsignedList.credentialSubject
      .encodedList.replace(/.$/, c => c === 'A' ? 'B' : 'A');
    r = cli('verify', {credential: withStatus, didDocuments: [didDocument],
      statusLists: {[STATUS_URL]: forged}});
    check('status: a tampered status list credential fails',
      r.verified === false && r.statusChecked === false && r.error, r);
    r = cli('verify', {credential: withStatus, didDocuments: [didDocument],
      statusLists: {}});
    check('status: a missing status list fails, naming its URL',
      r.verified === false && r.error?.includes(STATUS_URL), r);
  }
}

// --- 3. A did:web issuer, the shape Kippu produces ---------------------------
const DID_WEB = 'did:web:127.0.0.1%3A8080:issuers:usf';
const webKey = await Ed25519Multikey.generate({
  seed: new Uint8Array(Buffer.from(SEED, 'hex')),
  id: `${DID_WEB}#key-1`, controller: DID_WEB
});
const webDoc = {
  '@context': [DID_V1, MULTIKEY_V1],
  id: DID_WEB,
  verificationMethod: [{id: `${DID_WEB}#key-1`, type: 'Multikey',
    controller: DID_WEB, publicKeyMultibase: webKey.publicKeyMultibase}],
  assertionMethod: [`${DID_WEB}#key-1`]
};
const webCred = {...clone(sample), issuer: DID_WEB};
const webStatusList = await signWith({key: webKey,
  credential: {...unsignedList, issuer: DID_WEB}});
const webCredStatus = {...webCred, credentialStatus: {...webCred
  .credentialStatus, id: `${STATUS_URL}#5`, statusListIndex: '5',
statusListCredential: STATUS_URL}};
r = cli('verify', {credential: await signWith({key: webKey,
  credential: webCredStatus}), didDocuments: [webDoc],
statusLists: {[STATUS_URL]: webStatusList}});
check('did:web issuer with #key-1 Multikey + status list verifies (revoked)',
  r.verified === true && r.statusChecked === true && r.revoked === true, r);

const webSigned = await signWith({key: webKey, credential: webCred});
const noAssertion = {...webDoc, assertionMethod: []};
r = cli('verify', {credential: webSigned, didDocuments: [noAssertion]});
check('did:web: key not listed in assertionMethod fails',
  r.verified === false && /not authorized/.test(r.error), r);
// Signed by the did:web key but claiming the did:key as issuer.
r = cli('verify', {credential: await signWith({key: webKey,
  credential: {...webCred, issuer}}), didDocuments: [webDoc, didDocument]});
check('did:web: issuer that is not the key controller fails',
  r.verified === false && /issuer must match/.test(r.error), r);

// --- 4. W3C CCG did:key vectors (tests/vectors/did-key) ---------------------
const didKeyVectors = readJson('did-key/ed25519-x25519.json');
const withSeed = Object.entries(didKeyVectors).filter(([, v]) => v.seed);
const mismatched = [];
for(const [did, v] of withSeed) {
  const out = cli('issue', {seedHex: v.seed, credential: sample});
  if(out.issuer !== did ||
    out.didDocument.assertionMethod[0] !== v.didDocument.assertionMethod[0]) {
    mismatched.push({did, got: out.issuer});
  }
}
check(`did:key vectors: ${withSeed.length} Ed25519 seeds give the expected ` +
  'DID and assertionMethod id', withSeed.length > 0 &&
  mismatched.length === 0, mismatched);

// --- 5. W3C vc-di-eddsa eddsa-rdfc-2022 vectors (tests/vectors/vc-di-eddsa) -
const vKey = readJson('vc-di-eddsa/keyPair.json');
const vSigned = readJson('vc-di-eddsa/eddsa-rdfc-2022/signedDataInt.json');
const vVm = vSigned.proof.verificationMethod;
const vController = vVm.split('#')[0];
// The vector's verification method is a URL under the issuer, not a DID; its
// controller document is built from keyPair.json.
const vControllerDoc = {
  '@context': [DID_V1, MULTIKEY_V1],
  id: vController,
  verificationMethod: [{id: vVm, type: 'Multikey', controller: vController,
    publicKeyMultibase: vKey.publicKeyMultibase}],
  assertionMethod: [vVm]
};
r = cli('verify', {credential: vSigned, didDocuments: [vControllerDoc]});
check('vc-di-eddsa: signedDataInt.json verifies', r.verified === true, r);
const vTampered = clone(vSigned);
vTampered.credentialSubject.alumniOf = 'The School of Counterexamples';
r = cli('verify', {credential: vTampered, didDocuments: [vControllerDoc]});
check('vc-di-eddsa: tampered vector fails', r.verified === false, r);

// Replay the signing: Ed25519 is deterministic, so Digital Bazaar must
// reproduce the vector's proofValue byte for byte, and each intermediate.
const vLoader = makeDocumentLoader();
const vUnsigned = clone(vSigned);
delete vUnsigned.proof;
const vSigner = await Ed25519Multikey.from({type: 'Multikey', id: vVm,
  controller: vController, publicKeyMultibase: vKey.publicKeyMultibase,
  secretKeyMultibase: vKey.privateKeyMultibase});
const replay = await signWith({key: vSigner, credential: vUnsigned,
  created: vSigned.proof.created});
const sigB58 = readText('vc-di-eddsa/eddsa-rdfc-2022/sigBTC58DataInt.txt');
check('vc-di-eddsa: re-signing reproduces proofValue (sigBTC58DataInt.txt)',
  replay.proof.proofValue === sigB58 && sigB58 === vSigned.proof.proofValue,
  replay.proof.proofValue);

const sha256 = s => createHash('sha256').update(s).digest('hex');
const proofCanon = await eddsaRdfc2022.canonize(
  readJson('vc-di-eddsa/eddsa-rdfc-2022/proofConfigDataInt.json'),
  {documentLoader: vLoader});
check('vc-di-eddsa: canonical proof config = proofCanonDataInt.txt',
  proofCanon === readText('vc-di-eddsa/eddsa-rdfc-2022/proofCanonDataInt.txt'),
  proofCanon);
const docCanon = await eddsaRdfc2022.canonize(vUnsigned,
  {documentLoader: vLoader});
const combined = readText('vc-di-eddsa/eddsa-rdfc-2022/combinedHashDataInt.txt');
check('vc-di-eddsa: proofHash = sha256(proofCanon) (proofHashDataInt.txt)',
  sha256(proofCanon) ===
    readText('vc-di-eddsa/eddsa-rdfc-2022/proofHashDataInt.txt'));
check('vc-di-eddsa: combinedHash = proofHash || sha256(canonical document)',
  combined === sha256(proofCanon) + sha256(docCanon),
  {combined, docHash: sha256(docCanon)});
check('vc-di-eddsa: sigHexDataInt.txt = proofValue decoded',
  base58Hex(sigB58.slice(1)) ===
    readText('vc-di-eddsa/eddsa-rdfc-2022/sigHexDataInt.txt'));

// Minimal base58btc decoder, so the hex comparison does not reuse the code
// under test.
function base58Hex(s) {
  const alphabet =
    '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  let n = 0n;
  for(const c of s) {
    n = n * 58n + BigInt(alphabet.indexOf(c));
  }
  const hex = n.toString(16);
  const zeros = s.match(/^1*/)[0].length;
  return '00'.repeat(zeros) + (hex.length % 2 ? '0' : '') + hex;
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
