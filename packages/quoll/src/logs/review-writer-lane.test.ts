import { describe, expect, it } from 'vitest';
import {
  Field,
  Float32,
  Int32,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  Utf8,
  makeData,
  vectorFromArray,
} from 'apache-arrow';
import { ArrowMessageEncoder } from './arrow-message-encoder.js';
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

  it('ArrowMessageEncoder does not keep a block per batch it encodes through apache-arrow (a long-lived encoder)', () => {
    const table = new Table({
      s: vectorFromArray(
        Array.from({ length: 20 }, (_, i) => `row ${i}`),
        new Utf8(),
      ),
    });
    // A sliced batch takes apache-arrow's writer (the fallback of the direct encoder).
    const sliced = table.batches[0]!.slice(3, 9);
    const encoder = new ArrowMessageEncoder();
    encoder.encodeSchema(sliced.schema);
    for (let i = 0; i < 1000; i++) encoder.encodeBatch(sliced);
    // RecordBatchWriter._writeMessage pushes a FileBlock per record batch, for a file footer
    // this stream encoder never writes: the log writer's one encoder grows for ever.
    const blocks = (encoder as unknown as { _recordBatchBlocks: unknown[] })._recordBatchBlocks;
    expect(blocks.length).toBeLessThan(10);
  });
});
