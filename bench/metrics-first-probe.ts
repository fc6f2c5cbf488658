// Issue 15's start-order handicap, isolated: in bench/metrics.bench.ts the rotation that starts
// the metrics server first reads 0.941–0.980 against ≈ 0.99 for the others. Here, per rep, three
// servers of one build start one after the other exactly as the bench starts them (deploy, inline
// verdict awaited): `first` and `last` with the same flags (PROBE_ARGS, default '' = metrics on,
// both scraped every second by their own scraper when metrics are on), `mid` between them
// (PROBE_MID_ARGS, default --no-metrics). Then the bench's rounds: pairs at the same time on
// core 0 (wrk on core 1), first+last, last+mid, mid+first, the last two swapped every other
// round, after the bench's warm-up. What a server's place in the start order does is then
// first / last, a pair of identical servers (an A/A in every respect but the start order).
// Per rep and pooled: requests/s first / last (and each over mid), CPU a request (all threads,
// HTTP thread), and per thread name the CPU and the time runnable but waiting for a core
// (`/proc/<pid>/task/*/schedstat`), first against last. With PROBE_PROFILE=1 every server runs
// under --cpu-prof and the HTTP thread's self time per function over the first+last pairs is
// compared (first − last, µs a request).
// Usage: npx tsx bench/metrics-first-probe.ts
// Env: PROBE_REPS (3), PROBE_ROUNDS (6, even), PROBE_SECONDS (3), PROBE_WARMUP_S (2),
// PROBE_CONNECTIONS (16), PROBE_ARGS, PROBE_MID_ARGS, PROBE_SCRAPE_S (1; 0 = none),
// PROBE_PROFILE (0), PROBE_NODE_ARGS (node flags of all three), PROBE_IDLE_S (extra seconds
// every server but the last idles after the last is up, default 0), QUOLL_CLI (another build),
// PROBE_TRACE_GC=1 (--trace-gc in every server: the HTTP isolate's collections counted, first
// against last, before the load and over the first+last pairs), PROBE_COUNT (a regular expression:
// the servers' stdout lines that match it counted, first against last, before the load and in the
// first+last pairs, and kept in <tmp>/metrics-first-<role>-<rep>.log; e.g. PROBE_NODE_ARGS=--trace-deopt PROBE_COUNT='bailout \\(kind').
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  median,
  percentile,
  printTable,
  startQuoll,
  startScraper,
  stopAll,
  wrkAsync,
  writeBenchModel,
  writeLua,
  type BenchServer,
} from './support.js';

const REPS = Number(process.env.PROBE_REPS ?? 3);
const ROUNDS = 2 * Math.ceil(Number(process.env.PROBE_ROUNDS ?? 6) / 2);
const SECONDS = Number(process.env.PROBE_SECONDS ?? 3);
const WARMUP = Number(process.env.PROBE_WARMUP_S ?? 2);
const CONNECTIONS = Number(process.env.PROBE_CONNECTIONS ?? 16);
const SCRAPE_S = Number(process.env.PROBE_SCRAPE_S ?? 1);
const PROFILE = process.env.PROBE_PROFILE === '1';
const IDLE_S = Number(process.env.PROBE_IDLE_S ?? 0);
const TRACE_GC = process.env.PROBE_TRACE_GC === '1';
const COUNT = process.env.PROBE_COUNT ? new RegExp(process.env.PROBE_COUNT) : null;
const split = (v: string | undefined, d: string): string[] => (v ?? d).split(' ').filter(Boolean);
const ARGS = split(process.env.PROBE_ARGS, '');
const MID_ARGS = split(process.env.PROBE_MID_ARGS, '--no-metrics');
const NODE_ARGS = split(process.env.PROBE_NODE_ARGS, '');
const CLI = process.env.QUOLL_CLI;
const work = mkdtempSync(join(tmpdir(), 'quoll-metrics-first-'));
const modelPath = writeBenchModel(work);

