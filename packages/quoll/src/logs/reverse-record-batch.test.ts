import { Field, Float64, List, RecordBatch, Schema, Utf8, makeBuilder, makeData, Struct } from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { reverseRecordBatch } from './reverse-record-batch.js';

/** A batch of one column of `type` built from `values`. */
function batchOf(name: string, type: List | Utf8, values: readonly unknown[]): RecordBatch {
  const builder = makeBuilder({ type, nullValues: [null, undefined] });
  for (const v of values) builder.append(v as never);
  const column = builder.finish().flush();
  const schema = new Schema([new Field(name, type, true)]);
  return new RecordBatch(
    schema,
    makeData({ type: new Struct(schema.fields), length: values.length, children: [column] }),
  );
}

/** A column's values as plain arrays (lists as arrays of their items). */
function plain(batch: RecordBatch, name: string): unknown[] {
  const column = batch.getChild(name);
  if (column === null) throw new Error(`no column ${name}`);
  return Array.from({ length: column.length }, (_, i) => {
    const v: unknown = column.get(i);
    return v !== null && typeof v === 'object' && Symbol.iterator in v ? [...(v as Iterable<unknown>)] : v;
  });
}

describe('reverseRecordBatch', () => {
  it('reverses a variable-length list column with its values (a JSON-records inference logs in.tensor as List<Float64>)', () => {
    const type = new List(new Field('item', new Float64(), true));
    const rows = [[1, 2, 3], [4], null, [], [5, 6]];
    const reversed = reverseRecordBatch(batchOf('in.tensor', type, rows));
    expect(plain(reversed, 'in.tensor')).toEqual([[5, 6], [], null, [4], [1, 2, 3]]);
  });

  it('reverses a string column', () => {
    const reversed = reverseRecordBatch(batchOf('s', new Utf8(), ['a', null, 'ccc']));
    expect(plain(reversed, 's')).toEqual(['ccc', null, 'a']);
  });
});
