// The request thread's share of the inference log, in process: a LogHandOff (of the build at
// DIST, a `dist` directory) with the embedded store's defaults and a simulated writer thread
// that gives each message's arena back and confirms it WRITER_MS after it was handed over.
// Each turn builds CONNECTIONS result-like batches of ROWS rows (time, in.tensor 18 × float32
// in a fresh "body" buffer, out.variable 1 × float32, check_failures) and appends them.
// Prints CPU µs per append (whole process, building included), the µs per append spent in
// push() itself, and GC pause µs per append (in all, and by kind: minor, incremental marking,
// weak callbacks …), over SECONDS after WARMUP_S. WORKER=1 posts each message to a real worker
// thread (which gives the arena back, transferred, WRITER_MS later) instead of simulating it, and
// prints the µs per append spent in postMessage (with both threads on one core, that includes
// the worker preempting).
// Also prints the µs per append spent in packing (`LogPackJob.step`: the copy of the staged rows
// into the hand-off's arena; patched in from the same module), and THRASH_KB=n writes n KiB of
// other memory between turns (so that the staging and the arenas are not all in cache, as on a
// serving request thread).
// Usage: DIST=packages/quoll/dist [ROWS=1000] [CONNECTIONS=16] [SECONDS=3] [WARMUP_S=1] [WORKER=1] [THRASH_KB=0]
//   taskset -c 1 npx tsx bench/log-hand-off-probe.ts
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  Field,
  FixedSizeList,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  Uint32,
  makeData,
} from 'apache-arrow';

const dist = resolve(process.env.DIST ?? 'packages/quoll/dist');
const ROWS = Number(process.env.ROWS ?? 1000);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const SECONDS = Number(process.env.SECONDS ?? 3);
const WARMUP_S = Number(process.env.WARMUP_S ?? 1);
const WRITER_MS = Number(process.env.WRITER_MS ?? 2);
const WORKER = process.env.WORKER === '1';

interface HandOff {
  push(pipelineId: number, batches: RecordBatch[], rows: number): Promise<void>;
  attach(): number;
  wantsRows(): void;
  recycle(arenas: readonly ArrayBuffer[]): void;
  confirm(seq: number): void;
}
const { LogHandOff } = (await import(pathToFileURL(`${dist}/logs/index.js`).href)) as {
  LogHandOff: new (options: unknown) => HandOff;
};

const { LogPackJob } = (await import(pathToFileURL(`${dist}/logs/log-batch-transfer.js`).href)) as {
  LogPackJob: { prototype: { step: (this: unknown, budget: number) => boolean } };
};
let packUs = 0;
const step = LogPackJob.prototype.step;
LogPackJob.prototype.step = function (this: unknown, budget: number): boolean {
  const t0 = process.hrtime.bigint();
  try {
    return step.call(this, budget);
  } finally {
    packUs += Number(process.hrtime.bigint() - t0) / 1000;
  }
};
const THRASH = new Uint8Array(Number(process.env.THRASH_KB ?? 0) * 1024);
let thrashed = 0;

const tensorType = new FixedSizeList(18, new Field('item', new Float32(), false));
const outType = new FixedSizeList(1, new Field('item', new Float32(), false));
const fields = [
  new Field('time', new TimestampMillisecond(), false),
  new Field('in.tensor', tensorType, false),
  new Field('out.variable', outType, false),
  new Field('check_failures', new Uint32(), false),
];
const schema = new Schema(fields);
const struct = new Struct(fields);

function resultBatch(n: number, time: number): RecordBatch {
  const body = new Float32Array(n * 18 + 64);
  for (let i = 0; i < body.length; i += 97) body[i] = i;
  const t = makeData({
    type: new TimestampMillisecond(),
    length: n,
    data: new BigInt64Array(n).fill(BigInt(time)) as never,
  });
  const items = makeData({ type: new Float32(), length: n * 18, data: body.subarray(16, 16 + n * 18) });
  const x = makeData({ type: tensorType, length: n, child: items });
  const outItems = makeData({ type: new Float32(), length: n, data: new Float32Array(n).fill(0.5) });
  const out = makeData({ type: outType, length: n, child: outItems });
  const checks = makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) });
  const b = new RecordBatch(schema, makeData({ type: struct, length: n, children: [t, x, out, checks] }));
  (b as { schema: Schema }).schema = schema;
  return b;
}

