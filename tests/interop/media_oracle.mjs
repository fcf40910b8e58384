// Media-encryption known-answer vectors from Baileys' own code, for tests/unit/wa/test_media.py.
//
//   node tests/interop/media_oracle.mjs           prints the vectors (JSON) on stdout; they are
//                                                  committed as tests/unit/wa/media_vectors.json:
//                                                  per media type of MEDIA_HKDF_KEY_MAPPING, the
//                                                  hkdfInfoKey and getMediaKeys of a fixed key,
//                                                  and files encrypted by encryptedStream
//   node tests/interop/media_oracle.mjs download  reads {mediaKey, enc} (hex) on stdin and prints
//                                                  {plain} (hex): what Baileys' downloadExternalBlob
//                                                  (the app-state blob path) makes of that file,
//                                                  fetched from a data: URL
// encryptedStream draws a random media key; the vectors carry its output as it came out once.
// Needs `npm ci` in tests/interop.

import {
  MEDIA_HKDF_KEY_MAPPING, hkdfInfoKey, getMediaKeys, encryptedStream, downloadExternalBlob,
} from 'baileys';
import { createHash } from 'node:crypto';
import { readFile, unlink } from 'node:fs/promises';

for (const name of ['log', 'info', 'warn', 'error', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
}

const hex = (buf) => Buffer.from(buf).toString('hex');
const unhex = (text) => Buffer.from(text, 'hex');
const fixed = (label) => createHash('sha256').update(`wahttp media vector: ${label}`).digest();

async function vectors () {
  const mediaKey = fixed('media key');
  const keys = [];
  for (const type of Object.keys(MEDIA_HKDF_KEY_MAPPING)) {
    const { iv, cipherKey, macKey } = await getMediaKeys(mediaKey, type);
    keys.push({ type, info: hkdfInfoKey(type), iv: hex(iv), cipherKey: hex(cipherKey), macKey: hex(macKey) });
  }
  const files = [];
  for (const [type, size] of [['md-app-state', 1000], ['image', 4096], ['document', 0]]) {
    const plain = Buffer.concat([...Array(Math.ceil(size / 32) || 0)].map((_, i) => fixed(`plain ${type} ${i}`))).subarray(0, size);
    const out = await encryptedStream(plain, type);
    const enc = await readFile(out.encFilePath);
    await unlink(out.encFilePath);
    files.push({
      type, mediaKey: hex(out.mediaKey), plain: hex(plain), enc: hex(enc), mac: hex(out.mac),
      fileSha256: hex(out.fileSha256), fileEncSha256: hex(out.fileEncSha256), fileLength: out.fileLength,
    });
  }
  return { mediaKey: hex(mediaKey), keys, files };
}

async function download () {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const req = JSON.parse(Buffer.concat(chunks).toString());
  const url = 'data:application/octet-stream;base64,' + unhex(req.enc).toString('base64');
  const plain = await downloadExternalBlob({ mediaKey: unhex(req.mediaKey), url }, {});
  return { plain: hex(plain) };
}

const out = process.argv[2] === 'download' ? await download() : await vectors();
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
