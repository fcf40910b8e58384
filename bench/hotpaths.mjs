// Baileys' side of bench/hotpaths.py: times Baileys' own codec, AES-GCM frame cipher and
// libsignal session cipher on the same workloads. Prints one JSON object.
// Usage: node bench/hotpaths.mjs <iterations>
import { pathToFileURL } from 'node:url'
import { resolve, dirname } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const modules = resolve(here, '../tests/interop/node_modules')
const baileys = await import(pathToFileURL(resolve(modules, 'baileys/lib/index.js')).href)
const require = createRequire(resolve(modules, 'baileys/package.json'))
const libsignal = require('libsignal')
const crypto = await import('node:crypto')

const iterations = Number(process.argv[2] || 20000)
const stanza = {
  tag: 'message',
  attrs: { id: '3EB0C431C26A1916E0B4', to: '15551234567@s.whatsapp.net', type: 'text', t: '1700000000' },
  content: [
    { tag: 'participants', attrs: {}, content: [
      { tag: 'to', attrs: { jid: '15551234567:3@s.whatsapp.net' }, content: [
        { tag: 'enc', attrs: { v: '2', type: 'msg' }, content: Buffer.alloc(180, 7) } ] },
      { tag: 'to', attrs: { jid: '15557654321:1@s.whatsapp.net' }, content: [
        { tag: 'enc', attrs: { v: '2', type: 'msg' }, content: Buffer.alloc(180, 9) } ] } ] },
  ],
}

function time (fn, n) {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i) // warm the JIT
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return Number(process.hrtime.bigint() - start) / 1e9
}

async function timeAsync (fn, n) {
  for (let i = 0; i < Math.min(n, 500); i++) await fn(i)
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  return Number(process.hrtime.bigint() - start) / 1e9
}

async function timeAsync0 (fn, n) { // no warm-up: for operations that consume state
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  return Number(process.hrtime.bigint() - start) / 1e9
}

const out = {}
const encoded = baileys.encodeBinaryNode(stanza)
out.node_encode = time(() => baileys.encodeBinaryNode(stanza), iterations)
out.node_decode = await timeAsync(() => baileys.decodeBinaryNode(encoded), iterations)

// Noise transport frames: AES-256-GCM with a counter IV, as Baileys' noise handler does.
const key = crypto.randomBytes(32)
const frame = crypto.randomBytes(200)
const iv = (n) => { const b = Buffer.alloc(12); b.writeUInt32BE(n, 8); return b }
const sealed = baileys.aesEncryptGCM(frame, key, iv(1), Buffer.alloc(0))
out.frame_encrypt = time((i) => baileys.aesEncryptGCM(frame, key, iv(i), Buffer.alloc(0)), iterations)
out.frame_decrypt = time(() => baileys.aesDecryptGCM(sealed, key, iv(1), Buffer.alloc(0)), iterations)

// Signal: an established session, then msg encrypt and decrypt per message.
function store (identity, registrationId) {
  const sessions = {}; const preKeys = {}; let signed
  return {
    sessions, preKeys, setSigned (k) { signed = k },
    getOurIdentity: () => identity, getOurRegistrationId: () => registrationId,
    isTrustedIdentity: () => true, saveIdentity: () => {}, loadIdentityKey: () => undefined,
    loadSession: (id) => sessions[id], storeSession: (id, r) => { sessions[id] = r },
    loadPreKey: (id) => preKeys[id], removePreKey: (id) => { delete preKeys[id] },
    loadSignedPreKey: () => signed,
  }
}
const aliceId = libsignal.curve.generateKeyPair(); const bobId = libsignal.curve.generateKeyPair()
const alice = store(aliceId, 1); const bob = store(bobId, 2)
const bobSigned = libsignal.curve.generateKeyPair(); const bobPre = libsignal.curve.generateKeyPair()
bob.setSigned(bobSigned); bob.preKeys[1] = bobPre
const bobAddr = new libsignal.ProtocolAddress('bob', 1); const aliceAddr = new libsignal.ProtocolAddress('alice', 1)
await new libsignal.SessionBuilder(alice, bobAddr).initOutgoing({
  registrationId: 2, identityKey: bobId.pubKey,
  signedPreKey: { keyId: 1, publicKey: bobSigned.pubKey, signature: libsignal.curve.calculateSignature(bobId.privKey, bobSigned.pubKey) },
  preKey: { keyId: 1, publicKey: bobPre.pubKey },
})
const aliceCipher = new libsignal.SessionCipher(alice, bobAddr)
const bobCipher = new libsignal.SessionCipher(bob, aliceAddr)
const first = await aliceCipher.encrypt(Buffer.from('hello'))
await bobCipher.decryptPreKeyWhisperMessage(Buffer.from(first.body, 'binary'))
const reply = await bobCipher.encrypt(Buffer.from('hi'))
await aliceCipher.decryptWhisperMessage(Buffer.from(reply.body, 'binary'))
const text = crypto.randomBytes(120)
const signalN = Math.max(200, Math.floor(iterations / 10))
for (let i = 0; i < 200; i++) { // warm both ciphers
  await bobCipher.decryptWhisperMessage(Buffer.from((await aliceCipher.encrypt(text)).body, 'binary'))
}
const bodies = []
out.signal_encrypt = await timeAsync0(async () => { bodies.push(Buffer.from((await aliceCipher.encrypt(text)).body, 'binary')) }, signalN)
let k = 0
out.signal_decrypt = await timeAsync0(async () => { await bobCipher.decryptWhisperMessage(bodies[k++]) }, signalN)
out.iterations = { node: iterations, frame: iterations, signal: signalN }
out.versions = { node: process.version, baileys: require('baileys/package.json').version }
console.log(JSON.stringify(out))
