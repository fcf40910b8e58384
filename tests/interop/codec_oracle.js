'use strict';
// Oracle for wahttp's binary node codec (tests/interop/test_codec_interop.py drives it).
//
// stdin:  {"nodes": [{"node": N, "ours": B64}], "raw": [B64]}
// stdout: {"nodes": [{"bytes": B64|null, "encode_error": str|null,
//                     "decoded": N|null, "decode_error": str|null}],
//          "raw": [{"decoded": N|null, "error": str|null}]}
// For each node: "bytes" is Baileys' encodeBinaryNode(N), "decoded" is Baileys'
// decodeBinaryNode(ours). Each raw frame is decoded with decodeBinaryNode as well.
// N is {"tag": str, "attrs": [[key, value], ...], "content"?: [N...] | {"bytes": B64} |
// {"str": str}}; attrs are ordered pairs so that their order survives JSON.
//
// Run: node tests/interop/codec_oracle.js < input.json   (needs `npm ci` in tests/interop)

function toBaileys(node) {
  const attrs = {};
  for (const [key, value] of node.attrs) {
    attrs[key] = value;
  }
  const out = { tag: node.tag, attrs };
  const content = node.content;
  if (Array.isArray(content)) {
    out.content = content.map(toBaileys);
  } else if (content && typeof content.bytes === 'string') {
    out.content = Buffer.from(content.bytes, 'base64');
  } else if (content && typeof content.str === 'string') {
    out.content = content.str;
  }
  return out;
}

function fromBaileys(node) {
  const out = { tag: node.tag, attrs: Object.entries(node.attrs) };
  const content = node.content;
  if (Array.isArray(content)) {
    out.content = content.map(fromBaileys);
  } else if (Buffer.isBuffer(content) || content instanceof Uint8Array) {
    out.content = { bytes: Buffer.from(content).toString('base64') };
  } else if (typeof content === 'string') {
    out.content = { str: content };
  } else if (content !== undefined) {
    throw new Error(`unexpected content type ${typeof content}`);
  }
  return out;
}

async function decodeOrError(decodeBinaryNode, b64) {
  try {
    return { decoded: fromBaileys(await decodeBinaryNode(Buffer.from(b64, 'base64'))), error: null };
  } catch (err) {
    return { decoded: null, error: String(err && err.message ? err.message : err) };
  }
}

async function main() {
  const { encodeBinaryNode, decodeBinaryNode } = await import('baileys');
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  const input = JSON.parse(Buffer.concat(chunks).toString('utf-8'));
  const nodes = [];
  for (const item of input.nodes) {
    const result = { bytes: null, encode_error: null };
    try {
      result.bytes = encodeBinaryNode(toBaileys(item.node)).toString('base64');
    } catch (err) {
      result.encode_error = String(err && err.message ? err.message : err);
    }
    const { decoded, error } = await decodeOrError(decodeBinaryNode, item.ours);
    result.decoded = decoded;
    result.decode_error = error;
    nodes.push(result);
  }
  const raw = [];
  for (const b64 of input.raw || []) {
    raw.push(await decodeOrError(decodeBinaryNode, b64));
  }
  process.stdout.write(JSON.stringify({ nodes, raw }));
}

main().catch(err => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n');
  process.exit(1);
});
