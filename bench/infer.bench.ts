// Inference over HTTP: Quoll's endpoint vs the hand-rolled reference server (F) vs raw
// session.run (R), JSON records and Arrow IPC file, batches 1/100/1000 (10 000 for Arrow),
// concurrency 1 and 16. Interleaved Q F Q F …, median of BENCH_REPS (default 3).
// Besides rows/s (which moves with whatever else shares the machine) it reports each server's CPU
// time per row, read from /proc around every wrk run: on a shared machine that is the steadier
// measure of how much work a request costs.
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 3), BENCH_ONLY.
import { mkdtempSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import {
  benchRows as rows,
  cpuSeconds,
  deployModel,
  median,
  modelName,
  printTable,
  REPS,
  SECONDS,
  spawnPinned,
  startQuoll,
  stopAll,
  useFixture,
  waitFor,
  WARMUP,
  wrk,
  writeBenchModel,
  writeLua,
  writeResults,
} from './support.js';

const work = mkdtempSync(join(tmpdir(), 'quoll-bench-'));
const modelPath = writeBenchModel(work);

interface Workload {
  format: 'json' | 'arrow';
  batch: number;
  connections: number;
}
const workloads: Workload[] = [];
for (const format of ['json', 'arrow'] as const) {
  for (const batch of format === 'json' ? [1, 100, 1000] : [1, 100, 1000, 10000]) {
    for (const connections of [1, 16]) workloads.push({ format, batch, connections });
  }
}

// BENCH_ONLY="json:1:16,arrow:1000:1" limits the run to those format:batch:connections triples.
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
if (only)
  workloads.splice(
    0,
    workloads.length,
    ...workloads.filter((w) => only.includes(`${w.format}:${w.batch}:${w.connections}`)),
  );

function lua(w: Workload, token: string | null): string {
  return writeLua(work, { format: w.format, batch: w.batch, token, tag: token ? 'q' : 'f' });
}

// -- servers
const quollServer = await startQuoll(work, 'home');
const quoll = quollServer.proc;
const creds = { token: quollServer.token };
const quollInfer = (await deployModel(quollServer.client, 'benchmodel', modelPath, 'benchpipe')).url();

// F with onnxruntime's default options (threads that escape taskset), as this bench always
// measured it; bench/serving.bench.ts compares with the one-thread reference F1.
const refScript = fileURLToPath(new URL('./reference-server.ts', import.meta.url));
const ref = spawnPinned('0', process.execPath, ['--import', 'tsx', refScript, modelPath, '8471', '0']);
await waitFor(ref, /listening on/);
const refInfer = 'http://127.0.0.1:8471/infer';

// -- raw session.run (R), in this process, on prebuilt tensors. R uses onnxruntime's default
// options, like F: its intra-op threads set their own CPU affinity, so they are not held to one
// core by taskset. R1 is the same with one intra-op thread (the way each Quoll worker runs).
async function rawRowsPerSec(batch: number, threads?: number): Promise<number> {
  const session = await ort.InferenceSession.create(
    modelPath,
    threads === undefined ? {} : { intraOpNumThreads: threads, interOpNumThreads: 1 },
  );
  const feeds = {
    [session.inputNames[0] ?? 'float_input']: new ort.Tensor('float32', rows(batch), [batch, 18]),
  };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const samples: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1000) {
      await session.run(feeds);
      n++;
    }
    samples.push((n * batch) / ((performance.now() - t0) / 1000));
  }
  await session.release();
  return median(samples);
}

/** One measured wrk run plus the server's CPU microseconds per row over it. */
function measure(
  server: ChildProcess,
  opts: Parameters<typeof wrk>[0],
  batch: number,
): ReturnType<typeof wrk> & { cpuUsPerRow: number } {
  const before = cpuSeconds(server);
  const result = wrk(opts);
  const used = cpuSeconds(server) - before;
  return { ...result, cpuUsPerRow: (used * 1e6) / (result.reqPerSec * opts.seconds * batch) };
}

const results: Record<string, unknown>[] = [];
const table: (string | number)[][] = [];
try {
  const raw = new Map<number, number>();
  const raw1 = new Map<number, number>();
  for (const b of [1, 100, 1000, 10000]) {
    raw.set(b, await rawRowsPerSec(b));
    raw1.set(b, await rawRowsPerSec(b, 1));
  }
  for (const w of workloads) {
    const q: number[] = [];
    const f: number[] = [];
    const qp99: number[] = [];
    const fp99: number[] = [];
    const qCpu: number[] = [];
    const fCpu: number[] = [];
    let errors = 0;
    const qLua = lua(w, creds.token);
    const fLua = lua(w, null);
    // Warm both, then interleave Q F Q F …
    wrk({ url: quollInfer, luaScript: qLua, connections: w.connections, seconds: WARMUP });
    wrk({ url: refInfer, luaScript: fLua, connections: w.connections, seconds: WARMUP });
    for (let rep = 0; rep < REPS; rep++) {
      const a = measure(
        quoll,
        { url: quollInfer, luaScript: qLua, connections: w.connections, seconds: SECONDS },
        w.batch,
      );
      const b = measure(
        ref,
        { url: refInfer, luaScript: fLua, connections: w.connections, seconds: SECONDS },
        w.batch,
      );
      qCpu.push(a.cpuUsPerRow);
      fCpu.push(b.cpuUsPerRow);
      q.push(a.reqPerSec * w.batch);
      qp99.push(a.p99Ms);
      fp99.push(b.p99Ms);
      f.push(b.reqPerSec * w.batch);
      errors += a.non2xx + b.non2xx;
    }
    const Q = median(q);
    const F = median(f);
    const R = raw.get(w.batch) ?? NaN;
    const R1 = raw1.get(w.batch) ?? NaN;
    const row = {
      ...w,
      quollRowsPerSec: Q,
      referenceRowsPerSec: F,
      rawRowsPerSec: R,
      rawOneThreadRowsPerSec: R1,
      qOverF: Q / F,
      qOverR: Q / R,
      qOverR1: Q / R1,
      quollP99Ms: median(qp99),
      referenceP99Ms: median(fp99),
      quollCpuUsPerRow: median(qCpu),
      referenceCpuUsPerRow: median(fCpu),
      non2xx: errors,
    };
    results.push(row);
    table.push([
      w.format,
      w.batch,
      w.connections,
      Math.round(Q),
      Math.round(F),
      Math.round(R),
      Math.round(R1),
      Q / F,
      Q / R,
      Q / R1,
      median(qp99),
      median(fp99),
      median(qCpu),
      median(fCpu),
      median(fCpu) / median(qCpu),
      errors,
    ]);
    console.log(JSON.stringify(row));
  }
} finally {
  await stopAll([quoll, ref]);
}
console.log(`\nmodel: ${modelName}; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}`);
printTable(
  [
    'format',
    'batch',
    'conns',
    'Quoll rows/s',
    'F rows/s',
    'R rows/s',
    'R1 rows/s',
    'Q/F',
    'Q/R',
    'Q/R1',
    'Q p99 ms',
    'F p99 ms',
    'Q cpu µs/row',
    'F cpu µs/row',
    'F/Q cpu',
    'non2xx',
  ],
  table,
);
writeResults('infer', {
  model: useFixture ? 'rf_model.onnx' : 'synthetic',
  warmupS: WARMUP,
  seconds: SECONDS,
  reps: REPS,
  results,
});
rmSync(work, { recursive: true, force: true });
