// Cost of metrics, end to end over HTTP: the same inference workload against Quoll servers of
// the same build, one keeping metrics (the default) and scraped on /metrics every second (a
// Prometheus 15 times more eager than the usual 15 s), one started with --no-metrics, and a
// second --no-metrics server as a control (A/A: what two identical servers differ by here,
// i.e. how finely this machine measures at all). JSON batch 1 (where per-request work weighs
// most) and Arrow batch 1000, 16 connections per server from wrk on the other core.
//
// Paired and simultaneous: in each round three pairs take load one after the other, the two
// servers of a pair at the same time, both pinned to the same core (so each gets about half of
// it): on with off, off with control, control with on (the pairs' order rotates from round to
// round). Whatever else the shared machine does then hits both servers of a pair in the same
// seconds, and a server that spends more CPU per request answers fewer of them: the ratio of
// their requests/s is the throughput cost. (Measured one after the other instead, rotating, 15
// rounds of 2 s, the middle half of on/off spanned 0.80–1.12 at load 8–9.) Reported: the
// median over pairs of on / no-metrics (off or control; 2 pairs a round) and its middle half
// (25th–75th percentile), the same for control/off (A/A, 1 pair a round: what to expect of no
// difference at all), and each server's CPU time per request (all threads, nanoseconds from
// /proc/<pid>/task/*/schedstat), all threads and the main (HTTP) thread alone. Target: on / no-metrics ≥ 0.98 (metrics cost ≤ 2 %). Also the
// recording itself timed in this process: what ServerMetrics costs per inference request
// (inferenceServed + rowsInferred + batch) and per scrape (render).
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 3), BENCH_ROUNDS (default 8),
// BENCH_CONNECTIONS (default 16), BENCH_FORMATS (default json,arrow), BENCH_SCRAPE_S (seconds
// between scrapes, default 1; 0 = no scraper: the metrics server then never starts its process
// collectors, so on/off is the per-request recording alone). For bisecting, the metrics
// server alone: BENCH_ON_CLI (another build's dist/cli/main.js), BENCH_ON_ARGS (extra flags,
// e.g. --no-metrics: then the scraper's GET /metrics answers 404), BENCH_ON_ENV ("K=V K=V");
// BENCH_SCRAPER_CORE pins the scraper (default: unpinned). For an A/B of two builds, the
// reference servers (off and control) alike: BENCH_REF_CLI (another build), BENCH_REF_ARGS (their
// flags instead of --no-metrics; "" = metrics on, unscraped), e.g. BENCH_SCRAPE_S=0
// BENCH_REF_ARGS= BENCH_REF_CLI=<the build before>: this build over that one, A/A between two of it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerMetrics } from '../packages/quoll/dist/metrics/index.js';
import {
  deployModel,
  loadAverage,
  mainThreadCpuNs,
  median,
  modelName,
  percentile,
  printTable,
  startQuoll,
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
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
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

interface Lane {
  name: 'on' | 'off' | 'control';
  server: BenchServer;
  inferUrl: string;
}

async function lane(
  name: Lane['name'],
  extra: string[],
  opts: Parameters<typeof startQuoll>[3] = {},
): Promise<Lane> {
  const server = await startQuoll(work, name, extra, opts);
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  return { name, server, inferUrl: pipeline.url() };
}

const loadBefore = loadAverage();
const refArgs =
  process.env.BENCH_REF_ARGS === undefined
    ? ['--no-metrics']
    : process.env.BENCH_REF_ARGS.split(' ').filter(Boolean);
const ref = process.env.BENCH_REF_CLI ? { cli: process.env.BENCH_REF_CLI } : {};
// Started in this order (the metrics server neither first nor last), each on its own home.
const off = await lane('off', refArgs, ref);
const on = await lane('on', (process.env.BENCH_ON_ARGS ?? '').split(' ').filter(Boolean), {
  ...(process.env.BENCH_ON_CLI ? { cli: process.env.BENCH_ON_CLI } : {}),
  env: Object.fromEntries(
    (process.env.BENCH_ON_ENV ?? '')
      .split(' ')
      .filter(Boolean)
      .map((kv) => kv.split('=', 2) as [string, string]),
  ),
});
const control = await lane('control', refArgs, ref);
const lanes = [on, off, control];
// The scraper is its own process, like Prometheus.
const scraper =
  SCRAPE_S <= 0
    ? null
    : startScraper(on.server.url, on.server.token, SCRAPE_S, process.env.BENCH_SCRAPER_CORE);
let scraped = '';

/** The median and the middle half (25th–75th percentile) of xs, as text. */
const spread = (xs: number[]): string =>
  `${median(xs).toFixed(3)} (${percentile(xs, 25).toFixed(3)}–${percentile(xs, 75).toFixed(3)})`;

const results: Record<string, unknown>[] = [];
const table: (string | number)[][] = [];
try {
  for (const w of workloads) {
    const scripts = new Map(
      lanes.map((l) => [
        l.name,
        writeLua(work, { format: w.format, batch: w.batch, token: l.server.token, tag: l.name }),
      ]),
    );
    type Run = { rps: number; cpuNsPerRequest: number; mainNsPerRequest: number; non2xx: number };
    /**
     * wrk against each lane at the same time: requests/s, CPU ns per request (all threads, and
     * the main thread, i.e. the HTTP thread, alone), non-2xx answers.
     */
    const together = async (ls: Lane[], seconds: number): Promise<Run[]> => {
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
        mainNsPerRequest:
          (mainThreadCpuNs(ls[i]!.server.proc.pid!) - mainBefore[i]!) / (r.reqPerSec * seconds),
        non2xx: r.non2xx,
      }));
    };
    await together([on, off], WARMUP);
    await together([off, control], WARMUP);
    await together([control, on], WARMUP);
    const rps: Record<Lane['name'], number[]> = { on: [], off: [], control: [] };
    const cpu: Record<Lane['name'], number[]> = { on: [], off: [], control: [] };
    const mainCpu: Record<Lane['name'], number[]> = { on: [], off: [], control: [] };
    // The metrics server over a --no-metrics one (off or control), and the A/A control/off.
    const onOverOff: number[] = [];
    const controlOverOff: number[] = [];
    const cpuOnOverOff: number[] = [];
    const cpuControlOverOff: number[] = [];
    const mainOnOverOff: number[] = [];
    const mainControlOverOff: number[] = [];
    let errors = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Every server is in two of the three pairs, and the pairs' order rotates: none is busier
      // or idler than another before its runs (with one server in every pair, that one came out
      // 5–10 % ahead of both others).
      const pairs: Array<[Lane, Lane]> = [
        [on, off],
        [off, control],
        [control, on],
      ];
      for (let k = 0; k < pairs.length; k++) {
        const [x, y] = pairs[(k + round) % pairs.length]!;
        const [rx, ry] = (await together([x, y], SECONDS)) as [Run, Run];
        errors += rx.non2xx + ry.non2xx;
        const byName = new Map([
          [x.name, rx],
          [y.name, ry],
        ]);
        for (const [name, r] of byName) {
          rps[name].push(r.rps * w.batch);
          cpu[name].push(r.cpuNsPerRequest);
          mainCpu[name].push(r.mainNsPerRequest);
        }
        const metricsOn = byName.get('on');
        const noMetrics = byName.get('off') ?? byName.get('control')!;
        if (metricsOn !== undefined) {
          onOverOff.push(metricsOn.rps / noMetrics.rps);
          cpuOnOverOff.push(metricsOn.cpuNsPerRequest / noMetrics.cpuNsPerRequest);
          mainOnOverOff.push(metricsOn.mainNsPerRequest / noMetrics.mainNsPerRequest);
        } else {
          const c = byName.get('control')!;
          const o = byName.get('off')!;
          controlOverOff.push(c.rps / o.rps);
          cpuControlOverOff.push(c.cpuNsPerRequest / o.cpuNsPerRequest);
          mainControlOverOff.push(c.mainNsPerRequest / o.mainNsPerRequest);
        }
      }
    }
    const row = {
      ...w,
      connections: CONNECTIONS,
      rounds: ROUNDS,
      onRowsPerSec: median(rps.on),
      offRowsPerSec: median(rps.off),
      controlRowsPerSec: median(rps.control),
      onOverOff: median(onOverOff),
      onOverOffIqr: [percentile(onOverOff, 25), percentile(onOverOff, 75)],
      controlOverOff: median(controlOverOff),
      controlOverOffIqr: [percentile(controlOverOff, 25), percentile(controlOverOff, 75)],
      cpuUsPerRequest: medianUs(cpu),
      cpuOnOverOff: median(cpuOnOverOff),
      cpuControlOverOff: median(cpuControlOverOff),
      mainThreadUsPerRequest: medianUs(mainCpu),
      mainOnOverOff: median(mainOnOverOff),
      mainControlOverOff: median(mainControlOverOff),
      ratios: {
        onOverOff,
        controlOverOff,
        cpuOnOverOff,
        cpuControlOverOff,
        mainOnOverOff,
        mainControlOverOff,
      },
      non2xx: errors,
    };
    results.push(row);
    table.push([
      w.format,
      w.batch,
      Math.round(row.onRowsPerSec),
      Math.round(row.offRowsPerSec),
      Math.round(row.controlRowsPerSec),
      spread(onOverOff),
      spread(controlOverOff),
      `${row.cpuUsPerRequest.on.toFixed(1)} / ${row.cpuUsPerRequest.off.toFixed(1)} / ${row.cpuUsPerRequest.control.toFixed(1)}`,
      spread(cpuOnOverOff),
      spread(cpuControlOverOff),
      `${row.mainThreadUsPerRequest.on.toFixed(1)} / ${row.mainThreadUsPerRequest.off.toFixed(1)} / ${row.mainThreadUsPerRequest.control.toFixed(1)}`,
      spread(mainOnOverOff),
      spread(mainControlOverOff),
      errors,
    ]);
    console.log(JSON.stringify({ ...row, ratios: undefined }));
  }
} finally {
  if (scraper !== null) scraped = await scraper.stop();
  await stopAll(lanes.map((l) => l.server.proc));
}
const loadAfter = loadAverage();
console.log(
  `\nmodel: ${modelName}; ${CONNECTIONS} connections; warmup ${WARMUP}s, ${ROUNDS} rounds of three ${SECONDS}s pairs (on with off, off with control, control with on, at the same time); scraper: ${scraper === null ? 'none (BENCH_SCRAPE_S=0)' : `every ${SCRAPE_S}s ${scraped.trim()}`}; recording ${recording.nsPerRequest.toFixed(0)} ns/request, render ${recording.renderMs.toFixed(2)} ms; off and control: ${process.env.BENCH_REF_CLI ?? 'this build'} ${refArgs.join(' ') || '(metrics on)'}; load average ${loadBefore} → ${loadAfter}`,
);
console.log('ratios: median over rounds of each round’s own ratio (25th–75th percentile)');
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
    'non2xx',
  ],
  table,
);
writeResults('metrics', {
  model: modelName,
  connections: CONNECTIONS,
  warmupS: WARMUP,
  seconds: SECONDS,
  rounds: ROUNDS,
  loadAverage: [loadBefore, loadAfter],
  scraper: scraped.trim(),
  recording,
  results,
});
rmSync(work, { recursive: true, force: true });

/** Each server's median CPU per request, nanoseconds in, microseconds out. */
function medianUs(ns: { on: number[]; off: number[]; control: number[] }): {
  on: number;
  off: number;
  control: number;
} {
  return { on: median(ns.on) / 1000, off: median(ns.off) / 1000, control: median(ns.control) / 1000 };
}
