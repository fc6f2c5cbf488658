// Cost of metrics, end to end over HTTP: the same inference workload against Quoll servers of
// the same build, one keeping metrics (the default) and scraped on /metrics every second (a
// Prometheus 15 times more eager than the usual 15 s), one started with --no-metrics, and a
// second --no-metrics server as a control (A/A: what two identical servers differ by here,
// i.e. how finely this machine measures at all). JSON batch 1 (where per-request work weighs
// most) and Arrow batch 1000, 16 connections per server from wrk on the other core.
//
// Paired and simultaneous: in each round three pairs take load one after the other, the two
// servers of a pair at the same time, both pinned to the same core (so each gets about half of
// it): on with off, off with control, control with on. Whatever else the shared machine does
// then hits both servers of a pair in the same seconds, and a server that spends more CPU per
// request answers fewer of them: the ratio of their requests/s is the throughput cost.
// (Measured one after the other instead, rotating, 15 rounds of 2 s, the middle half of on/off
// spanned 0.80–1.12 at load 8–9.)
//
// Balanced hand-overs: two consecutive pairs always share one server, which goes on under load
// (it "continues") while its new partner comes back from one pair's rest ("returns"); a server
// idle for longer is slower on its next seconds (docs/benchmarks.md, the metrics lane of 5
// December 06:52). The rounds alternate two orders, (on+off, off+control, control+on) and
// (on+off, control+on, off+control), and the warm-up ends with off+control, so over every two
// rounds each pair comes once after each of the other two: each of its servers continues once
// and returns once, and the A/A and on / no-metrics carry no hand-over bias (with one order
// rotated, as before 5 December, the A/A's off continued in 3 of its 5 pairs a rotation, and
// "on" continued in 4 of 5 against off, 1 of 5 against control). The rounds are rounded up to
// an even number. Reported too: the requests/s of the continuing server over its returning
// partner, the hand-over's own effect.
//
// Rotated start order: the servers are started, warmed up and measured in BENCH_ROTATIONS
// rotations (default 3), restarted (fresh homes) between them, and each rotation starts them in
// another order: off, on, control; then on, control, off; then control, off, on. So over three
// rotations each role is started first, second and third once, and whatever a server's place
// in the start order does (PIDs, memory placement, the scheduler's view of older tasks) falls on
// every role alike instead of on the metrics server alone (it used to be started second always).
//
// Reported, pooled over rotations and per rotation: the median over pairs of on / no-metrics
// (off or control; 2 pairs a round) and its middle half (25th–75th percentile), the same for
// control/off (A/A, 1 pair a round: what to expect of no difference at all), and each server's
// CPU time per request (nanoseconds from /proc/<pid>/task/*/schedstat), all threads and the main
// (HTTP) thread alone; and, whatever the role, the requests/s of the server started first,
// second or third over its partner's in the same pair (the start order's own effect).
// Target: on / no-metrics ≥ 0.98 (metrics cost ≤ 2 %). Also the recording itself timed in this
// process: what ServerMetrics costs per inference request (inferenceServed + rowsInferred +
// batch) and per scrape (render).
// Env: BENCH_WARMUP_S (per pair and rotation, default 2), BENCH_SECONDS (default 3),
// BENCH_ROTATIONS (default 3), BENCH_ROUNDS (per rotation, even, default 6), BENCH_CONNECTIONS (default
// 16), BENCH_FORMATS (default json,arrow), BENCH_SCRAPE_S (seconds between scrapes, default 1; 0
// = no scraper: the metrics server then never starts its process collectors, so on/off is the
// per-request recording alone). For bisecting, the metrics server alone: BENCH_ON_CLI (another
// build's dist/cli/main.js), BENCH_ON_ARGS (extra flags, e.g. --no-metrics: then the scraper's
// GET /metrics answers 404), BENCH_ON_ENV ("K=V K=V"); BENCH_SCRAPER_CORE pins the scraper
// (default: unpinned). For an A/B of two builds, the reference servers (off and control) alike:
// BENCH_REF_CLI (another build), BENCH_REF_ARGS (their flags instead of --no-metrics; "" =
// metrics on, unscraped), e.g. BENCH_SCRAPE_S=0 BENCH_REF_ARGS= BENCH_REF_CLI=<the build
// before>: this build over that one, A/A between two of it.
// One run's median moves by about ±1 %: pool several runs (each run's bench/results/metrics.json
// copied aside) with bench/metrics-pool.ts, which prints bootstrap intervals of the medians.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerMetrics } from '../packages/quoll/dist/metrics/index.js';
import {
  awaitInlineVerdict,
  checkVerdicts,
  deployModel,
  loadAverage,
  mainThreadCpuNs,
  median,
  modelName,
  percentile,
  printTable,
  startQuoll,
  verdictSummary,
  startScraper,
  stopAll,
  threadCpuNs,
  wrkAsync,
  writeBenchModel,
  writeLua,
  writeResults,
  type BenchServer,
} from './support.js';

