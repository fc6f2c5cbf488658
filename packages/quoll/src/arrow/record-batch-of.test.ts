import {
  Data,
  Field,
  Float32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
} from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { recordBatchOf } from './record-batch-of.js';

describe('recordBatchOf', () => {
  it('makes the batch Arrow would, holding the schema object itself', () => {
    const fields = [new Field('x', new Float32(), false)];
    const schema = new Schema(fields);
    const x = new Data(new Float32(), 0, 3, 0, [undefined, Float32Array.of(1, 2, 3), undefined]);
    const data = new Data(new Struct(fields), 0, 3, 0, undefined, [x]);
    const batch = recordBatchOf(schema, data);
    const constructed = new RecordBatch(schema, data);
    expect(batch).toBeInstanceOf(RecordBatch);
    expect(batch.schema).toBe(schema);
    expect(batch.data).toBe(data);
    expect(Object.keys(batch).sort()).toEqual(Object.keys(constructed).sort());
    expect(tableToIPC(new Table([batch]))).toEqual(tableToIPC(new Table([constructed])));
    expect(
      tableFromIPC(tableToIPC(new Table([batch])))
        .getChild('x')
        ?.toArray(),
    ).toEqual(Float32Array.of(1, 2, 3));
  });
});
