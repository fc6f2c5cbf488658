// Cost of inference logging: the same inference workload against two Quoll servers, one
// logging every inference (the default) and one started with --no-inference-logs.
// JSON records and Arrow IPC file, batches 100 and 1000, 16 connections. Interleaved
// on/off, off/on, on/off …, median of BENCH_REPS (default 7). Target: on/off ≥ 0.90 at batch ≥ 100.
// Env: BENCH_WARMUP_S (default 15, each server), BENCH_SECONDS (default 4), BENCH_REPS (default 7),
// BENCH_CONNECTIONS (default 16; 32 in BENCH_SIMULTANEOUS mode), BENCH_ONLY (workloads to run, in that order, e.g. `json-100,arrow-100`; all four
// when unset), BENCH_AA=1 (an A/A run: the second server logs too, so "on/off" shows how far two
// identical servers differ on this machine at the time).
// Beside throughput, each server's CPU time per row (from /proc, Linux): of its main thread
// (the request thread) and of the whole process. On a busy shared machine these move less than
// rows/s, which depends on what else gets the core. Each rep is also printed in order to stderr
// (and kept as `perRep` in the JSON results): both servers' rows/s, CPU µs a row of the main
// thread, the whole process and every other busy thread (by thread id, with its system share),
// core 0's system and softirq time a row, and the kernel's Dirty / Writeback after the run.
// `others` is core 0's busy time less the server's own, a row: other tasks on the server's core.
// CPU on/off (median over reps of off's CPU a row / on's) is what on/off reads with the core to itself.
// BENCH_SIMULTANEOUS=1: both servers (still both on core 0) loaded AT THE SAME TIME, each by its
// own wrk with half of BENCH_CONNECTIONS (default 32 in this mode: 16 a server; both wrk on core 1; which one starts first swaps every
// rep), so that the host's slow stretches (regime lane, 6 December: request thread and model worker
// 1.5-1.9x slower a row for seconds, following the clock across the switch between servers) fall
// on both at once instead of on whichever server the sequential mode happens to be measuring.
// Warm-up 30 s by default (each server has half the core). Per rep: each server's rows/s, CPU µs a
// row (main thread, whole process), its share of core 0, and two ratios: rows/s on/off and
// CPU on/off = off's CPU a row / on's. The headline is the median over reps of CPU on/off.
// Fairness: on one core CFS shares time per runnable thread (both servers sit in the same
// autogroup and cgroup here), so the server with more runnable threads (the logging one has a
// writer thread) can get more than half the core, and rows/s on/off is then biased toward "on" by
// share_on / share_off. CPU on/off is not: each server's CPU is divided by its own rows. It is still
// read at about half the rows/s each server sees in the sequential mode (half the core each), which
// may batch differently; BENCH_AA=1 with this mode sizes the mode's own bias.
// BENCH_WRITER_CPU=<cpus> (simultaneous mode, a diagnostic) moves the logging server's writer thread to
// those cores after the warm-up. Each rep line also gives the main thread's minor faults, voluntary
// and involuntary context switches and run-queue wait a 100 rows (faults lane, 7 December).
// BENCH_LOSS=1 measures instead the other half of the target, "no row lost at ≤ 80 % load": one
// logging server; for each workload its most requests/s (wrk), then an open-loop fixed-rate load
// (bench/fixed-rate-load.js) at BENCH_LOSS_LOAD (default 0.8) of it for BENCH_LOSS_SECONDS
// (default 10), each row tagged; the log read back through exportLogs (waiting up to
// BENCH_LOSS_DRAIN_S, default 30) must hold every acknowledged row once. Writes
// bench/results/logging-loss.json.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { tableFromIPC } from 'apache-arrow';
import type { Pipeline } from '@quoll/client';
import { makeArrowTensorTable, tableToIpcFile } from '../test/support/synthetic-data.js';
import {
  awaitInlineVerdict,
  benchRows,
  checkVerdicts,
  cpuSeconds,
  deployModel,
  loadAverage,
  median,
  modelName,
  printTable,
  SECONDS,
  spawnPinned,
  startQuoll,
  stopAll,
  useFixture,
  wrk,
  wrkAsync,
  writeBenchModel,
  writeLua,
  writeResults,
  type BenchServer,
} from './support.js';
import { threadStats, type ThreadStats } from './thread-stats.js';

