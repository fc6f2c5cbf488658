// Garbage collection and CPU of a Quoll server under one inference workload (after 2 s of
// warm-up), from V8's --trace-gc-nvp: per isolate, scavenges, mark-compacts, and per request the
// GC pause, bytes promoted, allocated and surviving (isolates oldest first: the HTTP thread's is
// the oldest); then each thread's CPU per request from /proc (the HTTP thread named).
// Usage: tsx bench/gc-probe.ts [connections=16] [seconds=5]. Env: PROBE_FORMAT (json | arrow),
// PROBE_BATCH (default 1000), PROBE_GC_ARGS (the trace flags, default --trace-gc-nvp; e.g.
// "--trace-gc --trace-incremental-marking" to see why marking starts), PROBE_NODE_ARGS (more node
// flags), PROBE_DUMP=<file> (everything the server printed, the measured run marked). The server
// inherits the environment (QUOLL_BENCH_INPUT_CHECKS=off for the unchecked server); QUOLL_CLI: the
// server's dist/cli/main.js (default this checkout's); PROBE_QUOLL_ARGS: more server arguments
// (e.g. --no-inference-logs). Per-isolate
// sums read nvp lines only. Hold /tmp/quoll-bench.lock while it runs.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
} from './support.js';

const [connections = 16, seconds = 5] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-gc-probe-'));
const modelPath = writeBenchModel(work);
const format = process.env.PROBE_FORMAT === 'arrow' ? 'arrow' : 'json';
const batch = Number(process.env.PROBE_BATCH ?? 1000);
const extra = (process.env.PROBE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const server = await startQuoll(
  work,
  'home',
  (process.env.PROBE_QUOLL_ARGS ?? '').split(' ').filter(Boolean),
  {
    nodeArgs: [...(process.env.PROBE_GC_ARGS ?? '--trace-gc-nvp').split(' ').filter(Boolean), ...extra],
    ...(process.env.QUOLL_CLI ? { cli: process.env.QUOLL_CLI } : {}),
  },
);
const lines: string[] = [];
let partial = '';
server.proc.stdout?.on('data', (d: Buffer) => {
  const text = partial + d.toString();
  const parts = text.split('\n');
  partial = parts.pop() ?? '';
  lines.push(...parts);
});
const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
// Measured once the admission probe answered: before it, runs go to the workers (~1.5× the CPU).
const verdict = await awaitInlineVerdict(server, 'gc-probe');
const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
wrk({ url: pipeline.url(), luaScript: lua, connections, seconds: 2 });
await new Promise((resolve) => setTimeout(resolve, 300));
const from = lines.length;
const load = loadAverage();
const cpuBefore = threadCpu(server.proc.pid!);
const run = wrk({ url: pipeline.url(), luaScript: lua, connections, seconds });
await new Promise((resolve) => setTimeout(resolve, 300));
const cpuAfter = threadCpu(server.proc.pid!);
const to = lines.length;
await stopAll([server.proc]);
const requests = run.reqPerSec * seconds;
// PROBE_DUMP=<file>: every line the server printed, the measured run marked (e.g. with --trace-deopt).
if (process.env.PROBE_DUMP)
  writeFileSync(
    process.env.PROBE_DUMP,
    [
      ...lines.slice(0, from),
      '=== measured run',
      ...lines.slice(from, to),
      '=== end',
      ...lines.slice(to),
    ].join('\n') + '\n',
  );
const order: string[] = [];
for (const line of lines) {
  const iso = /^\[\d+:(0x[0-9a-f]+)\]/.exec(line)?.[1];
  if (iso !== undefined && !order.includes(iso)) order.push(iso);
}
interface Sum {
  s: number;
  mc: number;
  other: number;
  pause: number;
  promoted: number;
  allocated: number;
  survived: number;
  /** ms of scavenges spent in `scavenge.sweep_array_buffers`. */
  sweep: number;
  /** ms since the isolate started, at its last GC in the window (the HTTP thread's is the oldest). */
  age: number;
}
const sums = new Map<string, Sum>();
for (const line of lines.slice(from, to)) {
  const iso = /^\[\d+:(0x[0-9a-f]+)\]/.exec(line)?.[1];
  if (iso === undefined) continue;
  const field = (name: string): number => Number(new RegExp(` ${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
  const gc = / gc=(\w+)/.exec(line)?.[1] ?? '?';
  const sum = sums.get(iso) ?? {
    s: 0,
    mc: 0,
    other: 0,
    pause: 0,
    promoted: 0,
    allocated: 0,
    survived: 0,
    sweep: 0,
    age: 0,
  };
  if (gc === 's') sum.s++;
  else if (gc === 'ms' || gc === 'mc') sum.mc++;
  else sum.other++;
  sum.pause += field('pause');
  sum.promoted += field('promoted');
  sum.allocated += field('allocated');
  sum.survived += field('new_space_survived');
  if (gc === 's') sum.sweep += field('scavenge.sweep_array_buffers');
  sum.age = Number(/\]\s+(\d+) ms:/.exec(line)?.[1] ?? 0);
  sums.set(iso, sum);
}
console.log(
  `${process.env.QUOLL_BENCH_INPUT_CHECKS === 'off' ? 'UNCHECKED' : 'checked'} ${format} ${batch} × ${connections}, ${seconds} s: ${run.reqPerSec.toFixed(1)} req/s, inline ${verdict}, load ${load}`,
);
for (const [iso, sum] of [...sums].sort((a, b) => b[1].age - a[1].age)) {
  const per = (x: number): string => (x / requests / 1024).toFixed(1);
  console.log(
    `  isolate #${order.indexOf(iso)} (age ${(sum.age / 1000).toFixed(1)} s): scavenges ${sum.s}, mark-compacts ${sum.mc}, other ${sum.other}; sweep_array_buffers ${sum.s > 0 ? (sum.sweep / sum.s).toFixed(3) : '-'} ms a scavenge; per request: pause ${((sum.pause * 1000) / requests).toFixed(0)} µs, promoted ${per(sum.promoted)} KiB, allocated ${per(sum.allocated)} KiB, survived ${per(sum.survived)} KiB`,
  );
}
const threads = [...cpuAfter]
  .map(([tid, after]) => ({
    tid,
    name: after.name,
    us: ((after.seconds - (cpuBefore.get(tid)?.seconds ?? 0)) * 1e6) / requests,
  }))
  .sort((a, b) => b.us - a.us);
console.log(
  `  CPU µs per request: all ${threads.reduce((n, t) => n + t.us, 0).toFixed(0)}; ` +
    threads
      .filter((t) => t.us > 0)
      .map((t) => `${t.tid === String(server.proc.pid) ? 'HTTP' : t.name} ${t.us.toFixed(1)}`)
      .join(', '),
);
rmSync(work, { recursive: true, force: true });

/** CPU seconds (user + system) of each thread of a process, by thread id, with its name. */
function threadCpu(pid: number): Map<string, { name: string; seconds: number }> {
  const out = new Map<string, { name: string; seconds: number }>();
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return out;
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, seconds: (Number(fields[11]) + Number(fields[12])) / 100 });
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}
