// What one render of /metrics costs in process (no HTTP): a ServerMetrics with one pipeline's
// series, as a server under the bench has, rendered PROBE_RENDERS times (default 400) after
// PROBE_WARMUP renders (default 2000: the JIT keeps improving the code for about that long), each followed by a turn of the event loop; CPU µs per render (process.cpuUsage
// over the loop, all threads: GC included) and bytes allocated per render
// on the JS heap, measured after the CPU rounds (heapUsed before and after PROBE_ALLOC renders
// with no GC in between: run it with --expose-gc --max-semi-space-size=64 so that none is
// needed; a block in which one ran anyway is not counted). Alternates PROBE_DISTS (comma-separated dist folders, default this
// build's) PROBE_ROUNDS times (default 6), so two builds share the machine's moments.
// Run pinned: taskset -c 1 node --expose-gc --max-semi-space-size=64 --import tsx bench/metrics-render-probe.ts
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { median } from './support.js';

interface Renderer {
  render(): Promise<string>;
  inferenceServed(workspaceId: number, pipeline: string, status: number, seconds: number): void;
  rowsInferred(workspaceId: number, pipeline: string, rows: number): void;
  batch(rows: number): void;
  close(): void;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const dists = (process.env.PROBE_DISTS ?? join(here, '../packages/quoll/dist'))
  .split(',')
  .map((d) => resolve(d));
const N = Number(process.env.PROBE_RENDERS ?? 400);
const ALLOC = Number(process.env.PROBE_ALLOC ?? 40);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 6);
const WARMUP = Number(process.env.PROBE_WARMUP ?? 2000);
const gc = (globalThis as { gc?: () => void }).gc;

let gcs = 0;
new PerformanceObserver((list) => (gcs += list.getEntries().length)).observe({ entryTypes: ['gc'] });
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));
/**
 * One render, then a turn of the event loop: a render starts a `setImmediate` (the event-loop
 * lag's), and renders back to back without one would pile them up (and Node's list of active
 * resources, which the render reads, with them).
 */
const renderOnce = async (m: Renderer): Promise<void> => {
  await m.render();
  await new Promise((r) => setImmediate(r));
};

const servers: Array<{ dist: string; m: Renderer; cpuUs: number[]; bytes: number[]; size: number }> = [];
for (const dist of dists) {
  const mod = (await import(pathToFileURL(join(dist, 'metrics/index.js')).href)) as {
    ServerMetrics: new (sources: object) => Renderer;
  };
  const m = new mod.ServerMetrics({
    queueDepths: () => [{ workspaceId: 1, name: 'benchpipe', queued: 0 }],
    logQueuedRows: () => 0,
    logBytes: () => Promise.resolve(0),
    logState: () => 'open',
  });
  for (let i = 0; i < 1000; i++) {
    m.inferenceServed(1, 'benchpipe', 200, 0.0004 + (i & 7) * 0.0001);
    m.rowsInferred(1, 'benchpipe', 1);
    m.batch(1);
  }
  for (let i = 0; i < WARMUP; i++) await renderOnce(m);
  servers.push({ dist, m, cpuUs: [], bytes: [], size: (await m.render()).length });
}

// CPU first, every round; then the allocation blocks (a forced GC slows the renders after it).
for (let round = 0; round < ROUNDS; round++) {
  for (const s of servers) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) await renderOnce(s.m);
    const c = process.cpuUsage(c0);
    s.cpuUs.push((c.user + c.system) / N);
  }
}
for (let round = 0; gc !== undefined && round < ROUNDS; round++) {
  for (const s of servers) {
    gc();
    await settle();
    const before = gcs;
    const h0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < ALLOC; i++) await renderOnce(s.m);
    const h1 = process.memoryUsage().heapUsed;
    await settle();
    if (gcs === before) s.bytes.push((h1 - h0) / ALLOC);
  }
}
for (const s of servers) {
  s.m.close();
  console.log(
    `${s.dist}: render ${median(s.cpuUs).toFixed(0)} µs CPU (${s.cpuUs.map((x) => x.toFixed(0)).join(', ')}), ` +
      `${s.bytes.length === 0 ? '– (run with --expose-gc)' : `${(median(s.bytes) / 1024).toFixed(1)} KiB allocated (${s.bytes.length} blocks without GC)`}, ${s.size} bytes of text`,
  );
}
process.exit(0);