// In BENCH_SIMULTANEOUS mode they are split between the two servers: 32 by default there, so
// each server has the 16 of the target's workload (simul lane: at 8 a server both servers spent
// more CPU a row than alone; at 16 close to their sequential figures).
const CONNECTIONS = Number(
  process.env.BENCH_CONNECTIONS ?? (process.env.BENCH_SIMULTANEOUS === '1' ? 32 : 16),
);
// Longer and more than the other benches' defaults (2 s, 3 reps): each server's CPU a row falls
// 30–35 % over its first ~40 s of load, and one server at a time has whole-process slow spells of
// 4–30 s (logvar lane, docs/benchmarks.md, 6 December): a 2 s warm-up and a median of 3 landed
// either side of the target from one run to the next on the same build.
// In BENCH_SIMULTANEOUS mode each server has half the core while warming up: 30 s by default
// there, so that each serves about as much warm-up work as in 15 s alone (the first simultaneous
// run, 05:31, with 15 s: both servers' CPU a row still fell 20-25 % from rep 0 to rep 3).
const WARMUP = Number(process.env.BENCH_WARMUP_S ?? (process.env.BENCH_SIMULTANEOUS === '1' ? 30 : 15));
const REPS = Number(process.env.BENCH_REPS ?? 7);
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

/** /proc/stat's cpu0 columns user, nice, system, idle, iowait, irq, softirq, steal (ticks of 1/100 s). */
function core0Ticks(): number[] {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('cpu0 '));
    return (line ?? '').split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return [];
  }
}

/** /proc/meminfo's Dirty and Writeback (kB), NaN off Linux. */
function dirtyKb(): { dirty: number; writeback: number } {
  try {
    const m = readFileSync('/proc/meminfo', 'utf8');
    return {
      dirty: Number(/^Dirty:\s+(\d+)/m.exec(m)?.[1] ?? NaN),
      writeback: Number(/^Writeback:\s+(\d+)/m.exec(m)?.[1] ?? NaN),
    };
  } catch {
    return { dirty: NaN, writeback: NaN };
  }
}

/** One measured run of one server: CPU µs per row of its main thread, whole process, each busy thread; core 0's system and softirq. */
interface RunCpu {
  mainUs: number;
  totalUs: number;
  /** µs per row of every thread but the main one that used ≥ 0.01 µs a row, in thread id order, with its system share. */
  threads: { tid: number; us: number; sysPct: number }[];
  /** Core 0's system and softirq time over the run, µs per row served. */
  core0SysUs: number;
  core0SoftirqUs: number;
  /** Core 0's busy time (all but idle and iowait) less this server's own CPU, µs per row: other tasks on the server's core. */
  core0OthersUs: number;
  dirtyKbAfter: number;
  writebackKbAfter: number;
  /**
   * The main thread's scheduler counters a request of 100 rows (`/proc/…/task/<pid>/{stat,status,schedstat}`):
   * minor faults, voluntary and involuntary context switches, and its run-queue wait in µs.
   */
  mainSched: { faults: number; vol: number; invol: number; waitUs: number };
}

/** Runs `fn` (which returns the rows served) and gives the server's CPU µs per row: main thread, whole process, each thread. */
function cpuPerRow(child: ChildProcess, fn: () => number): RunCpu {
  const done = cpuMark(child);
  return done(fn());
}

/** Reads the server's CPU now; the returned function reads it again and gives the CPU µs per row of `rows` since. */
function cpuMark(child: ChildProcess): (rows: number) => RunCpu {
  const pid = child.pid ?? -1;
  const main0 = mainThreadCpuSeconds(child);
  const total0 = cpuSeconds(child);
  const threads0 = threadStats(pid);
  const core0 = core0Ticks();
  return (rows) => cpuSince(child, rows, main0, total0, threads0, core0);
}

