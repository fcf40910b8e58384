// Baileys' useMultiFileAuthState and BufferJSON as an oracle for wahttp's folder codec.
// Usage (cwd = tests/interop):
//   node multifile_oracle.mjs write DIR
//       Baileys creates an auth folder in DIR: fresh creds plus `me`, `account`,
//       `signalIdentities`, `routingInfo`, ... saved, and keys of every category set.
//       Prints {"creds": <creds>, "keys": <what was set>} as JSON with BufferJSON.replacer.
//   node multifile_oracle.mjs read DIR COPY_DIR   (stdin: {"category": ["id", ...], ...})
//       Loads DIR with useMultiFileAuthState, keys.get()s the requested ids, prints
//       {"creds": ..., "keys": {category: {id: value}}} with BufferJSON.replacer, and writes
//       what it read into a fresh folder COPY_DIR through Baileys' saveCreds/keys.set.
//   node multifile_oracle.mjs codec   (stdin: a JSON array of JSON texts)
//       For each text prints [JSON.stringify(JSON.parse(t, reviver), replacer),
//       JSON.stringify(JSON.parse(t))], an entry being null where Node throws.
//   node multifile_oracle.mjs utf8   (stdin: a JSON array of hex strings)
//       For each, what readData gets from a file of those bytes: JSON.parse of the bytes
//       decoded as readFile(..., 'utf-8') decodes them (null where that throws).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { useMultiFileAuthState, BufferJSON, proto } from 'baileys'

const out = (value) => process.stdout.write(JSON.stringify(value, BufferJSON.replacer))
const stdinJson = () => JSON.parse(readFileSync(0, 'utf-8'))

const attempt = (fn) => {
  try {
    return fn()
  } catch {
    return null
  }
}