const WARMUP = Number(process.env.BENCH_WARMUP_S ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 3);
/** Rounds per rotation, even: every two rounds balance the hand-overs (see above). */
const ROUNDS = 2 * Math.ceil(Number(process.env.BENCH_ROUNDS ?? 6) / 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-metrics-'));
const modelPath = writeBenchModel(work);

interface Workload {
  format: 'json' | 'arrow';
  batch: number;
}
const FORMATS = (process.env.BENCH_FORMATS ?? 'json,arrow').split(',');
const SCRAPE_S = Number(process.env.BENCH_SCRAPE_S ?? 1);
const workloads: Workload[] = (
  [
    { format: 'json', batch: 1 },
    { format: 'arrow', batch: 1000 },
  ] as Workload[]
).filter((w) => FORMATS.includes(w.format));

/** ns per request of the recording calls and ms per render, median of 3 timed loops. */
async function recordingCost(): Promise<{ nsPerRequest: number; renderMs: number }> {
  const m = new ServerMetrics({
    queueDepths: () => [{ workspaceId: 1, name: 'benchpipe', queued: 0 }],
    logQueuedRows: () => 0,
    logBytes: () => Promise.resolve(0),
    logState: () => 'open',
  });
  const n = 500_000;
  const loop = (): number => {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      m.inferenceServed(1, 'benchpipe', 200, 0.0004 + (i & 7) * 0.0001);
      m.rowsInferred(1, 'benchpipe', 1);
      m.batch(1);
    }
    return Number(process.hrtime.bigint() - t) / n;
  };
  loop();
  const ns = median([loop(), loop(), loop()]);
  const renders: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = process.hrtime.bigint();
    await m.render();
    renders.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return { nsPerRequest: ns, renderMs: median(renders) };
}
const recording = await recordingCost();
console.log(JSON.stringify({ recording }));

type Role = 'on' | 'off' | 'control';
interface Lane {
  name: Role;
  server: BenchServer;
  inferUrl: string;
}

const refArgs =
  process.env.BENCH_REF_ARGS === undefined
    ? ['--no-metrics']
    : process.env.BENCH_REF_ARGS.split(' ').filter(Boolean);
const ref = process.env.BENCH_REF_CLI ? { cli: process.env.BENCH_REF_CLI } : {};
const onArgs = (process.env.BENCH_ON_ARGS ?? '').split(' ').filter(Boolean);
const onOpts: Parameters<typeof startQuoll>[3] = {
  ...(process.env.BENCH_ON_CLI ? { cli: process.env.BENCH_ON_CLI } : {}),
  env: Object.fromEntries(
    (process.env.BENCH_ON_ENV ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => kv.split('=', 2) as [string, string]),
  ),
};

/** Starts one server (home `<work>/<role>-<rotation>`) and deploys the bench pipeline on it. */
async function lane(name: Role, rotation: number): Promise<Lane> {
  const server =
    name === 'on'
      ? await startQuoll(work, `${name}-${rotation}`, onArgs, onOpts)
      : await startQuoll(work, `${name}-${rotation}`, refArgs, ref);
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  // Its admission probe answered before the next server starts on the core and before any
  // warm-up: servers of different verdicts (inline vs the workers) differ by ~1.5× in CPU a
  // request at JSON batch 1, which is what split rotations before.
  await awaitInlineVerdict(server, `${name}-${rotation}`);
  return { name, server, inferUrl: pipeline.url() };
}

