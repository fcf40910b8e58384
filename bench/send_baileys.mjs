// Baileys' side of bench/send.py: link S Baileys sockets to simulated phones by pairing code,
// then drive the same closed-loop send workload through sock.sendMessage as send.py drives
// through POST /send-message, against the same simulator. Prints JSON lines on stdout:
//   {"event": "ready"} once linked and warmed up (then it waits for "go" on stdin),
//   {"event": "result", ...} at the end.
// Usage: node bench/send_baileys.mjs --url WS --root-key B64 --admin URL --auth-dir DIR
//        --sessions S --per-session M --concurrency C [--warmup W]
import { parseArgs } from 'node:util'
import { pathToFileURL, fileURLToPath } from 'node:url'
import { resolve, dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import readline from 'node:readline'

const here = dirname(fileURLToPath(import.meta.url))
const modules = resolve(here, '../tests/interop/node_modules')
const baileys = await import(pathToFileURL(resolve(modules, 'baileys/lib/index.js')).href)
const { makeWASocket, useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason } = baileys
const require = createRequire(resolve(modules, 'baileys/package.json'))
const pino = require('pino')
const version = require('baileys/package.json').version

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'root-key': { type: 'string' },
    admin: { type: 'string' },
    'auth-dir': { type: 'string' },
    sessions: { type: 'string', default: '1' },
    'per-session': { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '5' },
  },
})
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
for (const level of ['log', 'info', 'warn', 'debug', 'error', 'trace']) {
  console[level] = (...a) => process.stderr.write(a.map(String).join(' ') + '\n')
}
WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(args['root-key'], 'base64')
const logger = pino({ level: 'silent' })

async function admin (path, body) {
  const resp = await fetch(args.admin + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (!resp.ok) throw new Error(`${path}: ${resp.status} ${await resp.text()}`)
  return resp.json()
}

// Link one socket to `number` by pairing code; resolves with the open socket.
function link (dir, number) {
  return new Promise((resolveOpen, reject) => {
    let asked = false
    const start = async () => {
      const { state, saveCreds } = await useMultiFileAuthState(dir)
      const sock = makeWASocket({
        waWebSocketUrl: args.url,
        auth: state,
        logger,
        markOnlineOnConnect: false,
        syncFullHistory: false,
      })
      sock.ev.on('creds.update', saveCreds)
      sock.ev.on('connection.update', async (u) => {
        if (u.qr && !asked && !state.creds.registered) {
          asked = true
          try {
            const code = await sock.requestPairingCode(number)
            await admin(`/phones/${number}/pairing-code`, { code })
          } catch (err) { reject(err) }
        }
        if (u.connection === 'open') resolveOpen(sock)
        if (u.connection === 'close') {
          const code = u.lastDisconnect?.error?.output?.statusCode
          if (code === DisconnectReason.restartRequired) start().catch(reject)
          else reject(new Error(`socket closed (${code}) while linking`))
        }
      })
    }
    start().catch(reject)
  })
}

async function drive (routes, perRoute, concurrency) {
  const latencies = []
  let sent = 0
  let failed = 0
  const errors = {}
  const started = process.hrtime.bigint()
  await Promise.all(routes.map(({ sock, to }) => {
    const quota = { left: perRoute }
    return Promise.all(Array.from({ length: concurrency }, async () => {
      while (quota.left > 0) {
        quota.left--
        const t0 = process.hrtime.bigint()
        try {
          await sock.sendMessage(to, { text: `bench message ${quota.left}` })
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e9)
          sent++
        } catch (err) {
          failed++
          errors[String(err)] = (errors[String(err)] || 0) + 1
        }
      }
    }))
  }))
  return { sent, failed, errors, seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies }
}

const S = Number(args.sessions)
const started = Date.now()
const phones = await admin('/phones/bulk', { count: 2 * S })
const routes = []
const gate = 8 // pairings at a time
for (let i = 0; i < S; i += gate) {
  const batch = []
  for (let j = i; j < Math.min(S, i + gate); j++) {
    const number = phones[2 * j].number
    const friend = phones[2 * j + 1].number
    batch.push(link(join(args['auth-dir'], `b${j}`), number).then((sock) => {
      routes.push({ sock, to: `${friend}@s.whatsapp.net` })
    }))
  }
  await Promise.all(batch)
}
const linkSeconds = (Date.now() - started) / 1000
await drive(routes, Number(args.warmup), 1)
emit({ event: 'ready', link_seconds: linkSeconds })

const rl = readline.createInterface({ input: process.stdin })
for await (const line of rl) {
  if (line.trim() !== 'go') continue
  const cpu0 = process.cpuUsage()
  const run = await drive(routes, Number(args['per-session']), Number(args.concurrency))
  const cpu = process.cpuUsage(cpu0)
  const { latencies, ...rest } = run
  emit({
    event: 'result',
    versions: { node: process.version, baileys: version },
    link_seconds: linkSeconds,
    ...rest,
    latencies,
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    rss_mib: process.memoryUsage().rss / 2 ** 20,
  })
  break
}
for (const { sock } of routes) { try { sock.end(undefined) } catch {} }
setTimeout(() => process.exit(0), 200)
