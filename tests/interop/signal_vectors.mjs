// Signal known-answer vectors from the real libsignal-node (the one Baileys uses), and a peer.
//
//   node tests/interop/signal_vectors.mjs        prints the vectors (JSON) on stdout; they are
//                                                committed as tests/unit/wa/signal_vectors.json
//   node tests/interop/signal_vectors.mjs peer   answers JSON-line requests on stdin (one JSON
//                                                line per request on stdout) for live tests
//
// Vectors are deterministic: every key pair libsignal generates comes from a labelled fixed key
// (private = clamp(sha256("wahttp signal vector: " + label))) and Date.now is a step clock.
// Storage mimics Baileys' lib/Signal/libsignal.js: our identity public key in its 33-byte form,
// pre-key public keys as 32 bytes, every identity trusted, records kept as serialize() JSON text.
// Needs `npm ci` in tests/interop.

import { createHash } from 'node:crypto';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const libsignal = require('libsignal');
const { curve } = libsignal;

// libsignal logs with console.info/warn/error; stdout is for our JSON only.
for (const name of ['log', 'info', 'warn', 'error', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const hex = (buf) => Buffer.from(buf).toString('hex');
const unhex = (text) => Buffer.from(text, 'hex');

function publicOf(priv) {
  const key = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8',
  });
  return crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

function clamp(bytes) {
  const b = Buffer.from(bytes);
  b[0] &= 248;
  b[31] &= 127;
  b[31] |= 64;
  return b;
}

// A key pair in libsignal's shape: {pubKey: 33 bytes (type byte 5 first), privKey: 32 bytes}.
function pairFromPrivate(priv) {
  return { pubKey: Buffer.concat([Buffer.from([5]), publicOf(priv)]), privKey: Buffer.from(priv) };
}

class Storage {
  constructor({ identity, registrationId, signedPreKey, preKeys }) {
    this.identity = pairFromPrivate(identity);
    this.registrationId = registrationId;
    this.signedPreKey = pairFromPrivate(signedPreKey);
    this.preKeys = new Map(Object.entries(preKeys).map(([id, priv]) => [Number(id), priv]));
    this.sessions = new Map(); // address -> JSON text of SessionRecord.serialize()
    this.removed = [];
  }

  async loadSession(id) {
    const text = this.sessions.get(id);
    return text ? libsignal.SessionRecord.deserialize(JSON.parse(text)) : null;
  }

  async storeSession(id, record) {
    this.sessions.set(id, JSON.stringify(record.serialize()));
  }

  isTrustedIdentity() {
    return true;
  }

  async loadPreKey(id) {
    const priv = this.preKeys.get(Number(id));
    if (priv) {
      return { privKey: Buffer.from(priv), pubKey: publicOf(priv) };
    }
    return undefined;
  }

  async removePreKey(id) {
    this.preKeys.delete(Number(id));
    this.removed.push(Number(id));
  }

  loadSignedPreKey() {
    // Baileys hands libsignal the 32-byte public key here.
    return { privKey: this.signedPreKey.privKey, pubKey: this.signedPreKey.pubKey.subarray(1) };
  }

  getOurRegistrationId() {
    return this.registrationId;
  }

  getOurIdentity() {
    return this.identity;
  }
}

const address = (name) => new libsignal.ProtocolAddress(name, 1);

async function build(storage, peer, bundle) {
  // The shape Baileys' parseAndInjectE2ESessions gives libsignal: 33-byte public keys.
  const signal = (key) => Buffer.concat([Buffer.from([5]), unhex(key)]);
  const device = {
    registrationId: bundle.registration_id,
    identityKey: signal(bundle.identity_key),
    signedPreKey: {
      keyId: bundle.signed_pre_key_id,
      publicKey: signal(bundle.signed_pre_key),
      signature: unhex(bundle.signed_pre_key_signature),
    },
  };
  if (bundle.pre_key_id !== null && bundle.pre_key_id !== undefined) {
    device.preKey = { keyId: bundle.pre_key_id, publicKey: signal(bundle.pre_key) };
  }
  await new libsignal.SessionBuilder(storage, address(peer)).initOutgoing(device);
}

async function encrypt(storage, peer, plaintext) {
  const { type, body } = await new libsignal.SessionCipher(storage, address(peer)).encrypt(plaintext);
  return { type: type === 3 ? 'pkmsg' : 'msg', ciphertext: hex(body) };
}

async function decrypt(storage, peer, type, ciphertext) {
  const cipher = new libsignal.SessionCipher(storage, address(peer));
  const removedBefore = storage.removed.length;
  const plaintext = type === 'pkmsg'
    ? await cipher.decryptPreKeyWhisperMessage(ciphertext)
    : await cipher.decryptWhisperMessage(ciphertext);
  const consumed = storage.removed.slice(removedBefore);
  return { plaintext: hex(plaintext), consumed_pre_key: consumed.length ? consumed[0] : null };
}

// ---------------------------------------------------------------------------------------------
// Known-answer vectors

const KEYS = {};

function fixedPrivate(label) {
  if (!KEYS[label]) {
    const digest = createHash('sha256').update('wahttp signal vector: ' + label).digest();
    KEYS[label] = hex(clamp(digest));
  }
  return unhex(KEYS[label]);
}

async function vectors() {
  let now = 1_700_000_000_000;
  Date.now = () => now;
  let generated = [];
  let serial = 0;
  curve.generateKeyPair = () => {
    const label = `generated-${++serial}`;
    generated.push(label);
    return pairFromPrivate(fixedPrivate(label));
  };

  const partyInfo = {
    alice: { registration_id: 1111, signed_pre_key_id: 1, pre_keys: {} },
    bob: { registration_id: 2222, signed_pre_key_id: 7, pre_keys: { 31: 'bob-pre-key-31', 32: 'bob-pre-key-32' } },
    carol: { registration_id: 16383, signed_pre_key_id: 2, pre_keys: {} },
  };
  const parties = {};
  for (const [name, info] of Object.entries(partyInfo)) {
    info.identity = `${name}-identity`;
    info.signed_pre_key = `${name}-signed-pre-key`;
    const identity = fixedPrivate(info.identity);
    const signedPreKey = fixedPrivate(info.signed_pre_key);
    const spkPublic = Buffer.concat([Buffer.from([5]), publicOf(signedPreKey)]);
    info.signed_pre_key_signature = hex(curve.calculateSignature(identity, spkPublic));
    const preKeys = {};
    for (const [id, label] of Object.entries(info.pre_keys)) {
      preKeys[id] = fixedPrivate(label);
    }
    parties[name] = new Storage({
      identity, registrationId: info.registration_id, signedPreKey, preKeys,
    });
  }

  function bundleOf(name, preKeyId) {
    const info = partyInfo[name];
    const bundle = {
      registration_id: info.registration_id,
      device_id: 1,
      identity_key: hex(publicOf(fixedPrivate(info.identity))),
      signed_pre_key_id: info.signed_pre_key_id,
      signed_pre_key: hex(publicOf(fixedPrivate(info.signed_pre_key))),
      signed_pre_key_signature: info.signed_pre_key_signature,
      pre_key_id: null,
      pre_key: null,
    };
    if (preKeyId !== undefined) {
      bundle.pre_key_id = preKeyId;
      bundle.pre_key = hex(publicOf(fixedPrivate(info.pre_keys[preKeyId])));
    }
    return bundle;
  }

  const scenarios = [];
  let steps;
  const sent = {};

  async function step(actor, peer, fields, run) {
    now += 1000;
    generated = [];
    let result;
    try {
      result = await run(parties[actor]);
    } catch (e) {
      result = { error: e.name || 'Error' };
    }
    const text = parties[actor].sessions.get(address(peer).toString());
    steps.push({
      actor, peer, now, generated: [...generated], ...fields, ...result,
      record: JSON.parse(text), record_text: text,
    });
    return result;
  }

  const buildStep = (actor, peer, preKeyId) => {
    const bundle = bundleOf(peer, preKeyId);
    return step(actor, peer, { op: 'build', bundle }, (s) => build(s, peer, bundle));
  };
  const encryptStep = async (actor, peer, name, text) => {
    const plaintext = Buffer.from(text);
    sent[name] = await step(actor, peer, { op: 'encrypt', name, plaintext: hex(plaintext) },
      (s) => encrypt(s, peer, plaintext));
  };
  const decryptStep = (actor, peer, name) => {
    const { type, ciphertext } = sent[name];
    return step(actor, peer, { op: 'decrypt', name, type, ciphertext },
      (s) => decrypt(s, peer, type, unhex(ciphertext)));
  };

  // Alice starts with a one-time pre-key; messages go out of order both ways, one is held
  // across a ratchet turn, a duplicate is refused, and finally Alice starts over.
  steps = [];
  await buildStep('alice', 'bob', 31);
  await encryptStep('alice', 'bob', 'm0', 'hello bob');
  await encryptStep('alice', 'bob', 'm1', 'second message, a little longer than one block');
  await encryptStep('alice', 'bob', 'm2', '');
  await decryptStep('bob', 'alice', 'm1');
  await decryptStep('bob', 'alice', 'm0');
  await encryptStep('bob', 'alice', 'r0', 'hi alice');
  await encryptStep('bob', 'alice', 'r1', 'exactly 16 bytes');
  await encryptStep('bob', 'alice', 'r2', 'third reply');
  await decryptStep('alice', 'bob', 'r2');
  await decryptStep('alice', 'bob', 'r0');
  await encryptStep('alice', 'bob', 'm3', 'after the first turn');
  await decryptStep('bob', 'alice', 'm2');
  await decryptStep('alice', 'bob', 'r1');
  await decryptStep('bob', 'alice', 'm3');
  await decryptStep('bob', 'alice', 'm3');
  await encryptStep('bob', 'alice', 'r3', 'turn two');
  await decryptStep('alice', 'bob', 'r3');
  await encryptStep('alice', 'bob', 'm4', 'held back');
  await encryptStep('alice', 'bob', 'm5', 'goes first');
  await decryptStep('bob', 'alice', 'm5');
  await encryptStep('bob', 'alice', 'r4', 'turn three');
  await decryptStep('alice', 'bob', 'r4');
  await encryptStep('alice', 'bob', 'm6', 'turn four');
  await decryptStep('bob', 'alice', 'm6');
  await decryptStep('bob', 'alice', 'm4');
  await buildStep('alice', 'bob', 32);
  await encryptStep('alice', 'bob', 'm7', 'a new session');
  await decryptStep('bob', 'alice', 'm7');
  await encryptStep('bob', 'alice', 'r5', 'on the new session');
  await decryptStep('alice', 'bob', 'r5');
  scenarios.push({ name: 'one-time pre-key, out of order, restart', steps });

  // Carol's bundle has no one-time pre-key left.
  steps = [];
  await buildStep('carol', 'bob');
  await encryptStep('carol', 'bob', 'c0', 'no one-time pre-key');
  await decryptStep('bob', 'carol', 'c0');
  await encryptStep('bob', 'carol', 'c1', 'answer');
  await decryptStep('carol', 'bob', 'c1');
  await encryptStep('carol', 'bob', 'c2', 'and a msg');
  await decryptStep('bob', 'carol', 'c2');
  scenarios.push({ name: 'signed pre-key only', steps });

  const info = {};
  for (const [name, p] of Object.entries(partyInfo)) {
    info[name] = {
      identity: p.identity,
      registration_id: p.registration_id,
      signed_pre_key_id: p.signed_pre_key_id,
      signed_pre_key: p.signed_pre_key,
      signed_pre_key_signature: p.signed_pre_key_signature,
      pre_keys: p.pre_keys,
    };
  }
  return {
    about: 'made by tests/interop/signal_vectors.mjs with libsignal-node; do not edit',
    libsignal: require('libsignal/package.json').version,
    keys: KEYS,
    parties: info,
    scenarios,
  };
}

// ---------------------------------------------------------------------------------------------
// Live peer: one request per line, one answer per line.

async function peer() {
  const parties = new Map();
  const handlers = {
    party: (req) => {
      parties.set(req.name, new Storage({
        identity: unhex(req.identity),
        registrationId: req.registration_id,
        signedPreKey: unhex(req.signed_pre_key),
        preKeys: Object.fromEntries(Object.entries(req.pre_keys || {}).map(([k, v]) => [k, unhex(v)])),
      }));
      return {};
    },
    build: async (req) => {
      await build(parties.get(req.party), req.peer, req.bundle);
      return {};
    },
    encrypt: (req) => encrypt(parties.get(req.party), req.peer, unhex(req.plaintext)),
    decrypt: (req) => decrypt(parties.get(req.party), req.peer, req.type, unhex(req.ciphertext)),
    get_record: (req) => {
      const text = parties.get(req.party).sessions.get(address(req.peer).toString());
      return { record: text ? JSON.parse(text) : null };
    },
    set_record: (req) => {
      parties.get(req.party).sessions.set(address(req.peer).toString(), JSON.stringify(req.record));
      return {};
    },
  };
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) {
      continue;
    }
    const req = JSON.parse(line);
    let answer;
    try {
      answer = await handlers[req.op](req);
    } catch (e) {
      answer = { error: e.name || 'Error', message: String(e.message) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  }
}

if (process.argv[2] === 'peer') {
  await peer();
} else {
  process.stdout.write(JSON.stringify(await vectors(), null, 1) + '\n');
}
