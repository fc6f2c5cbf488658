// Where each server of input-checks.bench spends its CPU, thread by thread: the checked server
// and one with QUOLL_BENCH_INPUT_CHECKS=off, both alive on core 0 (as in the bench), each run
// under `perf record` (node --perf-basic-prof names JIT frames) during a wrk run of JSON
// records (PROBE_BATCH rows, default 1000, 16 connections), after 3 s of warm-up each.
// Prints each server's rate, CPU per request and CPU per request of each thread (from perf's
// samples; the HTTP thread named), and leaves <PROBE_OUT>/{on,off}.data for
// `perf report -i … --sort pid,sym --no-children`. Needs perf and the right to trace the
// servers. Usage: tsx bench/perf-probe.ts [seconds=5]. Env: PROBE_FORMAT (json | arrow, default
// json), PROBE_CONNECTIONS (default 16), PROBE_SIDES (default "on,off"; "on" profiles the checked
// server alone), PROBE_WARMUP_S (default 3). Hold /tmp/quoll-bench.lock while it runs.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds,
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

const [seconds = 5] = process.argv.slice(2).map(Number);
const work = mkdtempSync(join(tmpdir(), 'quoll-perf-probe-'));
const out = process.env.PROBE_OUT ?? work;
const modelPath = writeBenchModel(work);
const batch = Number(process.env.PROBE_BATCH ?? 1000);
const format = (process.env.PROBE_FORMAT ?? 'json') as BodyFormat;
const connections = Number(process.env.PROBE_CONNECTIONS ?? 16);
const warmup = Number(process.env.PROBE_WARMUP_S ?? 3);
const wantedSides = (process.env.PROBE_SIDES ?? 'on,off').split(',');
const servers = [];
for (const [tag, env] of (
  [
    ['on', {}],
    ['off', { QUOLL_BENCH_INPUT_CHECKS: 'off' }],
  ] as const
).filter(([tag]) => wantedSides.includes(tag))) {
  const server = await startQuoll(work, tag, [], { nodeArgs: ['--perf-basic-prof'], env });
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  const lua = writeLua(work, { format, batch, token: server.token, tag });
  servers.push({ tag, server, url: pipeline.url(), lua });
}
for (const s of servers) wrk({ url: s.url, luaScript: s.lua, connections, seconds: warmup });
for (const s of servers) {
  const pid = String(s.server.proc.pid);
  const data = join(out, `${s.tag}.data`);
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-p', pid, '-o', data], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = cpuSeconds(s.server.proc);
  const load = loadAverage();
  const run = wrk({ url: s.url, luaScript: s.lua, connections, seconds });
  const used = cpuSeconds(s.server.proc) - before;
  perf.kill('SIGINT');
  await new Promise((resolve) => perf.once('exit', resolve));
  const requests = run.reqPerSec * seconds;
  console.log(
    `${s.tag}: ${run.reqPerSec.toFixed(1)} req/s, CPU ${((used * 1e6) / requests).toFixed(0)} µs/request, load ${load}, ${data}`,
  );
  // Samples per thread (perf's "pid" is the thread id), as µs per request at perf's rate.
  const report = spawnSync(
    'perf',
    ['report', '-i', data, '--sort', 'pid', '--no-children', '-g', 'none', '--stdio', '-n'],
    {
      encoding: 'utf8',
    },
  ).stdout;
  const threads = [...report.matchAll(/^\s+[\d.]+%\s+(\d+)\s+(\d+):\S+/gm)].map((m) => ({
    tid: m[2]!,
    us: (Number(m[1]) * (1e6 / 999)) / requests,
  }));
  console.log(
    `  per thread, µs/request: ${threads.map((t) => `${t.tid === pid ? 'HTTP' : t.tid} ${t.us.toFixed(0)}`).join(', ')}`,
  );
}
await stopAll(servers.map((s) => s.server.proc));
// --perf-basic-prof's symbol maps and the per-isolate logs it leaves in the working directory.
for (const s of servers) {
  rmSync(`/tmp/perf-${s.server.proc.pid}.map`, { force: true });
  for (const file of readdirSync('.'))
    if (file.startsWith('isolate-') && file.endsWith(`-${s.server.proc.pid}-v8.log`)) rmSync(file);
}
if (process.env.PROBE_OUT === undefined) console.log(`(perf data left in ${work})`);
