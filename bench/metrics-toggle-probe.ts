// The per-request metrics recording's cost measured inside ONE server, so that nothing but the
// recording differs between what is compared: no second process (start order, memory placement,
// the scheduler's view of it), no other minutes of the shared machine. A copy of this build's
// dist (packages/quoll/dist-toggle, rebuilt at each run; removed after) is patched so that the
// metrics server switches its per-request recording every PROBE_SEGMENT_MS between modes, in
// the order PROBE_MODES, and adds up its HTTP thread's CPU (/proc/self/task/<pid>/schedstat) and
// the requests that arrived, per mode:
//   0  nothing recorded per request (no start time, no answered(), no rows, no batch)
//   1  as shipped (start time in the root onRequest hook, inferenceServed, rowsInferred, batch)
//   2  the start time alone (the hook stores performance.now(); nothing recorded)
//   3  the recording alone, without a clock (inferenceServed with a constant latency, rows, batch)
//   4  as 1, but recorded by another build's ServerMetrics (PROBE_SHIPPED: a directory holding
//      that build's dist/metrics/*.js, copied into the copy as metrics-shipped/): the recording
//      as shipped before a change against the changed one, in the same process and minutes
// One server of the copy (metrics on, never scraped) pinned to core 0, wrk on core 1, JSON
// batch 1 × 16 connections (the metrics bench's workload), PROBE_WARMUP_S, then `seconds`
// measured. Prints each mode's HTTP-thread CPU per request and requests per segment, over mode 0.
// Usage: npx tsx bench/metrics-toggle-probe.ts [seconds=100]
// Env: PROBE_MODES (default "1,0,2,0,3,0", or "1,0,4,0" with PROBE_SHIPPED: mode 0 between the
// others, so that no periodic work falls on one mode), PROBE_SEGMENT_MS (default 700),
// PROBE_WARMUP_S (default 8), PROBE_SHIPPED (see mode 4).
// Example (the recording of the build in packages/quoll/dist against main's):
//   mkdir /tmp/shipped && cp <main>/packages/quoll/dist/metrics/*.js /tmp/shipped/
//   PROBE_SHIPPED=/tmp/shipped npx tsx bench/metrics-toggle-probe.ts 100
// Hold /tmp/quoll-bench.lock while it runs.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrkAsync,
  writeBenchModel,
  writeLua,
} from './support.js';

const [seconds = 100] = process.argv.slice(2).map(Number);
const shipped = process.env.PROBE_SHIPPED;
const modesOrder = process.env.PROBE_MODES ?? (shipped === undefined ? '1,0,2,0,3,0' : '1,0,4,0');
if (shipped === undefined && modesOrder.split(',').includes('4'))
  throw new Error('mode 4 needs PROBE_SHIPPED (see the header)');
const warmup = Number(process.env.PROBE_WARMUP_S ?? 8);
const dist = fileURLToPath(new URL('../packages/quoll/dist/', import.meta.url));
const copy = fileURLToPath(new URL('../packages/quoll/dist-toggle/', import.meta.url));

/** Replaces `from` by `to` in a file of the copy; throws when the build no longer has `from`. */
function patch(file: string, from: string, to: string): void {
  const path = join(copy, file);
  const text = readFileSync(path, 'utf8');
  if (!text.includes(from)) throw new Error(`${file}: "${from}" not found; update the probe`);
  writeFileSync(path, text.replace(from, to));
}

rmSync(copy, { recursive: true, force: true });
// Without the declaration files and source maps (nothing runs them; eslint would lint the
// declarations of a copy left while it runs).
cpSync(dist, copy, { recursive: true, filter: (src) => !/\.d\.ts$|\.map$/.test(src) });
if (shipped !== undefined)
  cpSync(shipped, join(copy, 'metrics-shipped'), {
    recursive: true,
    filter: (src) => !/\.d\.ts$|\.map$/.test(src),
  });
const gate = '(globalThis.__m3.mode === 1 || globalThis.__m3.mode === 3 || globalThis.__m3.mode === 4)';
/**
 * A recording call as its own statement in mode 4's twin: `own.method(args)` becomes `if (mode
 * 4) <the other build's instance>.method(args); else own.method(args);`. Two call sites, each
 * seeing one class, rather than one call site choosing its receiver: a site shared by both
 * classes is polymorphic and may be optimised for the class seen first, i.e. the mode listed
 * first in PROBE_MODES (a suspicion: with the first version of mode 4, one shared site, the
 * mode listed first came out cheaper in all six runs of either order).
 */
const twin = (own: string, method: string, args: string): string =>
  shipped === undefined
    ? `${own}.${method}(${args});`
    : `if (globalThis.__m3.mode === 4) globalThis.__m3.shipped.${method}(${args}); else ${own}.${method}(${args});`;
