// In-process cost of writing one Arrow answer (the result of an Arrow batch of 1000 rows × 18
// float32 features, one float32 output) on this thread: apache-arrow's `tableToIPC` against the
// direct `encodeArrowAnswer`, interleaved rounds, µs per answer (median of rounds).
// Usage: tsx bench/answer-encode-probe.ts [rows=1000] [rounds=15]
import { tableToIPC } from 'apache-arrow';
import { makeArrowTensorTable } from '../test/support/synthetic-data.js';
import { encodeArrowAnswer } from '../packages/quoll/src/inference/encode-arrow-answer.js';
import { InferenceResult } from '../packages/quoll/src/inference/inference-result.js';

const [rows = 1000, rounds = 15] = process.argv.slice(2).map(Number);
const table = makeArrowTensorTable(
  Float32Array.from({ length: rows * 18 }, (_, i) => i / 7),
  18,
);
const output = Float32Array.from({ length: rows }, (_, i) => i * 3.5);
const result = (): InferenceResult =>
  new InferenceResult(
    { kind: 'arrow', table },
    ['tensor'],
    [{ name: 'variable', type: 'float32', dims: [rows, 1], data: output }],
    rows,
    Date.now(),
  );
const perRound = 2000;
const ways: Record<string, (file: boolean) => number> = {
  'tableToIPC ': (file) => tableToIPC(result().toArrowTable(), file ? 'file' : 'stream').byteLength,
  'direct     ': (file) => encodeArrowAnswer(result().toArrowTable(), file)!.byteLength,
  'table only ': () => result().toArrowTable().numRows,
};
const times = new Map<string, number[]>();
let sink = 0;
for (let round = 0; round < rounds; round++) {
  for (const [name, way] of Object.entries(ways)) {
    for (const file of [true, false]) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < perRound; i++) sink += way(file);
      const us = Number(process.hrtime.bigint() - start) / 1000 / perRound;
      const key = `${name} ${file ? 'file  ' : 'stream'}`;
      times.set(key, [...(times.get(key) ?? []), us]);
    }
  }
}
for (const [key, us] of times) {
  const sorted = [...us].sort((a, b) => a - b);
  console.log(`${key}  ${sorted[sorted.length >> 1]!.toFixed(1)} µs/answer (min ${sorted[0]!.toFixed(1)})`);
}
console.log(`(${rows} rows, ${rounds} rounds of ${perRound}; sink ${sink})`);
