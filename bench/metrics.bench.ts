// Cost of metrics: the same inference workload against two Quoll servers, one keeping metrics
// (the default) and scraped every second on /metrics (a Prometheus far more eager than the
// usual 15 s), and one started with --no-metrics. JSON batch 1 (where per-request work weighs
// most) and Arrow batch 1000, 16 connections. Interleaved on/off, off/on …, median of BENCH_REPS
// (default 3). Target: on/off ≥ 0.98. Besides rows/s, each server's own CPU time per request
// (user + system from /proc over each run; steadier than rows/s on a shared machine), and the
// recording itself timed in this process: what ServerMetrics costs per inference request
// (inferenceServed + rowsInferred + batch) and per scrape (render). Also the median (and range)
// of the paired ratios: each on run over the off run next to it (order alternating).
// Env: BENCH_WARMUP_S (default 2), BENCH_SECONDS (default 4), BENCH_REPS (default 3),
// BENCH_CONNECTIONS (default 16).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@quoll/client';
import { makeArrowTensorTable, makeHouseRows, tableToIpcFile } from '../test/support/synthetic-data.js';
import { makeTreeEnsembleRegressor } from '../test/support/synthetic-models.js';
import { ServerMetrics } from '../packages/quoll/dist/metrics/index.js';
import { cpuSeconds, median, printTable, spawnPinned, waitFor, wrk, writeResults } from './support.js';

const WARMUP = Number(process.env.BENCH_WARMUP_S ?? 2);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const fixtures = fileURLToPath(new URL('../../shared/fixtures/houseprice/', import.meta.url));
const useFixture = existsSync(`${fixtures}rf_model.onnx`);
const work = mkdtempSync(join(tmpdir(), 'quoll-bench-metrics-'));

const modelPath = join(work, 'model.onnx');
writeFileSync(
  modelPath,
  useFixture
    ? readFileSync(`${fixtures}rf_model.onnx`)
    : makeTreeEnsembleRegressor({ features: 18, trees: 50, depth: 8 }),
);
const base = makeHouseRows(1000, 1);

interface Workload {
  format: 'json' | 'arrow';
  batch: number;
}
const workloads: Workload[] = [
  { format: 'json', batch: 1 },
  { format: 'arrow', batch: 1000 },
];

function lua(w: Workload, token: string, tag: string): string {
  const body = join(work, `${w.format}-${w.batch}.body`);
  if (!existsSync(body)) {
    const r = base.subarray(0, w.batch * 18);
    writeFileSync(
      body,
      w.format === 'json'
        ? JSON.stringify(
            Array.from({ length: w.batch }, (_, i) => ({
              tensor: Array.from(r.subarray(i * 18, i * 18 + 18)),
            })),
          )
        : tableToIpcFile(makeArrowTensorTable(r, 18)),
    );
  }
  const ct = w.format === 'json' ? 'application/json' : 'application/vnd.apache.arrow.file';
  const path = join(work, `${w.format}-${w.batch}-${tag}.lua`);
  writeFileSync(
    path,
    [
      'wrk.method = "POST"',
      `local f = io.open("${body}", "rb"); wrk.body = f:read("*a"); f:close()`,
      `wrk.headers["Content-Type"] = "${ct}"`,
      `wrk.headers["Accept"] = "${ct}"`,
      `wrk.headers["Authorization"] = "Bearer ${token}"`,
    ].join('\n'),
  );
  return path;
}

interface Started {
  proc: ChildProcess;
  url: string;
  token: string;
  inferUrl: string;
}

const cli = fileURLToPath(new URL('../packages/quoll/dist/cli/main.js', import.meta.url));
async function start(tag: string, extra: string[]): Promise<Started> {
  const home = join(work, tag);
  const proc = spawnPinned('0', process.execPath, [
    cli,
    'server',
    '--home',
    home,
    '--port',
    '0',
    '--log-level',
    'warn',
    ...extra,
  ]);
  const url = (await waitFor(proc, /listening on (http:\S+)/))[1] ?? '';
  const { token } = JSON.parse(readFileSync(join(home, 'credentials.json'), 'utf8')) as { token: string };
  const client = new Client({ url, token });
  const model = await (
    await client.uploadModel('benchmodel', modelPath)
  ).configure({ tensorFields: ['tensor'] });
  const pipeline = await client.buildPipeline('benchpipe');
  await pipeline.addModelStep(model);
  await pipeline.deploy();
  return { proc, url, token, inferUrl: pipeline.url() };
}

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

