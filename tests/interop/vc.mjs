#!/usr/bin/env node
// Independent W3C Verifiable Credentials 2.0 implementation for Kippu's
// interoperability tests, built only from Digital Bazaar's npm packages, so
// that Kippu's own signer/verifier is checked against code it did not write.
//
//   node vc.mjs issue  < {"seedHex": "<64 hex>", "credential": {...}, "created"?: "<xsd dateTime>"}
//   node vc.mjs verify < {"credential": {...}, "didDocuments": [...],
//                         "statusLists"?: {"<url>": <status list VC>}, "now"?: "<date>"}
//
// One JSON object in on stdin, one JSON object out on stdout. Exit code 0
// whenever the harness ran (a failed verification is a result); 2 on bad
// harness input. Fully offline: see makeDocumentLoader.
import {readFileSync, realpathSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from
  '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import {contexts as credentialsContexts} from
  '@digitalbazaar/credentials-context';
import dataIntegrityContext from '@digitalbazaar/data-integrity-context';
import multikeyContext from '@digitalbazaar/multikey-context';
import didContext from 'did-context';
import {checkStatus as checkBitstringStatus} from
  '@digitalbazaar/vc-bitstring-status-list';

export const CREDENTIALS_V2 = 'https://www.w3.org/ns/credentials/v2';
export const DATA_INTEGRITY_V2 = 'https://w3id.org/security/data-integrity/v2';
export const MULTIKEY_V1 = 'https://w3id.org/security/multikey/v1';
export const DID_V1 = 'https://www.w3.org/ns/did/v1';
export const CONCESSION_V1 = 'https://kippu.example/contexts/concession/v1';
export const EXAMPLES_V2 = 'https://www.w3.org/ns/credentials/examples/v2';

// Contexts that are files in this repo are read on first use, so a missing
// file only matters to a credential that needs it.
const FILE_CONTEXTS = new Map([
  [CONCESSION_V1, new URL(
    '../../services/kippu-credentials/contexts/concession-v1.jsonld',
    import.meta.url)],
  // Only the W3C vc-di-eddsa test vectors use it (see tests/vectors).
  [EXAMPLES_V2, new URL(
    '../vectors/vc-di-eddsa/credentials-examples-v2.jsonld', import.meta.url)]
]);

const STATIC_CONTEXTS = new Map([
  [CREDENTIALS_V2, credentialsContexts.get(CREDENTIALS_V2)],
  [DATA_INTEGRITY_V2, dataIntegrityContext.contexts.get(DATA_INTEGRITY_V2)],
  [MULTIKEY_V1, multikeyContext.contexts.get(MULTIKEY_V1)],
  [DID_V1, didContext.contexts.get(DID_V1)]
]);

// Properties of a DID/controller document that may embed verification methods.
const VM_RELATIONSHIPS = [
  'verificationMethod', 'assertionMethod', 'authentication',
  'capabilityInvocation', 'capabilityDelegation', 'keyAgreement'
];

// An Ed25519 did:key (multicodec 0xed01 gives the z6Mk prefix), bare or with
// a fragment.
const DID_KEY_ED25519 = /^did:key:(z6Mk[1-9A-HJ-NP-Za-km-z]+)(?:#.*)?$/;

class InputError extends Error {}

// The did:key document for an Ed25519 Multikey, in the shape Digital Bazaar's
// did-method-key driver produces (minus the derived X25519 keyAgreement key,
// which nothing here needs). `@context[0]` is the DID v1 context, as Kippu's
// did:web documents must have it too: jsonld-signatures then reads
// `assertionMethod` as-is instead of JSON-LD framing the document.
export function didKeyDocument(publicKeyMultibase) {
  const did = `did:key:${publicKeyMultibase}`;
  const vmId = `${did}#${publicKeyMultibase}`;
  return {
    '@context': [DID_V1, MULTIKEY_V1],
    id: did,
    verificationMethod: [{
      id: vmId, type: 'Multikey', controller: did, publicKeyMultibase
    }],
    authentication: [vmId],
    assertionMethod: [vmId],
    capabilityDelegation: [vmId],
    capabilityInvocation: [vmId]
  };
}

// A document loader that never touches the network. It serves the bundled
// contexts, the supplied DID/controller documents (by id), the verification
// methods inside them (by absolute id), did:key Ed25519 DIDs (derived from the
// DID itself, unless a document for it was supplied), and the supplied status
// list credentials (by URL). Anything else is an error naming the URL, so a
// credential that silently depends on some other context fails loudly.
export function makeDocumentLoader({controllers = [], statusLists = {}} = {}) {
  const documents = new Map();
  const methods = new Map();
  for(const doc of controllers) {
    if(!(doc && typeof doc.id === 'string')) {
      throw new InputError('every DID document needs a string "id"');
    }
    documents.set(doc.id, doc);
    for(const rel of VM_RELATIONSHIPS) {
      for(const vm of [].concat(doc[rel] ?? [])) {
        if(vm && typeof vm === 'object' && typeof vm.id === 'string') {
          const id = vm.id.startsWith('#') ? doc.id + vm.id : vm.id;
          // The eddsa verifier (ed25519-multikey `from`) insists that a
          // Multikey's own `@context` includes the multikey v1 context, so a
          // method lifted out of its DID document gets that context.
          methods.set(id, {
            '@context': vm.type === 'Multikey' ? MULTIKEY_V1 : doc['@context'],
            ...vm, id, controller: vm.controller ?? doc.id
          });
        }
      }
    }
  }
  for(const [url, doc] of Object.entries(statusLists ?? {})) {
    documents.set(url, doc);
  }

  return async function documentLoader(url) {
    let document = STATIC_CONTEXTS.get(url) ?? documents.get(url) ??
      methods.get(url);
    if(!document && FILE_CONTEXTS.has(url)) {
      document = readContextFile(url);
    }
    if(!document) {
      const didKey = DID_KEY_ED25519.exec(url);
      if(didKey && !documents.has(`did:key:${didKey[1]}`)) {
        return makeDocumentLoader({
          controllers: [didKeyDocument(didKey[1])]
        })(url);
      }
      throw new Error(`offline document loader: refusing to load "${url}" ` +
        '(not a bundled context, a supplied DID document or verification ' +
        'method, an Ed25519 did:key, or a supplied status list credential)');
    }
    return {contextUrl: null, documentUrl: url,
      document: structuredClone(document)};
  };
}

function readContextFile(url) {
  const file = FILE_CONTEXTS.get(url);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch(e) {
    throw new Error(`cannot read context "${url}" from ` +
      `${fileURLToPath(file)}: ${e.message}`);
  }
}

export async function issue({seedHex, credential, created} = {}) {
  if(!(typeof seedHex === 'string' && /^[0-9a-fA-F]{64}$/.test(seedHex))) {
    throw new InputError('"seedHex" must be 64 hex characters (32 bytes)');
  }
  if(!(credential && typeof credential === 'object')) {
    throw new InputError('"credential" must be an object');
  }
  const seed = new Uint8Array(Buffer.from(seedHex, 'hex'));
  // The did:key is derived from the public key, so the key is generated
  // once to learn it and again with the controller set (id = did#key).
  const {publicKeyMultibase} = await Ed25519Multikey.generate({seed});
  const did = `did:key:${publicKeyMultibase}`;
  const key = await Ed25519Multikey.generate({seed, controller: did});
  const didDocument = didKeyDocument(publicKeyMultibase);

  const unsigned = structuredClone(credential);
  if(unsigned.issuer && typeof unsigned.issuer === 'object') {
    unsigned.issuer.id = did;
  } else {
    unsigned.issuer = did;
  }
  const suite = new DataIntegrityProof({
    signer: key.signer(), cryptosuite: eddsaRdfc2022, date: created
  });
  const documentLoader = makeDocumentLoader({controllers: [didDocument]});
  const signed = await vc.issue({credential: unsigned, suite, documentLoader});
  return {credential: signed, issuer: did, didDocument};
}

export async function verify({
  credential, didDocuments = [], statusLists, now
} = {}) {
  if(!(credential && typeof credential === 'object')) {
    throw new InputError('"credential" must be an object');
  }
  if(!Array.isArray(didDocuments)) {
    throw new InputError('"didDocuments" must be an array');
  }
  if(statusLists !== undefined &&
    !(statusLists && typeof statusLists === 'object')) {
    throw new InputError('"statusLists" must be an object of url -> VC');
  }
  const documentLoader = makeDocumentLoader({
    controllers: didDocuments, statusLists
  });
  const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});

  const entries = [].concat(credential.credentialStatus ?? [])
    .filter(s => s?.type === 'BitstringStatusListEntry');
  const wantStatus = statusLists !== undefined && entries.length > 0;
  let statusChecked = false;
  let revoked = null;
  // @digitalbazaar/vc refuses credentials with a credentialStatus unless a
  // checkStatus function is given; without status lists the check is skipped
  // and reported as statusChecked: false. The bitstring package verifies the
  // status list credential's own proof and that both issuers match.
  const checkStatus = async () => {
    if(!wantStatus) {
      return {verified: true};
    }
    const result = await checkBitstringStatus({
      credential, documentLoader, suite
    });
    if(result.verified) {
      statusChecked = true;
      revoked = result.results.some(r =>
        r.credentialStatus.statusPurpose === 'revocation' && r.status);
    }
    return result;
  };

  let result;
  try {
    result = await vc.verifyCredential({
      credential, suite, documentLoader, checkStatus, now
    });
  } catch(error) {
    result = {verified: false, error};
  }
  return {
    verified: result.verified === true,
    statusChecked,
    revoked,
    error: result.verified === true ? null : describeFailure(result)
  };
}

