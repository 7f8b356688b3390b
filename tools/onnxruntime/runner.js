#!/usr/bin/env node
// ONNX Runtime (CPU execution provider) for xgrad's Python tests and notebooks, as a long-running process that
// speaks JSON lines: one request per line on stdin, one reply per line on stdout, in order (ort_node.py drives it).
//
// Request: {"model": "/abs/path.onnx",
//           "feeds": {"x": {"dtype": "float32", "shape": [2, 3], "data": "<base64, little-endian raw bytes>"}},
//           "outputs": ["y"]}                      // optional: fetch only these, in this order
// Reply:   {"ok": true, "outputs": [{"name": "y", "dtype": "float32", "shape": [2, 3], "data": "<base64>"}]}
//          (the model's output order unless "outputs" was given), or {"ok": false, "error": "<ORT's message>"}.
// A request's "id", if any, is echoed in its reply. A bad request gets an error reply; the process goes on.
// Sessions are cached by path, size, inode and modification time, so a rewritten model file is reloaded.
'use strict';

const fs = require('fs');
const readline = require('readline');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, fatal: true, error: 'cannot load onnxruntime-node: ' + e.message }) + '\n');
  process.exit(2);
}

// dtype name -> typed-array constructor (the layout ORT's node binding expects for that tensor type).
const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array, // raw IEEE half bits
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array, // one byte per element, 0 or 1
};

const SESSION_OPTIONS = {
  executionProviders: ['cpu'],
  logSeverityLevel: 3, // errors only: warnings would clutter the test output
};

const MAX_CACHED = 16;
const sessions = new Map(); // key -> Promise<InferenceSession>, least recently used first

async function sessionFor(model) {
  if (typeof model !== 'string' || model === '') throw new Error('request has no "model" path');
  const st = fs.statSync(model, { bigint: true }); // throws ENOENT with the path in the message
  const key = [model, st.size, st.ino, st.mtimeNs, st.ctimeNs].join('|');
  let pending = sessions.get(key);
  if (pending) {
    sessions.delete(key); // re-insert: most recently used
    sessions.set(key, pending);
    return pending;
  }
  pending = ort.InferenceSession.create(model, SESSION_OPTIONS);
  sessions.set(key, pending);
  pending.catch(() => sessions.delete(key));
  while (sessions.size > MAX_CACHED) {
    const [oldKey, old] = sessions.entries().next().value;
    sessions.delete(oldKey);
    old.then((s) => s.release()).catch(() => {});
  }
  return pending;
}

function decodeFeed(name, f) {
  if (f === null || typeof f !== 'object') throw new Error(`feed '${name}': expected {dtype, shape, data}`);
  const Ctor = ARRAYS[f.dtype];
  if (!Ctor) throw new Error(`feed '${name}': unsupported dtype '${f.dtype}'`);
  if (!Array.isArray(f.shape) || !f.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`feed '${name}': bad shape ${JSON.stringify(f.shape)}`);
  }
  const bytes = Buffer.from(f.data || '', 'base64');
  const count = f.shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * Ctor.BYTES_PER_ELEMENT) {
    throw new Error(`feed '${name}': ${bytes.length} bytes of data for ${f.dtype} shape [${f.shape}]`);
  }
  const ab = new ArrayBuffer(bytes.length); // own, aligned copy (Buffer's pool may be misaligned)
  new Uint8Array(ab).set(bytes);
  return new ort.Tensor(f.dtype, new Ctor(ab), f.shape);
}

function encodeOutput(name, t) {
  if (!(t.type in ARRAYS)) throw new Error(`output '${name}': unsupported dtype '${t.type}'`);
  const d = t.data;
  const raw = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return { name, dtype: t.type, shape: Array.from(t.dims, Number), data: raw.toString('base64') };
}

async function handle(line) {
  const req = JSON.parse(line);
  const session = await sessionFor(req.model);
  const feeds = {};
  for (const [name, f] of Object.entries(req.feeds || {})) {
    // ORT's node binding ignores feeds the model does not take; a test wants to hear about them.
    if (!session.inputNames.includes(name)) {
      throw new Error(`'${name}' is not an input of the model (inputs: ${session.inputNames.join(', ')})`);
    }
    feeds[name] = decodeFeed(name, f);
  }
  const names = req.outputs == null ? session.outputNames : req.outputs;
  if (!Array.isArray(names)) throw new Error('"outputs" must be a list of output names');
  const results = await session.run(feeds, names);
  const reply = { ok: true, outputs: names.map((n) => encodeOutput(n, results[n])) };
  for (const t of Object.values(results)) if (typeof t.dispose === 'function') t.dispose();
  return reply;
}

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function idOf(line) {
  try {
    const r = JSON.parse(line);
    return r && typeof r === 'object' && 'id' in r ? r.id : undefined;
  } catch (e) {
    return undefined;
  }
}

// Requests are answered one at a time, in order.
let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  queue = queue.then(async () => {
    const id = idOf(line);
    let reply;
    try {
      reply = await handle(line);
    } catch (e) {
      reply = { ok: false, error: e && e.message !== undefined ? String(e.message) : String(e) };
    }
    if (id !== undefined) reply.id = id;
    send(reply);
  });
});
rl.on('close', () => {
  queue.then(() => process.exit(0));
});
process.on('unhandledRejection', (e) => {
  process.stderr.write('runner.js: unhandled rejection: ' + (e && e.stack ? e.stack : e) + '\n');
});
