#!/usr/bin/env node
// ONNX Runtime peer of `make bench`: onnxruntime-node on the CPU execution
// provider, one intra-op and one inter-op thread, all graph optimizations.
//
// Serves measurement commands from stdin, one JSON line per command (see
// tools/bench/bench.c for the protocol):
//
//   info                       versions, accuracy check
//   lat MODEL SECONDS          `await session.run(feeds)` on one row: p50, p99 (us)
//   thr MODEL BATCH SECONDS    `await session.run(feeds)` on BATCH rows, each call
//                              timed: BATCH / median call time (rows/s), and the mean
//   nlat / nthr ...            the same through the native binding's
//                              synchronous run (no Promise, no setImmediate,
//                              no output wrapping): ONNX Runtime's own cost
//   hop SECONDS                cost of one `await` on setImmediate, p50 (us)
//   quit
//
// Input is the ENCODED float32 rows written by prepare.py; input tensors are
// made before timing, so a timed call is session.run alone -- which still
// includes onnxruntime-node's JS layer (feed checks, a setImmediate hop, a
// Promise and wrapping the outputs as Tensors).
//
// Usage: node ort_peer.js build/bench-node build/bench/models.json [--once]
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

const MAX_BATCH = 4096;
const OPTIONS = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
};

function usage() {
  process.stderr.write('usage: node ort_peer.js NODE_PREFIX MODELS.json [--once]\n');
  process.exit(2);
}

const [prefix, manifest, ...rest] = process.argv.slice(2);
if (!prefix || !manifest) usage();
const ortDir = path.resolve(prefix, 'node_modules', 'onnxruntime-node');
const ort = require(ortDir);

function now() {
  return process.hrtime.bigint();
}

function percentile(sorted, p) {
  const i = Math.min(sorted.length, Math.ceil(p * sorted.length)) - 1;
  return sorted[Math.max(0, i)];
}

