'use strict';
// Known-answer vector for wahttp's Noise layer (tests/unit/wa/test_noise.py freezes its output).
//
// The client side is Baileys' own noise handler (makeNoiseHandler) driven the way
// lib/Socket/socket.js drives it; the server side is written here from node:crypto alone, and
// Baileys' client decrypts and checks what it produces. Fixed keys, certificate chain and
// payloads go in; a JSON object of hex strings comes out on stdout.
//
// Run: node tests/interop/noise_vector.js   (needs `npm ci` in tests/interop)

const crypto = require('node:crypto');
const path = require('node:path');

const NOISE_NAME = Buffer.from('Noise_XX_25519_AESGCM_SHA256\0\0\0\0');
// X25519 key encodings: these DER prefixes wrap a raw 32-byte key.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

// Private keys are clamp(sha256("wahttp noise vector: " + label)).
const INPUTS = {
  client_ephemeral_private: '8821f90f5c9b5d9b891cda4114a307059895d00be65725712e458ff608955067',
  client_noise_private: '2060d84173e9f83e657217d99454fe616dedce029ce85a2ba4a1c9548a07c077',
  server_ephemeral_private: '2045b35188dd71265300e3539248cbd9bac3ce247d4372f11a26838b40769a76',
  server_static_private: '5832e6bcb8abeb75895ea964ae8b1d3cebdf56440397d20e7662bb10a9e47643',
  // A CertChain for the server static key: intermediate serial 7 signed by the root below,
  // leaf serial 8, both valid from 1700000000 to 4102444800 (made once by issue_cert_chain).
  root_public: '9b58da8e4347abaf35fca5946aeccd81337ebecf5966dddb1b8c0e4e19854049',
  cert_chain:
    '0a760a32080810071a20b2d97d3448dd6ca85e94a25221f350f6d9fd399ea250167732bacb8862ad2806' +
    '2080e2cfaa062880ae99a40f1240dd361b2b2eceb084299f2f33c5e75be715ed68cdacec7d41af252bf6' +
    'ce24390a133ecc1cc8de0a97324751c177492c049ab0e01a94eb39e70da9a38e3025850f12760a320807' +
    '10001a205e8008419f86dca33ffc20c3ab2c4c1b024a8a83fa502ce1d90ad24ba6336c2d2080e2cfaa06' +
    '2880ae99a40f1240287a0b52ec36f06a48bbef727fb87c3802c7ce69b0c339ad56e8709a0826c1bd8e47' +
    '8fc1eb5f12cdae1a32a8102a8272794707bdfe00a37353338996405cae0f',
  client_payload: Buffer.from('wahttp noise vector client payload').toString('hex'),
};

const hex = (buf) => Buffer.from(buf).toString('hex');
const raw = (name) => Buffer.from(INPUTS[name], 'hex');

function privateKey(priv) {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

function publicOf(priv) {
  const spki = crypto.createPublicKey(privateKey(priv)).export({ format: 'der', type: 'spki' });
  return spki.subarray(SPKI_PREFIX.length);
}

function dh(priv, pub) {
  const peer = crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pub]), format: 'der', type: 'spki' });
  return crypto.diffieHellman({ privateKey: privateKey(priv), publicKey: peer });
}

function iv(counter) {
  const out = Buffer.alloc(12);
  out.writeUInt32BE(counter, 8);
  return out;
}

function gcmEncrypt(key, counter, plaintext, aad) {
  const c = crypto.createCipheriv('aes-256-gcm', key, iv(counter));
  c.setAAD(aad);
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}

function gcmDecrypt(key, counter, ciphertext, aad) {
  const d = crypto.createDecipheriv('aes-256-gcm', key, iv(counter));
  d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  return Buffer.concat([d.update(ciphertext.subarray(0, ciphertext.length - 16)), d.final()]);
}

function hkdf64(ikm, salt) {
  return Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.alloc(0), 64));
}

// The responder's symmetric state, independent of Baileys' code.
class ServerState {
  constructor(header) {
    this.h = NOISE_NAME;
    this.ck = NOISE_NAME;
    this.k = NOISE_NAME;
    this.n = 0;
    this.mixHash(header);
  }

  mixHash(data) {
    this.h = crypto.createHash('sha256').update(this.h).update(data).digest();
  }

  mixKey(ikm) {
    const okm = hkdf64(ikm, this.ck);
    this.ck = okm.subarray(0, 32);
    this.k = okm.subarray(32);
    this.n = 0;
  }

  encrypt(plaintext) {
    const ct = gcmEncrypt(this.k, this.n++, plaintext, this.h);
    this.mixHash(ct);
    return ct;
  }

  decrypt(ciphertext) {
    const pt = gcmDecrypt(this.k, this.n++, ciphertext, this.h);
    this.mixHash(ciphertext);
    return pt;
  }

  split() {
    const okm = hkdf64(Buffer.alloc(0), this.ck);
    return [okm.subarray(0, 32), okm.subarray(32)];
  }
}

function frame(payload) {
  const len = Buffer.alloc(3);
  len.writeUIntBE(payload.length, 0, 3);
  return Buffer.concat([len, payload]);
}

function check(ok, what) {
  if (!ok) {
    throw new Error(`vector self-check failed: ${what}`);
  }
}

const silentLogger = { level: 'silent', child() { return this; }, trace() {}, debug() {}, info() {} };

async function load(rel) {
  return import(path.join(__dirname, 'node_modules', 'baileys', rel));
}

