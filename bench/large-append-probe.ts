// The request thread's stall for one big inference's log rows, in process, paired A/B: two
// builds (`dist` directories) of the inference log's hand-off, each given ROUNDS appends of ROWS
// rows in turn (A B A B …). Per append, as the embedded store does it: `admitLogRows`, then
// `LogHandOff.push`, with a simulated writer thread that gives each message's arena back and
// asks for rows again 2 ms after it was posted. Two kinds of rows: `json` (an
// `InferenceResult` of JSON records, `logRows()`: a source, or its table in builds before the
// sliced hand-off) and `arrow` (one record batch as an Arrow answer's table, no records built).
// The row layout is
// `time`, `in.tensor` 2 × Float64, `out.y` 2 × Float32, `check_failures` (36 B a row).
// Prints per build: the synchronous time of the append call (ms), the longest event-loop delay
// from the append until the message is posted (`monitorEventLoopDelay`, 1 ms resolution), and
// the time until it is posted.
// Usage: DIST_A=/path/to/base/dist DIST_B=packages/quoll/dist [ROWS=1000000] [ROUNDS=5] [KIND=json|arrow]
//   flock /tmp/quoll-bench.lock timeout 330 node --expose-gc --import tsx bench/large-append-probe.ts
// (with --expose-gc each measured append starts after a full collection; GC pauses of 5 ms and
// more in the window are listed, kind and ms.)
// (a dist outside the worktree needs a node_modules it can resolve apache-arrow from: symlink one.)
import { PerformanceObserver, constants, monitorEventLoopDelay } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint32,
  makeData,
} from 'apache-arrow';
import type { Table } from 'apache-arrow';

const ROWS = Number(process.env.ROWS ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const KIND = process.env.KIND ?? 'json';
const builds = [
  { name: 'A', dist: resolve(process.env.DIST_A ?? 'packages/quoll/dist') },
  { name: 'B', dist: resolve(process.env.DIST_B ?? 'packages/quoll/dist') },
];

interface Message {
  seq: number;
  body: { arena: ArrayBuffer };
}
interface HandOff {
  push(pipelineId: number, batches: unknown[], rows: number): Promise<void>;
  attach(): number;
  wantsRows(): void;
  recycle(arenas: readonly ArrayBuffer[]): void;
  confirm(seq: number): void;
}
interface Build {
  name: string;
  make: (post: (msg: Message) => void) => HandOff;
  admit: (pipelineId: number, rows: unknown) => { batches: unknown[]; rows: number };
  rows: (n: number) => unknown;
}

const inType = new FixedSizeList(2, new Field('item', new Float64(), false));
const outType = new FixedSizeList(2, new Field('item', new Float32(), false));
const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('in.tensor', inType, false),
  new Field('out.y', outType, false),
  new Field('check_failures', new Uint32(), false),
];
const schema = new Schema(fields);

/** An Arrow answer's rows: one batch of `n` rows, the layout of the JSON kind's. */
function arrowBatch(n: number): RecordBatch {
  const t = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: new BigInt64Array(n).fill(BigInt(Date.now())) as never,
  });
  const x = makeData({
    type: inType,
    length: n,
    child: makeData({
      type: new Float64(),
      length: 2 * n,
      data: Float64Array.from({ length: 2 * n }, (_, i) => i),
    }),
  });
  const y = makeData({
    type: outType,
    length: n,
    child: makeData({
      type: new Float32(),
      length: 2 * n,
      data: Float32Array.from({ length: 2 * n }, (_, i) => i),
    }),
  });
  const c = makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) });
  const b = new RecordBatch(
    schema,
    makeData({ type: new Struct(fields), length: n, children: [t, x, y, c] }),
  );
  (b as { schema: Schema }).schema = schema;
  return b;
}