// The native binding session, created the way onnxruntime-node's backend
// creates it, to time ONNX Runtime without the JS Promise layer. Internal
// API: if a future version moves it, the native figures are just missing.
function nativeSession(file) {
  try {
    const b = require(path.join(ortDir, 'dist', 'binding.js'));
    b.initOrt();
    const s = new b.binding.InferenceSession();
    s.loadModel(file, OPTIONS);
    return s;
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
}

async function main() {
  const models = {};
  const spec = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  for (const m of spec.models) {
    const buf = fs.readFileSync(m.x);
    const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const buf2 = fs.readFileSync(m.prob);
    const expect = new Float32Array(buf2.buffer.slice(buf2.byteOffset,
                                                      buf2.byteOffset + buf2.byteLength));
    const session = await ort.InferenceSession.create(m.onnx, OPTIONS);
    const native = nativeSession(m.onnx);
    const input = session.inputNames[0];
    const d = m.d_in;
    const n = m.rows;
    const cache = new Map();
    // feeds for `batch` rows starting at row `off` (windows wrap around)
    const feeds = (off, batch) => {
      const key = off + ':' + batch;
      let f = cache.get(key);
      if (!f) {
        const a = new Float32Array(batch * d);
        for (let r = 0; r < batch; r++) {
          const row = (off + r) % n;
          a.set(x.subarray(row * d, (row + 1) * d), r * d);
        }
        f = { [input]: new ort.Tensor('float32', a, [batch, d]) };
        cache.set(key, f);
      }
      return f;
    };
    // accuracy: all rows in one call against PyTorch's probabilities
    const out = await session.run(feeds(0, n));
    const prob = out[session.outputNames[0]].data;
    let err = 0;
    for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(prob[i] - expect[i]));
    let nerr = null;
    if (!native.error) {
      const fetches = {};
      for (const o of session.outputNames) fetches[o] = null;
      const nout = native.run(feeds(0, n), fetches, {});
      const np = nout[session.outputNames[0]].data;
      nerr = 0;
      for (let i = 0; i < n; i++) nerr = Math.max(nerr, Math.abs(np[i] - expect[i]));
      cache.delete('0:' + n);
    }
    cache.delete('0:' + n);
    models[m.name] = { m, session, native, feeds, n, err, nerr, outputs: session.outputNames };
  }

  const runner = (mod, useNative) => {
    if (!useNative) return (f) => mod.session.run(f);
    const fetches = {};
    for (const o of mod.outputs) fetches[o] = null;
    return (f) => mod.native.run(f, fetches, {});
  };

  async function lat(name, seconds, useNative) {
    const mod = models[name];
    if (useNative && mod.native.error) return { error: 'native binding: ' + mod.native.error };
    const run = runner(mod, useNative);
    const rows = [];
    for (let i = 0; i < mod.n; i++) rows.push(mod.feeds(i, 1));
    for (let i = 0; i < 20; i++) await run(rows[i % mod.n]);
    const samples = [];
    const limit = BigInt(Math.round(seconds * 1e9));
    const t0 = now();
    let t = t0;
    let i = 0;
    while (t - t0 < limit || samples.length < 100) {
      const a = now();
      await run(rows[i]);
      t = now();
      samples.push(Number(t - a) / 1e3);
      i = (i + 1) % mod.n;
    }
    samples.sort((p, q) => p - q);
    return { p50_us: percentile(samples, 0.5), p99_us: percentile(samples, 0.99),
             n: samples.length };
  }

  async function thr(name, batch, seconds, useNative) {
    const mod = models[name];
    if (useNative && mod.native.error) return { error: 'native binding: ' + mod.native.error };
    if (!(batch >= 1 && batch <= MAX_BATCH)) return { error: 'batch out of range' };
    const run = runner(mod, useNative);
    const wins = [];
    for (let o = 0; o < mod.n; o += batch) wins.push(mod.feeds(o, batch));
    await run(wins[0]);
    await run(wins[wins.length > 1 ? 1 : 0]);
    const limit = BigInt(Math.round(seconds * 1e9));
    const samples = [];
    const t0 = now();
    let t = t0;
    while (t - t0 < limit || samples.length < 3) {
      const a = now();
      await run(wins[samples.length % wins.length]);
      t = now();
      samples.push(Number(t - a) / 1e9);
    }
    const dt = Number(t - t0) / 1e9;
    const calls = samples.length;
    samples.sort((p, q) => p - q);
    return { rows_per_s: batch / percentile(samples, 0.5), rows_per_s_mean: (calls * batch) / dt,
             calls, seconds: dt };
  }

  async function hop(seconds) {
    const samples = [];
    const limit = BigInt(Math.round(seconds * 1e9));
    const t0 = now();
    let t = t0;
    while (t - t0 < limit || samples.length < 100) {
      const a = now();
      await new Promise((resolve) => setImmediate(resolve));
      t = now();
      samples.push(Number(t - a) / 1e3);
    }
    samples.sort((p, q) => p - q);
    return { p50_us: percentile(samples, 0.5), n: samples.length };
  }

  async function command(line) {
    const a = line.trim().split(/\s+/);
    if (a[0] === '') return null;
    if (a[0] === 'info') {
      const errs = {};
      const nerrs = {};
      const native = {};
      for (const [k, v] of Object.entries(models)) {
        errs[k] = v.err;
        nerrs[k] = v.nerr;
        native[k] = v.native.error || 'ok';
      }
      let version = '?';
      try {
        version = JSON.parse(fs.readFileSync(path.join(ortDir, 'package.json'), 'utf8')).version;
      } catch (e) { /* keep '?' */ }
      return { onnxruntime_node: version, node: process.version, options: OPTIONS,
               max_err_expected: errs, native_max_err_expected: nerrs, native };
    }
    if (!(a[1] in models) && a[0] !== 'hop') return { error: 'no such model ' + a[1] };
    const nat = a[0][0] === 'n';
    const cmd = nat ? a[0].slice(1) : a[0];
    if (cmd === 'lat' && a.length === 3) return lat(a[1], Number(a[2]), nat);
    if (cmd === 'thr' && a.length === 4) return thr(a[1], Number(a[2]), Number(a[3]), nat);
    if (a[0] === 'hop' && a.length === 2) return hop(Number(a[1]));
    return { error: 'unknown command' };
  }

  if (rest.includes('--once')) {
    const cmds = ['info', 'hop 0.05'];
    for (const name of Object.keys(models)) {
      for (const c of ['lat', 'nlat']) cmds.push(`${c} ${name} 0.05`);
      for (const c of ['thr', 'nthr']) {
        for (const b of [1, 16, 256]) cmds.push(`${c} ${name} ${b} 0.05`);
      }
    }
    for (const c of cmds) {
      process.stdout.write(c + ' -> ' + JSON.stringify(await command(c)) + '\n');
    }
    return;
  }
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (line.startsWith('quit')) break;
    const out = await command(line);
    if (out !== null) process.stdout.write(JSON.stringify(out) + '\n');
  }
  rl.close();
}

main().catch((e) => {
  process.stderr.write('ort_peer: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
