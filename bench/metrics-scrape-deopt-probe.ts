// What a scrape does to the inference path's optimised code, counted rather than timed (so it
// reads the same on a busy machine): one Quoll server of this build (metrics on) pinned to core
// 0 under `--trace-deopt`, wrk on core 1 (JSON batch 1 × 16 connections, the metrics bench's
// workload) for PROBE_WARMUP_S, then windows of PROBE_WINDOW_S seconds under the same load: a
// quiet window (no scrape: what de-optimises anyway), then PROBE_SCRAPES windows each opened by
// one `GET /metrics` sent from this process with Node's fetch (as the bench's scraper does). Per
// window it prints the de-optimised functions (name, reason, where) and, after the first
// scrape, which of them are Node's or Fastify's shared HTTP code. A scrape that touches nothing
// of the inference path's code leaves the scrape windows like the quiet one.
// Usage: npx tsx bench/metrics-scrape-deopt-probe.ts
// Env: PROBE_CLI (another build's dist/cli/main.js), PROBE_ARGS (more server flags, e.g.
// --inline-runs), PROBE_NODE_ARGS (more node flags, e.g. --trace-deopt-verbose: the log, left in
// /tmp/metrics-scrape-deopt.log, then says where each de-optimisation was), PROBE_WARMUP_S (15), PROBE_WINDOW_S (4), PROBE_SCRAPES (3). Hold
// /tmp/quoll-bench.lock while it runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrkAsync,
  writeBenchModel,
  writeLua,
} from './support.js';

const WARMUP = Number(process.env.PROBE_WARMUP_S ?? 15);
const WINDOW = Number(process.env.PROBE_WINDOW_S ?? 4);
const SCRAPES = Number(process.env.PROBE_SCRAPES ?? 3);
const work = mkdtempSync(join(tmpdir(), 'quoll-scrape-deopt-'));
const loadBefore = loadAverage();
const server = await startQuoll(work, 's', (process.env.PROBE_ARGS ?? '').split(' ').filter(Boolean), {
  nodeArgs: ['--trace-deopt', ...(process.env.PROBE_NODE_ARGS ?? '').split(' ').filter(Boolean)],
  ...(process.env.PROBE_CLI ? { cli: process.env.PROBE_CLI } : {}),
});
const out: string[] = [];
let partial = '';
server.proc.stdout!.on('data', (d: Buffer) => {
  const lines = (partial + d.toString()).split('\n');
  partial = lines.pop() ?? '';
  out.push(...lines);
});
try {
  const pipeline = await deployModel(server.client, 'benchmodel', writeBenchModel(work), 'benchpipe');
  const lua = writeLua(work, { format: 'json', batch: 1, token: server.token, tag: 's' });
  const load = (seconds: number) =>
    wrkAsync({ url: pipeline.url(), luaScript: lua, connections: 16, seconds });
  await load(WARMUP);

  /** The de-optimisations among `lines`: "function (reason)" with their counts. */
  const deopts = (lines: string[]): Map<string, number> => {
    const found = new Map<string, number>();
    for (const l of lines) {
      const fn = /deoptimizing 0x[0-9a-f]+ <JSFunction ([^ >]*)/.exec(l)?.[1];
      if (fn === undefined) continue;
      const reason = /reason: ([^)\]]+)/.exec(l)?.[1] ?? '?';
      const key = `${fn || '(anonymous)'} (${reason.trim()})`;
      found.set(key, (found.get(key) ?? 0) + 1);
    }
    return found;
  };
  const windows: Array<{ name: string; deopts: Map<string, number>; rps: number }> = [];
  const window = async (name: string, scrape: boolean): Promise<void> => {
    const mark = out.length;
    const loaded = load(WINDOW);
    if (scrape) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await fetch(`${server.url}/metrics`, {
        headers: { authorization: `Bearer ${server.token}` },
      });
      await r.text();
    }
    const got = await loaded;
    windows.push({ name, deopts: deopts(out.slice(mark)), rps: got.reqPerSec });
  };
  await window('quiet', false);
  for (let i = 1; i <= SCRAPES; i++) await window(`scrape ${i}`, true);
  await window('quiet after', false);
  for (const w of windows) {
    const total = [...w.deopts.values()].reduce((a, b) => a + b, 0);
    console.log(`${w.name}: ${w.rps.toFixed(0)} req/s, ${total} de-optimisations`);
    for (const [k, n] of [...w.deopts].sort((a, b) => b[1] - a[1])) console.log(`  ${n} × ${k}`);
  }
  console.log(`load ${loadBefore} → ${loadAverage()}`);
} finally {
  await stopAll([server.proc]);
  writeFileSync('/tmp/metrics-scrape-deopt.log', out.join('\n'));
  rmSync(work, { recursive: true, force: true });
}