function checkCertChain(proto, curve, staticPub) {
  // Check our frozen chain with libsignal's own XEdDSA verify, which Baileys itself skips.
  const chain = proto.CertChain.decode(raw('cert_chain'));
  const inter = proto.CertChain.NoiseCertificate.Details.decode(chain.intermediate.details);
  const leaf = proto.CertChain.NoiseCertificate.Details.decode(chain.leaf.details);
  const signal = (k) => Buffer.concat([Buffer.from([5]), Buffer.from(k)]);
  const sigOk = (key, cert) =>
    curve.verifySignature(signal(key), Buffer.from(cert.details), Buffer.from(cert.signature));
  check(sigOk(raw('root_public'), chain.intermediate), 'intermediate signed by root');
  check(sigOk(inter.key, chain.leaf), 'leaf signed by intermediate');
  check(inter.issuerSerial === 0 && leaf.issuerSerial === inter.serial, 'serials');
  check(Buffer.from(leaf.key).equals(staticPub), 'leaf key is the server static key');
}

async function main() {
  const { makeNoiseHandler } = await load('lib/Utils/noise-handler.js');
  const { NOISE_WA_HEADER, WA_CERT_DETAILS } = await load('lib/Defaults/index.js');
  const { encodeBinaryNode } = await load('lib/WABinary/index.js');
  const { proto } = await load('WAProto/index.js');
  const curve = require(path.join(__dirname, 'node_modules', 'libsignal', 'src', 'curve.js'));

  const clientEph = { private: raw('client_ephemeral_private') };
  clientEph.public = publicOf(clientEph.private);
  const noiseKey = { private: raw('client_noise_private') };
  noiseKey.public = publicOf(noiseKey.private);
  const serverEph = raw('server_ephemeral_private');
  const serverStatic = raw('server_static_private');
  checkCertChain(proto, curve, publicOf(serverStatic));
  WA_CERT_DETAILS.PUBLIC_KEY = raw('root_public');

  // Client hello, as socket.js validateConnection builds it; encodeFrame prepends the intro.
  const client = makeNoiseHandler({ keyPair: clientEph, NOISE_HEADER: NOISE_WA_HEADER, logger: silentLogger });
  const hello = proto.HandshakeMessage.encode({ clientHello: { ephemeral: clientEph.public } }).finish();
  const firstBytes = client.encodeFrame(hello);

  // Server hello from the independent responder.
  const server = new ServerState(NOISE_WA_HEADER);
  const gotHello = proto.HandshakeMessage.decode(hello);
  server.mixHash(gotHello.clientHello.ephemeral);
  server.mixHash(publicOf(serverEph));
  server.mixKey(dh(serverEph, Buffer.from(gotHello.clientHello.ephemeral)));
  const encStatic = server.encrypt(publicOf(serverStatic));
  server.mixKey(dh(serverStatic, Buffer.from(gotHello.clientHello.ephemeral)));
  const encCert = server.encrypt(raw('cert_chain'));
  const serverHello = proto.HandshakeMessage.encode({
    serverHello: { ephemeral: publicOf(serverEph), static: encStatic, payload: encCert },
  }).finish();

  // Client finish: Baileys decrypts and checks the server hello, then encrypts its part.
  const keyEnc = client.processHandshake(proto.HandshakeMessage.decode(serverHello), noiseKey);
  const payloadEnc = client.encrypt(raw('client_payload'));
  const finish = proto.HandshakeMessage.encode({ clientFinish: { static: keyEnc, payload: payloadEnc } }).finish();
  await client.finishInit();

  const gotFinish = proto.HandshakeMessage.decode(finish);
  const clientStatic = server.decrypt(Buffer.from(gotFinish.clientFinish.static));
  check(clientStatic.equals(noiseKey.public), 'server recovers the client noise key');
  server.mixKey(dh(serverEph, clientStatic));
  check(server.decrypt(Buffer.from(gotFinish.clientFinish.payload)).equals(raw('client_payload')), 'payload');
  const [clientWrite, serverWrite] = server.split();

  // First transport frame each way; plaintexts are binary nodes from Baileys' encoder.
  const clientPlain = encodeBinaryNode({
    tag: 'iq',
    attrs: { id: '1', to: 's.whatsapp.net', type: 'get', xmlns: 'w:p' },
    content: [{ tag: 'ping', attrs: {} }],
  });
  const serverPlain = encodeBinaryNode({ tag: 'success', attrs: { t: '1700000000' } });
  const clientFrame = client.encodeFrame(clientPlain);
  check(gcmDecrypt(clientWrite, 0, clientFrame.subarray(3), Buffer.alloc(0)).equals(clientPlain), 'c->s');
  const serverFrame = frame(gcmEncrypt(serverWrite, 0, serverPlain, Buffer.alloc(0)));
  const nodes = [];
  await client.decodeFrame(serverFrame, (node) => nodes.push(node));
  check(nodes.length === 1 && nodes[0].tag === 'success', 'Baileys decodes the server frame');

  const out = {
    producer: 'tests/interop/noise_vector.js (Baileys 7.0.0-rc14 makeNoiseHandler + node:crypto server)',
    inputs: {
      ...INPUTS,
      client_transport_plaintext: hex(clientPlain),
      server_transport_plaintext: hex(serverPlain),
    },
    outputs: {
      client_first_bytes: hex(firstBytes),
      hello: hex(hello),
      server_hello: hex(serverHello),
      finish: hex(finish),
      client_transport_frame: hex(clientFrame),
      server_transport_frame: hex(serverFrame),
    },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