type Role = 'first' | 'mid' | 'last';
interface Lane {
  role: Role;
  server: BenchServer;
  url: string;
  lua: string;
  profiles: string;
  /** --trace-gc lines as they arrived: [µs on this process's monotonic clock, isolate, kind, pause ms]. */
  gc: [number, string, string, number][];
  /** Arrival times (µs) of the stdout lines matching PROBE_COUNT. */
  counted: number[];
}
interface ThreadSched {
  cpu: number;
  wait: number;
}
/** Per thread name (the HTTP thread as `HTTP`): CPU ns and ns runnable but waiting, summed. */
function sched(pid: number): Map<string, ThreadSched> {
  const out = new Map<string, ThreadSched>();
  // Threads of one name told apart by their place in creation order (tids grow): `node#3`.
  const seen = new Map<string, number>();
  const tids = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
  for (const tid of tids)
    try {
      const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      const comm = tid === pid ? 'HTTP' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const rank = seen.get(comm) ?? 0;
      seen.set(comm, rank + 1);
      const name = tid === pid ? comm : `${comm}#${rank}`;
      const s = out.get(name) ?? { cpu: 0, wait: 0 };
      s.cpu += cpu!;
      s.wait += wait!;
      out.set(name, s);
    } catch {
      // The thread ended meanwhile.
    }
  return out;
}
const minus = (a: Map<string, ThreadSched>, b: Map<string, ThreadSched>): Map<string, ThreadSched> =>
  new Map(
    [...a].map(([k, v]) => [k, { cpu: v.cpu - (b.get(k)?.cpu ?? 0), wait: v.wait - (b.get(k)?.wait ?? 0) }]),
  );
const total = (m: Map<string, ThreadSched>, f: keyof ThreadSched): number =>
  [...m.values()].reduce((a, v) => a + v[f], 0);

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
async function lane(role: Role, rep: number): Promise<Lane> {
  const profiles = join(work, `profiles-${role}-${rep}`);
  const server = await startQuoll(work, `${role}-${rep}`, role === 'mid' ? MID_ARGS : ARGS, {
    nodeArgs: [
      ...NODE_ARGS,
      ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profiles] : []),
      ...(TRACE_GC ? ['--trace-gc'] : []),
    ],
    ...(CLI ? { cli: CLI } : {}),
  });
  const gc: Lane['gc'] = [];
  const counted: number[] = [];
  let partial = '';
  // e.g. `[123:0x5f0c000]   4512 ms: Scavenge 12.3 (14.5) -> 11.8 (15.5) MB, 1.23 / 0.00 ms …`
  server.proc.stdout?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m =
        /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Mark-Compact \(reduce\)|Mark-Compact|Mark-sweep|Minor Mark-Sweep)[^,]*, ([\d.]+)/.exec(
          line,
        );
      if (m) gc.push([nowUs(), m[1]!, m[2]!, Number(m[3])]);
      if (COUNT?.test(line)) {
        counted.push(nowUs());
        appendFileSync(join(tmpdir(), `metrics-first-${role}-${rep}.log`), `${nowUs()} ${line}\n`);
      }
    }
  });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  await awaitInlineVerdict(server, `${role}-${rep}`);
  const lua = writeLua(work, { format: 'json', batch: 1, token: server.token, tag: `${role}-${rep}` });
  return { role, server, url: pipeline.url(), lua, profiles, gc, counted };
}

interface PairRun {
  rps: number;
  requests: number;
  sched: Map<string, ThreadSched>;
}
async function together(ls: [Lane, Lane], seconds: number): Promise<[PairRun, PairRun]> {
  const before = ls.map((l) => sched(l.server.proc.pid!));
  const got = await Promise.all(
    ls.map((l) => wrkAsync({ url: l.url, luaScript: l.lua, connections: CONNECTIONS, seconds })),
  );
  return got.map((r, i) => ({
    rps: r.reqPerSec,
    requests: r.reqPerSec * seconds,
    sched: minus(sched(ls[i]!.server.proc.pid!), before[i]!),
  })) as [PairRun, PairRun];
}

