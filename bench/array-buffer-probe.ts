// ArrayBuffers made per request, counted by V8 itself: one Quoll server pinned to core 0 (wrk on
// core 1); after the warm-up, `perf stat` counts, over one wrk run and per thread, the calls of
// uprobes on node's own V8 functions: `BackingStore::Allocate` (a JS ArrayBuffer, typed array
// or Buffer pool slab with memory of its own; a typed array of ≤ 64 bytes starts on the V8 heap
// without one, but gets one as soon as its `.buffer` is read, as onnxruntime-node's binding does
// with every feed), `BackingStore::WrapAllocation` (memory a native module hands over, e.g.
// onnxruntime-node's outputs), `JSArrayBuffer::Attach` (every ArrayBuffer given a backing
// store: what the scavenger then sweeps), `~BackingStore` (frees) and
// `ArrayBufferSweeper::SweepingJob::SweepYoung`. Counts, not times: a busy machine moves them
// little. With PROBE_RECORD=1 it also records the call stacks of the allocations (node runs with
// --perf-basic-prof so JIT frames have names) and prints the most frequent Quoll/Node frames.
// Needs root (uprobes) and a node binary with symbols (the official builds have them); the
// probes are added at start and removed at the end.
// Usage: npx tsx bench/array-buffer-probe.ts [connections=16] [seconds=5]
// Env: PROBE_WARMUP_S (8), PROBE_FORMAT (json | arrow | oip), PROBE_BATCH (1), QUOLL_CLI (the
// server's dist/cli/main.js; default this checkout's), PROBE_NODE_ARGS, PROBE_RECORD (0), PROBE_TOP (20).
// Hold /tmp/quoll-bench.lock while it runs.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awaitInlineVerdict,
  deployModel,
  loadAverage,
  startQuoll,
  stopAll,
  wrk,
  writeBenchModel,
  writeLua,
  type BodyFormat,
} from './support.js';

const [connections = 16, seconds = 5] = process.argv.slice(2).map(Number);
const format = (process.env.PROBE_FORMAT ?? 'json') as BodyFormat;
const batch = Number(process.env.PROBE_BATCH ?? 1);
const record = process.env.PROBE_RECORD === '1';
const top = Number(process.env.PROBE_TOP ?? 20);
const flags = (value: string | undefined): string[] => (value ?? '').split(' ').filter(Boolean);

// The probed functions, by symbol (perf probe does not take these C++ names, so by file offset).
const node = process.execPath;
const SYMBOLS: Record<string, string> = {
  alloc: '_ZN2v88internal12BackingStore8AllocateEPNS0_7IsolateEmNS0_10SharedFlagENS0_15InitializedFlagE',
  wrap: '_ZN2v88internal12BackingStore14WrapAllocationEPNS0_7IsolateEPvmNS0_10SharedFlagEb',
  wrapext: '_ZN2v88internal12BackingStore14WrapAllocationEPvmPFvS2_mS2_ES2_NS0_10SharedFlagE',
  attach: '_ZN2v88internal13JSArrayBuffer6AttachESt10shared_ptrINS0_12BackingStoreEE',
  free: '_ZN2v88internal12BackingStoreD2Ev',
  sweepyoung: '_ZN2v88internal18ArrayBufferSweeper11SweepingJob10SweepYoungEv',
};
const symbols = new Map(
  execFileSync('nm', [node], { encoding: 'utf8', maxBuffer: 1 << 30 })
    .split('\n')
    .map((line) => line.split(' '))
    .filter((parts) => parts.length === 3)
    .map(([address, , name]) => [name!, parseInt(address!, 16)] as const),
);
const loads = execFileSync('readelf', ['-lW', node], { encoding: 'utf8' })
  .split('\n')
  .filter((line) => line.trim().startsWith('LOAD'))
  .map((line) => line.trim().split(/\s+/))
  .map((p) => ({ offset: parseInt(p[1]!, 16), vaddr: parseInt(p[2]!, 16), size: parseInt(p[4]!, 16) }));
const fileOffset = (vaddr: number): number => {
  const load = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.size);
  if (load === undefined) throw new Error(`no LOAD segment holds 0x${vaddr.toString(16)}`);
  return vaddr - load.vaddr + load.offset;
};
const events: string[] = [];
for (const [name, symbol] of Object.entries(SYMBOLS)) {
  const vaddr = symbols.get(symbol);
  if (vaddr === undefined) throw new Error(`${node} has no symbol ${symbol}`);
  const probe = `abuf_${name}`;
  spawnSync('perf', ['probe', '-q', '-d', `probe_node:${probe}`]);
  const added = spawnSync(
    'perf',
    ['probe', '-q', '-x', node, '-a', `${probe}=0x${fileOffset(vaddr).toString(16)}`],
    {
      encoding: 'utf8',
    },
  );
  if (added.status !== 0) throw new Error(`perf probe ${probe}: ${added.stderr}`);
  events.push(`probe_node:${probe}`);
}

