// In process: what logging a JSON records result costs on the request thread, the result's
// Arrow table copied into the log's staging (`table`, the path before `logRows()`) against
// the records written straight into the staging (`source`, `InferenceResult.logRows()`).
// Per append: JSON.parse of a fresh body (as a request has), the result, `admitLogRows` and
// `LogStaging.add`; every `HAND_OFF_ROWS` rows the staging is taken and released (what the
// writer's confirmation does). Prints CPU µs per append of each path, rounds interleaved.
//
// `filled`: as `source`, with the `in.*` Float64 values written by `buildFeeds` in the same walk
// of the records as the model's float32 feed (`RecordValues`), which the staging then copies.
// `FEEDS=1` adds the feeds' walk (`buildFeeds`, as a request makes it) to every path, so that
// `filled` (whose cost is partly in that walk) compares with the others. `filled` takes its
// values from a log slab of the deployment's sizes (`LOG_SLAB_BYTES`, `LOG_SLAB_MAX_BYTES`: at
// 100 × 18 a fresh 14 KiB array a request); `pooled` (with `FEEDS=1`) from a `LogValuesPool`, the
// result released after its append as the service does (the values go back once the staging
// copied them).
//
// Since 7c14f74 the `tensor` column, which feeds only a float32 input, is logged as Float32.
// With `FEEDS=1`, `narrowed` is `pooled` logged so (main's path: Float64 values written in the
// walk, rounded to Float32 as the staging copies them) and `feed32` the feedlog lane's: the
// log's values are the float32 feed's, copied from it (pooled) and staged as they are.
//
// Usage: taskset -c 1 [FEEDS=1] npx tsx bench/log-rows-probe.ts [rows=100] [seconds=2] [rounds=4]
import { admitLogRows, LogStaging } from '../packages/quoll/src/logs/index.js';
import { InferenceResult } from '../packages/quoll/src/inference/inference-result.js';
import { FeedSlab, LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES } from '../packages/quoll/src/inference/feed-slab.js';
import { LogValuesPool } from '../packages/quoll/src/inference/log-values-pool.js';
import { buildFeeds } from '../packages/quoll/src/inference/input-binding.js';
import type { RecordValues } from '../packages/quoll/src/inference/input-binding.js';

const [rows = 100, seconds = 2, rounds = 4] = process.argv.slice(2).map(Number);
const HAND_OFF_ROWS = 8192;
const body = JSON.stringify(
  Array.from({ length: rows }, (_, i) => ({
    tensor: Array.from({ length: 18 }, (_, j) => Math.round((i * 0.37 + j * 1.13) * 1e6) / 1e6),
  })),
);
const output = Float32Array.from({ length: rows }, (_, i) => i * 1.5);
const FEEDS = process.env.FEEDS === '1';
const bindings = [
  { column: 'tensor', input: { name: 'float_input', type: 'float32' as const, shape: [null, 18] } },
];
const feedSlab = new FeedSlab();
const logSlab = new FeedSlab(LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES);
const pool = new LogValuesPool();
type Path = 'table' | 'source' | 'filled' | 'pooled' | 'narrowed' | 'feed32';
const POOLED: readonly Path[] = ['pooled', 'narrowed', 'feed32'];
const FLOAT32 = [true] as const;

function run(path: Path): number {
  const staging = new LogStaging({ maxRows: 100_000, maxBytes: 16 * 1024 * 1024 });
  let staged = 0;
  let appends = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      const records = JSON.parse(body) as Record<string, unknown>[];
      const input = { kind: 'records' as const, records };
      const values: RecordValues | undefined =
        path === 'filled' || POOLED.includes(path)
          ? {
              columns: ['tensor'],
              values: [],
              storage: path === 'filled' ? logSlab : pool,
              float32: path === 'feed32' ? FLOAT32 : null,
            }
          : undefined;
      if (FEEDS || values !== undefined) buildFeeds(input, bindings, feedSlab, values);
      const result = new InferenceResult(
        input,
        ['tensor'],
        [{ name: 'variable', type: 'float32', dims: [rows, 1], data: output.slice() }],
        rows,
        Date.now(),
        null,
        values?.values ?? null,
        POOLED.includes(path) ? pool : null,
        path === 'narrowed' || path === 'feed32' ? FLOAT32 : null,
      );
      staging.add(1, admitLogRows(1, path === 'table' ? result.toArrowTable() : result.logRows()).batches);
      result.release();
      staged += rows;
      appends++;
      if (staged >= HAND_OFF_ROWS) {
        staging.release(staging.take());
        staged = 0;
      }
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / appends;
}

// The parse alone (with FEEDS=1 and the feeds' walk), to subtract: what the request pays whether it logs or not.
function parseOnly(): number {
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      const records = JSON.parse(body) as Record<string, unknown>[];
      if (FEEDS) buildFeeds({ kind: 'records', records }, bindings, feedSlab);
      n++;
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

const paths: Path[] = FEEDS
  ? ['table', 'source', 'filled', 'pooled', 'narrowed', 'feed32']
  : ['table', 'source'];
for (const path of paths) run(path);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? paths : [...paths].reverse();
  const got: Record<string, number> = {};
  for (const path of order) got[path] = run(path);
  const parse = parseOnly();
  const each = paths.map(
    (path) => `${path} ${got[path]!.toFixed(1)} (log ${(got[path]! - parse).toFixed(1)})`,
  );
  console.log(
    `round ${r + 1}: rows ${rows}, ${FEEDS ? 'parse + feeds' : 'parse'} ${parse.toFixed(1)} µs; ${each.join(', ')} µs CPU per append`,
  );
}
