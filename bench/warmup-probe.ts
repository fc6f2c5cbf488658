// How long JIT warm-up lasts at batch 1: Quoll (built CLI, QUOLL_CLI or this worktree's) and F1
// (bench/reference-server.ts) started fresh, both pinned to core 0, wrk on core 1, then windows
// of `seconds` alternated Quoll, F1, Quoll, F1 … from the first request on. Prints each window's
// req/s and whole-process CPU µs per request, so one can see whether Quoll's cost per request
// falls over the first 20–30 s (V8 still compiling its request path) and where F1's settles.
// Usage: QUOLL_SHARED_DIR=… npx tsx bench/warmup-probe.ts [connections=16] [windows=8] [seconds=4]
// Env: PROBE_FORMAT (json | arrow, default json), PROBE_BATCH (rows per request, default 1).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import {
  cpuSeconds,
  deployModel,
  loadAverage,
  printTable,
  spawnPinned,
  startQuoll,
  stopAll,
  waitFor,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

const [connections = 16, windows = 8, seconds = 4] = process.argv.slice(2).map(Number);
const format: BodyFormat = process.env.PROBE_FORMAT === 'arrow' ? 'arrow' : 'json';
const batch = Number(process.env.PROBE_BATCH ?? 1);
const work = mkdtempSync(join(tmpdir(), 'quoll-warmup-'));
const procs: ChildProcess[] = [];
try {
  const modelPath = writeBenchModel(work);
  const quoll = await startQuoll(work, 'quoll', []);
  procs.push(quoll.proc);
  const pipeline = await deployModel(quoll.client, 'benchmodel', modelPath, 'benchpipe');
  const ref = spawnPinned('0', process.execPath, [
    '--import',
    'tsx',
    fileURLToPath(new URL('./reference-server.ts', import.meta.url)),
    modelPath,
    '8473',
    '1',
  ]);
  procs.push(ref);
  await waitFor(ref, /listening on/);
  const sides = [
    {
      label: 'Quoll',
      proc: quoll.proc,
      url: pipeline.url(),
      lua: writeLua(work, { format, batch, token: quoll.token, tag: 'q' }),
    },
    {
      label: 'F1',
      proc: ref,
      url: 'http://127.0.0.1:8473/infer',
      lua: writeLua(work, { format, batch, tag: 'f' }),
    },
  ];
  const rows: (string | number)[][] = [];
  const served = sides.map(() => 0);
  for (let w = 0; w < windows; w++) {
    const cells: (string | number)[] = [];
    for (const [i, side] of sides.entries()) {
      const before = cpuSeconds(side.proc);
      const r = wrk({ url: side.url, luaScript: side.lua, connections, seconds });
      const used = cpuSeconds(side.proc) - before;
      served[i]! += r.reqPerSec * seconds;
      cells.push(
        Math.round(served[i]!),
        Math.round(r.reqPerSec),
        (used * 1e6) / (r.reqPerSec * seconds),
        r.p99Ms,
      );
    }
    rows.push([`${w * seconds}–${(w + 1) * seconds}`, ...cells, loadAverage()]);
  }
  console.log(
    `${format} batch ${batch} × ${connections}, ${windows} windows of ${seconds} s per server, alternated`,
  );
  printTable(
    [
      's of traffic',
      'Quoll served',
      'Quoll req/s',
      'Quoll cpu µs/req',
      'Quoll p99 ms',
      'F1 served',
      'F1 req/s',
      'F1 cpu µs/req',
      'F1 p99 ms',
      'load',
    ],
    rows,
  );
} finally {
  await stopAll(procs);
  rmSync(work, { recursive: true, force: true });
}
