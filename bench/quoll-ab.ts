// Two Quoll servers side by side: builds (CLI_A / CLI_B, paths of `dist/cli/main.js`, e.g. of
// main's worktree and of a branch's) or flags (ARGS_A / ARGS_B, e.g. --no-inference-logs), both
// pinned to core 0 with wrk on core 1, interleaved A B A B …, median of the runs. CPU per request
// is the whole process's (every thread) from /proc, which a shared machine moves less than req/s.
// Usage: CLI_A=… [CLI_B=…] [ARGS_A=…] [ARGS_B=…] [NODE_ARGS_A=…] [NODE_ARGS_B=…] [FORMAT=json|arrow|oip]
// [FORMAT_B=FORMAT] [BATCH=1] [AB_WARMUP_S=2] (NODE_ARGS_*: flags for node itself, e.g. --single-threaded-gc)
// [ENV_A=…] [ENV_B=…] (environment of one side's server, e.g. ENV_B='QUOLL_INLINE_CONTENDED=off')
// [AB_SERVER_CORES=0] (the cores both servers are pinned to, e.g. 0,1; wrk stays on core 1)
// (oip: the Open Inference Protocol's JSON tensors, on /v2/models/benchpipe/infer; FORMAT_B, e.g.
// FORMAT=oip FORMAT_B=json with one build, compares the two endpoints)
//   npx tsx bench/quoll-ab.ts [connections=1] [seconds=3] [runs=3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  keepHarnessOffServerCore,
  awaitInlineVerdict,
  checkVerdicts,
  cpuSeconds,
  deployModel,
  loadAverage,
  median,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  type BenchServer,
  type BodyFormat,
} from './support.js';

// The harness on wrk's core, off the servers' (support.ts says why).
keepHarnessOffServerCore();
const [connections = 1, seconds = 3, runs = 3] = process.argv.slice(2).map(Number);
const format = (process.env.FORMAT ?? 'json') as BodyFormat;
const batch = Number(process.env.BATCH ?? 1);
const cliA = process.env.CLI_A;
if (cliA === undefined) throw new Error('Set CLI_A to the dist/cli/main.js of the first build.');
const work = mkdtempSync(join(tmpdir(), 'quoll-ab-'));
const modelPath = writeBenchModel(work);
const flags = (value: string | undefined): string[] => (value ?? '').split(' ').filter(Boolean);
const environment = (value: string | undefined): Record<string, string> =>
  Object.fromEntries(
    flags(value).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
const serverCores = process.env.AB_SERVER_CORES ?? '0';
const sides = [
  {
    label: 'A',
    cli: cliA,
    args: flags(process.env.ARGS_A),
    nodeArgs: flags(process.env.NODE_ARGS_A),
    env: environment(process.env.ENV_A),
    format,
  },
  {
    label: 'B',
    cli: process.env.CLI_B ?? cliA,
    args: flags(process.env.ARGS_B),
    nodeArgs: flags(process.env.NODE_ARGS_B),
    env: environment(process.env.ENV_B),
    format: (process.env.FORMAT_B ?? format) as BodyFormat,
  },
].map((side) => ({ ...side, rps: [] as number[], p99: [] as number[], cpu: [] as number[] }));

const servers = [];
try {
  for (const side of sides) {
    const server = await startQuoll(work, side.label, side.args, {
      cores: serverCores,
      nodeArgs: side.nodeArgs,
      env: side.env,
      cli: side.cli,
    });
    servers.push(server.proc);
    const { url, token } = server;
    const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
    // Its admission probe answered before the other server starts on the core, and before any
    // warm-up: inline or in the workers is ~1.5× the CPU a request apart on one core.
    await awaitInlineVerdict(server, side.label);
    Object.assign(side, {
      server,
      proc: server.proc,
      url: side.format === 'oip' ? `${url}/v2/models/benchpipe/infer` : pipeline.url(),
      lua: writeLua(work, { format: side.format, batch, token, tag: side.label }),
    });
  }
  const ready = sides as ((typeof sides)[number] & {
    server: BenchServer;
    proc: (typeof servers)[number];
    url: string;
    lua: string;
  })[];
  // Each server's warm-up (V8 still compiles the request path for 10+ s at batch 1).
  const warmup = Number(process.env.AB_WARMUP_S ?? 2);
  for (const side of ready) wrk({ url: side.url, luaScript: side.lua, connections, seconds: warmup });
  const loadBefore = loadAverage();
  for (let run = 0; run < runs; run++)
    for (const side of ready) {
      const before = cpuSeconds(side.proc);
      const r = wrk({ url: side.url, luaScript: side.lua, connections, seconds });
      side.rps.push(r.reqPerSec);
      side.p99.push(r.p99Ms);
      side.cpu.push(((cpuSeconds(side.proc) - before) * 1e6) / (r.reqPerSec * seconds));
    }
  console.log(
    `${format} batch ${batch} × ${connections}, ${seconds} s × ${runs}, servers on core(s) ${serverCores}, load ${loadBefore}–${loadAverage()}`,
  );
  for (const side of ready)
    console.log(
      `${side.label} ${side.format} ${[...Object.entries(side.env).map(([k, v]) => `${k}=${v}`), ...side.nodeArgs, side.cli, ...side.args].join(' ')}: ${Math.round(median(side.rps))} req/s, p99 ${median(side.p99)} ms [${side.p99.map((p) => p.toFixed(1)).join(' ')}], CPU ${median(side.cpu).toFixed(0)} µs/request [${side.cpu.map((c) => c.toFixed(0)).join(' ')}]`,
    );
  checkVerdicts(ready.map((side) => ({ label: side.label, server: side.server })));
  const [a, b] = ready;
  console.log(
    `B/A req/s ${(median(b!.rps) / median(a!.rps)).toFixed(2)}; CPU per request A/B ${(median(a!.cpu) / median(b!.cpu)).toFixed(2)}`,
  );
} finally {
  await stopAll(servers);
  rmSync(work, { recursive: true, force: true });
}
