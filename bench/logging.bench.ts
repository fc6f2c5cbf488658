// Cost of inference logging: the same inference workload against two Quoll servers, one
// logging every inference (the default) and one started with --no-inference-logs.
// JSON records and Arrow IPC file, batches 100 and 1000, 16 connections. Interleaved
// on/off/on/off …, median of BENCH_REPS (default 3). Target: on/off ≥ 0.90 at batch ≥ 100.
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 3),
// BENCH_CONNECTIONS (default 16).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { Client } from '@quoll/client';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { median, printTable, spawnPinned, waitFor, wrk, writeResults } from './support.js';

const WARMUP = Number(process.env.BENCH_WARMUP_S ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const fixtures = fileURLToPath(new URL('../../shared/fixtures/houseprice/', import.meta.url));
const useFixture = existsSync(`${fixtures}rf_model.onnx`);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-logging-'));

const modelBytes = useFixture
  ? readFileSync(`${fixtures}rf_model.onnx`)
  : makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 });
const modelPath = join(work, 'model.onnx');
writeFileSync(modelPath, modelBytes);
const base = makeHouseRows(1000, 1);
function rows(n: number): Float32Array {
  const out = new Float32Array(n * 18);
  for (let i = 0; i < n; i++) out.set(base.subarray((i % 1000) * 18, (i % 1000) * 18 + 18), i * 18);
  return out;
}

interface Workload {
  format: 'json' | 'arrow';
  batch: number;
}
const workloads: Workload[] = [];
for (const format of ['json', 'arrow'] as const)
  for (const batch of [100, 1000]) workloads.push({ format, batch });

function lua(w: Workload, token: string, tag: string): string {
  const body = join(work, `${w.format}-${w.batch}.body`);
  if (!existsSync(body)) {
    const r = rows(w.batch);
    writeFileSync(
      body,
      w.format === 'json'
        ? JSON.stringify(
            Array.from({ length: w.batch }, (_, i) => ({
              tensor: Array.from(r.subarray(i * 18, i * 18 + 18)),
            })),
          )
        : tableToIpcFile(makeArrowTensorTable(r, 18)),
    );
  }
  const ct = w.format === 'json' ? 'application/json' : 'application/vnd.apache.arrow.file';
  const path = join(work, `${w.format}-${w.batch}-${tag}.lua`);
  writeFileSync(
    path,
    [
      'wrk.method = "POST"',
      `local f = io.open("${body}", "rb"); wrk.body = f:read("*a"); f:close()`,
      `wrk.headers["Content-Type"] = "${ct}"`,
      `wrk.headers["Accept"] = "${ct}"`,
      `wrk.headers["Authorization"] = "Bearer ${token}"`,
    ].join('\n'),
  );
  return path;
}

interface Started {
  proc: ChildProcess;
  home: string;
  token: string;
  inferUrl: string;
  pipelineId: number;
}

const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
async function start(tag: string, extra: string[]): Promise<Started> {
  const home = join(work, tag);
  const proc = spawnPinned('0', process.execPath, [
    cli,
    'server',
    '--home',
    home,
    '--port',
    '0',
    '--log-level',
    'warn',
    ...extra,
  ]);
  const url = (await waitFor(proc, /listening on (http:\S+)/))[1] ?? '';
  const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
  const client = new Client({ url, token });
  const model = await (
    await client.uploadModel('benchmodel', modelPath)
  ).configure({ tensorFields: ['tensor'] });
  const pipeline = await client.buildPipeline('benchpipe');
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  return { proc, home, token, inferUrl: pipeline.url(), pipelineId: pipeline.id };
}

function logBytes(s: Started): number {
  const dir = join(s.home, 'inference-logs', String(s.pipelineId));
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

const on = await start('on', []);
const off = await start('off', ['--no-inference-logs']);
const results: Record<string, unknown>[] = [];
const table: (string | number)[][] = [];
try {
  for (const w of workloads) {
    const onLua = lua(w, on.token, 'on');
    const offLua = lua(w, off.token, 'off');
    wrk({ url: on.inferUrl, luaScript: onLua, connections: CONNECTIONS, seconds: WARMUP });
    wrk({ url: off.inferUrl, luaScript: offLua, connections: CONNECTIONS, seconds: WARMUP });
    const a: number[] = [];
    const b: number[] = [];
    const ap99: number[] = [];
    const bp99: number[] = [];
    let errors = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const x = wrk({ url: on.inferUrl, luaScript: onLua, connections: CONNECTIONS, seconds: SECONDS });
      const y = wrk({ url: off.inferUrl, luaScript: offLua, connections: CONNECTIONS, seconds: SECONDS });
      a.push(x.reqPerSec * w.batch);
      b.push(y.reqPerSec * w.batch);
      ap99.push(x.p99Ms);
      bp99.push(y.p99Ms);
      errors += x.non2xx + y.non2xx;
    }
    const A = median(a);
    const B = median(b);
    const row = {
      ...w,
      connections: CONNECTIONS,
      onRowsPerSec: A,
      offRowsPerSec: B,
      onOverOff: A / B,
      onP99Ms: median(ap99),
      offP99Ms: median(bp99),
      non2xx: errors,
    };
    results.push(row);
    table.push([w.format, w.batch, Math.round(A), Math.round(B), A / B, median(ap99), median(bp99), errors]);
    console.log(JSON.stringify(row));
  }
} finally {
  on.proc.kill('SIGTERM');
  off.proc.kill('SIGTERM');
  await Promise.all(
    [on, off].map((s) => new Promise((r) => (s.proc.exitCode !== null ? r(null) : s.proc.once('exit', r)))),
  );
}
const written = logBytes(on);
console.log(
  `\nmodel: ${useFixture ? 'rf_model.onnx (fixture)' : 'synthetic tree ensemble'}; ${CONNECTIONS} connections; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}; ` +
    `log bytes written by the logging server: ${(written / 1024 ** 2).toFixed(1)} MiB`,
);
printTable(
  ['format', 'batch', 'on rows/s', 'off rows/s', 'on/off', 'on p99 ms', 'off p99 ms', 'non2xx'],
  table,
);
writeResults('logging', {
  model: useFixture ? 'rf_model.onnx' : 'synthetic',
  connections: CONNECTIONS,
  warmupS: WARMUP,
  seconds: SECONDS,
  reps: REPS,
  logBytes: written,
  results,
});
rmSync(work, { recursive: true, force: true });
