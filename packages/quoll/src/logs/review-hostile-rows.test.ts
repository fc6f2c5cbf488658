import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Data, RecordBatch, makeData } from 'apache-arrow';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/open-store.js';
import { inferenceLogRows, idRange, logPageIds } from '../store/conformance/inference-log-rows.js';
import { InferenceLogStore } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'quoll-review-hostile-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const T0 = 1_700_000_000_000;
let n = 0;

async function open() {
  const stores = await openStore({ kind: 'sqlite', path: join(root, `${++n}.db`) });
  const logs = await InferenceLogStore.open({
    dir: mkdtempSync(join(root, 'logs-')),
    index: stores.logIndex,
  });
  return { logs, stores };
}

const good = (from: number, count = 5): RecordBatch => {
  const ids = idRange(from, count);
  return inferenceLogRows(
    ids,
    ids.map((id) => T0 + id * 10),
    'json',
  );
};

/** `good`'s rows with column `in.tensor` (a List<Float64>) replaced by `spoil(column)`. */
function withInput(batch: RecordBatch, spoil: (d: Data) => Data): RecordBatch {
  const children = batch.data.children.slice();
  children[1] = spoil(children[1]!);
  const out = new RecordBatch(
    batch.schema,
    makeData({ type: batch.data.type, length: batch.numRows, nullCount: 0, children }),
  );
  (out as { schema: unknown }).schema = batch.schema;
  return out;
}

const HOSTILE: { name: string; make: (b: RecordBatch) => RecordBatch }[] = [
  {
    name: 'a List<Float64> column whose items are Float32 values',
    make: (b) =>
      withInput(b, (d) => {
        const child = d.children[0]!;
        const narrow = new Data(child.type, 0, child.length, 0, [
          undefined,
          Float32Array.from(child.values as Float64Array),
        ]);
        return new Data(d.type, 0, d.length, 0, [d.valueOffsets, undefined, undefined], [narrow]);
      }),
  },
  {
    name: 'a List column whose offsets point past its items',
    make: (b) =>
      withInput(b, (d) => {
        const offsets = Int32Array.from({ length: d.length + 1 }, (_, i) => i * 1000);
        return new Data(d.type, 0, d.length, 0, [offsets, undefined, undefined], [d.children[0]!]);
      }),
  },
  {
    name: 'a List column with too few offsets',
    make: (b) =>
      withInput(
        b,
        (d) => new Data(d.type, 0, d.length, 0, [new Int32Array(1), undefined, undefined], [d.children[0]!]),
      ),
  },
];

describe('review: rows that pass admission but are broken deeper (files backend)', () => {
  // The admission checks recurse into fixed-size lists only: a List column is checked by type id
  // and length, so its items' width and its offsets are never looked at. These rows are not
  // refused: they are stored, and read back as other values (Float32 bits read as Float64, a
  // row's items given to its neighbour), with the append acknowledged.
  for (const bad of HOSTILE) {
    it(`${bad.name}: refused alone, the good appends around it are stored and stop() settles`, async () => {
      const { logs, stores } = await open();
      try {
        await logs.append(1, good(0));
        await logs.flush();
        const refused = logs.append(1, bad.make(good(100))).then(
          () => null,
          (err: unknown) => err,
        );
        await logs.append(1, good(5));
        await logs.flush();
        await logs.append(1, good(10));
        await logs.flush();
        const page = await logs.query(1, { start: T0, end: T0 + 100_000, limit: 1000 });
        expect(logPageIds(page)).toEqual(idRange(0, 15));
        expect(await refused).toMatchObject({ code: 'log_rows_refused' });
        expect(logs.state).toBe('open');
      } finally {
        await logs.stop();
        await stores.close();
      }
    });
  }
});
