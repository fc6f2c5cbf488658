// In process: what logging an Arrow-input result costs on the request thread, the result's
// Arrow table checked and copied into the log's staging (`table`, `logRows()` before the arrowlog
// lane) against the input columns written straight into the staging (`source`, the
// `ArrowLogRows` of `InferenceResult.logRows()`). Per append: the decode of a fresh IPC file body
// (as a request has: `decodeArrowTable`), the result, `admitLogRows` and `LogStaging.add`; every
// `HAND_OFF_ROWS` rows the staging is taken and released (what the writer's confirmation does).
// Prints CPU µs per append of each path, rounds interleaved, and of the decode alone.
// PATHS=answered: the server's Arrow answer path instead — the answer builds the result table
// (`toArrowTable()`, as `encodeInferenceResult` does for an Arrow answer) and then the log takes
// `logRows()`, whatever that gives once the table is built; printed beside `answer` (the table
// built, nothing logged: what the request pays with logging off), so the log's own cost at that
// point is `answered` − `answer`.
//
// Usage: taskset -c 1 npx tsx bench/arrow-log-rows-probe.ts [rows=100] [seconds=2] [rounds=4]
import { Field, FixedSizeList, Float32, Table, Vector, makeData, tableToIPC } from 'apache-arrow';
import { admitLogRows, LogStaging } from '../packages/quoll/src/logs/index.js';
import { decodeArrowTable } from '../packages/quoll/src/inference/inference-input.js';
import { InferenceResult } from '../packages/quoll/src/inference/inference-result.js';

const [rows = 100, seconds = 2, rounds = 4] = process.argv.slice(2).map(Number);
const HAND_OFF_ROWS = 8192;
const values = Float32Array.from({ length: rows * 18 }, (_, i) => Math.round(i * 0.37 * 1e3) / 1e3);
const child = makeData({ type: new Float32(), length: values.length, data: values });
const type = new FixedSizeList(18, new Field('item', new Float32(), false));
const body = tableToIPC(
  new Table({ tensor: new Vector([makeData({ type, length: rows, nullCount: 0, child })]) }),
  'file',
);
const output = Float32Array.from({ length: rows }, (_, i) => i * 1.5);

type Path = 'table' | 'source' | 'answer' | 'answered';
const paths: Path[] = process.env.PATHS === 'answered' ? ['answer', 'answered'] : ['table', 'source'];

function run(path: Path): number {
  const staging = new LogStaging({ maxRows: 100_000, maxBytes: 16 * 1024 * 1024 });
  let staged = 0;
  let appends = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      const table = decodeArrowTable(body);
      const result = new InferenceResult(
        { kind: 'arrow', table },
        ['tensor'],
        [{ name: 'variable', type: 'float32', dims: [rows, 1], data: output.slice() }],
        rows,
        Date.now(),
      );
      // The answer's table first (an Arrow answer builds it), then the log's rows.
      if (path === 'answered' || path === 'answer') result.toArrowTable();
      if (path === 'answer') {
        appends++;
        continue;
      }
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

// The decode (and the output's copy) alone, to subtract: what the request pays whether it logs or not.
function decodeOnly(): number {
  let n = 0;
  const start = process.cpuUsage();
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    for (let k = 0; k < 16; k++) {
      decodeArrowTable(body);
      output.slice();
      n++;
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

for (const path of paths) run(path);
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? paths : [...paths].reverse();
  const got: Record<string, number> = {};
  for (const path of order) got[path] = run(path);
  const decode = decodeOnly();
  console.log(
    `round ${r + 1}: rows ${rows}, decode ${decode.toFixed(1)} µs; ` +
      paths.map((p) => `${p} ${got[p]!.toFixed(1)} (log ${(got[p]! - decode).toFixed(1)})`).join(', ') +
      ' µs CPU per append',
  );
}