function cpuSince(
  child: ChildProcess,
  rows: number,
  main0: number,
  total0: number,
  threads0: Map<string, ThreadStats>,
  core0: number[],
): RunCpu {
  const pid = child.pid ?? -1;
  const threads1 = threadStats(pid);
  const core1 = core0Ticks();
  const perRow = (s: number): number => (s * 1e6) / rows;
  const threads: RunCpu['threads'] = [];
  for (const [id, t] of threads1) {
    const tid = Number(id);
    if (tid === pid) continue;
    const b = threads0.get(id) ?? { user: 0, sys: 0 };
    const used = t.user + t.sys - b.user - b.sys;
    if (perRow(used) >= 0.01) threads.push({ tid, us: perRow(used), sysPct: (100 * (t.sys - b.sys)) / used });
  }
  threads.sort((a, b) => a.tid - b.tid);
  const d = dirtyKb();
  const busy = (t: number[]): number => t.reduce((a, v, i) => (i === 3 || i === 4 ? a : a + v), 0);
  const totalUs = perRow(cpuSeconds(child) - total0);
  const m0 = threads0.get(String(pid));
  const m1 = threads1.get(String(pid));
  const per100 = (n: number): number => (n * 100) / rows;
  const mainSched =
    m0 === undefined || m1 === undefined
      ? { faults: NaN, vol: NaN, invol: NaN, waitUs: NaN }
      : {
          faults: per100(m1.minorFaults - m0.minorFaults),
          vol: per100(m1.wakes - m0.wakes),
          invol: per100(m1.preempted - m0.preempted),
          waitUs: per100((m1.wait - m0.wait) * 1e6),
        };
  return {
    mainSched,
    mainUs: perRow(mainThreadCpuSeconds(child) - main0),
    totalUs,
    threads,
    core0SysUs: perRow(((core1[2] ?? 0) - (core0[2] ?? 0)) / 100),
    core0SoftirqUs: perRow(((core1[6] ?? 0) - (core0[6] ?? 0)) / 100),
    core0OthersUs: perRow((busy(core1) - busy(core0)) / 100) - totalUs,
    dirtyKbAfter: d.dirty,
    writebackKbAfter: d.writeback,
  };
}

