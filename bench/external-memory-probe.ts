// How much of a Quoll server's external memory (ArrayBuffers) on the HTTP thread lives until a
// mark-compact, under PROBE_FORMAT (json records, or arrow; default json) bodies of PROBE_BATCH
// rows (default 1000) × [connections] for
// [seconds] after 2 s of warm-up: the preload `external-memory-probe-preload.js` samples it every
// 5 ms. Per request: external bytes allocated, given back by scavenges and by mark-compacts; the
// range it moved in. Usage: tsx bench/external-memory-probe.ts [connections=16] [seconds=8]; the
// server inherits the environment (QUOLL_BENCH_INPUT_CHECKS=off for the unchecked server). Hold
// /tmp/quoll-bench.lock while it runs. PROBE_CLI: another build's `dist/cli/main.js`;
// PROBE_NODE_ARGS: node flags for the server (space-separated).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

const [connections = 16, seconds = 8] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-external-probe-'));
const modelPath = writeBenchModel(work);
const batch = Number(process.env.PROBE_BATCH ?? 1000);
const format = (process.env.PROBE_FORMAT ?? 'json') as BodyFormat;
const out = join(work, 'external.json');
const preload = fileURLToPath(new URL('./external-memory-probe-preload.js', import.meta.url));
const server = await startQuoll(work, 'home', [], {
  nodeArgs: [...(process.env.PROBE_NODE_ARGS ?? '').split(' ').filter(Boolean), '--import', preload],
  env: { EXTERNAL_PROBE_OUT: out },
  ...(process.env.PROBE_CLI ? { cli: process.env.PROBE_CLI } : {}),
});
const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
wrk({ url: pipeline.url(), luaScript: lua, connections, seconds: 2 });
const load = loadAverage();
server.proc.kill('SIGUSR2');
const run = wrk({ url: pipeline.url(), luaScript: lua, connections, seconds });
server.proc.kill('SIGUSR2');
const requests = run.reqPerSec * seconds;
await stopAll([server.proc]);
const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, number>;
const kib = (bytes: number): string => (bytes / requests / 1024).toFixed(0);
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
console.log(
  `${process.env.QUOLL_BENCH_INPUT_CHECKS === 'off' ? 'unchecked' : 'checked'} ${format} ${batch} × ${connections}, ${seconds} s, load ${load}: ${run.reqPerSec.toFixed(1)} req/s; external KiB per request: allocated ${kib(r.grew!)}, given back by scavenges ${kib(r.freedByScavenges!)}, by mark-compacts ${kib(r.freedByMarkCompacts!)}; ${r.markCompacts} mark-compacts of ${r.gcs} GCs; external ${mib(r.min!)}–${mib(r.max!)} MiB`,
);
rmSync(work, { recursive: true, force: true });
