// Where logging's CPU goes, thread by thread: one Quoll server (logging on; off with
// BENCH_QUOLL_ARGS=--no-inference-logs) pinned to core 0, deployed with the bench model, warmed
// up with wrk (CONNECTIONS, default 16) for WARMUP_S (default 10), then CPU µs per request and per row of
// every thread from /proc/<pid>/task (and its minor page faults) over a wrk run of `seconds`. Node names every thread
// "node": the request thread's id is the process id, the four V8 platform (GC/compiler) threads
// come right after it, the log writer thread before the model worker. Each thread also shows
// its wakes per second (voluntary context switches: it slept and was woken). Then core 0 as a
// whole from /proc/stat: its busy time a request against the server's own threads' (the rest is
// kernel threads, interrupts, softirqs and steal on the server's core).
// PERF=1 runs `perf record -F 1999 -g` on the server during the measured run (PERF_OUT, default
// /tmp/wtp.perf.data; NODE_ARGS=--perf-basic-prof names JIT frames; PERF_ARGS replaces
// `-F 1999 -g`); PERF_STAT=<events> counts events per thread over it instead (`perf stat
// --per-thread -e <events>`). Each thread's line shows its system time in µs; the glibc heap
// (`[heap]`) and RSS are read before and after the run. TRACE_OUT=<file> appends
// the server's stdout and stderr there (e.g. with NODE_ARGS="--trace-opt --trace-deopt"), with
// markers around the measured run. REFERENCE=1 probes F1 instead (bench/reference-server.ts, the
// one-thread fastify + onnxruntime server of the serving bench, pinned to core 0 the same way), to
// compare its request thread with Quoll's (NODE_ARGS apply to it too). QUOLL_CLI: the Quoll build's
// dist/cli/main.js (default this checkout's), e.g. a base build to compare with.
// With logging on it also prints what the log wrote in the measured run: the growth of its segment
// files (bytes a row, MB/s) and the writer thread's CPU a MB — the thread that dirtied the most
// file pages (`write_bytes` of /proc/<pid>/task/<tid>/io), so no guessing by thread order. Per
// byte is how the writer's kernel time compares across formats: a JSON row was 160 B (its inputs
// Float64), an Arrow row of the bench model 88 B (Float32); jsonlog lane, 6 December. Since 7
// December a JSON row is 88 B too (a column that fed a float32 input is logged as Float32).
// Each thread's line ends with the scheduler's counters a request: voluntary and involuntary
// context switches, time slices, run-queue wait (schedstat) and major faults (faults lane, 7 December).
// Usage: [NODE_ARGS=…] [PERF=1] [WRITER_CPU=1] npx tsx bench/writer-thread-probe.ts [format=json] [batch=100] [seconds=6]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  deployModel,
  keepHarnessOffServerCore,
  loadAverage,
  spawnPinned,
  startQuoll,
  stopAll,
  waitFor,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';
import { threadStats } from './thread-stats.js';

// The harness on wrk's core, off the server's (it ran there in 4.5 ms slices, 6 December 00:37).
keepHarnessOffServerCore();
const [fmt = 'json', batchArg = '100', secondsArg = '6'] = process.argv.slice(2);
const format: BodyFormat = fmt === 'arrow' || fmt === 'oip' ? fmt : 'json';
const batch = Number(batchArg);
const seconds = Number(secondsArg);
const work = mkdtempSync(join(tmpdir(), 'quoll-wtp-'));
const modelPath = writeBenchModel(work);
const extra = (process.env.BENCH_QUOLL_ARGS ?? '').split(' ').filter(Boolean);
const nodeArgs = (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean);
const reference = process.env.REFERENCE === '1';
/** The server probed: Quoll with the bench pipeline deployed, or F1 (REFERENCE=1). */
async function startServer(): Promise<{ proc: ChildProcess; url: string; lua: string; home?: string }> {
  if (reference) {
    const script = fileURLToPath(new URL('./reference-server.ts', import.meta.url));
    const proc = spawnPinned('0', process.execPath, [
      ...nodeArgs,
      '--import',
      'tsx',
      script,
      modelPath,
      '8479',
      '1',
    ]);
    await waitFor(proc, /listening on/);
    return { proc, url: 'http://127.0.0.1:8479/infer', lua: writeLua(work, { format, batch, tag: 'f' }) };
  }
  const quoll = await startQuoll(work, 'home', extra, { nodeArgs, cli: process.env.QUOLL_CLI });
  const pipeline = await deployModel(quoll.client, 'benchmodel', modelPath, 'benchpipe');
  return {
    proc: quoll.proc,
    home: quoll.home,
    url: pipeline.url(),
    lua: writeLua(work, { format, batch, token: quoll.token, tag: 'q' }),
  };
}
const server = await startServer();
const traceOut = process.env.TRACE_OUT;
if (traceOut !== undefined) {
  server.proc.stdout?.on('data', (d: Buffer) => appendFileSync(traceOut, d));
  server.proc.stderr?.on('data', (d: Buffer) => appendFileSync(traceOut, d));
}
const lua = server.lua;
wrk({
  url: server.url,
  luaScript: lua,
  connections: Number(process.env.CONNECTIONS ?? 16),
  seconds: Number(process.env.WARMUP_S ?? 10),
});

