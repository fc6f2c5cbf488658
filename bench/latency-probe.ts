// Where a batch-1 request's tail latency comes from: one Quoll server pinned to core 0 (wrk on
// core 1), JSON batch 1 × 16 connections by default, with `latency-probe-preload.js` loaded into
// it. After the warm-up it records, on the server's clock, each request's time from Node's
// `request` event to the response's `finish` (server side: read, decoded, run, answered), the
// HTTP thread's garbage collections and the inference-log writer's `ready` (rows written) and
// `durable` (fsynced) messages, and compares them with wrk's latencies (client side: also the
// time a request waits in the socket before the HTTP thread reads it, and wrk's own delays).
// Slow requests are those at or above the server-side p99; the report says how many of them
// overlap a GC pause or a writer message, against the share of all requests that do (what chance
// alone gives), and how they cluster in time.
// Usage: npx tsx bench/latency-probe.ts [connections=16] [seconds=6]
// Env: PROBE_WARMUP_S (10), PROBE_FORMAT (json | arrow | oip), PROBE_BATCH (1), PROBE_KEEP=1 (keeps
// the recording), QUOLL_CLI (the server's dist/cli/main.js; default this checkout's),
// BENCH_QUOLL_ARGS (extra server flags, e.g. --no-inference-logs), PROBE_NODE_ARGS (node flags).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  keepHarnessOffServerCore,
  deployModel,
  loadAverage,
  percentile,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

interface Recorded {
  /** [start ms, duration ms] per request. */
  requests: [number, number][];
  /** [start ms, duration ms, kind] per GC of the HTTP thread's isolate. */
  gc: [number, number, number][];
  /** [arrival ms, 'ready' | 'durable'] per writer message. */
  writer: [number, string][];
}