interface Rep {
  firstOverLast: number[];
  firstOverMid: number[];
  lastOverMid: number[];
  cpuFirstOverLast: number[];
  httpFirstOverLast: number[];
  /** Per thread name, first and last: CPU and wait ns a request, summed over the first+last pairs. */
  threads: Record<'first' | 'last', Map<string, ThreadSched>>;
  requests: Record<'first' | 'last', number>;
  /** The first+last pairs' windows (µs, the monotonic clock, as in --cpu-prof). */
  windows: [number, number][];
}
const reps: Rep[] = [];
const gcRows: (string | number)[][] = [];
const countRows: (string | number)[][] = [];
/** Per function, self µs a request, summed over reps: first and last. */
const selfUs: Record<'first' | 'last', Map<string, number>> = { first: new Map(), last: new Map() };
const loadBefore = loadAverage();
for (let rep = 0; rep < REPS; rep++) {
  const lanes: Lane[] = [];
  const scrapers: ReturnType<typeof startScraper>[] = [];
  try {
    for (const role of ['first', 'mid', 'last'] as Role[]) lanes.push(await lane(role, rep));
    if (IDLE_S > 0) await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const [first, mid, last] = lanes as [Lane, Lane, Lane];
    if (SCRAPE_S > 0 && !ARGS.includes('--no-metrics'))
      for (const l of [first, last]) scrapers.push(startScraper(l.server.url, l.server.token, SCRAPE_S));
    const orders: [Lane, Lane][][] = [
      [
        [first, last],
        [last, mid],
        [mid, first],
      ],
      [
        [first, last],
        [mid, first],
        [last, mid],
      ],
    ];
    for (const p of orders[1]!) await together(p, WARMUP);
    const r: Rep = {
      firstOverLast: [],
      firstOverMid: [],
      lastOverMid: [],
      cpuFirstOverLast: [],
      httpFirstOverLast: [],
      threads: { first: new Map(), last: new Map() },
      requests: { first: 0, last: 0 },
      windows: [],
    };
    for (let round = 0; round < ROUNDS; round++)
      for (const [x, y] of orders[round % 2]!) {
        const from = nowUs();
        const [rx, ry] = await together([x, y], SECONDS);
        const to = nowUs();
        if (!(rx.rps > 0 && ry.rps > 0)) continue;
        const by = new Map([
          [x.role, rx],
          [y.role, ry],
        ]);
        const f = by.get('first');
        const l = by.get('last');
        const m = by.get('mid');
        if (f && l) {
          r.firstOverLast.push(f.rps / l.rps);
          const cpu = (p: PairRun): number => total(p.sched, 'cpu') / p.requests;
          const http = (p: PairRun): number => (p.sched.get('HTTP')?.cpu ?? NaN) / p.requests;
          r.cpuFirstOverLast.push(cpu(f) / cpu(l));
          r.httpFirstOverLast.push(http(f) / http(l));
          for (const [k, p] of [
            ['first', f],
            ['last', l],
          ] as const) {
            r.requests[k] += p.requests;
            for (const [name, s] of p.sched) {
              const acc = r.threads[k].get(name) ?? { cpu: 0, wait: 0 };
              acc.cpu += s.cpu;
              acc.wait += s.wait;
              r.threads[k].set(name, acc);
            }
          }
          r.windows.push([from, to]);
        } else if (f && m) r.firstOverMid.push(f.rps / m.rps);
        else if (l && m) r.lastOverMid.push(l.rps / m.rps);
      }
    reps.push(r);
    console.log(
      JSON.stringify({
        rep,
        firstOverLast: median(r.firstOverLast),
        firstOverMid: median(r.firstOverMid),
        lastOverMid: median(r.lastOverMid),
        cpuFirstOverLast: median(r.cpuFirstOverLast),
        httpFirstOverLast: median(r.httpFirstOverLast),
        load: loadAverage(),
      }),
    );
  } finally {
    for (const s of scrapers) await s.stop();
    await stopAll(lanes.map((l) => l.server.proc));
  }
  if (PROFILE) profileDiff(rep, lanes, reps[reps.length - 1]);
  if (TRACE_GC) gcSummary(rep, lanes, reps[reps.length - 1]);
  if (COUNT) countSummary(rep, lanes, reps[reps.length - 1]);
}
const loadAfter = loadAverage();

const spread = (xs: number[]): string =>
  xs.length === 0
    ? '–'
    : `${median(xs).toFixed(3)} (${percentile(xs, 25).toFixed(3)}–${percentile(xs, 75).toFixed(3)})`;