/** A stand-in writer thread: gives each message's arena back, transferred, WRITER_MS after it came. */
const worker = WORKER
  ? new Worker(
      `const { parentPort } = require('node:worker_threads');
       parentPort.on('message', (m) => setTimeout(
         () => parentPort.postMessage({ seq: m.seq, arena: m.body.arena }, [m.body.arena]), ${WRITER_MS}));`,
      { eval: true },
    )
  : null;
worker?.unref();
worker?.on('message', (m: { seq: number; arena: ArrayBuffer }) => {
  handOff.recycle([m.arena]);
  handOff.confirm(m.seq);
  handOff.wantsRows();
});
let postUs = 0;

const handOff: HandOff = new LogHandOff({
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
  post: (msg: { seq: number; body: { arena: ArrayBuffer } }, transfer: ArrayBuffer[]) => {
    if (worker !== null) {
      const t0 = process.hrtime.bigint();
      worker.postMessage(msg, transfer);
      postUs += Number(process.hrtime.bigint() - t0) / 1000;
      return;
    }
    setTimeout(() => {
      handOff.recycle([msg.body.arena]);
      handOff.confirm(msg.seq);
      handOff.wantsRows();
    }, WRITER_MS);
  },
});
handOff.attach();
handOff.wantsRows();

let gcUs = 0;
/** GC pause µs by kind (perf_hooks' `detail.kind`: 1 minor, 2 major, 4 incremental, 8 weak callbacks). */
let gcKinds: Record<string, number> = {};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcUs += e.duration * 1000;
    const kind = String((e as { detail?: { kind?: number } }).detail?.kind ?? '?');
    gcKinds[kind] = (gcKinds[kind] ?? 0) + e.duration * 1000;
  }
}).observe({ entryTypes: ['gc'] });

const turn = async (): Promise<number> => {
  const pending: Promise<void>[] = [];
  let pushNs = 0n;
  for (let c = 0; c < CONNECTIONS; c++) {
    const b = resultBatch(ROWS, Date.now());
    const t0 = process.hrtime.bigint();
    pending.push(handOff.push(1, [b], ROWS));
    pushNs += process.hrtime.bigint() - t0;
  }
  await Promise.all(pending);
  if (THRASH.length > 0) THRASH.fill(++thrashed & 0xff);
  await new Promise((r) => setImmediate(r));
  return Number(pushNs) / 1000;
};

const until = async (ms: number): Promise<{ appends: number; pushUs: number }> => {
  const end = performance.now() + ms;
  let appends = 0;
  let pushUs = 0;
  while (performance.now() < end) {
    pushUs += await turn();
    appends += CONNECTIONS;
  }
  return { appends, pushUs };
};

await until(WARMUP_S * 1000);
const cpu0 = process.cpuUsage();
gcUs = 0;
gcKinds = {};
postUs = 0;
packUs = 0;
const { appends, pushUs } = await until(SECONDS * 1000);
const cpu = process.cpuUsage(cpu0);
const gc = gcUs;
console.log(
  JSON.stringify({
    dist: process.env.DIST,
    rows: ROWS,
    appends,
    cpuUsPerAppend: +((cpu.user + cpu.system) / appends).toFixed(1),
    pushUsPerAppend: +(pushUs / appends).toFixed(1),
    packUsPerAppend: +(packUs / appends).toFixed(2),
    gcUsPerAppend: +(gc / appends).toFixed(1),
    gcUsPerAppendByKind: Object.fromEntries(
      Object.entries(gcKinds).map(([kind, us]) => [kind, +(us / appends).toFixed(1)]),
    ),
    ...(worker !== null ? { postUsPerAppend: +(postUs / appends).toFixed(1) } : {}),
  }),
);
process.exit(0);
