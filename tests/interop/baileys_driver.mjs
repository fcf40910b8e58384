// Drives the real Baileys client for wahttp's interop tests.
// Usage: node baileys_driver.mjs --url ws://127.0.0.1:P/ws/chat --root-key <b64> --auth-dir DIR
//        [--pair-number 15551234567] [--qr-timeout-ms N] [--media-host http://127.0.0.1:P]
// --media-host stands in for DNS and TLS of the media hosts: global fetch (which Baileys uses
// for media and app-state blobs, from https://mmg.whatsapp.net<directPath>) is wrapped so that
// https://mmg.whatsapp.net and https://<that host> go to that http URL; each such fetch is
// reported as {"event": "media-fetch", "host": "<the host asked for>", "status"}. Baileys is
// not modified.
// Prints one JSON object per line on stdout (events); reads JSON commands on stdin:
//   {"cmd": "stop"}  close the socket and exit 0
//   {"cmd": "send", "to": "<jid>", "text": "...", "ref": "..."}  -> {"event": "sent", "ref", "id"}
//   {"cmd": "read", "key": {remoteJid, id, fromMe, participant?}}  send a read receipt
//   {"cmd": "reject-call", "id": "<call id>", "from": "<caller jid>"}  -> {"event": "call-rejected"}
//   {"cmd": "presence", "type": "available"|"unavailable"}  -> {"event": "presence-sent", "type"}
//     (sendPresenceUpdate; "available" also makes Baileys prune expired privacy tokens, once a day)
// App state as Baileys reports it: {"event": "contacts", "kind": "upsert"|"update", "contacts"},
// {"event": "chats", "kind": "upsert"|"update", "chats"}, {"event": "app-state-key", "keyId"},
// {"event": "history-status", "syncType", "status"}, {"event": "account-synced", "counter"}.
// Offline backlog and dirty bits: {"event": "pending-notifications"} (connection.update
// receivedPendingNotifications: true), {"event": "dirty-timestamp", "timestamp"}
// (creds.update lastAccountSyncTimestamp, kept from an <ib><dirty type="account_sync">).
import { parseArgs } from 'node:util'
import readline from 'node:readline'
import {
  makeWASocket, useMultiFileAuthState, WA_CERT_DETAILS, DisconnectReason, generateMessageIDV2,
} from 'baileys'
import pino from 'pino'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'root-key': { type: 'string' },
    'auth-dir': { type: 'string' },
    'pair-number': { type: 'string' },
    'qr-timeout-ms': { type: 'string' },
    reconnect: { type: 'boolean' },
    'media-host': { type: 'string' },
  },
})

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
// stdout carries only our JSON lines: libsignal and friends log with console.*, send that to stderr.
for (const level of ['log', 'info', 'warn', 'debug', 'error', 'trace']) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n')
}
// Trust the simulator's root key, as our own client is configured to.
if (args['root-key']) WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(args['root-key'], 'base64')
if (args['media-host']) {
  const target = new URL(args['media-host'])
  const aliases = new Set(['mmg.whatsapp.net', target.host])
  const realFetch = globalThis.fetch
  globalThis.fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url)
    if (url.protocol !== 'https:' || !aliases.has(url.host)) return realFetch(input, init)
    const asked = url.host
    url.protocol = target.protocol
    url.host = target.host
    const resp = await realFetch(url, init)
    emit({ event: 'media-fetch', host: asked, status: resp.status })
    return resp
  }
}
const logger = pino({ level: process.env.BAILEYS_LOG || 'silent' }, pino.destination(2))

let sock = null
// What a Baileys app keeps for getMessage: the messages it sent, so that it can encrypt one
// again when a recipient asks for it with a retry receipt. Each is entered (as a promise) under
// its id before it is sent: a retry receipt can come back before sendMessage() has returned.
const sentMessages = new Map()
let stopping = false
let reconnectTimer = null

// The current socket's state, for the watchdog below.
let state = 'idle'
let stateAt = Date.now()
const setState = (s) => { state = s; stateAt = Date.now() }

// A robust app does not trust one socket to report every failure: with --reconnect, a socket
// that has not reached 'open' for 15 s is ended and a new one started.
setInterval(() => {
  if (!args.reconnect || stopping || state === 'open' || state === 'stopped' || reconnectTimer) return
  if (Date.now() - stateAt < 15000) return
  emit({ event: 'watchdog', state })
  try { sock?.end(undefined) } catch {}
  scheduleStart(0)
}, 2000).unref()

// One reconnect at a time; a superseded socket's events are ignored below.
function scheduleStart (delay) {
  if (reconnectTimer || stopping) return
  reconnectTimer = setTimeout(() => {
    reconnectTimer = null
    start().catch((err) => emit({ event: 'reconnect-failed', message: String(err) }))
  }, delay)
}

