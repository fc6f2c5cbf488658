import { describe, expect, it, vi } from 'vitest';
import type { RecordBatch } from 'apache-arrow';
import {
  Field,
  FixedSizeList,
  Float64,
  Int32,
  List,
  Message,
  RecordBatchFileReader,
  Schema,
  Table,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { makeArrowTensorTable } from '../../../../test/support/synthetic-data.js';
import { encodeArrowAnswer } from './encode-arrow-answer.js';
import { encodeInferenceAnswer, encodeInferenceResult, InferenceResult } from './inference-result.js';
import type { WireTensor } from './tensor-data.js';

const n = 7;
const grid = Array.from({ length: n }, (_, i) => Array.from({ length: 3 }, (_, j) => i * 10 + j + 0.25));
const float32Out: WireTensor = {
  name: 'y',
  type: 'float32',
  dims: [n, 1],
  data: Float32Array.from({ length: n }, (_, i) => i / 4),
};
const int64Out: WireTensor = {
  name: 'label',
  type: 'int64',
  dims: [n, 2],
  data: BigInt64Array.from({ length: 2 * n }, (_, i) => BigInt(i) - 3n),
};
const stringOut: WireTensor = {
  name: 'class',
  type: 'string',
  dims: [n],
  data: Array.from({ length: n }, (_, i) => `class ${i} ✓`),
};

/** An Arrow input of several batches, with nulls and a nested List column. */
function arrowInput(): Table {
  const tensor = makeArrowTensorTable(Float32Array.from(grid.flat()), 3);
  const extra = new Table({
    nullable: vectorFromArray(
      Array.from({ length: n }, (_, i) => (i % 3 === 1 ? null : i)),
      new Int32(),
    ),
    nested: vectorFromArray(
      Array.from({ length: n }, (_, i) =>
        i === 2 ? null : Array.from({ length: i % 3 }, (_, j) => [j, j + 0.5]),
      ),
      new List(new Field('item', new FixedSizeList(2, new Field('item', new Float64(), true)), true)),
    ),
  });
  const joined = new Table({
    tensor: tensor.getChild('tensor')!,
    nullable: extra.getChild('nullable')!,
    nested: extra.getChild('nested')!,
  });
  // Two batches (3 + 4 rows), each unsliced, as a decoded multi-batch body has them.
  const parts = [joined.slice(0, 3), joined.slice(3)].map((part) => tableFromIPC(tableToIPC(part, 'stream')));
  return new Table([...parts[0]!.batches, ...parts[1]!.batches]);
}

const results: Record<string, () => InferenceResult> = {
  'Arrow input of two batches, nulls and nested lists': () =>
    new InferenceResult(
      { kind: 'arrow', table: arrowInput() },
      ['tensor', 'nullable', 'nested'],
      [float32Out],
      n,
      7,
    ),
  'JSON records': () =>
    new InferenceResult(
      { kind: 'records', records: grid.map((tensor) => ({ tensor })) },
      ['tensor'],
      [float32Out],
      n,
      1_764_950_400_000,
    ),
  tensors: () =>
    new InferenceResult(
      {
        kind: 'tensors',
        tensors: [{ name: 'x', shape: [n, 3], values: Float64Array.from(grid.flat()) }],
        rows: n,
      },
      ['x'],
      [float32Out, int64Out],
      n,
      9,
    ),
  'int64 and string outputs': () =>
    new InferenceResult(
      { kind: 'records', records: grid.map((tensor) => ({ tensor })) },
      ['tensor'],
      [int64Out, stringOut],
      n,
      11,
    ),
  'no rows': () =>
    new InferenceResult(
      { kind: 'records', records: [] },
      [],
      [{ name: 'y', type: 'float32', dims: [0, 1], data: new Float32Array(0) }],
      0,
      3,
    ),
};

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function rowsOf(table: Table): string {
  return JSON.stringify(table.toArray(), bigints);
}

/** The schema message of an Arrow stream, and the body bytes of each record batch message. */
function streamParts(stream: Uint8Array): { schema: Uint8Array; bodies: Uint8Array[] } {
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const schemaEnd = 8 + view.getInt32(4, true);
  const bodies: Uint8Array[] = [];
  for (let at = schemaEnd; ;) {
    const metaLength = view.getInt32(at + 4, true);
    if (metaLength === 0) break;
    const body = Number(Message.decode(stream.subarray(at + 8, at + 8 + metaLength)).bodyLength);
    const next = at + 8 + metaLength + body;
    bodies.push(stream.subarray(at + 8 + metaLength, next));
    at = next;
  }
  return { schema: stream.subarray(0, schemaEnd), bodies };
}

describe('encodeArrowAnswer', () => {
  for (const [name, make] of Object.entries(results)) {
    for (const format of ['arrow-file', 'arrow-stream'] as const) {
      it(`writes ${name} as an ${format} that reads back as apache-arrow's`, () => {
        const result = make();
        const table = result.toArrowTable();
        const theirs = tableToIPC(table, format === 'arrow-file' ? 'file' : 'stream');
        const mine = encodeArrowAnswer(table, format === 'arrow-file');
        expect(mine).not.toBeNull();
        // What the answer sends is this direct encoding.
        expect(encodeInferenceResult(result, format).body).toEqual(mine);
        const got = tableFromIPC(mine);
        const want = tableFromIPC(theirs);
        expect(got.schema.fields.map(String)).toEqual(want.schema.fields.map(String));
        expect(got.batches.map((batch) => batch.numRows)).toEqual(want.batches.map((batch) => batch.numRows));
        expect(rowsOf(got)).toBe(rowsOf(want));
        if (format === 'arrow-file') {
          // The footer: the schema, and each batch read at random (last first).
          const reader = RecordBatchFileReader.from(mine);
          reader.open();
          expect(reader.numRecordBatches).toBe(table.batches.length);
          expect(reader.schema.fields.map(String)).toEqual(want.schema.fields.map(String));
          for (let i = table.batches.length - 1; i >= 0; i--) {
            const batch = reader.readRecordBatch(i) as RecordBatch;
            expect(JSON.stringify(batch.toArray(), bigints)).toBe(
              JSON.stringify(want.batches[i]!.toArray(), bigints),
            );
          }
          // The same bytes as apache-arrow's up to the footer's start (magic, batches' bodies).
          expect(mine!.subarray(0, 8)).toEqual(theirs.subarray(0, 8));
          expect(mine!.subarray(-6)).toEqual(theirs.subarray(-6));
        } else {
          // apache-arrow's schema message byte for byte, and its batches' bodies.
          const a = streamParts(mine!);
          const b = streamParts(theirs);
          expect(a.schema).toEqual(b.schema);
          expect(a.bodies).toEqual(b.bodies);
        }
      });
    }
  }

  it('leaves a layout it does not know (a sliced column) to apache-arrow', () => {
    const sliced = makeArrowTensorTable(Float32Array.from(grid.flat()), 3).slice(2, 5);
    expect(encodeArrowAnswer(sliced, true)).toBeNull();
    expect(encodeArrowAnswer(sliced, false)).toBeNull();
  });

  it('reuses one schema encoding per schema object, the answer unchanged', () => {
    // A layout of its own (column `reuse`), so that no earlier test has encoded its schema yet.
    const result = () =>
      new InferenceResult(
        { kind: 'records', records: grid.map((reuse) => ({ reuse })) },
        ['reuse'],
        [float32Out],
        n,
        5,
      );
    const a = result();
    const b = result();
    expect(a.toArrowTable().schema).toBe(b.toArrowTable().schema);
    const encode = vi.spyOn(Message, 'from');
    try {
      const first = encodeArrowAnswer(a.toArrowTable(), true)!;
      const second = encodeArrowAnswer(b.toArrowTable(), false)!;
      const third = encodeArrowAnswer(b.toArrowTable(), true)!;
      const schemaEncodings = encode.mock.calls.filter(([header]) => header instanceof Schema);
      expect(schemaEncodings).toHaveLength(1);
      expect(third).toEqual(first);
      expect(rowsOf(tableFromIPC(second))).toBe(rowsOf(tableFromIPC(first)));
      expect(rowsOf(tableFromIPC(first))).toBe(rowsOf(tableFromIPC(tableToIPC(b.toArrowTable(), 'file'))));
    } finally {
      encode.mockRestore();
    }
  });

  it("encodes a schema that is not a result layout's (not frozen) each time, with its current metadata", () => {
    const table = new Table({ x: vectorFromArray([1.5, 2.5], new Float64()) });
    const encode = vi.spyOn(Message, 'from');
    try {
      encodeArrowAnswer(table, true);
      table.schema.metadata.set('note', 'added later');
      const answer = encodeArrowAnswer(table, true)!;
      expect(encode.mock.calls.filter(([header]) => header instanceof Schema)).toHaveLength(2);
      expect(tableFromIPC(answer).schema.metadata.get('note')).toBe('added later');
      expect(rowsOf(tableFromIPC(answer))).toBe(rowsOf(table));
    } finally {
      encode.mockRestore();
    }
  });

  it('gives an answer that owns its bytes (the input buffers may go back to a worker)', () => {
    const result = results['Arrow input of two batches, nulls and nested lists']!();
    const table = result.toArrowTable();
    const answer = encodeArrowAnswer(table, false)!;
    const input = table.getChild('in.tensor')!.data[0]!.children[0]!.values as Float32Array;
    const before = rowsOf(tableFromIPC(answer));
    input.fill(-1);
    expect(rowsOf(tableFromIPC(answer))).toBe(before);
  });

  it('answers in the same bytes through encodeInferenceAnswer (rows under the slice size)', async () => {
    const result = results.tensors!();
    for (const format of ['arrow-file', 'arrow-stream'] as const) {
      const answer = await encodeInferenceAnswer(result, format);
      expect(answer.body).toEqual(encodeArrowAnswer(result.toArrowTable(), format === 'arrow-file'));
    }
  });
});