const on = await start('on', []);
const off = await start('off', ['--no-metrics']);
// The scraper is its own process: wrk runs synchronously in this one.
const scraper = spawn(
  process.execPath,
  [
    '-e',
    `let n = 0, bytes = 0; setInterval(async () => { const r = await fetch(process.argv[1] + '/metrics', { headers: { authorization: 'Bearer ' + process.argv[2] } }); bytes = (await r.text()).length; n++; }, 1000); process.on('SIGTERM', () => { console.log(JSON.stringify({ scrapes: n, bytes })); process.exit(0); });`,
    on.url,
    on.token,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
let scraped = '';
scraper.stdout?.on('data', (d: Buffer) => (scraped += d.toString()));
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
    const cpuA: number[] = [];
    const cpuB: number[] = [];
    let errors = 0;
    /** One wrk run and the server's CPU µs per request over it. */
    const run = (s: Started, luaScript: string): { rps: number; cpuUs: number; non2xx: number } => {
      const before = cpuSeconds(s.proc);
      const r = wrk({ url: s.inferUrl, luaScript, connections: CONNECTIONS, seconds: SECONDS });
      const used = cpuSeconds(s.proc) - before;
      return { rps: r.reqPerSec, cpuUs: (used * 1e6) / (r.reqPerSec * SECONDS), non2xx: r.non2xx };
    };
    for (let rep = 0; rep < REPS; rep++) {
      // on/off, then off/on, …: neither server is always the one that runs first.
      const onFirst = rep % 2 === 0;
      const first = onFirst ? run(on, onLua) : run(off, offLua);
      const second = onFirst ? run(off, offLua) : run(on, onLua);
      const x = onFirst ? first : second;
      const y = onFirst ? second : first;
      a.push(x.rps * w.batch);
      b.push(y.rps * w.batch);
      cpuA.push(x.cpuUs);
      cpuB.push(y.cpuUs);
      errors += x.non2xx + y.non2xx;
    }
    const A = median(a);
    const B = median(b);
    // Each on run against the off run next to it (the machine's load moves less within a
    // pair than across the whole run): the median and the range of those ratios.
    const paired = a.map((x, i) => x / b[i]!);
    const row = {
      ...w,
      connections: CONNECTIONS,
      onRowsPerSec: A,
      offRowsPerSec: B,
      onOverOff: A / B,
      pairedOnOverOff: median(paired),
      pairedMin: Math.min(...paired),
      pairedMax: Math.max(...paired),
      onCpuUsPerRequest: median(cpuA),
      offCpuUsPerRequest: median(cpuB),
      cpuOnOverOff: median(cpuA) / median(cpuB),
      non2xx: errors,
    };
    results.push(row);
    table.push([
      w.format,
      w.batch,
      Math.round(A),
      Math.round(B),
      A / B,
      `${row.pairedOnOverOff.toFixed(3)} (${row.pairedMin.toFixed(2)}–${row.pairedMax.toFixed(2)})`,
      row.onCpuUsPerRequest,
      row.offCpuUsPerRequest,
      row.cpuOnOverOff,
      errors,
    ]);
    console.log(JSON.stringify(row));
  }
} finally {
  const scraperExit = new Promise((r) => scraper.once('exit', r));
  scraper.kill('SIGTERM');
  await scraperExit;
  on.proc.kill('SIGTERM');
  off.proc.kill('SIGTERM');
  await Promise.all(
    [on, off].map((s) => new Promise((r) => (s.proc.exitCode !== null ? r(null) : s.proc.once('exit', r)))),
  );
}
console.log(
  `\nmodel: ${useFixture ? 'rf_model.onnx (fixture)' : 'synthetic tree ensemble'}; ${CONNECTIONS} connections; warmup ${WARMUP}s, measure ${SECONDS}s, median of ${REPS}; scraper: ${scraped.trim()}; recording ${recording.nsPerRequest.toFixed(0)} ns/request, render ${recording.renderMs.toFixed(2)} ms`,
);
printTable(
  [
    'format',
    'batch',
    'metrics on rows/s',
    'off rows/s',
    'on/off',
    'paired on/off (range)',
    'on cpu µs/req',
    'off cpu µs/req',
    'cpu on/off',
    'non2xx',
  ],
  table,
);
writeResults('metrics', {
  model: useFixture ? 'rf_model.onnx' : 'synthetic',
  connections: CONNECTIONS,
  warmupS: WARMUP,
  seconds: SECONDS,
  reps: REPS,
  scraper: scraped.trim(),
  recording,
  results,
});
rmSync(work, { recursive: true, force: true });
