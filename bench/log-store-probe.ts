// In process: the request thread's side of a real InferenceLogStore (of the build at DIST) with
// its real writer thread, at a paced JSON-100-like rate: every TICK_MS, CONNECTIONS appends of an
// Arrow table of ROWS rows (time, in.tensor 18 × float32, out.variable float32). Prints, over
// SECONDS after WARMUP_S: the process's CPU µs per append (both threads: run it pinned to one
// core), the µs per append spent in append() itself (admission and staging), and minor page
// faults per append (an arena or staging buffer not reused shows here). Then each thread of the
// process (from /proc/self/task): CPU µs per append, its system share and wakes per second
// (voluntary context switches), so the writer thread's own cost shows apart from the request side.
// Usage: DIST=packages/quoll/dist [HANDOFF_MS=50] [SYNC_MS=150] [ROWS=100] [CONNECTIONS=16] [TICK_MS=7] [SECONDS=6] [WARMUP_S=3]
//   taskset -c 0 npx tsx bench/log-store-probe.ts
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { RecordBatch } from 'apache-arrow';
import {
  Field,
  FixedSizeList,
  Float32,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import { threadStats } from './thread-stats.js';

const dist = resolve(process.env.DIST ?? 'packages/quoll/dist');
const ROWS = Number(process.env.ROWS ?? 100);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 16);
const TICK_MS = Number(process.env.TICK_MS ?? 7);
const SECONDS = Number(process.env.SECONDS ?? 6);
const WARMUP_S = Number(process.env.WARMUP_S ?? 3);

const { InferenceLogStore } = (await import(pathToFileURL(join(dist, 'logs/index.js')).href)) as {
  InferenceLogStore: {
    open(o: unknown): Promise<{
      append(id: number, rows: Table): Promise<void>;
      stop(): Promise<void>;
    }>;
  };
};
const { SqliteLogSegmentIndex } = (await import(
  pathToFileURL(join(dist, 'store/sqlite/sqlite-log-segment-index.js')).href
)) as { SqliteLogSegmentIndex: new (db: unknown) => unknown };
const { MIGRATIONS_DIR, openSqliteDatabase } = (await import(
  pathToFileURL(join(dist, 'store/sqlite/sqlite-database.js')).href
)) as { MIGRATIONS_DIR: string; openSqliteDatabase: (p: string, m: string) => { close(): void } };

const dir = mkdtempSync(join(tmpdir(), 'quoll-log-store-probe-'));
mkdirSync(join(dir, 'migrations'));
copyFileSync(
  join(MIGRATIONS_DIR, '0002_inference_logs.sql'),
  join(dir, 'migrations', '0002_inference_logs.sql'),
);
const db = openSqliteDatabase(join(dir, 'quoll.db'), join(dir, 'migrations'));
// HANDOFF_MS / SYNC_MS: the store's handOffDelayMs / syncIntervalMs (its defaults when unset).
const timing = (name: string): number | undefined =>
  process.env[name] === undefined ? undefined : Number(process.env[name]);
const store = await InferenceLogStore.open({
  dir: join(dir, 'logs'),
  index: new SqliteLogSegmentIndex(db),
  handOffDelayMs: timing('HANDOFF_MS'),
  syncIntervalMs: timing('SYNC_MS'),
});

const tensorType = new FixedSizeList(18, new Field('item', new Float32(), false));
const schema = new Schema([
  new Field('time', new TimestampMillisecond(), false),
  new Field('in.tensor', tensorType, false),
  new Field('out.variable', new Float32(), false),
]);
const structType = new Struct(schema.fields);
// As the server's results do: one schema object for every batch (Arrow's constructor clones it).
const { recordBatchOf } = (await import(pathToFileURL(join(dist, 'arrow/index.js')).href)) as {
  recordBatchOf: (schema: Schema, data: ReturnType<typeof makeData>) => RecordBatch;
};
function table(): Table {
  const time = new BigInt64Array(ROWS).fill(BigInt(Date.now()));
  const tensor = new Float32Array(ROWS * 18).map((_, i) => i * 0.5);
  const out = new Float32Array(ROWS).map((_, i) => i * 1.5);
  const children = [
    makeData({ type: new TimestampMillisecond(), length: ROWS, nullCount: 0, data: time }),
    makeData({
      type: tensorType,
      length: ROWS,
      nullCount: 0,
      child: makeData({ type: new Float32(), length: ROWS * 18, nullCount: 0, data: tensor }),
    }),
    makeData({ type: new Float32(), length: ROWS, nullCount: 0, data: out }),
  ];
  return new Table([
    recordBatchOf(schema, makeData({ type: structType, length: ROWS, nullCount: 0, children })),
  ]);
}

let measuring = false;
let appends = 0;
let inAppend = 0;
const tick = (): void => {
  for (let k = 0; k < CONNECTIONS; k++) {
    const t = table();
    const a = performance.now();
    void store.append(1, t);
    if (measuring) {
      inAppend += performance.now() - a;
      appends++;
    }
  }
};
const timer = setInterval(tick, TICK_MS);
await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
const cpu0 = process.cpuUsage();
const ru0 = process.resourceUsage();
const threads0 = threadStats('self');
measuring = true;
await new Promise((r) => setTimeout(r, SECONDS * 1000));
measuring = false;
const cpu = process.cpuUsage(cpu0);
const ru = process.resourceUsage();
const threads1 = threadStats('self');
clearInterval(timer);
const per = (x: number): string => (x / appends).toFixed(2);
console.log(
  `${dist}: ${appends} appends of ${ROWS} rows; CPU ${per(cpu.user + cpu.system)} µs/append (system ${per(cpu.system)}), ` +
    `in append() ${per(inAppend * 1000)} µs, minor faults ${per(ru.minorPageFault - ru0.minorPageFault)}/append`,
);
for (const [tid, t] of threads1) {
  const b = threads0.get(tid) ?? { user: 0, sys: 0, minorFaults: 0, wakes: 0, run: 0 };
  const used = t.user + t.sys - b.user - b.sys;
  if (used <= 0) continue;
  console.log(
    `  thread ${tid}${tid === String(process.pid) ? ' (main)' : ''}: ${per(used * 1e6)} µs/append ` +
      `(schedstat ${per((t.run - b.run) * 1e6)}, ${(((t.run - b.run) * 1e3) / SECONDS).toFixed(2)} ms/s), ` +
      `${(((t.sys - b.sys) / used) * 100).toFixed(0)} % system, ${((t.wakes - b.wakes) / SECONDS).toFixed(0)} wakes/s`,
  );
}
await store.stop();
db.close();
rmSync(dir, { recursive: true, force: true });
