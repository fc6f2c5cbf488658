import { Data, RecordBatch } from 'apache-arrow';
import type { Table } from 'apache-arrow';
import { kindOf } from '../../logs/index.js';
import type { LogRowLeaf, LogRowSource } from '../../logs/index.js';

/** The leaf values of a batch of fixed-width columns, depth first (as a log row source's leaves). */
function leafValues(batch: RecordBatch): ArrayBufferView[] {
  const out: ArrayBufferView[] = [];
  const visit = (d: Data): void => {
    if (d.children.length > 0) for (const c of d.children) visit(c);
    else out.push(d.values as ArrayBufferView);
  };
  for (const column of batch.data.children) visit(column);
  return out;
}

/**
 * A log row source of `batch`'s rows (fixed-width columns, as an inference result of JSON
 * records hands the log), spoiled by `spoil`: what a result's log rows could do wrong.
 */
function sourceOf(
  batch: RecordBatch,
  spoil: {
    values?: (values: ArrayBufferView[]) => ArrayBufferView[];
    writeLeaf?: (index: number) => void;
  },
): LogRowSource {
  const all = leafValues(batch);
  const values = spoil.values?.(all) ?? all;
  const leaves: LogRowLeaf[] = values.map((v) => ({
    kind: kindOf(v),
    width: (v as Uint8Array).length / batch.numRows,
  }));
  return {
    kind: 'log-row-source',
    schema: batch.schema,
    numRows: batch.numRows,
    leaves,
    byteLength: values.reduce((n, v) => n + v.byteLength, 0),
    writeLeaf(index: number, target: ArrayBufferView): void {
      spoil.writeLeaf?.(index);
      new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(
        new Uint8Array(values[index]!.buffer, values[index]!.byteOffset, values[index]!.byteLength),
      );
    },
    toTable(): Table {
      throw new Error('test: this source has no table');
    },
  };
}

/**
 * Appends that cannot be logged, each made from a good batch of inference rows (same schema,
 * same rows): each must be refused alone, the appends before and after it stored.
 */
export const BAD_LOG_APPENDS: readonly {
  name: string;
  make: (good: RecordBatch) => RecordBatch | LogRowSource;
}[] = [
  {
    // A result's row source that throws while its rows are written (a bug, a value it cannot convert).
    name: 'a row source that throws',
    make: (good) =>
      sourceOf(good, {
        writeLeaf: (index) => {
          if (index === 1) throw new TypeError('test: cannot read this input');
        },
      }),
  },
  {
    // What a result given another result's layout hands the log (review of 5 December,
    // finding 1): a schema of more columns than the source writes.
    name: 'a row source whose leaves do not match its schema',
    make: (good) => sourceOf(good, { values: (values) => values.filter((_, i) => i !== 1) }),
  },
  {
    // Float64 values for a Float32 column (the source writes them, whole, as Float64).
    name: 'a row source whose values do not fit their column type',
    make: (good) =>
      sourceOf(good, {
        values: (values) => values.map((v, i) => (i === 1 ? Float64Array.from(v as Float32Array) : v)),
      }),
  },
  {
    // A value that does not fit its column's Arrow type: Float64 values in a Float32 column.
    name: 'a batch whose column values do not fit its type',
    make: (good) => {
      const children = good.data.children.slice();
      const tensor = children[1]!;
      const child = tensor.children[0]!;
      const wide = new Data(child.type, 0, child.length, 0, [
        undefined,
        Float64Array.from(child.values as Float32Array),
      ]);
      children[1] = new Data(tensor.type, 0, tensor.length, 0, undefined, [wide]);
      const batch = Object.create(RecordBatch.prototype) as RecordBatch & {
        schema: unknown;
        data: unknown;
        _metadata: unknown;
      };
      batch.schema = good.schema;
      batch.data = new Data(good.data.type, 0, good.numRows, 0, undefined, children);
      batch._metadata = new Map();
      return batch;
    },
  },
];
