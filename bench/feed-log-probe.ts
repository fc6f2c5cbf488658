// In process: the request thread's cost of a JSON records request's feeds and its log append at
// batch `rows` × 18, for a column logged as Float32 (it feeds a float32 input): `narrowed` (main
// since 7c14f74: the records walk writes Float64 log values beside the feed, the staging rounds
// them to Float32 as it copies them) against `feed32` (feedlog lane: the log's values are the
// float32 feed's, copied from it into a pooled array and staged as they are), and `off` (the
// feeds alone, no log) to subtract. The records are parsed once (the parse is the same for all).
// Per variant and round `ms` ms, the variants' order alternating; prints each round's µs CPU per
// request and at the end the median over rounds of feed32 − narrowed and of each's log cost.
//
// Usage: taskset -c 1 npx tsx bench/feed-log-probe.ts [rows=100] [rounds=30] [ms=200]
import { admitLogRows, LogStaging } from '../packages/quoll/src/logs/index.js';
import { InferenceResult } from '../packages/quoll/src/inference/inference-result.js';
import { FeedSlab } from '../packages/quoll/src/inference/feed-slab.js';
import { LogValuesPool } from '../packages/quoll/src/inference/log-values-pool.js';
import { buildFeeds } from '../packages/quoll/src/inference/input-binding.js';
import type { RecordValues } from '../packages/quoll/src/inference/input-binding.js';

const [rows = 100, rounds = 30, ms = 200] = process.argv.slice(2).map(Number);
const HAND_OFF_ROWS = 8192;
const records = JSON.parse(
  JSON.stringify(
    Array.from({ length: rows }, (_, i) => ({
      tensor: Array.from({ length: 18 }, (_, j) => Math.round((i * 0.37 + j * 1.13) * 1e6) / 1e6),
    })),
  ),
) as Record<string, unknown>[];
const output = Float32Array.from({ length: rows }, (_, i) => i * 1.5);
const bindings = [
  { column: 'tensor', input: { name: 'float_input', type: 'float32' as const, shape: [null, 18] } },
];
const FLOAT32 = [true] as const;
type Variant = 'off' | 'narrowed' | 'feed32';
const variants: Variant[] = ['off', 'narrowed', 'feed32'];
const feedSlab = new FeedSlab();
const pool = new LogValuesPool();
const staging = new LogStaging({ maxRows: 100_000, maxBytes: 16 * 1024 * 1024 });
let staged = 0;

function run(variant: Variant): number {
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + ms;
  const input = { kind: 'records' as const, records };
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++, n++) {
      if (variant === 'off') {
        buildFeeds(input, bindings, feedSlab);
        continue;
      }
      const values: RecordValues = {
        columns: ['tensor'],
        values: [],
        storage: pool,
        float32: variant === 'feed32' ? FLOAT32 : null,
      };
      buildFeeds(input, bindings, feedSlab, values);
      const result = new InferenceResult(
        input,
        ['tensor'],
        [{ name: 'variable', type: 'float32', dims: [rows, 1], data: output.slice() }],
        rows,
        Date.now(),
        null,
        values.values,
        pool,
        FLOAT32,
      );
      staging.add(1, admitLogRows(1, result.logRows()).batches);
      result.release();
      staged += rows;
      if (staged >= HAND_OFF_ROWS) {
        staging.release(staging.take());
        staged = 0;
      }
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
for (const variant of variants) run(variant);
const diffs: number[] = [];
const logCost: Record<Variant, number[]> = { off: [], narrowed: [], feed32: [] };
let lower = 0;
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? variants : [...variants].reverse();
  const got = {} as Record<Variant, number>;
  for (const variant of order) got[variant] = run(variant);
  diffs.push(got.feed32 - got.narrowed);
  if (got.feed32 < got.narrowed) lower++;
  for (const variant of variants) logCost[variant].push(got[variant] - got.off);
  console.log(
    `round ${r + 1}: off ${got.off.toFixed(2)}, narrowed ${got.narrowed.toFixed(2)}, feed32 ${got.feed32.toFixed(2)} µs CPU a request`,
  );
}
console.log(
  `rows ${rows}, ${rounds} rounds of ${ms} ms per variant: median feed32 − narrowed ${median(diffs).toFixed(2)} µs ` +
    `(feed32 lower in ${lower} of ${rounds}); median log cost (variant − off): narrowed ${median(logCost.narrowed).toFixed(2)}, ` +
    `feed32 ${median(logCost.feed32).toFixed(2)} µs`,
);
