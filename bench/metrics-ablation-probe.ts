// Where the metrics server's extra CPU per JSON batch-1 request goes: one paired, simultaneous
// run of several servers of ONE build, each with one piece of what metrics switch on turned off
// (an ablation), measured against the full metrics server and against `--no-metrics` ones.
//
// The build must read `QUOLL_ABLATE` (comma list; a scratch copy, never main's product code):
// nogc (no GC PerformanceObserver at the first scrape), nolag (the event-loop lag timer at 1 h
// instead of 100 ms), norec (no per-request recording: no answer, rows or batch), noclock (no
// `reply.elapsedTime` read, latency recorded as a constant), noserved, norows, nobatch,
// nowindow (the console's 5 s window sampler not started); smiclock went with Quoll's own start
// time (f8c0dd3). Those switches are
// bench/metrics-ablation.patch, never landed in src: `git apply bench/metrics-ablation.patch`,
// `npm run build`, `cp -a packages/quoll/dist packages/quoll/dist-ablate`, `git apply -R
// bench/metrics-ablation.patch`, `npm run build`. Without them every variant is "on".
//
// Servers (all pinned to core 0, wrk on core 1 with 16 connections): off and control
// (`--no-metrics`; control/off is the A/A), on (scraped every second, as in the bench)
// and each variant of PROBE_VARIANTS (name:flags:scrape, scrape = 1 every second, 0 never,
// once = one scrape after its deploy). Two servers at a time take load, in a round-robin
// tournament (every server once a round, every pair once a cycle, so each server works equally
// often with the same gaps), and each server's strength comes from all its pairs (least squares
// on the log of the paired ratios): variant / on > 1 says the piece turned off costs that much.
// Two rotations, restarted, the second starting the servers in the reverse order (a server's
// place in the start order moves its share by a few per cent on this machine).
//
// Env: PROBE_CLI (default packages/quoll/dist-ablate/cli/main.js), PROBE_VARIANTS, PROBE_ROUNDS
// (cycles per rotation, default 3), PROBE_SECONDS (default 3), PROBE_WARMUP_S (one cycle at this,
// default 4), PROBE_ROTATIONS (default 2). Prints a table; writes
// bench/results/metrics-ablation.json (every paired log ratio).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  mainThreadCpuNs,
  median,
  printTable,
  startQuoll,
  startScraper,
  stopAll,
  threadCpuNs,
  verdictSummary,
  wrkAsync,
  writeBenchModel,
  writeLua,
  writeResults,
  type BenchServer,
  type Scraper,
} from './support.js';

const CLI =
  process.env.PROBE_CLI ??
  fileURLToPath(new URL('../packages/quoll/dist-ablate/cli/main.js', import.meta.url));
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 3);
const SECONDS = Number(process.env.PROBE_SECONDS ?? 3);
const WARMUP = Number(process.env.PROBE_WARMUP_S ?? 4);
const ROTATIONS = Number(process.env.PROBE_ROTATIONS ?? 2);
const VARIANTS = (process.env.PROBE_VARIANTS ?? 'unscraped::0 nogc:nogc:1 norec:norec:1')
  .split(' ')
  .filter(Boolean)
  .map((v) => {
    const [name, flags, scrape] = v.split(':') as [string, string, string];
    return { name, flags, scrape };
  });

interface Spec {
  name: string;
  args: string[];
  flags: string;
  scrape: string;
}
const specs: Spec[] = [
  { name: 'off', args: ['--no-metrics'], flags: '', scrape: '0' },
  { name: 'control', args: ['--no-metrics'], flags: '', scrape: '0' },
  { name: 'on', args: [], flags: '', scrape: '1' },
  ...VARIANTS.map((v) => ({ ...v, args: [] })),
];
/**
 * A round-robin tournament (circle method): rounds of disjoint pairs, every server once a round
 * (a bye for one when their number is odd), every pair once a cycle. Every server then takes
 * load equally often with the same gaps: a first version paired every variant with the "on"
 * server, which took load in 7 pairs of 8, came out 16 % ahead of `--no-metrics` and 20–27 %
 * ahead of every variant; a server idle for longer answers its next seconds more slowly.
 */
