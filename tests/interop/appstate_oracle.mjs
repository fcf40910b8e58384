// App-state sync known-answer vectors from Baileys' own implementation (baileys + its
// whatsapp-rust-bridge), for tests/unit/wa/test_appstate.py.
//
//   node tests/interop/appstate_oracle.mjs          prints the vectors (JSON) on stdout; they are
//                                                    committed as tests/unit/wa/appstate_vectors.json
//   node tests/interop/appstate_oracle.mjs decode   reads one JSON request on stdin
//                                                    {name, kind: "patch"|"snapshot", data (hex),
//                                                    state, keys: {b64 id: hex key data}} and prints
//                                                    what Baileys' decodeSyncdPatch/Snapshot make of it
//
// The inputs are fixed; Baileys' encodeSyncdPatch draws a random CBC IV, so the vectors carry its
// output as it came out once (the Python side reuses the IV it finds in the ciphertext).
// Needs `npm ci` in tests/interop.

import {
  proto, encodeSyncdPatch, decodeSyncdPatch, decodeSyncdSnapshot, LT_HASH_ANTI_TAMPERING,
  newLTHashState,
} from 'baileys';
import { expandAppStateKeys } from 'whatsapp-rust-bridge';
import { createHash } from 'node:crypto';

for (const name of ['log', 'info', 'warn', 'error', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const hex = (buf) => Buffer.from(buf).toString('hex');
const unhex = (text) => Buffer.from(text, 'hex');
const fixed = (label, n = 32) => Buffer.concat([0, 1].map(
  (i) => createHash('sha512').update(`wahttp appstate vector: ${label} ${i}`).digest())).subarray(0, n);

const stateToJson = (s) => ({
  version: Number(s.version),
  hash: hex(s.hash),
  indexValueMap: Object.fromEntries(Object.entries(s.indexValueMap).map(([k, v]) => [k, hex(v.valueMac)])),
});
const stateFromJson = (j) => ({
  version: j.version,
  hash: unhex(j.hash),
  indexValueMap: Object.fromEntries(Object.entries(j.indexValueMap).map(([k, v]) => [k, { valueMac: unhex(v) }])),
});

const longsToNumbers = (obj) => JSON.parse(JSON.stringify(obj));

async function vectors() {
  const keyData = fixed('key data');
  const keyId = fixed('key id', 6);
  const keyIdB64 = keyId.toString('base64');
  const keys = { [keyIdB64]: { keyData } };
  const getKey = async (id) => keys[id];
  const expanded = expandAppStateKeys(keyData);
  const mutationKeys = {
    keyData: hex(keyData),
    indexKey: hex(expanded.indexKey),
    valueEncryptionKey: hex(expanded.valueEncryptionKey),
    valueMacKey: hex(expanded.valueMacKey),
    snapshotMacKey: hex(expanded.snapshotMacKey),
    patchMacKey: hex(expanded.patchMacKey),
  };

  const base = fixed('lt base', 128);
  const add = [fixed('lt add 1'), fixed('lt add 2')];
  const sub = [fixed('lt sub 1')];
  const ltHash = {
    base: hex(base), add: add.map(hex), sub: sub.map(hex),
    result: hex(LT_HASH_ANTI_TAMPERING.subtractThenAdd(base, sub, add)),
    emptyPlusOne: hex(LT_HASH_ANTI_TAMPERING.subtractThenAdd(Buffer.alloc(128), [], [add[0]])),
  };

  const OP = proto.SyncdMutation.SyncdOperation;
  const jid = '15550001111@s.whatsapp.net';
  const ts = 1764800000000;
  const steps = [
    { type: 'critical_unblock_low', index: ['contact', jid], apiVersion: 2, operation: OP.SET,
      syncAction: { timestamp: ts, contactAction: { fullName: 'Ada Lovelace', firstName: 'Ada', saveOnPrimaryAddressbook: true } } },
    { type: 'critical_unblock_low', index: ['contact', jid], apiVersion: 2, operation: OP.SET,
      syncAction: { timestamp: ts + 1, contactAction: { fullName: 'Ada K. Lovelace — ü', firstName: 'Ada' } } },
    { type: 'critical_unblock_low', index: ['contact', jid], apiVersion: 2, operation: OP.REMOVE,
      syncAction: { timestamp: ts + 2, contactAction: {} } },
    { type: 'regular_high', index: ['mute', jid], apiVersion: 2, operation: OP.SET,
      syncAction: { timestamp: ts, muteAction: { muted: true, muteEndTimestamp: 1764900000000 } } },
    { type: 'regular_low', index: ['archive', jid], apiVersion: 3, operation: OP.SET,
      syncAction: { timestamp: ts, archiveChatAction: { archived: true, messageRange: { lastMessageTimestamp: 1764800000 } } } },
    { type: 'regular_low', index: ['pin_v1', jid], apiVersion: 5, operation: OP.SET,
      syncAction: { timestamp: ts, pinAction: { pinned: true } } },
    { type: 'regular_low', index: ['markChatAsRead', jid], apiVersion: 3, operation: OP.SET,
      syncAction: { timestamp: ts, markChatAsReadAction: { read: true } } },
    { type: 'regular_high', index: ['deleteChat', jid, '1'], apiVersion: 6, operation: OP.SET,
      syncAction: { timestamp: ts, deleteChatAction: { messageRange: { lastMessageTimestamp: 1764800001 } } } },
    { type: 'critical_block', index: ['setting_pushName'], apiVersion: 1, operation: OP.SET,
      syncAction: { timestamp: ts, pushNameSetting: { name: 'Wa Http' } } },
  ];
  const states = {};
  const patches = [];
  for (const step of steps) {
    const before = states[step.type] || newLTHashState();
    const { patch, state } = await encodeSyncdPatch(step, keyIdB64, before, getKey);
    states[step.type] = state;
    patches.push({
      name: step.type,
      index: step.index,
      operation: step.operation === OP.SET ? 'set' : 'remove',
      apiVersion: step.apiVersion,
      syncAction: hex(proto.SyncActionValue.encode(step.syncAction).finish()),
      before: stateToJson(before),
      after: stateToJson(state),
      patch: hex(proto.SyncdPatch.encode({ ...patch, version: { version: state.version } }).finish()),
    });
  }
  return { keyId: hex(keyId), mutationKeys, ltHash, patches };
}

async function decode() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const req = JSON.parse(Buffer.concat(chunks).toString());
  const keys = Object.fromEntries(Object.entries(req.keys).map(([id, k]) => [id, { keyData: unhex(k) }]));
  const getKey = async (id) => keys[id];
  const warnings = [];
  const logger = { warn: (obj, msg) => warnings.push(msg), trace() {}, debug() {}, info() {}, error() {} };
  const mutations = [];
  const onMutation = (m) => mutations.push({
    index: m.index, version: m.syncAction.version, value: longsToNumbers(proto.SyncActionValue.toObject(m.syncAction.value, { longs: Number })),
  });
  try {
    if (req.kind === 'snapshot') {
      const snapshot = proto.SyncdSnapshot.decode(unhex(req.data));
      const { state, mutationMap } = await decodeSyncdSnapshot(req.name, snapshot, getKey, undefined, true, logger);
      for (const m of Object.values(mutationMap)) onMutation(m);
      return { ok: true, state: stateToJson(state), mutations, warnings };
    }
    const patch = proto.SyncdPatch.decode(unhex(req.data));
    const result = await decodeSyncdPatch(patch, req.name, stateFromJson(req.state), getKey, onMutation, true);
    return { ok: true, state: { ...stateToJson({ ...result, version: Number(patch.version.version) }) }, mutations, warnings };
  } catch (err) {
    return { ok: false, error: String(err.message || err), mutations, warnings };
  }
}

const out = process.argv[2] === 'decode' ? await decode() : await vectors();
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
