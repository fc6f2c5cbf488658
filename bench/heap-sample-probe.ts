// What the HTTP thread allocates per request, and where: one Quoll server pinned to core 0 (wrk on
// core 1) with `heap-sample-preload.js` loaded; after the warm-up, V8's sampling heap profiler
// runs on the HTTP thread's isolate over one wrk run (every sampled object counted, also those
// collected since: an estimate of the bytes allocated, not of what stays alive). Prints the
// estimated KiB allocated per request, the top allocating frames (self), and the same bytes
// charged to the nearest frame of Quoll's own code on each sample's stack (the caller to change
// when the allocation is in a dependency or in Node.js).
// Usage: npx tsx bench/heap-sample-probe.ts [connections=16] [seconds=5]
// Env: PROBE_WARMUP_S (10), PROBE_FORMAT (json | arrow | oip), PROBE_BATCH (1), PROBE_TOP (25),
// HEAP_SAMPLE_INTERVAL (bytes between samples on average, 1024), QUOLL_CLI (the server's
// dist/cli/main.js; default this checkout's), PROBE_NODE_ARGS (node flags), PROBE_QUOLL_ARGS (more
// server arguments, e.g. --no-inference-logs). Hold
// /tmp/quoll-bench.lock while it runs.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface Node {
  callFrame: Frame;
  selfSize: number;
  children: Node[];
}

const [connections = 16, seconds = 5] = process.argv.slice(2).map(Number);
const format = (process.env.PROBE_FORMAT ?? 'json') as BodyFormat;
const batch = Number(process.env.PROBE_BATCH ?? 1);
const top = Number(process.env.PROBE_TOP ?? 25);
const flags = (value: string | undefined): string[] => (value ?? '').split(' ').filter(Boolean);
const preload = fileURLToPath(new URL('./heap-sample-preload.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'quoll-heap-sample-'));
const out = join(work, 'profile.json');
const modelPath = writeBenchModel(work);
const server = await startQuoll(work, 'home', flags(process.env.PROBE_QUOLL_ARGS), {
  nodeArgs: [...flags(process.env.PROBE_NODE_ARGS), '--import', preload],
  env: { ...process.env, HEAP_SAMPLE_OUT: out },
  ...(process.env.QUOLL_CLI ? { cli: process.env.QUOLL_CLI } : {}),
});
let requests = 0;
let load = loadAverage();
try {
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  const url = format === 'oip' ? `${server.url}/v2/models/benchpipe/infer` : pipeline.url();
  const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
  wrk({ url, luaScript: lua, connections, seconds: Number(process.env.PROBE_WARMUP_S ?? 10) });
  load = loadAverage();
  server.proc.kill('SIGUSR2');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const run = wrk({ url, luaScript: lua, connections, seconds });
  server.proc.kill('SIGUSR2');
  // The requests counted are wrk's; the profile also spans the 200 ms before the run (idle).
  requests = run.reqPerSec * seconds;
  console.log(
    `${format} batch ${batch} × ${connections}, ${seconds} s: ${Math.round(run.reqPerSec)} req/s, p99 ${run.p99Ms} ms, load ${load}–${loadAverage()}`,
  );
  for (let i = 0; i < 100 && !existsSync(out); i++) await new Promise((resolve) => setTimeout(resolve, 100));
} finally {
  await stopAll([server.proc]);
}
const profile = JSON.parse(readFileSync(out, 'utf8')) as { head: Node; error?: string };
rmSync(work, { recursive: true, force: true });
if (profile.error !== undefined) throw new Error(profile.error);

const where = (f: Frame): string =>
  `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(packages|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
const ours = (f: Frame): boolean => /\/packages\/[^/]+\/dist\//.test(f.url);
const self = new Map<string, number>();
const charged = new Map<string, number>();
let total = 0;
const walk = (node: Node, stack: Frame[]): void => {
  const path = [...stack, node.callFrame];
  if (node.selfSize > 0) {
    total += node.selfSize;
    const key = where(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + node.selfSize);
    const mine = [...path].reverse().find(ours);
    const owner = mine === undefined ? '(no Quoll frame)' : where(mine);
    charged.set(owner, (charged.get(owner) ?? 0) + node.selfSize);
  }
  for (const child of node.children) walk(child, path);
};
walk(profile.head, []);
const perRequest = (bytes: number): string => `${(bytes / requests).toFixed(0)} B`;
console.log(`allocated on the HTTP thread ≈ ${(total / requests / 1024).toFixed(1)} KiB per request`);
for (const [title, map] of [
  ['self', self],
  ['charged to the nearest Quoll frame', charged],
] as const) {
  console.log(`top ${top}, ${title} (bytes per request, share):`);
  for (const [key, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(
      `  ${perRequest(bytes).padStart(8)} ${((100 * bytes) / total).toFixed(1).padStart(5)} %  ${key}`,
    );
}