async function start () {
  const { state: authState, saveCreds } = await useMultiFileAuthState(args['auth-dir'])
  const current = makeWASocket({
    waWebSocketUrl: args.url,
    auth: authState,
    logger,
    qrTimeout: args['qr-timeout-ms'] ? Number(args['qr-timeout-ms']) : undefined,
    markOnlineOnConnect: false,
    syncFullHistory: false,
    getMessage: async (key) => sentMessages.get(key.id),
    // Baileys counts each resend twice against this limit: the default 5 allows two resends.
    // Under traffic both ways at once libsignal-node can lose a session update (it then reuses
    // a message key) or corrupt its open session while trying it on a message of another one;
    // each time the answer to our retry receipt is a resend on a fresh session, and a run of bad
    // luck may need more than two. 10 allows five, as many as we ask for (retry.MAX_RETRIES).
    maxMsgRetryCount: 10,
  })
  sock = current
  setState('connecting')
  current.ev.on('creds.update', async (update) => {
    await saveCreds()
    emit({ event: 'creds' })
    if (update.myAppStateKeyId) emit({ event: 'app-state-key', keyId: update.myAppStateKeyId })
    if (update.accountSyncCounter) emit({ event: 'account-synced', counter: update.accountSyncCounter })
    if (update.lastAccountSyncTimestamp) emit({ event: 'dirty-timestamp', timestamp: update.lastAccountSyncTimestamp })
  })
  current.ev.on('messaging-history.status', ({ syncType, status }) => emit({ event: 'history-status', syncType, status }))
  const plain = (items) => JSON.parse(JSON.stringify(items, (k, v) => (k === 'conditional' ? undefined : v)))
  current.ev.on('contacts.upsert', (contacts) => emit({ event: 'contacts', kind: 'upsert', contacts: plain(contacts) }))
  current.ev.on('contacts.update', (contacts) => emit({ event: 'contacts', kind: 'update', contacts: plain(contacts) }))
  current.ev.on('chats.upsert', (chats) => emit({ event: 'chats', kind: 'upsert', chats: plain(chats) }))
  current.ev.on('chats.update', (chats) => emit({ event: 'chats', kind: 'update', chats: plain(chats) }))
  current.ev.on('messages.upsert', ({ messages, type }) => {
    for (const m of messages) {
      const text = m.message?.conversation ?? m.message?.extendedTextMessage?.text ?? null
      emit({
        event: 'message',
        upsertType: type,
        id: m.key.id,
        remoteJid: m.key.remoteJid,
        fromMe: !!m.key.fromMe,
        text,
        stub: m.messageStubType ?? null,
        stubParams: m.messageStubParameters ?? null,
        key: m.key,
      })
    }
  })
  current.ev.on('messages.update', (updates) => {
    for (const u of updates) {
      if (u.update?.status !== undefined) emit({ event: 'status', id: u.key.id, status: u.update.status })
    }
  })
  current.ev.on('call', (calls) => {
    for (const c of calls) {
      emit({
        event: 'call', id: c.id, from: c.from, chatId: c.chatId, status: c.status,
        isVideo: c.isVideo ?? null, isGroup: c.isGroup ?? null, offline: c.offline,
      })
    }
  })
  current.ev.on('message-receipt.update', (updates) => {
    for (const u of updates) emit({ event: 'receipt', id: u.key.id, receipt: u.receipt })
  })
  let askedCode = false
  current.ev.on('connection.update', async (update) => {
    if (current !== sock) return // an old socket: its replacement already runs
    const { connection, lastDisconnect, qr } = update
    if (qr) {
      emit({ event: 'qr', qr })
      if (args['pair-number'] && !askedCode && !authState.creds.registered) {
        askedCode = true
        try {
          const code = await current.requestPairingCode(args['pair-number'])
          emit({ event: 'pairing-code', code })
        } catch (err) {
          emit({ event: 'error', where: 'requestPairingCode', message: String(err) })
        }
      }
    }
    if (update.isNewLogin) emit({ event: 'paired', me: authState.creds.me })
    if (update.receivedPendingNotifications) emit({ event: 'pending-notifications' })
    if (connection === 'open') {
      setState('open')
      emit({ event: 'open', me: authState.creds.me })
    }
    if (connection === 'close') {
      setState('close')
      const code = lastDisconnect?.error?.output?.statusCode ?? 0
      emit({ event: 'close', code, message: String(lastDisconnect?.error?.message ?? '') })
      if (code === DisconnectReason.restartRequired) {
        scheduleStart(0)
      } else if (args.reconnect && code !== DisconnectReason.loggedOut &&
                 code !== DisconnectReason.connectionReplaced) {
        // What every Baileys app does: come back after drops and server errors.
        scheduleStart(500)
      }
    }
  })
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  let cmd
  try { cmd = JSON.parse(line) } catch { emit({ event: 'error', where: 'stdin', message: 'bad json' }); return }
  if (cmd.cmd === 'send') {
    try {
      const messageId = generateMessageIDV2(sock.user?.id)
      let settle
      sentMessages.set(messageId, new Promise((resolve) => { settle = resolve }))
      try {
        const sent = await sock.sendMessage(cmd.to, { text: cmd.text }, { messageId })
        settle(sent.message)
        emit({ event: 'sent', ref: cmd.ref ?? null, id: sent.key.id })
      } catch (err) {
        settle(undefined)
        throw err
      }
    } catch (err) {
      emit({ event: 'send-error', ref: cmd.ref ?? null, message: String(err) })
    }
    return
  }
  if (cmd.cmd === 'read') {
    try { await sock.readMessages([cmd.key]) } catch (err) { emit({ event: 'send-error', message: String(err) }) }
    return
  }
  if (cmd.cmd === 'reject-call') {
    try {
      await sock.rejectCall(cmd.id, cmd.from)
      emit({ event: 'call-rejected', id: cmd.id })
    } catch (err) { emit({ event: 'send-error', message: String(err) }) }
    return
  }
  if (cmd.cmd === 'presence') {
    try {
      await sock.sendPresenceUpdate(cmd.type)
      emit({ event: 'presence-sent', type: cmd.type })
    } catch (err) { emit({ event: 'send-error', message: String(err) }) }
    return
  }
  if (cmd.cmd === 'stop') {
    stopping = true
    try { sock?.end(undefined) } catch {}
    emit({ event: 'stopped' })
    setTimeout(() => process.exit(0), 100)
  }
})

start().catch((err) => { emit({ event: 'error', where: 'start', message: String(err) }); process.exit(1) })