function tournament(n: number): Array<Array<[number, number]>> {
  const ids = Array.from({ length: n % 2 === 0 ? n : n + 1 }, (_, i) => i);
  const m = ids.length;
  const rounds: Array<Array<[number, number]>> = [];
  for (let r = 0; r < m - 1; r++) {
    const round: Array<[number, number]> = [];
    for (let i = 0; i < m / 2; i++) {
      const a = ids[i]!;
      const b = ids[m - 1 - i]!;
      if (a < n && b < n) round.push(r % 2 === 0 ? [a, b] : [b, a]);
    }
    rounds.push(round);
    ids.splice(1, 0, ids.pop()!);
  }
  return rounds;
}
const ROUNDS_OF_CYCLE = tournament(specs.length);

const work = mkdtempSync(join(tmpdir(), 'quoll-metrics-ablation-'));
const modelPath = writeBenchModel(work);

interface Lane {
  spec: Spec;
  server: BenchServer;
  url: string;
  lua: string;
  scraper: Scraper | null;
}

async function start(spec: Spec, rotation: number): Promise<Lane> {
  const server = await startQuoll(work, `${spec.name}-${rotation}`, spec.args, {
    cli: CLI,
    env: spec.flags === '' ? {} : { QUOLL_ABLATE: spec.flags },
  });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  await awaitInlineVerdict(server, `${spec.name}-${rotation}`);
  if (spec.scrape === 'once') {
    const r = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.token}` } });
    await r.text();
  }
  const scraper = spec.scrape === '1' ? startScraper(server.url, server.token, 1) : null;
  const lua = writeLua(work, {
    format: 'json',
    batch: 1,
    token: server.token,
    tag: `${spec.name}-${rotation}`,
  });
  return { spec, server, url: pipeline.url(), lua, scraper };
}

interface Got {
  rps: number;
  cpu: number;
  main: number;
}
async function together(ls: Lane[], seconds: number): Promise<Got[]> {
  const before = ls.map((l) => threadCpuNs(l.server.proc.pid!));
  const mainBefore = ls.map((l) => mainThreadCpuNs(l.server.proc.pid!));
  const got = await Promise.all(
    ls.map((l) => wrkAsync({ url: l.url, luaScript: l.lua, connections: 16, seconds })),
  );
  return got.map((r, i) => {
    const n = r.reqPerSec * seconds;
    const pid = ls[i]!.server.proc.pid!;
    return {
      rps: r.reqPerSec,
      cpu: (threadCpuNs(pid) - before[i]!) / n,
      main: (mainThreadCpuNs(pid) - mainBefore[i]!) / n,
    };
  });
}

/** log(x/y) of each measured pair, by server index, for requests/s, CPU and HTTP-thread CPU per request. */
interface Obs {
  x: number;
  y: number;
  rotation: number;
  rps: number;
  cpu: number;
  main: number;
}
const obs: Obs[] = [];
const cpuUs = specs.map(() => [] as number[]);
const loadBefore = loadAverage();
const t0 = new Date().toISOString();
for (let rotation = 0; rotation < ROTATIONS; rotation++) {
  const order = rotation % 2 === 0 ? specs : [...specs].reverse();
  const lanes = new Map<string, Lane>();
  try {
    for (const spec of order) lanes.set(spec.name, await start(spec, rotation));
    const laneOf = (i: number): Lane => lanes.get(specs[i]!.name)!;
    for (const round of ROUNDS_OF_CYCLE)
      for (const [a, b] of round) await together([laneOf(a), laneOf(b)], WARMUP);
    for (let cycle = 0; cycle < ROUNDS; cycle++) {
      for (let r = 0; r < ROUNDS_OF_CYCLE.length; r++) {
        const round = ROUNDS_OF_CYCLE[(r + cycle) % ROUNDS_OF_CYCLE.length]!;
        for (let k = 0; k < round.length; k++) {
          const [a, b] = round[(k + cycle) % round.length]!;
          const [ga, gb] = await together([laneOf(a), laneOf(b)], SECONDS);
          if (!(ga!.rps > 0 && gb!.rps > 0)) continue;
          obs.push({
            x: a,
            y: b,
            rotation,
            rps: Math.log(ga!.rps / gb!.rps),
            cpu: Math.log(ga!.cpu / gb!.cpu),
            main: Math.log(ga!.main / gb!.main),
          });
          cpuUs[a]!.push(ga!.cpu / 1000);
          cpuUs[b]!.push(gb!.cpu / 1000);
        }
      }
    }
    console.log(
      JSON.stringify({
        rotation,
        load: loadAverage(),
        verdicts: [...lanes.values()].map((l) => `${l.spec.name}:${verdictSummary(l.server)}`).join(' '),
      }),
    );
  } finally {
    for (const l of lanes.values()) if (l.scraper !== null) await l.scraper.stop();
    await stopAll([...lanes.values()].map((l) => l.server.proc));
  }
}

/**
 * Each server's strength s (log scale) from its pairs, least squares on log(x/y) = s_x − s_y:
 * in a complete, balanced design that is the mean over its opponents of its mean log ratio
 * against each (sum-to-zero). Returned as exp(s_x − s_ref).
 */
function strengths(sel: Obs[], field: 'rps' | 'cpu' | 'main'): number[] {
  const n = specs.length;
  const sum = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const cnt = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const o of sel) {
    sum[o.x]![o.y]! += o[field];
    cnt[o.x]![o.y]! += 1;
    sum[o.y]![o.x]! -= o[field];
    cnt[o.y]![o.x]! += 1;
  }
  return sum.map((row, x) => {
    let s = 0;
    for (let y = 0; y < n; y++) if (y !== x && cnt[x]![y]! > 0) s += row[y]! / cnt[x]![y]!;
    return s / n;
  });
}
const idx = (name: string): number => specs.findIndex((s) => s.name === name);
function report(sel: Obs[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const field of ['rps', 'cpu', 'main'] as const) {
    const s = strengths(sel, field);
    const noMetrics = (s[idx('off')]! + s[idx('control')]!) / 2;
    out[`${field} on/no-metrics`] = Math.exp(s[idx('on')]! - noMetrics);
    out[`${field} A/A control/off`] = Math.exp(s[idx('control')]! - s[idx('off')]!);
    for (const v of VARIANTS) {
      out[`${field} ${v.name}/on`] = Math.exp(s[idx(v.name)]! - s[idx('on')]!);
      out[`${field} ${v.name}/no-metrics`] = Math.exp(s[idx(v.name)]! - noMetrics);
    }
  }
  return out;
}
const all = report(obs);
const byRotation = Array.from({ length: ROTATIONS }, (_, r) => report(obs.filter((o) => o.rotation === r)));
console.log(`\nJSON 1 × 16, ${t0} → ${new Date().toISOString()}, load ${loadBefore} → ${loadAverage()}`);
console.log(`${obs.length} pairs; each server's strength from all its pairs (least squares on log ratios)`);
const comparisons = [
  'on/no-metrics',
  'A/A control/off',
  ...VARIANTS.flatMap((v) => [`${v.name}/on`, `${v.name}/no-metrics`]),
];
printTable(
  ['x/y', 'req/s x/y', 'by rotation', 'CPU/request x/y', 'by rotation', 'HTTP thread x/y'],
  comparisons.map((c) => [
    c,
    all[`rps ${c}`]!.toFixed(3),
    byRotation.map((r) => r[`rps ${c}`]!.toFixed(3)).join(' '),
    all[`cpu ${c}`]!.toFixed(3),
    byRotation.map((r) => r[`cpu ${c}`]!.toFixed(3)).join(' '),
    all[`main ${c}`]!.toFixed(3),
  ]),
);
console.log(
  'median CPU µs/request: ' + specs.map((s, i) => `${s.name} ${median(cpuUs[i]!).toFixed(1)}`).join(', '),
);
writeResults('metrics-ablation', {
  cli: CLI,
  variants: VARIANTS,
  rounds: ROUNDS,
  seconds: SECONDS,
  specs: specs.map((s) => s.name),
  all,
  byRotation,
  obs,
});
