// Cost of inference logging: the same inference workload against two Quoll servers, one
// logging every inference (the default) and one started with --no-inference-logs.
// JSON records and Arrow IPC file, batches 100 and 1000, 16 connections. Interleaved
// on/off, off/on, on/off …, median of BENCH_REPS (default 3). Target: on/off ≥ 0.90 at batch ≥ 100.
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 3),
// BENCH_CONNECTIONS (default 16), BENCH_ONLY (workloads to run, e.g. `json-100,arrow-100`; all four
// when unset), BENCH_AA=1 (an A/A run: the second server logs too, so "on/off" shows how far two
// identical servers differ on this machine at the time).
// Beside throughput, each server's CPU time per row (from /proc, Linux): of its main thread
// (the request thread) and of the whole process. On a busy shared machine these move less than
// rows/s, which depends on what else gets the core.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import {
  cpuSeconds,
  deployModel,
  loadAverage,
  median,
  modelName,
  printTable,
  REPS,
  SECONDS,
  startQuoll,
  stopAll,
  useFixture,
  WARMUP,
  wrk,
  writeBenchModel,
  writeLua,
  writeResults,
} from './support.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-logging-'));
const modelPath = writeBenchModel(work);

/** CPU seconds the main thread of a server has used (its request thread), NaN off Linux. */
function mainThreadCpuSeconds(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/task/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Runs `fn` (which returns the rows served) and gives the server's CPU µs per row: main thread and whole process. */
function cpuPerRow(child: ChildProcess, fn: () => number): { mainUs: number; totalUs: number } {
  const main0 = mainThreadCpuSeconds(child);
  const total0 = cpuSeconds(child);
  const rows = fn();
  return {
    mainUs: ((mainThreadCpuSeconds(child) - main0) * 1e6) / rows,
    totalUs: ((cpuSeconds(child) - total0) * 1e6) / rows,
  };
}

interface Workload {
  format: 'json' | 'arrow';
  batch: number;
}
const workloads: Workload[] = [];
const only = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
for (const format of ['json', 'arrow'] as const)
  for (const batch of [100, 1000])
    if (only.length === 0 || only.includes(`${format}-${batch}`)) workloads.push({ format, batch });
if (workloads.length === 0) throw new Error(`BENCH_ONLY=${process.env.BENCH_ONLY} names no workload`);
const aa = process.env.BENCH_AA === '1';

function lua(w: Workload, token: string, tag: string): string {
  return writeLua(work, { format: w.format, batch: w.batch, token, tag });
}

interface Started {
  proc: ChildProcess;
  home: string;
  token: string;
  inferUrl: string;
  pipelineId: number;
}

async function start(tag: string, extra: string[]): Promise<Started> {
  const s = await startQuoll(work, tag, extra);
  const pipeline = await deployModel(s.client, 'benchmodel', modelPath, 'benchpipe');
  return { proc: s.proc, home: s.home, token: s.token, inferUrl: pipeline.url(), pipelineId: pipeline.id };
}

function logBytes(s: Started): number {
  const dir = join(s.home, 'inference-logs', String(s.pipelineId));
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

const loadBefore = loadAverage();
const on = await start('on', []);
const off = await start('off', aa ? [] : ['--no-inference-logs']);
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
    const cpu = {
      onMain: [] as number[],
      offMain: [] as number[],
      onTotal: [] as number[],
      offTotal: [] as number[],
    };
    for (let rep = 0; rep < REPS; rep++) {
      let x = { reqPerSec: NaN, p99Ms: NaN, non2xx: 0 };
      let y = x;
      const runOn = (): { mainUs: number; totalUs: number } =>
        cpuPerRow(on.proc, () => {
          x = wrk({ url: on.inferUrl, luaScript: onLua, connections: CONNECTIONS, seconds: SECONDS });
          return x.reqPerSec * w.batch * SECONDS;
        });
      const runOff = (): { mainUs: number; totalUs: number } =>
        cpuPerRow(off.proc, () => {
          y = wrk({ url: off.inferUrl, luaScript: offLua, connections: CONNECTIONS, seconds: SECONDS });
          return y.reqPerSec * w.batch * SECONDS;
        });
      // Which server goes first alternates: in an A/A run (3 December) the server measured
      // first in every pair was 3-4 % slower, a bias that always fell on "on".
      let cx: { mainUs: number; totalUs: number };
      let cy: { mainUs: number; totalUs: number };
      if (rep % 2 === 0) {
        cx = runOn();
        cy = runOff();
      } else {
        cy = runOff();
        cx = runOn();
      }
      a.push(x.reqPerSec * w.batch);
      b.push(y.reqPerSec * w.batch);
      ap99.push(x.p99Ms);
      bp99.push(y.p99Ms);
      errors += x.non2xx + y.non2xx;
      cpu.onMain.push(cx.mainUs);
      cpu.offMain.push(cy.mainUs);
      cpu.onTotal.push(cx.totalUs);
      cpu.offTotal.push(cy.totalUs);
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
      onMainCpuUsPerRow: median(cpu.onMain),
      offMainCpuUsPerRow: median(cpu.offMain),
      onTotalCpuUsPerRow: median(cpu.onTotal),
      offTotalCpuUsPerRow: median(cpu.offTotal),
      non2xx: errors,
    };
    results.push(row);
    table.push([
      w.format,
      w.batch,
      Math.round(A),
      Math.round(B),
      A / B,
      median(ap99),
      median(bp99),
      row.onMainCpuUsPerRow,
      row.offMainCpuUsPerRow,
      row.onTotalCpuUsPerRow,
      row.offTotalCpuUsPerRow,
      errors,
    ]);
    console.log(JSON.stringify(row));
  }
} finally {
  await stopAll([on.proc, off.proc]);
}
const written = logBytes(on);
console.log(
  `\n${aa ? 'A/A (both servers log); ' : ''}model: ${modelName}; ${CONNECTIONS} connections; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}; load ${loadBefore}–${loadAverage()}; ` +
    `log bytes written by the logging server: ${(written / 1024 ** 2).toFixed(1)} MiB`,
);
printTable(
  [
    'format',
    'batch',
    'on rows/s',
    'off rows/s',
    'on/off',
    'on p99 ms',
    'off p99 ms',
    'on main µs/row',
    'off main µs/row',
    'on total µs/row',
    'off total µs/row',
    'non2xx',
  ],
  table,
);
writeResults(aa ? 'logging-aa' : 'logging', {
  model: useFixture ? 'rf_model.onnx' : 'synthetic',
  connections: CONNECTIONS,
  warmupS: WARMUP,
  seconds: SECONDS,
  reps: REPS,
  logBytes: written,
  results,
});
rmSync(work, { recursive: true, force: true });
