import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  TimestampMillisecond,
  makeData,
} from 'apache-arrow';
import { batchOf } from './log-batch-checks.js';

describe('review (writer lane)', () => {
  it("batchOf's batch has the schema's struct type, as the constructor's has, when the data's struct names other fields", () => {
    const schema = new Schema([
      new Field('time', new TimestampMillisecond(), false),
      new Field('n', new Int32(), false),
    ]);
    // The same columns under a struct type whose fields are named (and typed) otherwise.
    const otherType = new Struct([new Field('a', new Float32(), true), new Field('b', new Int32(), true)]);
    const data = makeData({
      type: otherType,
      length: 2,
      nullCount: 0,
      children: [
        makeData({ type: new TimestampMillisecond(), length: 2, data: BigInt64Array.of(1n, 2n) as never }),
        makeData({ type: new Int32(), length: 2, data: Int32Array.of(7, 8) }),
      ],
    });
    const constructed = new RecordBatch(schema, data);
    const batch = batchOf(schema, data);
    // The constructor rebuilds the struct from the schema's fields; a batch whose data type
    // disagrees with its own schema reads rows under the wrong names.
    expect(batch.data.type.children.map((f) => f.name)).toEqual(
      constructed.data.type.children.map((f) => f.name),
    );
    expect(Object.keys(batch.get(0)!.toJSON())).toEqual(['time', 'n']);
  });
});
