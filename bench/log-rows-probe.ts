// In process: what logging a JSON records result costs on the request thread, the result's
// Arrow table copied into the log's staging (`table`, the path before `logRows()`) against
// the records written straight into the staging (`source`, `InferenceResult.logRows()`).
// Per append: JSON.parse of a fresh body (as a request has), the result, `admitLogRows` and
// `LogStaging.add`; every `HAND_OFF_ROWS` rows the staging is taken and released (what the
// writer's confirmation does). Prints CPU µs per append of each path, rounds interleaved.
//
// Usage: taskset -c 1 npx tsx bench/log-rows-probe.ts [rows=100] [seconds=2] [rounds=4]
import { admitLogRows, LogStaging } from '../packages/quoll/src/logs/index.js';
import { InferenceResult } from '../packages/quoll/src/inference/inference-result.js';

const [rows = 100, seconds = 2, rounds = 4] = process.argv.slice(2).map(Number);
const HAND_OFF_ROWS = 8192;
const body = JSON.stringify(
  Array.from({ length: rows }, (_, i) => ({
    tensor: Array.from({ length: 18 }, (_, j) => Math.round((i * 0.37 + j * 1.13) * 1e6) / 1e6),
  })),
);
const output = Float32Array.from({ length: rows }, (_, i) => i * 1.5);

function run(path: 'table' | 'source'): number {
  const staging = new LogStaging({ maxRows: 100_000, maxBytes: 16 * 1024 * 1024 });
  let staged = 0;
  let appends = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      const records = JSON.parse(body) as Record<string, unknown>[];
      const result = new InferenceResult(
        { kind: 'records', records },
        ['tensor'],
        [{ name: 'variable', type: 'float32', dims: [rows, 1], data: output.slice() }],
        rows,
        Date.now(),
      );
      staging.add(1, admitLogRows(1, path === 'table' ? result.toArrowTable() : result.logRows()).batches);
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

// The parse alone, to subtract: what the request pays whether it logs or not.
function parseOnly(): number {
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      JSON.parse(body);
      n++;
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

run('table');
run('source');
for (let r = 0; r < rounds; r++) {
  const order: ('table' | 'source')[] = r % 2 === 0 ? ['table', 'source'] : ['source', 'table'];
  const got: Record<string, number> = {};
  for (const path of order) got[path] = run(path);
  const parse = parseOnly();
  console.log(
    `round ${r + 1}: rows ${rows}, parse ${parse.toFixed(1)} µs; table ${got.table!.toFixed(1)} (log ${(got.table! - parse).toFixed(1)}), source ${got.source!.toFixed(1)} (log ${(got.source! - parse).toFixed(1)}) µs CPU per append`,
  );
}
