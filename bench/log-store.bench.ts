// Inference log store micro-benchmark: append rows/s, and 1000-row time-range page latency on
// a large store. Run: npx tsx bench/log-store.bench.ts [--rows 10000000]
// Writes bench/results/log-store.json. Beside rows/s, the append runs report the CPU time of
// the main thread (the one that serves requests in a server) per row, from /proc (Linux).
import {
  readFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeSync,
  fsyncSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  tableToIPC,
  Table,
} from 'apache-arrow';
import { InferenceLogStore } from '../packages/quoll/src/logs/index.js';
import { SqliteLogSegmentIndex } from '../packages/quoll/src/store/sqlite/sqlite-log-segment-index.js';
import { MIGRATIONS_DIR, openSqliteDatabase } from '../packages/quoll/src/store/sqlite/sqlite-database.js';
import { median, percentile, printTable, writeResults } from './support.js';

const argRows = process.argv.indexOf('--rows');
const LARGE_ROWS = argRows > 0 ? Number(process.argv[argRows + 1]) : 10_000_000;
const T0 = 1_700_000_000_000;
const WIDTH = 18; // the tutorial's rf model: 18 float inputs, 1 output

const ts = new TimestampMillisecond();
const inType = new FixedSizeList(WIDTH, new Field('item', new Float32(), false));
const outType = new FixedSizeList(1, new Field('item', new Float32(), false));
const schema = new Schema([
  new Field('time', ts, false),
  new Field('in.tensor', inType, false),
  new Field('out.variable', outType, false),
  new Field('check_failures', new Uint32(), false),
]);

/** A result batch of `n` rows, row i at time T0 + first + i (one row per ms). */
function batch(first: number, n: number): RecordBatch {
  const time = new BigInt64Array(n);
  for (let i = 0; i < n; i++) time[i] = BigInt(T0 + first + i);
  const inputs = new Float32Array(n * WIDTH).fill(1.5);
  const children = [
    makeData({ type: ts, length: n, data: time as never }),
    makeData({
      type: inType,
      length: n,
      child: makeData({ type: new Float32(), length: n * WIDTH, data: inputs }),
    }),
    makeData({
      type: outType,
      length: n,
      child: makeData({ type: new Float32(), length: n, data: new Float32Array(n) }),
    }),
    makeData({ type: new Uint32(), length: n, data: new Uint32Array(n) }),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, children }));
}

function home(): { dir: string; migrations: string } {
  const dir = mkdtempSync(join(tmpdir(), 'quoll-logbench-'));
  const migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  copyFileSync(join(MIGRATIONS_DIR, '0002_inference_logs.sql'), join(migrations, '0002_inference_logs.sql'));
  return { dir, migrations };
}

async function openStore(h: { dir: string; migrations: string }) {
  const db = openSqliteDatabase(join(h.dir, 'quoll.db'), h.migrations);
  const store = await InferenceLogStore.open({
    dir: join(h.dir, 'logs'),
    index: new SqliteLogSegmentIndex(db),
    maxBytesPerPipeline: 1024 ** 4,
    maxBytesTotal: 1024 ** 4,
  });
  return { db, store };
}

