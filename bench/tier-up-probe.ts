// How long V8 keeps optimising a fresh Quoll server's code: the server runs with
// `--trace-opt --trace-deopt` (pinned to core 0, wrk on core 1) under PROBE_FORMAT (arrow |
// json, default arrow) requests of PROBE_BATCH rows (default 1000) on PROBE_CONNECTIONS
// (default 1) for [seconds] of traffic in 4 s windows; V8's trace lines, each prefixed with the
// seconds of traffic, go to PROBE_OUT (default <tmp>/tier-up.txt), and per window the probe prints
// the rate, TurboFan compilations completed, their summed compile time (V8's three phases; wall
// time, so inflated on a busy core) and deoptimisations. BENCH_QUOLL_NODE_ARGS adds node flags
// (e.g. --interrupt-budget=67584 for V8's default budget). Hold /tmp/quoll-bench.lock.
// Usage: tsx bench/tier-up-probe.ts [seconds=24]
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployModel,
  startQuoll,
  stopAll,
  wrkAsync,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

const [seconds = 24] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-tier-up-'));
const out = process.env.PROBE_OUT ?? join(work, 'tier-up.txt');
const format = (process.env.PROBE_FORMAT ?? 'arrow') as BodyFormat;
const batch = Number(process.env.PROBE_BATCH ?? 1000);
const connections = Number(process.env.PROBE_CONNECTIONS ?? 1);
const nodeArgs = (process.env.BENCH_QUOLL_NODE_ARGS ?? '').split(' ').filter(Boolean);
const modelPath = writeBenchModel(work);
const server = await startQuoll(work, 'tier-up', [], {
  nodeArgs: ['--trace-opt', '--trace-deopt', ...nodeArgs],
});
writeFileSync(out, '');
let start = 0;
// Read while wrk runs (an unread pipe would stall the server on its trace output).
server.proc.stdout?.on('data', (d: Buffer) => {
  const at = start ? ((performance.now() - start) / 1000).toFixed(1) : '-';
  appendFileSync(out, d.toString().replace(/^(?=.)/gm, `${at} `));
});
const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
const lua = writeLua(work, { format, batch, token: server.token, tag: 'tier-up' });
start = performance.now();
const rates: number[] = [];
for (let t = 0; t < seconds; t += 4)
  rates.push((await wrkAsync({ url: pipeline.url(), luaScript: lua, connections, seconds: 4 })).reqPerSec);
await stopAll([server.proc]);
const windows = rates.map((rate) => ({ rate, compiled: 0, ms: 0, deopts: 0 }));
for (const line of readFileSync(out, 'utf8').split('\n')) {
  const at = Number(line.slice(0, line.indexOf(' ')));
  const w = windows[Math.floor(at / 4)];
  if (!Number.isFinite(at) || !w) continue;
  const took = /completed compiling .* took ([\d.]+), ([\d.]+), ([\d.]+) ms/.exec(line);
  if (took) {
    w.compiled++;
    w.ms += Number(took[1]) + Number(took[2]) + Number(took[3]);
  }
  if (/bailout \(kind: deopt/.test(line)) w.deopts++;
}
console.log(
  `${format} batch ${batch} × ${connections}, node ${nodeArgs.join(' ') || '(no extra flags)'}; trace: ${out}`,
);
for (const [i, w] of windows.entries())
  console.log(
    `${i * 4}–${i * 4 + 4} s: ${w.rate.toFixed(0)} req/s, ${w.compiled} TurboFan compiles (${w.ms.toFixed(0)} ms), ${w.deopts} deopts`,
  );
