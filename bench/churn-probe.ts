// Connection churn: what V8 does on the server's core each time wrk's connections close and new
// ones open. Starts Quoll (or F1 with REFERENCE=1) on core 0 with `--trace-deopt --trace-opt`
// (its stdout appended to TRACE_OUT, default /tmp/churn-trace.txt), deploys the bench model,
// warms up (WARMUP_S, default 10 s, one wrk run: one set of connections), then does ROUNDS short
// wrk runs (SECS each, default 2; each opens 16 fresh connections) with a 1 s pause after each.
// Per run: eager deopts and TurboFan compiles seen in the run and its pause, the V8 platform
// threads' CPU in the run's first second and in the whole run, and wrk's p99. Prints the
// deopting functions of all runs with their reasons, and the functions compiled, most frequent first.
// Usage: [REFERENCE=1] [TABLE_ORDER=1] [ROUNDS=6] [SECS=2] [CONNECTIONS=16] [NODE_ARGS=…] [QUOLL_CLI=…]
//   npx tsx bench/churn-probe.ts
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import {
  keepHarnessOffServerCore,
  deployModel,
  loadAverage,
  median,
  spawnPinned,
  startQuoll,
  stopAll,
  waitFor,
  wrk,
  wrkAsync,
  writeBenchModel,
  writeLua,
} from './support.js';

// The harness on wrk's core, off the servers' (support.ts says why).
keepHarnessOffServerCore();
const rounds = Number(process.env.ROUNDS ?? 6);
const secs = Number(process.env.SECS ?? 2);
const connections = Number(process.env.CONNECTIONS ?? 16);
const reference = process.env.REFERENCE === '1';
const traceOut = process.env.TRACE_OUT ?? '/tmp/churn-trace.txt';
const nodeArgs = [
  '--trace-deopt',
  '--trace-opt',
  ...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean),
];
const work = mkdtempSync(join(tmpdir(), 'quoll-churn-'));
const modelPath = writeBenchModel(work);
writeFileSync(traceOut, '');

/** Counts of the trace lines seen so far, and the deopts by function and reason. */
const seen = {
  deopts: 0,
  compiles: 0,
  byFunction: new Map<string, number>(),
  compiled: new Map<string, number>(),
};
const DEOPT =
  /\[bailout \(kind: (deopt-\w+), reason: ([^)]*)\): begin\. deoptimizing \S+ <JSFunction ([^>]*?) ?\(sfi/;
const COMPILED = /<JSFunction ([^>]*?) ?\(sfi/;
function follow(proc: ChildProcess): void {
  let partial = '';
  proc.stdout?.on('data', (d: Buffer) => {
    appendFileSync(traceOut, d);
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = DEOPT.exec(line);
      if (m) {
        seen.deopts++;
        const key = `${m[3] || '(anonymous)'} [${m[1]}: ${m[2]}]`;
        seen.byFunction.set(key, (seen.byFunction.get(key) ?? 0) + 1);
      } else if (line.startsWith('[completed compiling')) {
        seen.compiles++;
        const name = `${COMPILED.exec(line)?.[1] || '(anonymous)'}`;
        seen.compiled.set(name, (seen.compiled.get(name) ?? 0) + 1);
      }
    }
  });
}

/**
 * CPU ns so far of the process's V8 platform threads, from schedstat. Node 20 names no thread
 * (all are `node`): its platform's 4 workers and delayed-task thread are the first 5 it starts
 * after the main thread, so the 5 lowest thread ids after the pid.
 */
function platformCpuNs(pid: number): number {
  let sum = 0;
  const tids = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .filter((tid) => tid !== pid)
    .sort((a, b) => a - b)
    .slice(0, 5);
  for (const tid of tids) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return sum;
}

/**
 * The script {@link writeLua} wrote before 5 December: headers set in `wrk.headers`, which wrk
 * writes in the order of a Lua table, drawn anew by each wrk process.
 */
function tableOrderLua(lua: string, token: string | null): string {
  const body = /io\.open\("([^"]+)"/.exec(readFileSync(lua, 'utf8'))?.[1] ?? '';
  const out = lua.replace(/\.lua$/, '-table-order.lua');
  writeFileSync(
    out,
    [
      'wrk.method = "POST"',
      `local f = io.open("${body}", "rb"); wrk.body = f:read("*a"); f:close()`,
      'wrk.headers["Content-Type"] = "application/json"',
      'wrk.headers["Accept"] = "application/json"',
      ...(token === null ? [] : [`wrk.headers["Authorization"] = "Bearer ${token}"`]),
    ].join('\n'),
  );
  return out;
}