/** The columns of /proc/stat's `cpu0` line, in order (ticks of 1/100 s). */
const CORE0_COLUMNS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
function core0Ticks(): number[] {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('cpu0 '));
  const fields = (line ?? '')
    .split(/\s+/)
    .slice(1, 1 + CORE0_COLUMNS.length)
    .map(Number);
  return CORE0_COLUMNS.map((_, i) => fields[i] ?? 0);
}

const pid = server.proc.pid ?? 0;
// WRITER_CPU=<cpus> (a diagnostic): after the warm-up, the log writer thread — the thread that
// dirtied the most file pages so far — is moved to those cores (`taskset -pc`), the rest of the
// server staying on core 0, to see what the writer's sharing of the request thread's core costs.
const writerCpu = process.env.WRITER_CPU;
if (writerCpu !== undefined) {
  let writerTid: string | null = null;
  let most = 0;
  for (const [tid, t] of threadStats(pid)) if (t.writeBytes > most) [writerTid, most] = [tid, t.writeBytes];
  if (writerTid === null) throw new Error('WRITER_CPU: no thread of the server has written (logging off?)');
  execFileSync('taskset', ['-pc', writerCpu, writerTid], { stdio: 'inherit' });
}
const load0 = loadAverage();
// PERF_ARGS replaces `-F 1999 -g` (e.g. "-e syscalls:sys_enter_brk,page-faults -c 1 -g"); PERF_STAT=<events>
// counts those events per thread over the measured run instead (`perf stat --per-thread`).
const perfArgs = (process.env.PERF_ARGS ?? '-F 1999 -g').split(' ').filter(Boolean);
const perfStat = process.env.PERF_STAT;
const perf =
  perfStat !== undefined
    ? spawn(
        'perf',
        ['stat', '--per-thread', '-e', perfStat, '-p', String(pid), '--', 'sleep', String(seconds)],
        { stdio: 'inherit' },
      )
    : process.env.PERF === '1'
      ? spawn(
          'perf',
          [
            'record',
            ...perfArgs,
            '-p',
            String(pid),
            '-o',
            process.env.PERF_OUT ?? '/tmp/wtp.perf.data',
            '--',
            'sleep',
            String(seconds),
          ],
          { stdio: 'inherit' },
        )
      : null;