/** CPU seconds this process's main thread has used (NaN off Linux; 100 ticks per second assumed). */
function mainThreadCpuSeconds(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Appends prebuilt batches and flushes; rows/s including the final fsync, and main-thread CPU µs per row. */
async function appendRun(batches: RecordBatch[]): Promise<{ rowsPerSec: number; mainUsPerRow: number }> {
  const h = home();
  const { db, store } = await openStore(h);
  const rows = batches.reduce((s, b) => s + b.numRows, 0);
  const cpu = mainThreadCpuSeconds();
  const t = performance.now();
  for (const b of batches) await store.append(1, b);
  await store.flush();
  const secs = (performance.now() - t) / 1000;
  const mainUsPerRow = ((mainThreadCpuSeconds() - cpu) * 1e6) / rows;
  await store.stop();
  db.close();
  rmSync(h.dir, { recursive: true, force: true });
  return { rowsPerSec: rows / secs, mainUsPerRow };
}

/** Reference: the same rows as Arrow IPC bytes written with plain fs writes and one fsync. */
function rawWriteRun(batches: RecordBatch[]): number {
  const h = home();
  const rows = batches.reduce((s, b) => s + b.numRows, 0);
  const t = performance.now();
  const fd = openSync(join(h.dir, 'raw.arrows'), 'w');
  for (const b of batches) writeSync(fd, tableToIPC(new Table([b]), 'stream'));
  fsyncSync(fd);
  closeSync(fd);
  const secs = (performance.now() - t) / 1000;
  rmSync(h.dir, { recursive: true, force: true });
  return rows / secs;
}

const results: Record<string, unknown> = { largeRows: LARGE_ROWS };
const table: (string | number)[][] = [];

// 1. Append throughput: 2 M rows per run, batches of 1000 and of 100, interleaved with the raw reference.
for (const size of [1000, 100]) {
  const n = 2_000_000 / size;
  const batches = Array.from({ length: n }, (_, i) => batch(i * size, size));
  const store: number[] = [];
  const mainUs: number[] = [];
  const raw: number[] = [];
  await appendRun(batches.slice(0, 100)); // warm-up
  for (let r = 0; r < 3; r++) {
    const run = await appendRun(batches);
    store.push(run.rowsPerSec);
    mainUs.push(run.mainUsPerRow);
    raw.push(rawWriteRun(batches));
  }
  results[`append_batch${size}`] = {
    storeRowsPerSec: median(store),
    rawWriteRowsPerSec: median(raw),
    mainThreadCpuUsPerRow: median(mainUs),
    runs: store,
  };
  table.push([
    `append, batch ${size}`,
    Math.round(median(store)),
    Math.round(median(raw)),
    (median(store) / median(raw)).toFixed(2),
    median(mainUs).toFixed(3),
  ]);
}

// 2. A large store: LARGE_ROWS rows in 1000-row batches, then 1000-row range pages on a reopened store.
const h = home();
{
  const { db, store } = await openStore(h);
  const t = performance.now();
  for (let first = 0; first < LARGE_ROWS; first += 1000) await store.append(1, batch(first, 1000));
  await store.flush();
  const secs = (performance.now() - t) / 1000;
  await store.stop();
  db.close();
  results.largeBuild = { rows: LARGE_ROWS, seconds: secs, rowsPerSec: LARGE_ROWS / secs };
  table.push([`build ${LARGE_ROWS} rows`, Math.round(LARGE_ROWS / secs), '', '', '']);
}
{
  const { db, store } = await openStore(h);
  const lat = async (q: () => Parameters<InferenceLogStore['query']>[1], n: number, expectRows: number) => {
    const ms: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const page = await store.query(1, q());
      ms.push(performance.now() - t);
      if (page.rows !== expectRows) throw new Error(`page had ${page.rows} rows, expected ${expectRows}`);
    }
    return ms;
  };
  const randomRange = () => {
    const start = T0 + Math.floor(Math.random() * (LARGE_ROWS - 1000));
    return { start, end: start + 999 };
  };
  const cold = await lat(randomRange, 200, 1000); // first touches load segment sidecars
  const warm = await lat(randomRange, 500, 1000);
  const newest = await lat(() => ({}), 200, 100);
  const desc = await lat(() => ({ ...randomRange(), order: 'desc' as const }), 200, 1000);
  results.rangePage1000 = {
    coldP50Ms: percentile(cold, 50),
    p50Ms: percentile(warm, 50),
    p90Ms: percentile(warm, 90),
    p99Ms: percentile(warm, 99),
  };
  results.newest100 = { p50Ms: percentile(newest, 50), p99Ms: percentile(newest, 99) };
  results.rangePage1000Desc = { p50Ms: percentile(desc, 50), p99Ms: percentile(desc, 99) };
  await store.stop();
  db.close();
}
rmSync(h.dir, { recursive: true, force: true });

console.log('\nappend (rows/s; reference = tableToIPC + fs.writeSync of the same batches)');
printTable(['case', 'store rows/s', 'raw rows/s', 'ratio', 'main-thread CPU µs/row'], table);
const r = results.rangePage1000 as Record<string, number>;
const nw = results.newest100 as Record<string, number>;
const d = results.rangePage1000Desc as Record<string, number>;
console.log(`\nqueries on a store of ${LARGE_ROWS} rows (ms)`);
printTable(
  ['query', 'p50', 'p90', 'p99'],
  [
    ['range page 1000 rows, first 200 (cold)', r.coldP50Ms ?? NaN, '', ''],
    ['range page 1000 rows', r.p50Ms ?? NaN, r.p90Ms ?? NaN, r.p99Ms ?? NaN],
    ['range page 1000 rows, desc', d.p50Ms ?? NaN, '', d.p99Ms ?? NaN],
    ['newest 100 (no range)', nw.p50Ms ?? NaN, '', nw.p99Ms ?? NaN],
  ],
);
writeResults('log-store', results);