/** Replaces the one line of a file of the copy that holds `from` by `to(that line, trimmed)`. */
function patchLine(file: string, from: string, to: (line: string) => string): void {
  const path = join(copy, file);
  const lines = readFileSync(path, 'utf8').split('\n');
  const at = lines.findIndex((l) => l.includes(from));
  if (at < 0) throw new Error(`${file}: "${from}" not found; update the probe`);
  lines[at] = to(lines[at]!.trim());
  writeFileSync(path, lines.join('\n'));
}
patch(
  'server/create-app.js',
  'export async function createApp(',
  `import { readFileSync as m3Read } from 'node:fs';
${shipped === undefined ? '' : "import { ServerMetrics as M3Shipped } from '../metrics-shipped/server-metrics.js';"}
const M3 = (globalThis.__m3 = { mode: 0, requests: [0, 0, 0, 0, 0], cpu: [0, 0, 0, 0, 0], segments: [0, 0, 0, 0, 0] });
${shipped === undefined ? '' : 'M3.shipped = new M3Shipped({ queueDepths: () => [], logQueuedRows: () => 0, logBytes: async () => 0, logState: () => "open" });'}
{
  const order = ${JSON.stringify(modesOrder)}.split(',').map(Number);
  const cpuNow = () => Number(m3Read('/proc/self/task/' + process.pid + '/schedstat', 'utf8').split(' ')[0]);
  let at = cpuNow();
  let i = 0;
  M3.mode = order[0];
  setInterval(() => {
    const c = cpuNow();
    M3.cpu[M3.mode] += c - at;
    M3.segments[M3.mode]++;
    at = c;
    i = (i + 1) % order.length;
    M3.mode = order[i];
  }, ${Number(process.env.PROBE_SEGMENT_MS ?? 700)}).unref();
  process.on('SIGUSR2', () => process.stderr.write('M3 ' + JSON.stringify(M3) + '\\n'));
}
export async function createApp(`,
);
patch(
  'server/create-app.js',
  'if (timed)\n            req.receivedAt = performance.now();',
  'M3.requests[M3.mode]++;\n        if (timed && (M3.mode === 1 || M3.mode === 2 || M3.mode === 4))\n            req.receivedAt = performance.now();',
);
patch(
  'server/routes/count-inferences.js',
  "if (req.method !== 'POST')",
  `if (!${gate})\n            return;\n        if (req.method !== 'POST')`,
);
patch(
  'server/routes/count-inferences.js',
  '(performance.now() - req.receivedAt) / 1000',
  '(globalThis.__m3.mode === 3 ? 0.1 : performance.now() - req.receivedAt) / 1000',
);
patchLine('server/routes/count-inferences.js', 'metrics.inferenceServed(', (line) => {
  const args = /^metrics\.inferenceServed\((.*)\);$/.exec(line)?.[1];
  if (args === undefined) throw new Error(`count-inferences.js: "${line}" is not one call; update the probe`);
  return twin('metrics', 'inferenceServed', args);
});
patchLine('serving/inference-service.js', 'this.#metrics?.rowsInferred(', (line) => {
  const args = /^this\.#metrics\?\.rowsInferred\((.*)\);$/.exec(line)?.[1];
  if (args === undefined)
    throw new Error(`inference-service.js: "${line}" is not one call; update the probe`);
  return `if (${gate}) { ${twin('this.#metrics?', 'rowsInferred', args)} }`;
});
patch(
  'server/start-server.js',
  'onBatch: (rows) => metrics.batch(rows)',
  `onBatch: (rows) => { if (${gate}) { ${twin('metrics', 'batch', 'rows')} } }`,
);

interface Counts {
  requests: number[];
  cpu: number[];
  segments: number[];
}
const work = mkdtempSync(join(tmpdir(), 'quoll-metrics-toggle-'));
const modelPath = writeBenchModel(work);
const server = await startQuoll(work, 'toggle', [], { cli: join(copy, 'cli/main.js') });
try {
  let err = '';
  server.proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const counts = async (): Promise<Counts> => {
    const from = err.length;
    server.proc.kill('SIGUSR2');
    for (let i = 0; i < 100 && !err.slice(from).includes('\n'); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const line = /M3 (.*)/.exec(err.slice(from))?.[1];
    if (line === undefined) throw new Error('the server printed no counts');
    return JSON.parse(line) as Counts;
  };
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  const lua = writeLua(work, { format: 'json', batch: 1, token: server.token, tag: 'toggle' });
  await wrkAsync({ url: pipeline.url(), luaScript: lua, connections: 16, seconds: warmup });
  const loadBefore = loadAverage();
  const a = await counts();
  const run = await wrkAsync({ url: pipeline.url(), luaScript: lua, connections: 16, seconds });
  const b = await counts();
  const modes = [...new Set(modesOrder.split(',').map(Number))].sort().map((mode) => {
    const requests = b.requests[mode]! - a.requests[mode]!;
    const segments = b.segments[mode]! - a.segments[mode]!;
    return { mode, segments, requests, usPerRequest: (b.cpu[mode]! - a.cpu[mode]!) / 1000 / requests };
  });
  const base = modes.find((m) => m.mode === 0);
  console.log(
    `JSON 1 x 16, ${seconds} s, modes ${modesOrder}, ${run.reqPerSec.toFixed(0)} req/s, load ${loadBefore} -> ${loadAverage()}`,
  );
  for (const m of modes)
    console.log(
      `mode ${m.mode}: ${m.segments} segments, ${m.requests} requests, HTTP thread ${m.usPerRequest.toFixed(2)} µs/request` +
        (base === undefined
          ? ''
          : `, over mode 0: CPU ${(m.usPerRequest / base.usPerRequest).toFixed(4)}, requests per segment ${(m.requests / m.segments / (base.requests / base.segments)).toFixed(4)}`),
    );
} finally {
  await stopAll([server.proc]);
  rmSync(copy, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