/** One line for a rep's run on stderr: rows/s, CPU µs a row by thread (tid:µs/sys %), core 0's system and softirq. */
function repLine(label: string, rowsPerSec: number, c: RunCpu): string {
  const thr = c.threads.map((t) => `${t.tid}:${t.us.toFixed(2)}/${t.sysPct.toFixed(0)}%`).join(' ');
  return (
    `${label} ${Math.round(rowsPerSec)} rows/s main ${c.mainUs.toFixed(2)} total ${c.totalUs.toFixed(2)} µs/row ` +
    `[${thr}] core0 sys ${c.core0SysUs.toFixed(2)} softirq ${c.core0SoftirqUs.toFixed(2)} others ${c.core0OthersUs.toFixed(2)} µs/row dirty ${c.dirtyKbAfter} wb ${c.writebackKbAfter} kB; ` +
    `main a 100 rows: faults ${c.mainSched.faults.toFixed(3)} vol ${c.mainSched.vol.toFixed(3)} invol ${c.mainSched.invol.toFixed(3)} wait ${c.mainSched.waitUs.toFixed(1)} µs`
  );
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
// In BENCH_ONLY's order: one logging server runs them one after the other, so the first grows the
// page cache (and the log, up to the 1 GiB retention cap) and the later ones write after it. On
// this VM that order shows (jsonlog lane, 6 December): pages the guest has not used lately cost
// ~12 µs each on first touch against ~2, and the log's page cache grows into them.
workloads.sort((a, b) => only.indexOf(`${a.format}-${a.batch}`) - only.indexOf(`${b.format}-${b.batch}`));
if (workloads.length === 0) throw new Error(`BENCH_ONLY=${process.env.BENCH_ONLY} names no workload`);
const aa = process.env.BENCH_AA === '1';
const simultaneous = process.env.BENCH_SIMULTANEOUS === '1';
const lossMode = process.env.BENCH_LOSS === '1';
const LOSS_LOAD = Number(process.env.BENCH_LOSS_LOAD ?? 0.8);
const LOSS_SECONDS = Number(process.env.BENCH_LOSS_SECONDS ?? 10);
const LOSS_DRAIN_S = Number(process.env.BENCH_LOSS_DRAIN_S ?? 30);

function lua(w: Workload, token: string, tag: string): string {
  return writeLua(work, { format: w.format, batch: w.batch, token, tag });
}

interface Started {
  server: BenchServer;
  proc: ChildProcess;
  home: string;
  token: string;
  inferUrl: string;
  pipelineId: number;
}

async function start(tag: string, extra: string[]): Promise<Started> {
  const s = await startQuoll(work, tag, extra);
  const pipeline = await deployModel(s.client, 'benchmodel', modelPath, 'benchpipe');
  // Its admission probe answered before the other server starts and before any warm-up: inline
  // or in the workers is ~1.5× the CPU a request apart at JSON batch 1 on one core.
  await awaitInlineVerdict(s, tag);
  return {
    server: s,
    proc: s.proc,
    home: s.home,
    token: s.token,
    inferUrl: pipeline.url(),
    pipelineId: pipeline.id,
  };
}

function logBytes(s: Started): number {
  const dir = join(s.home, 'inference-logs', String(s.pipelineId));
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

/** The on/off throughput comparison (the default). */
async function measureOnOff(): Promise<void> {
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
      const perRep: Record<string, unknown>[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        let x = { reqPerSec: NaN, p99Ms: NaN, non2xx: 0 };
        let y = x;
        const runOn = (): RunCpu =>
          cpuPerRow(on.proc, () => {
            x = wrk({ url: on.inferUrl, luaScript: onLua, connections: CONNECTIONS, seconds: SECONDS });
            return x.reqPerSec * w.batch * SECONDS;
          });
        const runOff = (): RunCpu =>
          cpuPerRow(off.proc, () => {
            y = wrk({ url: off.inferUrl, luaScript: offLua, connections: CONNECTIONS, seconds: SECONDS });
            return y.reqPerSec * w.batch * SECONDS;
          });
        // Which server goes first alternates: in an A/A run (3 December) the server measured
        // first in every pair was 3-4 % slower, a bias that always fell on "on".
        let cx: RunCpu;
        let cy: RunCpu;
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
        // Each rep in order (stderr and the JSON results), so a slow "on" shows as a trend, spikes or always.
        const first = rep % 2 === 0 ? 'on' : 'off';
        process.stderr.write(
          `${w.format}-${w.batch} rep ${rep} (${first} first, ${new Date().toISOString().slice(11, 19)}) on/off ${(x.reqPerSec / y.reqPerSec).toFixed(3)}, CPU on/off ${(cy.totalUs / cx.totalUs).toFixed(3)}\n` +
            `  ${repLine('on ', x.reqPerSec * w.batch, cx)}\n  ${repLine('off', y.reqPerSec * w.batch, cy)}\n`,
        );
        perRep.push({
          rep,
          first,
          onRowsPerSec: x.reqPerSec * w.batch,
          offRowsPerSec: y.reqPerSec * w.batch,
          on: cx,
          off: cy,
        });
      }
      const A = median(a);
      const B = median(b);
      const row = {
        ...w,
        connections: CONNECTIONS,
        onRowsPerSec: A,
        offRowsPerSec: B,
        onOverOff: A / B,
        // Off's CPU a row over on's, median over the reps: what on/off would read if both servers had
        // core 0 to themselves (rows/s also moves with what else runs on the core in each half of a pair).
        cpuOnOverOff: median(cpu.offTotal.map((off, i) => off / (cpu.onTotal[i] ?? NaN))),
        onP99Ms: median(ap99),
        offP99Ms: median(bp99),
        onMainCpuUsPerRow: median(cpu.onMain),
        offMainCpuUsPerRow: median(cpu.offMain),
        onTotalCpuUsPerRow: median(cpu.onTotal),
        offTotalCpuUsPerRow: median(cpu.offTotal),
        non2xx: errors,
      };
      results.push({ ...row, perRep });
      table.push([
        w.format,
        w.batch,
        Math.round(A),
        Math.round(B),
        A / B,
        row.cpuOnOverOff,
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
    checkVerdicts([
      { label: 'on', server: on.server },
      { label: 'off', server: off.server },
    ]);
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
      'CPU on/off',
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
}

/**
 * BENCH_WRITER_CPU=<cpus> (a diagnostic, simultaneous mode): after the warm-up, the logging
 * server's log writer thread — the thread that dirtied the most file pages — moves to those cores
 * (`taskset -pc`), the rest of both servers staying on core 0.
 */
function moveWriter(pid: number, cpus: string): void {
  let writer: string | null = null;
  let most = 0;
  for (const [tid, t] of threadStats(pid)) if (t.writeBytes > most) [writer, most] = [tid, t.writeBytes];
  if (writer === null) throw new Error('BENCH_WRITER_CPU: the logging server has no thread that wrote');
  execFileSync('taskset', ['-pc', cpus, writer], { stdio: 'inherit' });
}

/** Busy ticks (all but idle and iowait) of /proc/stat's cpu0 columns. */
function busyTicks(t: number[]): number {
  return t.reduce((a, v, i) => (i === 3 || i === 4 ? a : a + v), 0);
}

/**
 * BENCH_SIMULTANEOUS=1: both servers (core 0) loaded at the same time, each by its own wrk
 * (BENCH_CONNECTIONS split in two, both wrk on core 1), so that a slow stretch of the host falls
 * on both at once. Which wrk starts first swaps every rep. Per rep: each server's rows/s, CPU µs a
 * row (main thread, whole process) and share of core 0; rows/s on/off and CPU on/off (off's CPU a
 * row / on's). Headline: the median over reps of CPU on/off, the rows/s ratio beside it.
 */
async function measureSimultaneous(): Promise<void> {
  const loadBefore = loadAverage();
  const on = await start('on', []);
  const off = await start('off', aa ? [] : ['--no-inference-logs']);
  const half = Math.max(1, Math.floor(CONNECTIONS / 2));
  const results: Record<string, unknown>[] = [];
  const table: (string | number)[][] = [];
  try {
    for (const w of workloads) {
      const onLua = lua(w, on.token, 'on');
      const offLua = lua(w, off.token, 'off');
      const both = async (
        seconds: number,
        onFirst: boolean,
      ): Promise<[Awaited<ReturnType<typeof wrkAsync>>, Awaited<ReturnType<typeof wrkAsync>>]> => {
        const go = (s: Started, l: string): ReturnType<typeof wrkAsync> =>
          wrkAsync({ url: s.inferUrl, luaScript: l, connections: half, seconds });
        if (onFirst) {
          const x = go(on, onLua);
          const y = go(off, offLua);
          return [await x, await y];
        }
        const y = go(off, offLua);
        const x = go(on, onLua);
        return [await x, await y];
      };
      await both(WARMUP, true);
      if (process.env.BENCH_WRITER_CPU !== undefined)
        moveWriter(on.proc.pid ?? -1, process.env.BENCH_WRITER_CPU);
      const perRep: Record<string, unknown>[] = [];
      const rowsRatio: number[] = [];
      const cpuRatio: number[] = [];
      const onRows: number[] = [];
      const offRows: number[] = [];
      const cpu = {
        onMain: [] as number[],
        offMain: [] as number[],
        onTotal: [] as number[],
        offTotal: [] as number[],
      };
      const onShare: number[] = [];
      let errors = 0;
      for (let rep = 0; rep < REPS; rep++) {
        const onFirst = rep % 2 === 0;
        const c0 = core0Ticks();
        const t0 = performance.now();
        const onOs0 = cpuSeconds(on.proc);
        const offOs0 = cpuSeconds(off.proc);
        const markOn = cpuMark(on.proc);
        const markOff = cpuMark(off.proc);
        const [x, y] = await both(SECONDS, onFirst);
        const cx = markOn(x.reqPerSec * w.batch * SECONDS);
        const cy = markOff(y.reqPerSec * w.batch * SECONDS);
        const onCpuS = cpuSeconds(on.proc) - onOs0;
        const offCpuS = cpuSeconds(off.proc) - offOs0;
        const wallS = (performance.now() - t0) / 1000;
        const c1 = core0Ticks();
        const coreBusyS = (busyTicks(c1) - busyTicks(c0)) / 100;
        const r = x.reqPerSec / y.reqPerSec;
        const c = cy.totalUs / cx.totalUs;
        const share = onCpuS / (onCpuS + offCpuS);
        rowsRatio.push(r);
        cpuRatio.push(c);
        onShare.push(share);
        onRows.push(x.reqPerSec * w.batch);
        offRows.push(y.reqPerSec * w.batch);
        cpu.onMain.push(cx.mainUs);
        cpu.offMain.push(cy.mainUs);
        cpu.onTotal.push(cx.totalUs);
        cpu.offTotal.push(cy.totalUs);
        errors += x.non2xx + y.non2xx;
        // The core's time over the rep (wall, from just before the first wrk to just after both): each
        // server's CPU seconds / wall, and everything else on core 0.
        const othersPct = (100 * (coreBusyS - onCpuS - offCpuS)) / wallS;
        // In this mode core 0's other tasks are the core's busy time less BOTH servers' (not each one's own).
        cx.core0OthersUs = ((coreBusyS - onCpuS - offCpuS) * 1e6) / (x.reqPerSec * w.batch * SECONDS);
        cy.core0OthersUs = ((coreBusyS - onCpuS - offCpuS) * 1e6) / (y.reqPerSec * w.batch * SECONDS);
        const first = onFirst ? 'on' : 'off';
        process.stderr.write(
          `${w.format}-${w.batch} rep ${rep} (simultaneous, ${first}'s wrk first, ${new Date().toISOString().slice(11, 19)}) ` +
            `on/off ${r.toFixed(3)}, CPU on/off ${c.toFixed(3)}; core 0 over ${wallS.toFixed(2)} s: on ${((100 * onCpuS) / wallS).toFixed(1)} %, ` +
            `off ${((100 * offCpuS) / wallS).toFixed(1)} %, others ${othersPct.toFixed(1)} %; on's share of the two ${(100 * share).toFixed(1)} %\n` +
            `  ${repLine('on ', x.reqPerSec * w.batch, cx)}\n  ${repLine('off', y.reqPerSec * w.batch, cy)}\n`,
        );
        perRep.push({
          rep,
          first,
          wallS,
          onRowsPerSec: x.reqPerSec * w.batch,
          offRowsPerSec: y.reqPerSec * w.batch,
          onCpuS,
          offCpuS,
          core0BusyS: coreBusyS,
          onShare: share,
          on: cx,
          off: cy,
        });
      }
      const row = {
        ...w,
        mode: 'simultaneous',
        connectionsPerServer: half,
        // The headline: median over reps of off's CPU a row / on's (each server's CPU normalised by its
        // own rows, so not biased by how the scheduler split the core between them).
        cpuOnOverOff: median(cpuRatio),
        // Median over reps of each rep's rows/s on/off (biased toward on if it gets more of the core).
        onOverOff: median(rowsRatio),
        onShareOfCore: median(onShare),
        onRowsPerSec: median(onRows),
        offRowsPerSec: median(offRows),
        onMainCpuUsPerRow: median(cpu.onMain),
        offMainCpuUsPerRow: median(cpu.offMain),
        onTotalCpuUsPerRow: median(cpu.onTotal),
        offTotalCpuUsPerRow: median(cpu.offTotal),
        non2xx: errors,
      };
      results.push({ ...row, perRep });
      table.push([
        w.format,
        w.batch,
        row.cpuOnOverOff,
        row.onOverOff,
        100 * row.onShareOfCore,
        Math.round(row.onRowsPerSec),
        Math.round(row.offRowsPerSec),
        row.onMainCpuUsPerRow,
        row.offMainCpuUsPerRow,
        row.onTotalCpuUsPerRow,
        row.offTotalCpuUsPerRow,
        errors,
      ]);
      console.log(JSON.stringify(row));
    }
    checkVerdicts([
      { label: 'on', server: on.server },
      { label: 'off', server: off.server },
    ]);
  } finally {
    await stopAll([on.proc, off.proc]);
  }
  console.log(
    `\nsimultaneous${aa ? ', A/A (both servers log)' : ''}; model: ${modelName}; ${half} connections per server; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}; load ${loadBefore}–${loadAverage()}; ` +
      `log bytes written by the logging server: ${(logBytes(on) / 1024 ** 2).toFixed(1)} MiB`,
  );
  printTable(
    [
      'format',
      'batch',
      'CPU on/off',
      'rows/s on/off',
      'on % of CPU',
      'on rows/s',
      'off rows/s',
      'on main µs/row',
      'off main µs/row',
      'on total µs/row',
      'off total µs/row',
      'non2xx',
    ],
    table,
  );
  writeResults(aa ? 'logging-simultaneous-aa' : 'logging-simultaneous', {
    model: useFixture ? 'rf_model.onnx' : 'synthetic',
    connectionsPerServer: half,
    warmupS: WARMUP,
    seconds: SECONDS,
    reps: REPS,
    results,
  });
}

/** The first tag of the fixed-rate load's rows: above any first feature of the bench rows (wrk's, untagged). */
const FIRST_TAG = 2_000_000;
/** Float32 holds every integer up to 2^24 exactly: the tags must stay below it. */
const LAST_TAG = 2 ** 24;

/** A `batch`-row body of `format` whose rows' first feature the load generator overwrites with a tag. */
function taggableBody(
  format: 'json' | 'arrow',
  batch: number,
): { parts?: string[]; template?: string; offsets?: number[] } {
  const r = benchRows(batch);
  if (format === 'arrow') {
    const bytes = Buffer.from(tableToIpcFile(makeArrowTensorTable(r, 18)));
    const at = bytes.indexOf(Buffer.from(r.buffer, r.byteOffset, r.byteLength));
    if (at < 0) throw new Error('the rows are not contiguous in the Arrow body');
    const offsets = Array.from({ length: batch }, (_, i) => at + i * 18 * 4);
    // The patched body must read back with the tags where the log will show them.
    const check = Buffer.from(bytes);
    offsets.forEach((o, i) => check.writeFloatLE(FIRST_TAG + i, o));
    const col = tableFromIPC(check).getChild('tensor');
    for (let i = 0; i < batch; i++)
      if (Number((col?.get(i) as { get(j: number): number } | null)?.get(0)) !== FIRST_TAG + i)
        throw new Error(`row ${i} of the patched Arrow body does not carry its tag`);
    return { template: bytes.toString('base64'), offsets };
  }
  const rest = (i: number): string => `,${Array.from(r.subarray(i * 18 + 1, i * 18 + 18)).join(',')}]}`;
  const parts = ['[{"tensor":['];
  for (let i = 1; i < batch; i++) parts.push(`${rest(i - 1)},{"tensor":[`);
  parts.push(`${rest(batch - 1)}]`);
  const check = JSON.parse(parts.map((p, i) => (i === 0 ? p : `${FIRST_TAG + i - 1}${p}`)).join('')) as {
    tensor: number[];
  }[];
  if (
    check.length !== batch ||
    check.some((row, i) => row.tensor[0] !== FIRST_TAG + i || row.tensor.length !== 18)
  )
    throw new Error('the JSON body template does not carry its tags');
  return { parts };
}

interface LoadReport {
  total: number;
  sent: number;
  answered: number;
  acked: number;
  non2xx: number;
  errors: number;
  unanswered: number;
  sendSeconds: number;
  lastAnswerS: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  maxLateMs: number;
  ackedRequests: number[];
}

/** Runs bench/fixed-rate-load.js (its own process, on wrk's core) with `cfg`; resolves with its report. */
function fixedRateLoad(cfg: Record<string, unknown>): Promise<LoadReport> {
  const cfgPath = join(work, 'load.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const child = spawnPinned('1', process.execPath, [
    fileURLToPath(new URL('./fixed-rate-load.js', import.meta.url)),
    cfgPath,
  ]);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as LoadReport)
        : reject(new Error(`load generator failed (${String(code)}): ${err}`)),
    );
  });
}