/** Rotation r starts the roles in this order rotated by r (r = 0: the metrics server second). */
const BASE_ORDER: Role[] = ['off', 'on', 'control'];
const startOrder = (rotation: number): Role[] => BASE_ORDER.map((_, k) => BASE_ORDER[(k + rotation) % 3]!);

/** The median and the middle half (25th–75th percentile) of xs, as text. */
const spread = (xs: number[]): string =>
  xs.length === 0
    ? '–'
    : `${median(xs).toFixed(3)} (${percentile(xs, 25).toFixed(3)}–${percentile(xs, 75).toFixed(3)})`;

/** Paired ratios of one workload: on over no-metrics, the A/A, and by start position. */
interface Ratios {
  onOverOff: number[];
  controlOverOff: number[];
  cpuOnOverOff: number[];
  cpuControlOverOff: number[];
  mainOnOverOff: number[];
  mainControlOverOff: number[];
  /** Requests/s of the server started first, second, third over its partner's in the pair. */
  byPosition: [number[], number[], number[]];
  /** Requests/s of the server that was also in the previous pair over its partner's. */
  continuingOverReturning: number[];
  rps: Record<Role, number[]>;
  cpu: Record<Role, number[]>;
  mainCpu: Record<Role, number[]>;
  errors: number;
  /** Pairs left out: wrk reported no requests/s (NaN or 0) for one of the two servers. */
  dropped: number;
}
const newRatios = (): Ratios => ({
  onOverOff: [],
  controlOverOff: [],
  cpuOnOverOff: [],
  cpuControlOverOff: [],
  mainOnOverOff: [],
  mainControlOverOff: [],
  byPosition: [[], [], []],
  continuingOverReturning: [],
  rps: { on: [], off: [], control: [] },
  cpu: { on: [], off: [], control: [] },
  mainCpu: { on: [], off: [], control: [] },
  errors: 0,
  dropped: 0,
});
const pooled = new Map(workloads.map((w) => [w.format, newRatios()]));
const perRotation = new Map(workloads.map((w) => [w.format, [] as Ratios[]]));
type Run = { rps: number; cpuNsPerRequest: number; mainNsPerRequest: number; non2xx: number };

/**
 * wrk against each lane at the same time: requests/s, CPU ns per request (all threads, and
 * the main thread, i.e. the HTTP thread, alone), non-2xx answers.
 */
async function together(ls: Lane[], scripts: Map<Role, string>, seconds: number): Promise<Run[]> {
  const before = ls.map((l) => threadCpuNs(l.server.proc.pid!));
  const mainBefore = ls.map((l) => mainThreadCpuNs(l.server.proc.pid!));
  const got = await Promise.all(
    ls.map((l) =>
      wrkAsync({ url: l.inferUrl, luaScript: scripts.get(l.name)!, connections: CONNECTIONS, seconds }),
    ),
  );
  return got.map((r, i) => ({
    rps: r.reqPerSec,
    cpuNsPerRequest: (threadCpuNs(ls[i]!.server.proc.pid!) - before[i]!) / (r.reqPerSec * seconds),
    mainNsPerRequest: (mainThreadCpuNs(ls[i]!.server.proc.pid!) - mainBefore[i]!) / (r.reqPerSec * seconds),
    non2xx: r.non2xx,
  }));
}

