// In process: what one batch-1 request costs the HTTP thread on the OIP v2 path against Quoll's
// JSON records path, without HTTP: the codec's decode (through the server's DecodePool, so small
// bodies are read inline as on the server), the deployment's run (an engine with inline runs on
// and contended merging, as the server on one core; the fixture model), the answer's encode,
// and the log rows into a log staging (what `InferenceService.infer` does after the run); both
// codecs built as their routes build them (small bodies read inline, no promise). Each
// round sends 16 requests in one turn (16 connections), the two paths interleaved, and prints
// CPU µs per request of each. The admission probe's limits are raised and the trip wire is
// off, so a busy machine cannot send the runs to the workers (the server on a busy machine
// may: this measures the codecs' share, not admission). PROBE_ONLY=oip|json runs one path alone
// (for `node --cpu-prof --cpu-prof-dir=DIR`: self time per function of that path).
//
// Usage: QUOLL_SHARED_DIR=/work/shared taskset -c 1 node --import tsx bench/oip-path-probe.ts
//   [seconds=2] [rounds=4] [batch=1]
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DecodePool,
  InferenceEngine,
  openInferenceCodec,
  quollBodyCodecs,
} from '../packages/quoll/src/inference/index.js';
import type { InferenceCodec, RawInferenceBody, ServedModel } from '../packages/quoll/src/inference/index.js';
import { inspectOnnxModel } from '../packages/quoll/src/onnx/index.js';
import { admitLogRows, LogStaging } from '../packages/quoll/src/logs/index.js';
import { writeBenchModel, writeBody } from './support.js';

const [seconds = 2, rounds = 4, batch = 1] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-oip-probe-'));
const modelPath = writeBenchModel(work);
const bytes = readFileSync(modelPath);
const info = inspectOnnxModel(bytes);
const engine = new InferenceEngine({
  workersPerDeployment: 1,
  inlineRuns: true,
  inlineWhenContended: true,
  // The probe is about the codecs' cost, not admission: a loaded machine must not refuse it.
  inlineProbe: { limitUs: 50_000, timeoutMs: 60_000, maxLoadUs: 1_000_000 },
  inlineSlowRunUs: 1_000_000,
});
const deployment = await engine.deploy('probe', [
  {
    name: 'model',
    version: '1',
    sha: createHash('sha256').update(bytes).digest('hex'),
    path: modelPath,
    inputs: info.inputs,
    outputs: info.outputs,
    config: { tensorFields: ['tensor'], batchConfig: null },
  },
]);
const admission = await deployment.inlineDecided;
console.log(`inline admission: ${JSON.stringify(admission)}`);
const served: ServedModel = {
  name: 'probe',
  version: '1',
  inputs: info.inputs.map((input) => ({ ...input, name: 'tensor' })),
  outputs: info.outputs,
};
const pool = new DecodePool();
const paths: Record<string, { codec: InferenceCodec<unknown>; body: Buffer }> = {
  oip: {
    codec: openInferenceCodec(pool),
    body: readFileSync(writeBody(work, 'oip', batch)),
  },
  json: {
    // As the /v1 route builds it: small bodies read inline, without a promise.
    codec: quollBodyCodecs({
      decode: (ct, body) => pool.decodeForModelWorker(ct, body),
      decodeInline: (ct, body) => pool.decodeInline(ct, body),
    }).json,
    body: readFileSync(writeBody(work, 'json', batch)),
  },
};
const staging = new LogStaging({ maxRows: 100_000, maxBytes: 16 * 1024 * 1024 });
let staged = 0;

async function one(codec: InferenceCodec<unknown>, body: Buffer): Promise<void> {
  // A fresh buffer per request, as a request body is.
  const raw: RawInferenceBody = {
    contentType: 'application/json',
    body: Buffer.from(body),
    header: () => undefined,
  };
  // Awaited only when a promise, as InferenceService.infer does; logged, as the server logs.
  const decoded = codec.decode(raw, served);
  const { input, request } = decoded instanceof Promise ? await decoded : decoded;
  const result = await deployment.infer(input, Date.now(), true);
  const encoded = codec.encode(result, request, served);
  const answer = encoded instanceof Promise ? await encoded : encoded;
  if (answer.body.length === 0) throw new Error('empty answer');
  staging.add(1, admitLogRows(1, result.logRows()).batches);
  staged += result.rowCount;
  if (staged >= 8192) {
    staging.release(staging.take());
    staged = 0;
  }
  result.release();
}

let requestsDone = 0;

async function run(path: string): Promise<number> {
  const { codec, body } = paths[path]!;
  let requests = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    await Promise.all(Array.from({ length: 16 }, () => one(codec, body)));
    requests += 16;
  }
  requestsDone += requests;
  const used = process.cpuUsage(start);
  return (used.user + used.system) / requests;
}

// PROBE_ONLY=oip|json: that path alone (for a profile of it), its request count printed.
const only = process.env.PROBE_ONLY;
if (only !== undefined) {
  await run(only);
  const started = requestsDone;
  const cpu = await run(only);
  console.log(`${only} alone: ${requestsDone - started} requests, ${cpu.toFixed(1)} µs CPU per request`);
}
if (only === undefined) {
  await run('oip');
  await run('json');
}
for (let r = 0; only === undefined && r < rounds; r++) {
  const order = r % 2 === 0 ? ['oip', 'json'] : ['json', 'oip'];
  const got: Record<string, number> = {};
  for (const path of order) got[path] = await run(path);
  console.log(
    `round ${r + 1}: batch ${batch}: oip ${got.oip!.toFixed(1)} µs, json ${got.json!.toFixed(1)} µs CPU per request (oip − json ${(got.oip! - got.json!).toFixed(1)}); inline runs ${deployment.inlineRunCount}`,
  );
}
await pool.close();
await engine.close();
rmSync(work, { recursive: true, force: true });