async function startServer(): Promise<{
  proc: ChildProcess;
  url: string;
  lua: string;
  token: string | null;
}> {
  if (reference) {
    const script = fileURLToPath(new URL('./reference-server.ts', import.meta.url));
    const proc = spawnPinned('0', process.execPath, [
      ...nodeArgs,
      '--import',
      'tsx',
      script,
      modelPath,
      '8479',
      '1',
    ]);
    follow(proc);
    await waitFor(proc, /listening on/);
    return {
      proc,
      url: 'http://127.0.0.1:8479/infer',
      lua: writeLua(work, { format: 'json', batch: 1, tag: 'f' }),
      token: null,
    };
  }
  const quoll = await startQuoll(work, 'home', [], { nodeArgs, cli: process.env.QUOLL_CLI });
  follow(quoll.proc);
  const pipeline = await deployModel(quoll.client, 'benchmodel', modelPath, 'benchpipe');
  await new Promise((resolve) => setTimeout(resolve, 3000)); // its inline probe answered
  return {
    proc: quoll.proc,
    url: pipeline.url(),
    lua: writeLua(work, { format: 'json', batch: 1, token: quoll.token, tag: 'q' }),
    token: quoll.token,
  };
}

const server = await startServer();
// TABLE_ORDER=1: each wrk run sends the headers in an order of its own (as before 5 December).
if (process.env.TABLE_ORDER === '1') server.lua = tableOrderLua(server.lua, server.token);
const pid = server.proc.pid!;
try {
  wrk({ url: server.url, luaScript: server.lua, connections, seconds: Number(process.env.WARMUP_S ?? 10) });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  seen.byFunction.clear();
  seen.compiled.clear();
  const rows: {
    deopts: number;
    compiles: number;
    firstMs: number;
    runMs: number;
    p99: number;
    rps: number;
  }[] = [];
  const load = loadAverage();
  for (let i = 0; i < rounds; i++) {
    const [d0, c0, p0] = [seen.deopts, seen.compiles, platformCpuNs(pid)];
    const run = wrkAsync({ url: server.url, luaScript: server.lua, connections, seconds: secs });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const p1 = platformCpuNs(pid);
    const r = await run;
    const p2 = platformCpuNs(pid);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    rows.push({
      deopts: seen.deopts - d0,
      compiles: seen.compiles - c0,
      firstMs: (p1 - p0) / 1e6,
      runMs: (p2 - p0) / 1e6,
      p99: r.p99Ms,
      rps: r.reqPerSec,
    });
  }
  console.log(
    `${reference ? 'F1' : 'Quoll'}: json 1 × ${connections}, ${rounds} runs of ${secs} s after ${process.env.WARMUP_S ?? 10} s warm-up; load ${load}–${loadAverage()}`,
  );
  console.log('run  deopts  compiles  platform ms (1st s)  platform ms (run)  p99 ms  req/s');
  rows.forEach((r, i) =>
    console.log(
      `${i + 1}  ${r.deopts}  ${r.compiles}  ${r.firstMs.toFixed(1)}  ${r.runMs.toFixed(1)}  ${r.p99}  ${Math.round(r.rps)}`,
    ),
  );
  const med = (f: (r: (typeof rows)[number]) => number): string => median(rows.map(f)).toFixed(1);
  console.log(
    `median: deopts ${med((r) => r.deopts)}, compiles ${med((r) => r.compiles)}, platform ${med((r) => r.firstMs)} ms in the 1st s, ${med((r) => r.runMs)} ms a run, p99 ${med((r) => r.p99)} ms`,
  );
  console.log('deopts of all runs, by function:');
  for (const [k, n] of [...seen.byFunction].sort((a, b) => b[1] - a[1])) console.log(`  ${n}  ${k}`);
  console.log('TurboFan compiles of all runs, by function (the 20 most frequent):');
  for (const [k, n] of [...seen.compiled].sort((a, b) => b[1] - a[1]).slice(0, 20))
    console.log(`  ${n}  ${k}`);
} finally {
  await stopAll([server.proc]);
  rmSync(work, { recursive: true, force: true });
}