/** Warms up and measures one workload on the three started lanes, into `into` (one or more). */
async function measure(w: Workload, lanes: Lane[], order: Role[], into: Ratios[]): Promise<void> {
  const byName = new Map(lanes.map((l) => [l.name, l]));
  const [on, off, control] = [byName.get('on')!, byName.get('off')!, byName.get('control')!];
  const scripts = new Map(
    lanes.map((l) => [
      l.name,
      writeLua(work, { format: w.format, batch: w.batch, token: l.server.token, tag: l.name }),
    ]),
  );
  // Every server is in two of the three pairs of a round: none is busier or idler than another
  // before its runs (with one server in every pair, that one came out 5–10 % ahead of both
  // others). The two orders alternate, so that each pair follows each other pair equally often
  // (the header's "balanced hand-overs"); the warm-up ends as an odd round does.
  const orders: Array<Array<[Lane, Lane]>> = [
    [
      [on, off],
      [off, control],
      [control, on],
    ],
    [
      [on, off],
      [control, on],
      [off, control],
    ],
  ];
  let previous: [Lane, Lane] | null = null;
  for (const [x, y] of orders[1]!) {
    await together([x, y], scripts, WARMUP);
    previous = [x, y];
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [x, y] of orders[round % 2]!) {
      const continuing = previous!.includes(x) ? x : y;
      previous = [x, y];
      const [rx, ry] = (await together([x, y], scripts, SECONDS)) as [Run, Run];
      // A pair without a rate for both (seen once at 23:22 on 2 December: a NaN ratio, which
      // then sorts anywhere and skews the medians) is left out and counted.
      if (!(rx.rps > 0 && ry.rps > 0)) {
        console.error(`pair ${x.name}+${y.name}: requests/s ${rx.rps} and ${ry.rps}, left out`);
        for (const r of into) r.dropped += 1;
        continue;
      }
      const runs = new Map([
        [x.name, rx],
        [y.name, ry],
      ]);
      for (const r of into) {
        r.errors += rx.non2xx + ry.non2xx;
        for (const [name, run] of runs) {
          r.rps[name].push(run.rps * w.batch);
          r.cpu[name].push(run.cpuNsPerRequest);
          r.mainCpu[name].push(run.mainNsPerRequest);
        }
        r.byPosition[order.indexOf(x.name)]!.push(rx.rps / ry.rps);
        r.byPosition[order.indexOf(y.name)]!.push(ry.rps / rx.rps);
        r.continuingOverReturning.push(continuing === x ? rx.rps / ry.rps : ry.rps / rx.rps);
        const metricsOn = runs.get('on');
        const noMetrics = runs.get('off') ?? runs.get('control')!;
        if (metricsOn !== undefined) {
          r.onOverOff.push(metricsOn.rps / noMetrics.rps);
          r.cpuOnOverOff.push(metricsOn.cpuNsPerRequest / noMetrics.cpuNsPerRequest);
          r.mainOnOverOff.push(metricsOn.mainNsPerRequest / noMetrics.mainNsPerRequest);
        } else {
          const c = runs.get('control')!;
          const o = runs.get('off')!;
          r.controlOverOff.push(c.rps / o.rps);
          r.cpuControlOverOff.push(c.cpuNsPerRequest / o.cpuNsPerRequest);
          r.mainControlOverOff.push(c.mainNsPerRequest / o.mainNsPerRequest);
        }
      }
    }
  }
}

const loadBefore = loadAverage();
const scrapes: string[] = [];
/** Each rotation's servers' inline verdicts (`on: on, off: on, …`) and whether they agreed. */
const rotationVerdicts: { verdicts: Record<Role, string>; agree: boolean }[] = [];
for (let rotation = 0; rotation < ROTATIONS; rotation++) {
  const order = startOrder(rotation);
  const lanes: Lane[] = [];
  let scraper: ReturnType<typeof startScraper> | null = null;
  try {
    for (const role of order) lanes.push(await lane(role, rotation));
    const on = lanes.find((l) => l.name === 'on')!;
    // The scraper is its own process, like Prometheus.
    scraper =
      SCRAPE_S <= 0
        ? null
        : startScraper(on.server.url, on.server.token, SCRAPE_S, process.env.BENCH_SCRAPER_CORE);
    for (const w of workloads) {
      const mine = newRatios();
      perRotation.get(w.format)!.push(mine);
      await measure(w, lanes, order, [pooled.get(w.format)!, mine]);
      console.log(
        JSON.stringify({
          rotation,
          order,
          format: w.format,
          onOverOff: median(mine.onOverOff),
          controlOverOff: median(mine.controlOverOff),
          cpuOnOverOff: median(mine.cpuOnOverOff),
          load: loadAverage(),
        }),
      );
    }
    // Trips included: a verdict that changed during the measure is the same split.
    const agree = checkVerdicts(lanes.map((l) => ({ label: `${l.name}-${rotation}`, server: l.server })));
    rotationVerdicts.push({
      verdicts: Object.fromEntries(lanes.map((l) => [l.name, verdictSummary(l.server)])) as Record<
        Role,
        string
      >,
      agree,
    });
  } finally {
    if (scraper !== null) scrapes.push(await scraper.stop());
    await stopAll(lanes.map((l) => l.server.proc));
  }
}
const loadAfter = loadAverage();