console.log(
  `\nJSON 1 × ${CONNECTIONS}; ${REPS} reps of ${ROUNDS} rounds of 3 pairs × ${SECONDS} s after ${WARMUP} s warm-ups; first/last flags '${ARGS.join(' ')}', mid '${MID_ARGS.join(' ')}', node '${NODE_ARGS.join(' ')}'; scraped ${SCRAPE_S > 0 && !ARGS.includes('--no-metrics') ? `every ${SCRAPE_S} s` : 'no'}; profile ${PROFILE}; extra idle ${IDLE_S} s; load ${loadBefore} → ${loadAfter}`,
);
printTable(
  [
    'rep',
    'first / last req/s',
    'first / mid',
    'last / mid',
    'CPU a request first / last',
    'HTTP thread first / last',
  ],
  [
    ...reps.map((r, i) => [
      i,
      spread(r.firstOverLast),
      spread(r.firstOverMid),
      spread(r.lastOverMid),
      spread(r.cpuFirstOverLast),
      spread(r.httpFirstOverLast),
    ]),
    [
      'pooled',
      spread(reps.flatMap((r) => r.firstOverLast)),
      spread(reps.flatMap((r) => r.firstOverMid)),
      spread(reps.flatMap((r) => r.lastOverMid)),
      spread(reps.flatMap((r) => r.cpuFirstOverLast)),
      spread(reps.flatMap((r) => r.httpFirstOverLast)),
    ],
  ],
);
// Per thread name over the first+last pairs, pooled over reps: CPU and wait µs a request.
const names = new Set(reps.flatMap((r) => [...r.threads.first.keys(), ...r.threads.last.keys()]));
const per = (k: 'first' | 'last', name: string, f: keyof ThreadSched): number =>
  reps.reduce((a, r) => a + (r.threads[k].get(name)?.[f] ?? 0), 0) /
  1000 /
  reps.reduce((a, r) => a + r.requests[k], 0);
printTable(
  ['thread (first+last pairs)', 'CPU µs/req first', 'last', 'waited µs/req first', 'last'],
  [...names]
    .map((n) => [
      n,
      per('first', n, 'cpu'),
      per('last', n, 'cpu'),
      per('first', n, 'wait'),
      per('last', n, 'wait'),
    ])
    .filter((row) => (row[1] as number) + (row[2] as number) > 0.5)
    .sort((a, b) => (b[1] as number) - (a[1] as number))
    .map((row) => [row[0]!, ...row.slice(1).map((x) => (x as number).toFixed(2))]),
);
if (PROFILE) printProfiles();
if (COUNT)
  printTable(
    [
      'rep',
      'server',
      `lines /${COUNT.source}/ before the load`,
      'in the first+last pairs',
      'per 1000 requests',
    ],
    countRows,
  );
if (TRACE_GC)
  printTable(
    [
      'rep',
      'server',
      'before load: collections (kinds)',
      'first+last pairs: scavenges / 1000 req',
      'mark-compacts',
      'pause ms / 1000 req',
    ],
    gcRows,
  );
if (process.env.PROBE_KEEP === '1') console.log(`kept in ${work}`);
else rmSync(work, { recursive: true, force: true });

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}
/**
 * Self time per function of the HTTP thread's profile inside `windows` (node names each profile
 * `CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile`, thread id 0 for the main thread).
 */
