// Inference over HTTP: Quoll's endpoint vs the hand-rolled reference server (F) vs raw
// session.run (R), JSON records and Arrow IPC file, batches 1/100/1000 (10 000 for Arrow),
// concurrency 1 and 16. Interleaved Q F Q F …, median of BENCH_REPS (default 3).
// Besides rows/s (which moves with whatever else shares the machine) it reports each server's CPU
// time per row, read from /proc around every wrk run: on a shared machine that is the steadier
// measure of how much work a request costs.
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 3), BENCH_ONLY.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as arrow from 'apache-arrow';
import { tableFromIPC, type Vector } from 'apache-arrow';
import * as ort from 'onnxruntime-node';
import { Client } from '@quoll/client';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { median, printTable, spawnPinned, waitFor, wrk, writeResults } from './support.js';

const WARMUP = Number(process.env.BENCH_WARMUP_S ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const fixtures = fileURLToPath(new URL('../../shared/fixtures/houseprice/', import.meta.url));
const useFixture = existsSync(`${fixtures}rf_model.onnx`);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-'));

// -- model and data
const modelBytes = useFixture
  ? readFileSync(`${fixtures}rf_model.onnx`)
  : makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 });
const modelPath = join(work, 'model.onnx');
writeFileSync(modelPath, modelBytes);
let base: Float32Array;
if (useFixture) {
  const t = tableFromIPC(readFileSync(`${fixtures}xtest-1k.arrow`));
  const col = t.getChild('tensor') as Vector<arrow.FixedSizeList<arrow.Float32>>;
  base = new Float32Array(t.numRows * 18);
  for (let i = 0; i < t.numRows; i++) base.set(col.get(i)?.toArray() as Float32Array, i * 18);
} else {
  base = makeHouseRows(1000, 1);
}
function rows(n: number): Float32Array {
  const out = new Float32Array(n * 18);
  for (let i = 0; i < n; i++) out.set(base.subarray((i % 1000) * 18, (i % 1000) * 18 + 18), i * 18);
  return out;
}

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

function bodyFile(w: Workload): string {
  const path = join(work, `${w.format}-${w.batch}.body`);
  if (!existsSync(path)) {
    const r = rows(w.batch);
    if (w.format === 'json') {
      const recs = Array.from({ length: w.batch }, (_, i) => ({
        tensor: Array.from(r.subarray(i * 18, i * 18 + 18)),
      }));
      writeFileSync(path, JSON.stringify(recs));
    } else {
      writeFileSync(path, tableToIpcFile(makeArrowTensorTable(r, 18)));
    }
  }
  return path;
}

function lua(w: Workload, token: string | null): string {
  const path = join(work, `${w.format}-${w.batch}-${token ? 'q' : 'f'}.lua`);
  const ct = w.format === 'json' ? 'application/json' : 'application/vnd.apache.arrow.file';
  writeFileSync(
    path,
    [
      'wrk.method = "POST"',
      `local f = io.open("${bodyFile(w)}", "rb"); wrk.body = f:read("*a"); f:close()`,
      `wrk.headers["Content-Type"] = "${ct}"`,
      `wrk.headers["Accept"] = "${ct}"`,
      ...(token ? [`wrk.headers["Authorization"] = "Bearer ${token}"`] : []),
    ].join('\n'),
  );
  return path;
}

// -- servers
const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
const home = join(work, 'home');
const quoll = spawnPinned('0', process.execPath, [
  cli,
  'server',
  '--home',
  home,
  '--port',
  '0',
  '--log-level',
  'warn',
]);
const qUrl = (await waitFor(quoll, /listening on (http:\S+)/))[1] ?? '';
const creds = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
const client = new Client({ url: qUrl, token: creds.token });
const model = await (
  await client.uploadModel('benchmodel', modelPath)
).configure({ tensorFields: ['tensor'] });
const pipeline = await client.buildPipeline('benchpipe');
await pipeline.addModelStep(model);
await pipeline.deploy();
const quollInfer = pipeline.url();

const refScript = fileURLToPath(new URL('./reference-server.ts', import.meta.url));
const ref = spawnPinned('0', process.execPath, ['--import', 'tsx', refScript, modelPath, '8471']);
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

/** CPU seconds (user + system) used so far by a process, or NaN where /proc is missing. */
function cpuSeconds(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
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
  const exited = new Promise((resolve) => quoll.once('exit', resolve));
  quoll.kill('SIGTERM');
  ref.kill('SIGTERM');
  await exited;
}
console.log(
  `\nmodel: ${useFixture ? 'rf_model.onnx (fixture)' : 'synthetic tree ensemble'}; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}`,
);
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