/** How many times each tag (≥ FIRST_TAG) appears in the pipeline's log since `from`, read back through exportLogs. */
async function loggedTags(p: Pipeline, from: Date, dir: string): Promise<Map<number, number>> {
  rmSync(dir, { recursive: true, force: true });
  const summary = await p.exportLogs({
    directory: dir,
    arrow: true,
    start: from,
    end: new Date(Date.now() + 1000),
    dataSizeLimit: '4 GiB',
  });
  if (summary.truncated) throw new Error('the export was cut short by its data size limit');
  const tags = new Map<number, number>();
  for (const f of summary.files) {
    const t = tableFromIPC(readFileSync(f));
    const col = t.getChild('in.tensor');
    for (let i = 0; i < t.numRows; i++) {
      const tag = Number((col?.get(i) as { get(j: number): number } | null)?.get(0));
      if (tag >= FIRST_TAG) tags.set(tag, (tags.get(tag) ?? 0) + 1);
    }
  }
  return tags;
}

/**
 * BENCH_LOSS=1: for each workload, the logging server's most requests/s (wrk, median of
 * BENCH_REPS), then an open-loop load at BENCH_LOSS_LOAD of it for BENCH_LOSS_SECONDS, every
 * row tagged; then the log is read back through exportLogs until every acknowledged row is
 * there or BENCH_LOSS_DRAIN_S pass. Target: no acknowledged row missing, none twice.
 */