async function load(name: string, dist: string): Promise<Build> {
  const logs = (await import(pathToFileURL(`${dist}/logs/index.js`).href)) as {
    LogHandOff: new (options: unknown) => HandOff;
    admitLogRows: Build['admit'];
  };
  const { InferenceResult } = (await import(pathToFileURL(`${dist}/inference/inference-result.js`).href)) as {
    InferenceResult: new (...args: unknown[]) => { logRows(): unknown; toArrowTable(): Table };
  };
  const result = (n: number): { logRows(): unknown; toArrowTable(): Table } => {
    const records = Array.from({ length: n }, (_, i) => ({ tensor: [i, i + 0.5] }));
    const out = Float32Array.from({ length: 2 * n }, (_, i) => i);
    return new InferenceResult(
      { kind: 'records', records },
      ['tensor'],
      [{ name: 'y', type: 'float32', dims: [n, 2], data: out }],
      n,
      Date.now(),
    );
  };
  return {
    name,
    make: (post) =>
      new logs.LogHandOff({
        queueCapacityRows: 500_000,
        handOffDelayMs: 20,
        handOffRows: 8192,
        clock: {
          now: () => Date.now(),
          setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
          clearTimeout: (h: ReturnType<typeof setTimeout>) => clearTimeout(h),
        },
        packer: { mergeMaxRows: 16_384, mergeMaxBytes: 4 * 1024 * 1024 },
        closing: () => false,
        post,
      }),
    admit: logs.admitLogRows,
    rows: (n) => (KIND === 'arrow' ? arrowBatch(n) : result(n).logRows()),
  };
}

/** GC pauses seen since the last reset: the longest, and the kinds. */
let gcMax = 0;
let gcKinds: string[] = [];
const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMax = Math.max(gcMax, e.duration);
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
    if (e.duration >= 5) gcKinds.push(`${KINDS[kind] ?? kind} ${e.duration.toFixed(0)}`);
  }
}).observe({ entryTypes: ['gc'] });

const loaded = await Promise.all(builds.map((b) => load(b.name, b.dist)));
const results = new Map<
  string,
  { sync: number[]; delay: number[]; posted: number[]; gc: number[]; gcs: string[] }
>();

for (const build of loaded) results.set(build.name, { sync: [], delay: [], posted: [], gc: [], gcs: [] });
for (let round = 0; round < ROUNDS; round++) {
  for (const build of loaded) {
    let posted = 0;
    let postedAt = 0;
    const handOff: HandOff = build.make((msg) => {
      posted++;
      postedAt = performance.now();
      setTimeout(() => {
        handOff.recycle([msg.body.arena]);
        handOff.confirm(msg.seq);
        handOff.wantsRows();
      }, 2);
    });
    handOff.attach();
    handOff.wantsRows();
    const rows = build.rows(ROWS);
    // Let the building's garbage settle before the measured append.
    await new Promise((r) => setTimeout(r, 50));
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 10));
    gcMax = 0;
    gcKinds = [];
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const t0 = performance.now();
    const admitted = build.admit(1, rows);
    const queued = handOff.push(1, admitted.batches, admitted.rows);
    const t1 = performance.now();
    await queued;
    while (posted === 0) await new Promise((r) => setImmediate(r));
    // One more timer turn so that a stall just before the post is sampled.
    await new Promise((r) => setTimeout(r, 5));
    delay.disable();
    const r = results.get(build.name)!;
    r.sync.push(t1 - t0);
    r.delay.push(delay.max / 1e6);
    r.posted.push(postedAt - t0);
    // The observer hears of a pause after it: one more turn.
    await new Promise((r) => setTimeout(r, 1));
    r.gc.push(gcMax);
    r.gcs.push(gcKinds.join('+') || '-');
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(1)).join(' ');
console.log(`${KIND}, ${ROWS} rows, ${ROUNDS} rounds alternated`);
for (const build of builds) {
  const r = results.get(build.name)!;
  console.log(
    `${build.name} (${build.dist}): append call ms median ${median(r.sync).toFixed(1)} [${fmt(r.sync)}]; ` +
      `max event-loop delay ms median ${median(r.delay).toFixed(1)} [${fmt(r.delay)}]; ` +
      `posted after ms median ${median(r.posted).toFixed(1)} [${fmt(r.posted)}]; ` +
      `longest GC pause ms median ${median(r.gc).toFixed(1)} [${r.gcs.join(', ')}]`,
  );
}
