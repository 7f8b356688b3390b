#!/usr/bin/env node
// ONNX Runtime inference latency for bench/bench_serve.py: node bench.js model.onnx input_name features batch...
// One JSON line per batch size: {"batch": B, "us_per_call": X}, the best of 5 timed loops after a warm-up,
// each call awaited (as a service would).
'use strict';
const ort = require('onnxruntime-node');

async function timeLoop(session, feeds, n) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; ++i) await session.run(feeds);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function main() {
  const [model, inputName, features, ...batches] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], logSeverityLevel: 3 });
  for (const b of batches.map(Number)) {
    const data = new Float32Array(b * Number(features));
    for (let i = 0; i < data.length; ++i) data[i] = ((i * 37) % 101) / 101 - 0.5;
    const feeds = { [inputName]: new ort.Tensor('float32', data, [b, Number(features)]) };
    await timeLoop(session, feeds, 3);
    let n = 1;
    while ((await timeLoop(session, feeds, n)) < 0.06) n *= 2;
    let best = Infinity;
    for (let r = 0; r < 5; ++r) best = Math.min(best, (await timeLoop(session, feeds, n)) / n);
    process.stdout.write(JSON.stringify({ batch: b, us_per_call: best * 1e6 }) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