const work = mkdtempSync(join(tmpdir(), 'quoll-abuf-probe-'));
const modelPath = writeBenchModel(work);
const server = await startQuoll(work, 'home', [], {
  // --perf-basic-prof also writes a code-event log per isolate into the working directory: to /dev/null.
  nodeArgs: [
    ...flags(process.env.PROBE_NODE_ARGS),
    ...(record ? ['--perf-basic-prof', '--no-logfile-per-isolate', '--logfile=/dev/null'] : []),
  ],
  ...(process.env.QUOLL_CLI ? { cli: process.env.QUOLL_CLI } : {}),
});
const pid = server.proc.pid!;
const threadNames = (): Map<string, string> =>
  new Map(
    readdirSync(`/proc/${pid}/task`).map((tid) => [
      tid,
      readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(),
    ]),
  );
try {
  const pipeline = await deployModel(server.client, 'benchmodel', modelPath, 'benchpipe');
  // Counted once the admission probe answered: before it, runs go to the workers.
  const verdict = await awaitInlineVerdict(server, 'probe');
  const url = format === 'oip' ? `${server.url}/v2/models/benchpipe/infer` : pipeline.url();
  const lua = writeLua(work, { format, batch, token: server.token, tag: 'q' });
  wrk({ url, luaScript: lua, connections, seconds: Number(process.env.PROBE_WARMUP_S ?? 8) });
  const load = loadAverage();
  const out = join(work, record ? 'perf.data' : 'stat.csv');
  const perf = spawn(
    'perf',
    record
      ? ['record', '-q', '-g', '-o', out, ...events.flatMap((e) => ['-e', e]), '-p', String(pid)]
      : [
          'stat',
          '--per-thread',
          '-x',
          ',',
          '-o',
          out,
          ...events.flatMap((e) => ['-e', e]),
          '-p',
          String(pid),
        ],
    { stdio: 'ignore' },
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  const run = wrk({ url, luaScript: lua, connections, seconds });
  perf.kill('SIGINT');
  await new Promise((resolve) => perf.once('exit', resolve));
  const requests = run.reqPerSec * seconds;
  console.log(
    `${format} batch ${batch} × ${connections}, ${seconds} s: ${Math.round(run.reqPerSec)} req/s, p99 ${run.p99Ms} ms, inline ${verdict}, load ${load}–${loadAverage()}`,
  );
  if (!record) {
    const names = threadNames();
    // Lines: "<comm>-<tid>,<count>,,<event>,…"; the HTTP thread is the process's first.
    const byThread = new Map<string, Map<string, number>>();
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const parts = line.split(',');
      if (parts.length < 4 || !parts[3]?.startsWith('probe_node:')) continue;
      const tid = parts[0]!.slice(parts[0]!.lastIndexOf('-') + 1).trim();
      const thread = tid === String(pid) ? 'HTTP thread' : `${names.get(tid) ?? parts[0]!.trim()} ${tid}`;
      const count = Number(parts[1]);
      if (!Number.isFinite(count) || count === 0) continue;
      const event = parts[3].replace('probe_node:abuf_', '');
      const row = byThread.get(thread) ?? new Map<string, number>();
      row.set(event, (row.get(event) ?? 0) + count);
      byThread.set(thread, row);
    }
    console.log(`per request (${Math.round(requests)} requests), by thread:`);
    for (const [thread, row] of byThread)
      console.log(
        `  ${thread.padEnd(18)} ${Object.keys(SYMBOLS)
          .map((event) => `${event} ${((row.get(event) ?? 0) / requests).toFixed(3)}`)
          .join('  ')}`,
      );
  } else {
    const script = spawnSync('perf', ['script', '-i', out, '-F', 'event,ip,sym'], {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    }).stdout;
    const stacks = new Map<string, number>();
    for (const sample of script.split('\n\n')) {
      const lines = sample.split('\n').filter(Boolean);
      const event = lines[0]?.match(/abuf_(\w+)/)?.[1];
      if (event === undefined || event === 'free' || event === 'sweepyoung' || event === 'attach') continue;
      // The first frames that name JS (JIT code named by --perf-basic-prof, "JS:" / "LazyCompile:").
      const frames = lines
        .slice(1)
        .map((l) => l.trim().replace(/^[0-9a-f]+\s+/, ''))
        .filter(
          (f) => /^(JS:|LazyCompile:|Function:|Builtin:|Script:|\*|~)/.test(f) || / (file|node):/.test(f),
        )
        .slice(0, 4)
        .map((f) => f.replace(/ (file:\/\/)?\/\S*\/(packages|node_modules)\//, ' $2/'));
      const key = `${event}: ${
        frames.join(' < ') ||
        lines
          .slice(1, 4)
          .map((l) => l.trim())
          .join(' < ')
      }`;
      stacks.set(key, (stacks.get(key) ?? 0) + 1);
    }
    console.log(`top ${top} allocating stacks (per request):`);
    for (const [key, count] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, top))
      console.log(`  ${(count / requests).toFixed(3).padStart(6)}  ${key}`);
  }
} finally {
  await stopAll([server.proc]);
  rmSync(`/tmp/perf-${pid}.map`, { force: true });
  for (const event of events) spawnSync('perf', ['probe', '-q', '-d', event]);
  rmSync(work, { recursive: true, force: true });
}
