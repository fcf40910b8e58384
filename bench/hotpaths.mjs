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

// Codec workloads; bench/hotpaths.py builds the same nodes and checks that both encodings
// are identical (sha256 below) before comparing timings.
const to = (jid, fill) => ({ tag: 'to', attrs: { jid }, content: [
  { tag: 'enc', attrs: { v: '2', type: 'msg' }, content: Buffer.alloc(180, fill) }] })
const messageAttrs = () => ({ id: '3EB0C431C26A1916E0B4', to: '15551234567@s.whatsapp.net', type: 'text', t: '1700000000' })
const pad = (n, width) => String(n).padStart(width, '0')
const workloads = {
  // an outgoing message to two devices
  message: { tag: 'message', attrs: messageAttrs(), content: [
    { tag: 'participants', attrs: {}, content: [
      to('15551234567:3@s.whatsapp.net', 7), to('15557654321:1@s.whatsapp.net', 9)] }] },
  // a small stanza: a read receipt
  receipt: { tag: 'receipt', attrs: { id: '3EB0C431C26A1916E0B4', from: '15551234567@s.whatsapp.net',
    participant: '15557654321:2@s.whatsapp.net', t: '1700000000', type: 'read' } },
  // a message fanned out to 16 devices
  fanout: { tag: 'message', attrs: messageAttrs(), content: [
    { tag: 'participants', attrs: {}, content: Array.from({ length: 16 }, (_, i) =>
      to(`1555${pad(i, 7)}:${i % 5 + 1}@s.whatsapp.net`, i)) },
    { tag: 'device-identity', attrs: {}, content: Buffer.alloc(150) }] },
  // a usync result listing 100 users with their devices and LIDs (600 nodes)
  usync: { tag: 'iq', attrs: { from: '@s.whatsapp.net', id: '28471.12345-3', type: 'result' }, content: [
    { tag: 'usync', attrs: { sid: 'mq3o1a5f0', index: '0', last: 'true', mode: 'query', context: 'message' }, content: [
      { tag: 'list', attrs: {}, content: Array.from({ length: 100 }, (_, i) => ({
        tag: 'user', attrs: { jid: `1555${pad(i, 7)}@s.whatsapp.net` }, content: [
          { tag: 'devices', attrs: {}, content: [{ tag: 'device-list', attrs: {}, content: [
            { tag: 'device', attrs: { id: '0' } }, { tag: 'device', attrs: { id: '1', 'key-index': '3' } }] }] },
          { tag: 'lid', attrs: { val: `${90000000000000 + i}@lid` } }] })) }] }] },
}
// Operations per workload, relative to `iterations` (big nodes take proportionally longer).
const scale = { message: 1, receipt: 1, fanout: 5, usync: 50 }

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

// The codec benchmarks report the median of several rounds (bench/hotpaths.py does the same):
// single rounds of either runtime vary a lot on a shared machine (JIT, GC, other load).
const CODEC_ROUNDS = 5
async function median (timer, fn, n) {
  const rounds = []
  for (let round = 0; round < CODEC_ROUNDS; round++) rounds.push(await timer(fn, n))
  rounds.sort((a, b) => a - b)
  return rounds[Math.floor(CODEC_ROUNDS / 2)]
}

async function timeAsync0 (fn, n) { // no warm-up: for operations that consume state
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) await fn(i)
  return Number(process.hrtime.bigint() - start) / 1e9
}

const out = { codec_sha256: {} }
for (const [name, node] of Object.entries(workloads)) {
  const n = Math.max(100, Math.floor(iterations / scale[name]))
  const suffix = name === 'message' ? '' : `_${name}` // "node_encode" is the message workload
  const encoded = baileys.encodeBinaryNode(node)
  out.codec_sha256[name] = crypto.createHash('sha256').update(encoded).digest('hex')
  out[`node_encode${suffix}`] = await median(time, () => baileys.encodeBinaryNode(node), n)
  out[`node_decode${suffix}`] = await median(timeAsync, () => baileys.decodeBinaryNode(encoded), n)
}

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