async function write (dir) {
  const { state, saveCreds } = await useMultiFileAuthState(dir)
  const creds = state.creds
  creds.me = {
    id: '15551234567:12@s.whatsapp.net',
    lid: '123456789012345:12@lid',
    name: 'Zoë 🙂 "quoted" \\ \u2028\u2029 \u0001\u007f',
  }
  // As pairing stores it: a protobufjs message, written through its toJSON (base64 strings).
  creds.account = proto.ADVSignedDeviceIdentity.fromObject({
    details: randomBytes(60),
    accountSignatureKey: randomBytes(32),
    accountSignature: randomBytes(64),
    deviceSignature: randomBytes(64),
  })
  creds.signalIdentities = [
    {
      identifier: { name: '123456789012345:12@lid', deviceId: 0 },
      identifierKey: Buffer.concat([Buffer.from([5]), randomBytes(32)]),
    },
  ]
  creds.platform = 'smba'
  creds.routingInfo = randomBytes(24)
  creds.registered = true
  creds.myAppStateKeyId = 'AAAAAB/x'
  creds.lastAccountSyncTimestamp = 1700000000
  creds.processedHistoryMessages = [
    { key: { remoteJid: '15551234567@s.whatsapp.net', id: '3EB0ABC', fromMe: true }, messageTimestamp: 1700000001 },
  ]
  creds.additionalData = {
    ratio: 0.1,
    big: 1e21,
    huge: 123456789012345680000,
    tiny: 5e-324,
    small: 1.5e-7,
    negZero: -0,
    whole: 3.0,
    loneSurrogates: 'a\ud800b\udc00c',
    pair: '\ud83d\ude00',
    controls: '\u0000\b\f\n\r\t\u001f',
    '10': 'index keys first',
    '2': 'ascending',
    nested: [null, true, false, [], {}],
  }
  await saveCreds()

  const session = (tag) => ({
    _sessions: {
      [randomBytes(33).toString('base64')]: {
        registrationId: 4242,
        currentRatchet: {
          ephemeralKeyPair: { pubKey: randomBytes(33).toString('base64'), privKey: randomBytes(32).toString('base64') },
          lastRemoteEphemeralKey: randomBytes(33).toString('base64'),
          previousCounter: 0,
          rootKey: randomBytes(32).toString('base64'),
        },
        indexInfo: {
          baseKey: randomBytes(33).toString('base64'),
          baseKeyType: 1,
          closed: -1,
          used: 1700000000123,
          created: 1700000000123,
          remoteIdentityKey: randomBytes(33).toString('base64'),
        },
        _chains: {
          [randomBytes(33).toString('base64')]: {
            chainKey: { counter: 3, key: randomBytes(32).toString('base64') },
            chainType: 1,
            messageKeys: { 1: randomBytes(32).toString('base64'), 0: randomBytes(32).toString('base64') },
          },
        },
      },
    },
    version: 'v1',
    tag,
  })
  const senderKey = Buffer.from(JSON.stringify([{ senderKeyId: 7, senderChainKey: { iteration: 0, seed: randomBytes(32).toString('base64') } }]), 'utf-8')
  const keys = {
    'pre-key': {
      1: { private: randomBytes(32), public: randomBytes(32) },
      2: { private: randomBytes(32), public: randomBytes(32) },
    },
    session: {
      '15551234567.0': session('pn'),
      '123456789012345_1.12': session('lid'),
    },
    'sender-key': {
      '120363025246125486@g.us::15551234567::0': senderKey,
      '120363025246125486@g.us::123456789012345_1::12': senderKey,
    },
    'sender-key-memory': {
      '120363025246125486@g.us': { '15551234567:12@s.whatsapp.net': true, '15550000000@s.whatsapp.net': false },
    },
    'app-state-sync-key': {
      'AAAAAB/x': proto.Message.AppStateSyncKeyData.fromObject({
        keyData: randomBytes(32),
        fingerprint: { rawId: 1234567, currentIndex: 2, deviceIndexes: [0, 12] },
        timestamp: 1700000000123,
      }),
    },
    'app-state-sync-version': {
      regular_high: {
        version: 12,
        hash: randomBytes(128),
        indexValueMap: { [randomBytes(32).toString('base64')]: { valueMac: randomBytes(32) } },
      },
    },
    'lid-mapping': {
      15551234567: '123456789012345',
      '123456789012345_reverse': '15551234567',
    },
    'device-list': { 15551234567: ['0', '12'] },
    tctoken: { '15551234567@s.whatsapp.net': { token: randomBytes(20), timestamp: '1700000000' } },
    'identity-key': {
      '15551234567.0': Buffer.concat([Buffer.from([5]), randomBytes(32)]),
      '123456789012345_1.12': new Uint8Array(randomBytes(33)),
    },
  }
  await state.keys.set(keys)
  out({ creds, keys })
}

async function read (dir, copyDir) {
  const wanted = stdinJson()
  const { state } = await useMultiFileAuthState(dir)
  const keys = {}
  for (const [category, ids] of Object.entries(wanted)) {
    keys[category] = await state.keys.get(category, ids)
  }
  const copy = await useMultiFileAuthState(copyDir)
  // saveCreds writes its own creds object: make it hold what was read, in the same key order.
  for (const key of Object.keys(copy.state.creds)) delete copy.state.creds[key]
  Object.assign(copy.state.creds, state.creds)
  await copy.saveCreds()
  await copy.state.keys.set(keys)
  out({ creds: state.creds, keys })
}

function codec () {
  const texts = stdinJson()
  const results = texts.map((text) => [
    attempt(() => JSON.stringify(JSON.parse(text, BufferJSON.reviver), BufferJSON.replacer)),
    attempt(() => JSON.stringify(JSON.parse(text))),
  ])
  process.stdout.write(JSON.stringify(results))
}

function utf8 () {
  const files = stdinJson()
  const decode = (hex) => JSON.parse(Buffer.from(hex, 'hex').toString('utf-8'), BufferJSON.reviver)
  out(files.map((hex) => attempt(() => decode(hex))))
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'write') await write(rest[0])
else if (mode === 'read') await read(rest[0], rest[1])
else if (mode === 'codec') codec()
else if (mode === 'utf8') utf8()
else {
  process.stderr.write('usage: node multifile_oracle.mjs write DIR | read DIR COPY_DIR | codec | utf8\n')
  process.exit(2)
}