if (traceOut !== undefined) appendFileSync(traceOut, '=== MEASURE START ===\n');
/** The server's glibc heap (the `[heap]` mapping, grown by brk) and resident set, in MiB. */
function memoryMiB(): { heap: number; rss: number } {
  try {
    const heapLine = readFileSync(`/proc/${pid}/maps`, 'utf8')
      .split('\n')
      .find((l) => l.endsWith('[heap]'));
    const [from = '0', to = '0'] = (heapLine ?? '').split(' ')[0]?.split('-') ?? [];
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
    return { heap: (Number.parseInt(to, 16) - Number.parseInt(from, 16)) / 2 ** 20, rss: Number(rss) / 1024 };
  } catch {
    return { heap: 0, rss: 0 };
  }
}
/** The log's segment files (`<home>/inference-logs/<pipeline>/<seq>.arrows`) and their sizes. */
function segmentSizes(): Map<string, number> {
  const out = new Map<string, number>();
  const root = server.home === undefined ? '' : join(server.home, 'inference-logs');
  if (root === '' || !existsSync(root)) return out;
  for (const dir of readdirSync(root))
    for (const f of readdirSync(join(root, dir)))
      if (f.endsWith('.arrows')) {
        try {
          out.set(join(dir, f), statSync(join(root, dir, f)).size);
        } catch {
          // Deleted by retention meanwhile.
        }
      }
  return out;
}
const segmentsBefore = segmentSizes();
const memoryBefore = memoryMiB();
const core0Before = core0Ticks();
const before = threadStats(pid);
const r = wrk({
  url: server.url,
  luaScript: lua,
  connections: Number(process.env.CONNECTIONS ?? 16),
  seconds,
});
const after = threadStats(pid);
const core0After = core0Ticks();
const memoryAfter = memoryMiB();
const segmentsAfter = segmentSizes();
if (traceOut !== undefined) appendFileSync(traceOut, '=== MEASURE END ===\n');
if (perf !== null && perf.exitCode === null) await new Promise((res) => perf.once('exit', res));
const requests = r.reqPerSec * seconds;
console.log(
  `${reference ? 'F1 ' : ''}${format} ${batch} × ${process.env.CONNECTIONS ?? 16}: ${r.reqPerSec.toFixed(0)} req/s, non-2xx ${r.non2xx}, load ${load0} -> ${loadAverage()}`,
);
console.log(
  `  memory: glibc heap ${memoryBefore.heap.toFixed(1)} -> ${memoryAfter.heap.toFixed(1)} MiB, RSS ${memoryBefore.rss.toFixed(1)} -> ${memoryAfter.rss.toFixed(1)} MiB`,
);
let total = 0;
const ZERO = {
  user: 0,
  sys: 0,
  minorFaults: 0,
  majorFaults: 0,
  wakes: 0,
  preempted: 0,
  run: 0,
  wait: 0,
  slices: 0,
  writeBytes: 0,
};
const rows: [string, number, number, number, number, number, string][] = [];
for (const [tid, t] of after) {
  const b = before.get(tid) ?? ZERO;
  const used = t.user + t.sys - b.user - b.sys;
  total += used;
  if (used > 0)
    rows.push([
      tid === String(pid) ? `${tid} (request thread)` : tid,
      (used * 1e6) / requests,
      (t.wakes - b.wakes) / seconds,
      (t.sys - b.sys) / used,
      (t.minorFaults - b.minorFaults) / requests,
      ((t.run - b.run) * 1e6) / requests,
      // The scheduler's view a request: switches (voluntary: slept and was woken; involuntary:
      // preempted while runnable), run-queue wait, slices, major faults.
      `vol ${((t.wakes - b.wakes) / requests).toFixed(3)} invol ${((t.preempted - b.preempted) / requests).toFixed(3)} ` +
        `slices ${((t.slices - b.slices) / requests).toFixed(3)} wait ${(((t.wait - b.wait) * 1e6) / requests).toFixed(1)} µs ` +
        `majflt ${t.majorFaults - b.majorFaults}`,
    ]);
}
rows.sort((a, b) => Number.parseInt(a[0]) - Number.parseInt(b[0]));
// schedstat: the same CPU to the nanosecond (the other columns count 10 ms ticks).
for (const [name, us, wakes, sysShare, faults, run, sched] of rows)
  console.log(
    `  ${name.padEnd(24)} ${us.toFixed(1).padStart(7)} µs/request ${(us / batch).toFixed(3)} µs/row ${wakes.toFixed(0).padStart(6)} wakes/s ${(sysShare * 100).toFixed(0).padStart(3)} % system (${(us * sysShare).toFixed(1)} µs) ${faults.toFixed(2).padStart(7)} minor faults/request (schedstat ${run.toFixed(1)} µs/request; a request: ${sched})`,
  );
console.log(
  `  ${'total'.padEnd(24)} ${((total * 1e6) / requests).toFixed(1).padStart(7)} µs/request ${((total * 1e6) / requests / batch).toFixed(3)} µs/row`,
);
if (segmentsAfter.size > 0) {
  let grown = 0;
  for (const [f, size] of segmentsAfter) grown += size - (segmentsBefore.get(f) ?? 0);
  const gone = [...segmentsBefore.keys()].filter((f) => !segmentsAfter.has(f)).length;
  // The writer: the thread that dirtied the most file pages in the run.
  let writer: [string, number, number] | null = null;
  for (const [tid, t] of after) {
    const b = before.get(tid);
    if (b === undefined) continue;
    const dirtied = t.writeBytes - b.writeBytes;
    if (dirtied > 0 && (writer === null || dirtied > writer[1])) writer = [tid, dirtied, t.run - b.run];
  }
  const mb = grown / 1e6;
  console.log(
    `  log: ${mb.toFixed(1)} MB written in ${seconds} s (${(mb / seconds).toFixed(1)} MB/s), ${(grown / (requests * batch)).toFixed(1)} B/row` +
      (gone > 0 ? ` (${gone} segments deleted by retention meanwhile: an undercount)` : '') +
      (writer === null
        ? ''
        : `; writer ${writer[0]}: ${(writer[1] / 1e6).toFixed(1)} MB of pages dirtied, ${((writer[2] * 1e3) / seconds).toFixed(1)} ms of CPU a second, ${((writer[2] * 1e3) / mb).toFixed(2)} ms a MB written`),
  );
}
// Core 0 as a whole (the server's core): what its own threads used against what the core spent,
// by /proc/stat's columns — the rest is other tasks on the core (kernel threads: block I/O,
// writeback, the journal; interrupts and softirqs; time the hypervisor took: steal).
const core0 = CORE0_COLUMNS.map((name, i) => [name, core0After[i]! - core0Before[i]!] as const);
const core0Busy = core0.reduce(
  (sum, [name, ticks]) => (name === 'idle' || name === 'iowait' ? sum : sum + ticks),
  0,
);
console.log(
  `  core 0: busy ${(((core0Busy / 100) * 1e6) / requests).toFixed(1)} µs/request (the server's threads ${((total * 1e6) / requests).toFixed(1)}); ` +
    core0.map(([name, ticks]) => `${name} ${(((ticks / 100) * 1e6) / requests).toFixed(1)}`).join(', '),
);
await stopAll([server.proc]);
rmSync(work, { recursive: true, force: true });