/** Per thread of `pid` (Linux): name, CPU ns, ns runnable but waiting for a core, and involuntary switches. */
function threadSched(
  pid: number,
): Map<number, { name: string; cpu: number; wait: number; preempted: number }> {
  const out = new Map<number, { name: string; cpu: number; wait: number; preempted: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`).map(Number))
    try {
      const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const preempted = Number(/nonvoluntary_ctxt_switches:\s*(\d+)/.exec(status)?.[1] ?? NaN);
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { name: tid === pid ? 'HTTP (main)' : name, cpu: cpu!, wait: wait!, preempted });
    } catch {
      // The thread ended meanwhile.
    }
  return out;
}

/** Each thread's CPU and wait for a core over the measured run, per request and per second. */
function schedReport(
  pid: number,
  before: ReturnType<typeof threadSched>,
  after: ReturnType<typeof threadSched>,
  requests: number,
  seconds: number,
): void {
  const rows: string[] = [];
  for (const [tid, a] of after) {
    const b = before.get(tid) ?? { cpu: 0, wait: 0, preempted: 0 };
    const cpu = a.cpu - b.cpu;
    if (cpu < 1e6 && tid !== pid) continue;
    rows.push(
      `  ${tid} ${a.name}: CPU ${(cpu / 1e3 / requests).toFixed(1)} µs/request (${(cpu / 1e7 / seconds).toFixed(1)} % of a core), ` +
        `waited for a core ${((a.wait - b.wait) / 1e6 / seconds).toFixed(1)} ms/s, preempted ${((a.preempted - b.preempted) / seconds).toFixed(0)}/s`,
    );
  }
  console.log(`threads over the measured run (those with ≥ 1 ms CPU):\n${rows.join('\n')}`);
}

// The harness on wrk's core, off the server's (support.ts says why).
keepHarnessOffServerCore();
const [connections = 16, seconds = 6] = process.argv.slice(2).map(Number);
const format = (process.env.PROBE_FORMAT ?? 'json') as BodyFormat;
const batch = Number(process.env.PROBE_BATCH ?? 1);
const work = mkdtempSync(join(tmpdir(), 'quoll-latency-'));
const outFile = join(work, 'recorded.json');
const preload = fileURLToPath(new URL('./latency-probe-preload.js', import.meta.url));
const flags = (value: string | undefined): string[] => (value ?? '').split(' ').filter(Boolean);
const server = await startQuoll(work, 'home', flags(process.env.BENCH_QUOLL_ARGS), {
  nodeArgs: [...flags(process.env.PROBE_NODE_ARGS), '--import', preload],
  env: { LATENCY_PROBE_OUT: outFile },
  ...(process.env.QUOLL_CLI ? { cli: process.env.QUOLL_CLI } : {}),
});
try {
  const pipeline = await deployModel(server.client, 'benchmodel', writeBenchModel(work), 'benchpipe');
  const url = format === 'oip' ? `${server.url}/v2/models/benchpipe/infer` : pipeline.url();
  const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
  wrk({ url, luaScript: lua, connections, seconds: Number(process.env.PROBE_WARMUP_S ?? 10) });
  const loadBefore = loadAverage();
  const schedBefore = threadSched(server.proc.pid!);
  server.proc.kill('SIGUSR2');
  const client = wrk({ url, luaScript: lua, connections, seconds });
  server.proc.kill('SIGUSR2');
  schedReport(
    server.proc.pid!,
    schedBefore,
    threadSched(server.proc.pid!),
    client.reqPerSec * seconds,
    seconds,
  );
  console.log(
    `${format} batch ${batch} × ${connections}, ${seconds} s, load ${loadBefore}–${loadAverage()}: ` +
      `${Math.round(client.reqPerSec)} req/s; wrk (client side) p50 ${client.p50Ms} ms, p99 ${client.p99Ms} ms`,
  );
} finally {
  await stopAll([server.proc]);
}
if (!existsSync(outFile)) throw new Error('The server wrote no recording (did it exit cleanly?).');
const rec = JSON.parse(readFileSync(outFile, 'utf8')) as Recorded;
if (process.env.PROBE_KEEP === '1') console.log(`recording kept in ${outFile}`);
else rmSync(work, { recursive: true, force: true });

const requests = rec.requests.sort((a, b) => a[0] - b[0]);
const latencies = requests.map((r) => r[1]);
const p99 = percentile(latencies, 99);
console.log(
  `server side (request event → finish), ${requests.length} requests: p50 ${percentile(latencies, 50).toFixed(2)} ms, ` +
    `p90 ${percentile(latencies, 90).toFixed(2)}, p99 ${p99.toFixed(2)}, max ${Math.max(...latencies).toFixed(2)}`,
);
const spanS = (requests.at(-1)![0] - requests[0]![0]) / 1000;
const GC_KINDS: Record<number, string> = {
  1: 'scavenge',
  2: 'minor mark-sweep',
  4: 'mark-compact',
  8: 'incremental marking',
  16: 'weak callbacks',
};
const byKind = new Map<string, number[]>();
for (const [, ms, kind] of rec.gc) {
  const name = GC_KINDS[kind] ?? String(kind);
  byKind.set(name, [...(byKind.get(name) ?? []), ms]);
}
for (const [kind, ms] of byKind)
  console.log(
    `HTTP thread GC ${kind}: ${(ms.length / spanS).toFixed(1)}/s, p50 ${percentile(ms, 50).toFixed(2)} ms, ` +
      `max ${Math.max(...ms).toFixed(2)} ms, ${((ms.reduce((a, b) => a + b, 0) / (spanS * 1000)) * 100).toFixed(1)} % of the time`,
  );
// The longest gap between two messages of a kind bounds how long rows waited to be written
// (to reach the OS: then they survive a process crash) or fsynced (to survive a power loss).
for (const type of ['ready', 'durable']) {
  const at = rec.writer.filter((w) => w[1] === type).map((w) => w[0]);
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  console.log(
    `writer '${type}' messages: ${(at.length / spanS).toFixed(1)}/s, longest gap ${Math.max(0, ...gaps).toFixed(0)} ms`,
  );
}

/** Share of `of` whose [start, start + duration] overlaps one of `events` ([at, length]). */
function overlapShare(of: [number, number][], events: [number, number][]): number {
  const sorted = [...events].sort((x, y) => x[0] - y[0]);
  const longest = Math.max(0, ...sorted.map((e) => e[1]));
  let hit = 0;
  for (const [t0, ms] of of) {
    // The first event that could still reach t0 (none starting earlier is long enough).
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]![0] < t0 - longest) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < sorted.length && sorted[i]![0] <= t0 + ms; i++)
      if (sorted[i]![0] + sorted[i]![1] >= t0) {
        hit++;
        break;
      }
  }
  return of.length === 0 ? 0 : hit / of.length;
}
const slow = requests.filter((r) => r[1] >= p99);
const gcEvents = rec.gc.map((g): [number, number] => [g[0], g[1]]);
for (const [label, events] of [
  ['an HTTP-thread GC pause', gcEvents],
  ["a writer 'ready'", rec.writer.filter((w) => w[1] === 'ready').map((w): [number, number] => [w[0], 0])],
  [
    "a writer 'durable' (fsync done)",
    rec.writer.filter((w) => w[1] === 'durable').map((w): [number, number] => [w[0], 0]),
  ],
] as const)
  console.log(
    `overlapping ${label}: ${(overlapShare(slow, [...events]) * 100).toFixed(0)} % of slow requests, ` +
      `${(overlapShare(requests, [...events]) * 100).toFixed(0)} % of all`,
  );
const clusters: number[][] = [];
for (const [t0] of slow) {
  const last = clusters.at(-1);
  if (last !== undefined && t0 - last.at(-1)! < 5) last.push(t0);
  else clusters.push([t0]);
}
const sizes = clusters.map((c) => c.length).sort((a, b) => a - b);
console.log(
  `slow requests (≥ server p99): ${slow.length}, in ${clusters.length} clusters (${(clusters.length / spanS).toFixed(1)}/s; ` +
    `starts < 5 ms apart), cluster size p50 ${percentile(sizes, 50)}, max ${sizes.at(-1) ?? 0}`,
);