const results: Record<string, unknown>[] = [];
const table: (string | number)[][] = [];
const rotationTable: (string | number)[][] = [];
/** A summary of paired ratios (all of them, or one rotation's). */
const summary = (r: Ratios) => ({
  onRowsPerSec: median(r.rps.on),
  offRowsPerSec: median(r.rps.off),
  controlRowsPerSec: median(r.rps.control),
  onOverOff: median(r.onOverOff),
  onOverOffIqr: [percentile(r.onOverOff, 25), percentile(r.onOverOff, 75)],
  controlOverOff: median(r.controlOverOff),
  controlOverOffIqr: [percentile(r.controlOverOff, 25), percentile(r.controlOverOff, 75)],
  cpuUsPerRequest: medianUs(r.cpu),
  cpuOnOverOff: median(r.cpuOnOverOff),
  cpuControlOverOff: median(r.cpuControlOverOff),
  mainThreadUsPerRequest: medianUs(r.mainCpu),
  mainOnOverOff: median(r.mainOnOverOff),
  mainControlOverOff: median(r.mainControlOverOff),
  startedFirstSecondThirdOverPartner: r.byPosition.map((xs) => median(xs)),
  continuingOverReturning: median(r.continuingOverReturning),
  non2xx: r.errors,
  droppedPairs: r.dropped,
});
for (const w of workloads) {
  const all = pooled.get(w.format)!;
  const rotations = perRotation.get(w.format)!;
  const row = {
    ...w,
    connections: CONNECTIONS,
    rotations: ROTATIONS,
    roundsPerRotation: ROUNDS,
    ...summary(all),
    // Each rotation's own pairs too: its three servers are one draw of server instances (a
    // rotation's A/A can sit 3–5 % off 1 in all its pairs), which metrics-pool.ts resamples whole.
    perRotation: rotations.map((r, k) => ({
      order: startOrder(k),
      ...summary(r),
      ratios: {
        onOverOff: r.onOverOff,
        controlOverOff: r.controlOverOff,
        cpuOnOverOff: r.cpuOnOverOff,
        cpuControlOverOff: r.cpuControlOverOff,
        mainOnOverOff: r.mainOnOverOff,
        mainControlOverOff: r.mainControlOverOff,
      },
    })),
    ratios: {
      onOverOff: all.onOverOff,
      controlOverOff: all.controlOverOff,
      cpuOnOverOff: all.cpuOnOverOff,
      cpuControlOverOff: all.cpuControlOverOff,
      mainOnOverOff: all.mainOnOverOff,
      mainControlOverOff: all.mainControlOverOff,
      byPosition: all.byPosition,
      continuingOverReturning: all.continuingOverReturning,
    },
  };
  results.push(row);
  const us = (x: { on: number; off: number; control: number }): string =>
    `${x.on.toFixed(1)} / ${x.off.toFixed(1)} / ${x.control.toFixed(1)}`;
  table.push([
    w.format,
    w.batch,
    Math.round(row.onRowsPerSec),
    Math.round(row.offRowsPerSec),
    Math.round(row.controlRowsPerSec),
    spread(all.onOverOff),
    spread(all.controlOverOff),
    us(row.cpuUsPerRequest),
    spread(all.cpuOnOverOff),
    spread(all.cpuControlOverOff),
    us(row.mainThreadUsPerRequest),
    spread(all.mainOnOverOff),
    spread(all.mainControlOverOff),
    all.byPosition.map((xs) => median(xs).toFixed(3)).join(' / '),
    spread(all.continuingOverReturning),
    all.errors,
    all.dropped,
  ]);
  rotations.forEach((r, k) =>
    rotationTable.push([
      w.format,
      startOrder(k).join(', '),
      verdictText(k),
      spread(r.onOverOff),
      spread(r.controlOverOff),
      median(r.cpuOnOverOff).toFixed(3),
      median(r.cpuControlOverOff).toFixed(3),
      median(r.mainOnOverOff).toFixed(3),
      median(r.mainControlOverOff).toFixed(3),
      r.byPosition.map((xs) => median(xs).toFixed(3)).join(' / '),
      median(r.continuingOverReturning).toFixed(3),
    ]),
  );
  console.log(JSON.stringify({ ...row, perRotation: undefined, ratios: undefined }));
}
console.log(
  `\nmodel: ${modelName}; ${CONNECTIONS} connections; ${ROTATIONS} start-order rotations, each: warmup ${WARMUP}s per pair, ${ROUNDS} rounds of three ${SECONDS}s pairs (on with off, off with control, control with on, at the same time; the last two swapped every other round); scraper: ${SCRAPE_S <= 0 ? 'none (BENCH_SCRAPE_S=0)' : `every ${SCRAPE_S}s ${scrapes.join(' ')}`}; recording ${recording.nsPerRequest.toFixed(0)} ns/request, render ${recording.renderMs.toFixed(2)} ms; off and control: ${process.env.BENCH_REF_CLI ?? 'this build'} ${refArgs.join(' ') || '(metrics on)'}; load average ${loadBefore} → ${loadAfter}`,
);
console.log(
  'pooled over rotations; ratios: median over pairs of each pair’s own ratio (25th–75th percentile)',
);
printTable(
  [
    'format',
    'batch',
    'on rows/s',
    'off rows/s',
    'control rows/s',
    'on/no-metrics',
    'control/off (A/A)',
    'cpu µs/req on/off/control',
    'cpu on/no-metrics',
    'cpu control/off',
    'main µs/req on/off/control',
    'main on/no-metrics',
    'main control/off',
    'started 1st/2nd/3rd over partner',
    'continuing over returning',
    'non2xx',
    'pairs left out',
  ],
  table,
);
console.log('per rotation (start order)');
printTable(
  [
    'format',
    'started',
    'inline verdicts on/off/control',
    'on/no-metrics',
    'control/off (A/A)',
    'cpu on/no-metrics',
    'cpu A/A',
    'main on/no-metrics',
    'main A/A',
    '1st/2nd/3rd over partner',
    'continuing over returning',
  ],
  rotationTable,
);
writeResults('metrics', {
  model: modelName,
  connections: CONNECTIONS,
  warmupS: WARMUP,
  seconds: SECONDS,
  rotations: ROTATIONS,
  roundsPerRotation: ROUNDS,
  loadAverage: [loadBefore, loadAfter],
  inlineVerdicts: rotationVerdicts,
  scraper: scrapes,
  recording,
  results,
});
rmSync(work, { recursive: true, force: true });

/** Rotation k's verdicts, on / off / control, marked when they differ. */
function verdictText(k: number): string {
  const r = rotationVerdicts[k];
  if (r === undefined) return '–';
  const text = `${r.verdicts.on} / ${r.verdicts.off} / ${r.verdicts.control}`;
  return r.agree ? text : `${text} DIFFER`;
}

/** Each server's median CPU per request, nanoseconds in, microseconds out. */
function medianUs(ns: Record<Role, number[]>): Record<Role, number> {
  return { on: median(ns.on) / 1000, off: median(ns.off) / 1000, control: median(ns.control) / 1000 };
}