async function measureRowsLost(): Promise<void> {
  const firstFeatureMax = Math.max(...Array.from(benchRows(1000).filter((_, i) => i % 18 === 0)));
  if (firstFeatureMax >= FIRST_TAG)
    throw new Error(`a bench row's first feature (${firstFeatureMax}) reaches the tags`);
  const loadBefore = loadAverage();
  const s = await startQuoll(work, 'loss', []);
  const results: Record<string, unknown>[] = [];
  const table: (string | number)[][] = [];
  try {
    for (const w of workloads) {
      const name = `loss-${w.format}-${w.batch}`;
      const p = await deployModel(s.client, `model-${name}`, modelPath, name);
      const luaScript = writeLua(work, { format: w.format, batch: w.batch, token: s.token, tag: name });
      wrk({ url: p.url(), luaScript, connections: CONNECTIONS, seconds: WARMUP });
      const max = median(
        Array.from(
          { length: REPS },
          () => wrk({ url: p.url(), luaScript, connections: CONNECTIONS, seconds: SECONDS }).reqPerSec,
        ),
      );
      const rate = LOSS_LOAD * max;
      if (FIRST_TAG + Math.round(rate * LOSS_SECONDS) * w.batch >= LAST_TAG)
        throw new Error(
          `${name}: ${Math.round(rate * LOSS_SECONDS) * w.batch} rows do not fit the float32 tags`,
        );
      const from = new Date(Date.now() - 100);
      const load = await fixedRateLoad({
        url: p.url(),
        token: s.token,
        contentType: w.format === 'arrow' ? 'application/vnd.apache.arrow.file' : 'application/json',
        batch: w.batch,
        rate,
        seconds: LOSS_SECONDS,
        connections: CONNECTIONS,
        firstTag: FIRST_TAG,
        ...taggableBody(w.format, w.batch),
      });
      const loadDone = performance.now();
      const ackedRows = load.acked * w.batch;
      let tags = new Map<number, number>();
      let missing = ackedRows;
      // Rows reach the log after their answer (a writer thread): read it again until all are there.
      let reads = 0;
      let missingAtFirstRead = NaN;
      for (;;) {
        tags = await loggedTags(p, from, join(work, 'export'));
        reads++;
        missing = 0;
        for (const k of load.ackedRequests)
          for (let i = 0; i < w.batch; i++) if (!tags.has(FIRST_TAG + k * w.batch + i)) missing++;
        if (reads === 1) missingAtFirstRead = missing;
        if (missing === 0 || performance.now() - loadDone > LOSS_DRAIN_S * 1000) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const visibleAfterS = (performance.now() - loadDone) / 1000;
      const ackedSet = new Set(load.ackedRequests);
      let loggedRows = 0;
      let duplicates = 0;
      let loggedUnacked = 0;
      for (const [tag, n] of tags) {
        loggedRows += n;
        duplicates += n - 1;
        if (!ackedSet.has(Math.floor((tag - FIRST_TAG) / w.batch))) loggedUnacked += n;
      }
      const loadSummary = { ...load, ackedRequests: undefined }; // (JSON leaves it out)
      const row = {
        ...w,
        connections: CONNECTIONS,
        maxReqPerSec: max,
        load: LOSS_LOAD,
        targetReqPerSec: rate,
        // Answered over the time until the last answer: below the target rate when the server fell behind.
        achievedReqPerSec: load.answered / Math.max(load.sendSeconds, load.lastAnswerS),
        seconds: LOSS_SECONDS,
        ...loadSummary,
        ackedRows,
        loggedRows,
        lostRows: missing,
        duplicateRows: duplicates,
        loggedUnackedRows: loggedUnacked,
        checkedAfterS: visibleAfterS,
        logReads: reads,
        missingAtFirstRead,
      };
      results.push(row);
      table.push([
        w.format,
        w.batch,
        Math.round(max),
        Math.round(rate),
        row.achievedReqPerSec,
        load.sent,
        ackedRows,
        loggedRows,
        missing,
        duplicates,
        load.non2xx + load.errors + load.unanswered,
        load.latencyP99Ms ?? NaN,
        load.maxLateMs,
        visibleAfterS,
      ]);
      console.log(JSON.stringify(row));
    }
  } finally {
    await stopAll([s.proc]);
  }
  console.log(
    `\nrows lost at ${LOSS_LOAD * 100} % of the logging server's most requests/s; model: ${modelName}; ${CONNECTIONS} connections; ` +
      `max: warmup ${WARMUP}s, median of ${REPS} × ${SECONDS}s (wrk); load ${LOSS_SECONDS}s open-loop; machine load ${loadBefore}–${loadAverage()}`,
  );
  printTable(
    [
      'format',
      'batch',
      'max req/s',
      'load req/s',
      'achieved',
      'sent',
      'acked rows',
      'logged rows',
      'lost',
      'doubled',
      'failed req',
      'p99 ms',
      'gen late ms',
      'checked after s',
    ],
    table,
  );
  writeResults('logging-loss', {
    model: useFixture ? 'rf_model.onnx' : 'synthetic',
    connections: CONNECTIONS,
    warmupS: WARMUP,
    seconds: SECONDS,
    reps: REPS,
    load: LOSS_LOAD,
    loadSeconds: LOSS_SECONDS,
    drainS: LOSS_DRAIN_S,
    results,
  });
}

await (lossMode ? measureRowsLost() : simultaneous ? measureSimultaneous() : measureOnOff());
rmSync(work, { recursive: true, force: true });
