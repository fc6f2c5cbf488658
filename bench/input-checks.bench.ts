// Cost of the hostile-input checks: the same inference workload against two Quoll servers, one
// as shipped (bodies decoded in the decode pool under a deadline, Arrow framing checked, the
// in-flight body budget reserved) and one started with QUOLL_BENCH_INPUT_CHECKS=off (bodies
// decoded on the HTTP thread with no checks, as before them). JSON records and Arrow IPC
// files, batches 1, 100 and 1000, BENCH_CONNECTIONS connections. Interleaved on/off, off/on …
// (the order alternates per repetition), BENCH_REPS pairs. Reports the median of the pairs'
// on/off ratios (each pair ran back to back, so it shares the machine's load of the moment),
// their range, and each server's CPU time per row (steadier than rows/s on a shared machine),
// all threads and the HTTP thread alone (the rest: decode, model and log workers, V8's GC helpers).
// Target: on/off ≥ 0.95.
// BENCH_AA=1 starts the "off" server with the checks on too (an A/A run): its ratios show how
// far two identical servers drift apart on this machine, the noise floor of the A/B ratios.
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 5),
// BENCH_CONNECTIONS (default 16), BENCH_ONLY.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SECONDS,
  WARMUP,
  cpuSeconds,
  deployModel,
  median,
  modelName,
  printTable,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  writeResults,
  type BenchServer,
} from './support.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-checks-'));
const modelPath = writeBenchModel(work);

const workloads: { format: 'json' | 'arrow'; batch: number }[] = [];
// BENCH_ONLY="json:1,arrow:1000" limits the run to those format:batch pairs.
const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
for (const format of ['json', 'arrow'] as const) {
  for (const batch of [1, 100, 1000]) {
    if (only === undefined || only.includes(`${format}:${batch}`)) workloads.push({ format, batch });
  }
}

interface Sample {
  rowsPerSec: number;
  cpuUsPerRow: number;
  /** The HTTP (main) thread's share of cpuUsPerRow. */
  mainCpuUsPerRow: number;
  non2xx: number;
}

/** CPU seconds (user + system) of a process's main thread so far, or NaN where /proc is missing. */
function mainThreadSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface Served extends BenchServer {
  inferUrl: string;
}

async function serve(tag: string, env: NodeJS.ProcessEnv): Promise<Served> {
  const server = await startQuoll(work, tag, [], { env });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  return { ...server, inferUrl: pipeline.url() };
}

function measure(server: Served, lua: string, batch: number, seconds: number): Sample {
  const before = cpuSeconds(server.proc);
  const mainBefore = mainThreadSeconds(server.proc.pid);
  const result = wrk({ url: server.inferUrl, luaScript: lua, connections: CONNECTIONS, seconds });
  const used = cpuSeconds(server.proc) - before;
  const mainUsed = mainThreadSeconds(server.proc.pid) - mainBefore;
  const rowsDone = result.reqPerSec * seconds * batch;
  return {
    rowsPerSec: result.reqPerSec * batch,
    cpuUsPerRow: (used * 1e6) / rowsDone,
    mainCpuUsPerRow: (mainUsed * 1e6) / rowsDone,
    non2xx: result.non2xx,
  };
}

const loadBefore = execFileSync('uptime', { encoding: 'utf8' }).trim();
const on = await serve('on', {});
const aa = process.env.BENCH_AA === '1';
const off = await serve('off', aa ? {} : { QUOLL_BENCH_INPUT_CHECKS: 'off' });
const results: Record<string, unknown>[] = [];
const table: (string | number)[][] = [];
try {
  for (const w of workloads) {
    const onLua = writeLua(work, { ...w, token: on.token, tag: 'on' });
    const offLua = writeLua(work, { ...w, token: off.token, tag: 'off' });
    measure(on, onLua, w.batch, WARMUP);
    measure(off, offLua, w.batch, WARMUP);
    const a: Sample[] = [];
    const b: Sample[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      if (rep % 2 === 0) {
        a.push(measure(on, onLua, w.batch, SECONDS));
        b.push(measure(off, offLua, w.batch, SECONDS));
      } else {
        b.push(measure(off, offLua, w.batch, SECONDS));
        a.push(measure(on, onLua, w.batch, SECONDS));
      }
    }
    const onRows = median(a.map((s) => s.rowsPerSec));
    const offRows = median(b.map((s) => s.rowsPerSec));
    const onCpu = median(a.map((s) => s.cpuUsPerRow));
    const offCpu = median(b.map((s) => s.cpuUsPerRow));
    const onMain = median(a.map((s) => s.mainCpuUsPerRow));
    const offMain = median(b.map((s) => s.mainCpuUsPerRow));
    const errors = [...a, ...b].reduce((n, s) => n + s.non2xx, 0);
    // Pair by pair: rep i of "on" ran next to rep i of "off".
    const pairs = a.map((s, i) => s.rowsPerSec / b[i]!.rowsPerSec);
    const cpuPairs = a.map((s, i) => s.cpuUsPerRow / b[i]!.cpuUsPerRow);
    const row = {
      ...w,
      connections: CONNECTIONS,
      checksOnRowsPerSec: onRows,
      checksOffRowsPerSec: offRows,
      onOverOff: onRows / offRows,
      pairedOnOverOff: median(pairs),
      pairs,
      pairedCpuOnOverOff: median(cpuPairs),
      cpuPairs,
      checksOnCpuUsPerRow: onCpu,
      checksOffCpuUsPerRow: offCpu,
      cpuOnOverOff: onCpu / offCpu,
      checksOnMainCpuUsPerRow: onMain,
      checksOffMainCpuUsPerRow: offMain,
      non2xx: errors,
    };
    results.push(row);
    table.push([
      w.format,
      w.batch,
      Math.round(onRows),
      Math.round(offRows),
      median(pairs),
      `${Math.min(...pairs).toFixed(2)}–${Math.max(...pairs).toFixed(2)}`,
      onCpu,
      offCpu,
      median(cpuPairs),
      `${onMain.toFixed(2)} / ${offMain.toFixed(2)}`,
      errors,
    ]);
  }
} finally {
  await stopAll([on.proc, off.proc]);
}
const loadAfter = execFileSync('uptime', { encoding: 'utf8' }).trim();
console.log(
  `\nInput checks on vs ${aa ? 'on (A/A run: both servers checked)' : 'off'} (${CONNECTIONS} connections, ${REPS} interleaved pairs of ${SECONDS} s runs; ratios are medians of the pairs)`,
);
console.log(`machine load before: ${loadBefore}\nmachine load after:  ${loadAfter}`);
printTable(
  [
    'format',
    'batch',
    'on rows/s',
    'off rows/s',
    'on/off',
    'pairs range',
    'on CPU µs/row',
    'off CPU µs/row',
    'CPU on/off',
    'HTTP thread µs/row on / off',
    'non2xx',
  ],
  table,
);
console.log('target: on/off ≥ 0.95 (the checks cost at most 5 % of throughput)');
writeResults(aa ? 'input-checks-aa' : 'input-checks', {
  model: modelName,
  loadBefore,
  loadAfter,
  results,
});
rmSync(work, { recursive: true, force: true });