// jsonld-signatures nests the real reasons (VerificationError.errors, per
// proof results, the status result, error causes); flatten them into one
// readable message.
function describeFailure(result) {
  const messages = new Set([
    ...describe(result.error),
    ...(result.results ?? []).flatMap(r => describe(r.error)),
    ...describe(result.statusResult?.error)
  ]);
  return [...messages].join('; ') || 'verification failed';
}

function describe(error) {
  if(!error) {
    return [];
  }
  if(Array.isArray(error.errors) && error.errors.length > 0) {
    return error.errors.flatMap(describe);
  }
  // jsonld wraps document loader failures in a long generic message; the
  // loader's own error (which names the URL) is the useful part.
  if(error.details?.cause) {
    return describe(error.details.cause);
  }
  if(error.cause) {
    const cause = describe(error.cause).join('; ');
    return [error.message.includes(cause) ? error.message :
      `${error.message} (${cause})`];
  }
  return [error.message ?? String(error)];
}

async function main() {
  const [command] = process.argv.slice(2);
  const commands = {issue, verify};
  try {
    if(!commands[command]) {
      throw new InputError('usage: node vc.mjs issue|verify < input.json');
    }
    let input;
    try {
      input = JSON.parse(readFileSync(0, 'utf8'));
    } catch(e) {
      throw new InputError(`stdin is not one JSON object: ${e.message}`);
    }
    const output = await commands[command](input);
    process.stdout.write(JSON.stringify(output) + '\n');
  } catch(e) {
    // Bad input is the caller's bug, anything else is a harness bug: both
    // must fail the test loudly rather than look like a verification result.
    process.stdout.write(JSON.stringify({error: e.message}) + '\n');
    process.stderr.write(`vc.mjs ${command ?? ''}: ${e.stack}\n`);
    process.exitCode = e instanceof InputError ? 2 : 1;
  }
}

// Run as a CLI only when executed directly; selftest.mjs imports the loader.
if(process.argv[1] &&
  realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