function busiest(dir: string, windows: [number, number][]): Map<string, number> {
  let best = new Map<string, number>();
  let bestBusy = -1;
  for (const file of readdirSync(dir).filter(
    (f) => f.endsWith('.cpuprofile') && f.split('.').at(-3) === '0',
  )) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const fns = new Map<string, number>();
    let at = p.startTime;
    let busy = 0;
    p.samples.forEach((id, i) => {
      const delta = p.timeDeltas[i] ?? 0;
      at += delta;
      if (!windows.some(([a, b]) => at >= a && at <= b)) return;
      const f = byId.get(id)!.callFrame;
      const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist)\//, '')}:${f.lineNumber + 1}`;
      fns.set(key, (fns.get(key) ?? 0) + delta);
      if (f.functionName !== '(idle)') busy += delta;
    });
    if (busy > bestBusy) {
      bestBusy = busy;
      best = fns;
    }
  }
  return best;
}
function profileDiff(rep: number, lanes: Lane[], r: Rep | undefined): void {
  if (r === undefined) return;
  for (const k of ['first', 'last'] as const) {
    const l = lanes.find((x) => x.role === k)!;
    try {
      for (const [fn, us] of busiest(l.profiles, r.windows))
        selfUs[k].set(fn, (selfUs[k].get(fn) ?? 0) + us / r.requests[k] / REPS);
    } catch (err) {
      console.error(`rep ${rep} ${k}: no profile (${String(err)})`);
    }
  }
}
function printProfiles(): void {
  const busy = (m: Map<string, number>): number =>
    [...m].filter(([k]) => !k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  console.log(
    `HTTP thread, sampled busy µs a request (mean of reps): first ${busy(selfUs.first).toFixed(1)}, last ${busy(selfUs.last).toFixed(1)}`,
  );
  const keys = new Set([...selfUs.first.keys(), ...selfUs.last.keys()]);
  const diff = [...keys]
    .filter((k) => !k.startsWith('(idle)'))
    .map((k): [string, number, number, number] => {
      const f = selfUs.first.get(k) ?? 0;
      const l = selfUs.last.get(k) ?? 0;
      return [k.slice(0, 90), f, l, f - l];
    });
  const fmt = (rows: [string, number, number, number][]): (string | number)[][] =>
    rows.map(([k, f, l, d]) => [k, f.toFixed(2), l.toFixed(2), d.toFixed(2)]);
  const head = ['function (self time, HTTP thread)', 'first µs/req', 'last µs/req', 'first − last'];
  printTable(head, fmt([...diff].sort((a, b) => b[3] - a[3]).slice(0, 25)));
  printTable(head, fmt([...diff].sort((a, b) => a[3] - b[3]).slice(0, 10)));
  printTable(head, fmt([...diff].sort((a, b) => b[1] + b[2] - a[1] - a[2]).slice(0, 20)));
}

/** The HTTP isolate's collections (the isolate with the most), before the load and in the first+last pairs. */
function gcSummary(rep: number, lanes: Lane[], r: Rep | undefined): void {
  if (r === undefined) return;
  const loadFrom = r.windows[0]?.[0] ?? Infinity;
  for (const k of ['first', 'last'] as const) {
    const l = lanes.find((x) => x.role === k)!;
    const counts = new Map<string, number>();
    for (const [, iso] of l.gc) counts.set(iso, (counts.get(iso) ?? 0) + 1);
    const main = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
    const mine = l.gc.filter((g) => g[1] === main);
    const before = mine.filter((g) => g[0] < loadFrom);
    const kinds = new Map<string, number>();
    for (const g of before) kinds.set(g[2], (kinds.get(g[2]) ?? 0) + 1);
    const inPairs = mine.filter((g) => r.windows.some(([a, b]) => g[0] >= a && g[0] <= b));
    const per1000 = 1000 / r.requests[k];
    gcRows.push([
      rep,
      k,
      `${before.length} (${[...kinds].map(([x, n]) => `${x} ${n}`).join(', ')})`,
      (inPairs.filter((g) => g[2] === 'Scavenge').length * per1000).toFixed(2),
      inPairs.filter((g) => g[2].startsWith('Mark')).length,
      (inPairs.reduce((a, g) => a + g[3], 0) * per1000).toFixed(2),
    ]);
  }
}

/** The stdout lines matching PROBE_COUNT, before the load and in the first+last pairs. */
function countSummary(rep: number, lanes: Lane[], r: Rep | undefined): void {
  if (r === undefined) return;
  const loadFrom = r.windows[0]?.[0] ?? Infinity;
  for (const k of ['first', 'last'] as const) {
    const l = lanes.find((x) => x.role === k)!;
    const inPairs = l.counted.filter((t) => r.windows.some(([a, b]) => t >= a && t <= b)).length;
    countRows.push([
      rep,
      k,
      l.counted.filter((t) => t < loadFrom).length,
      inPairs,
      ((inPairs * 1000) / r.requests[k]).toFixed(3),
    ]);
  }
}
