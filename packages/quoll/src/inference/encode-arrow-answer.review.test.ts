import { describe, expect, it } from 'vitest';
import { Bool, Field, tableFromIPC, tableToIPC } from 'apache-arrow';
import { encodeArrowAnswer } from './encode-arrow-answer.js';
import { InferenceResult } from './inference-result.js';
import type { WireTensor } from './tensor-data.js';

function boolResult(rows: number): InferenceResult {
  const output: WireTensor = {
    name: 'flag',
    type: 'bool',
    dims: [rows, 1],
    data: Uint8Array.from({ length: rows }, (_, i) => i % 2),
  };
  return new InferenceResult(
    { kind: 'records', records: Array.from({ length: rows }, (_, i) => ({ x: [i] })) },
    ['x'],
    [output],
    rows,
    1,
  );
}

describe('review: encodeArrowAnswer', () => {
  it("refuses a change to a result layout's schema, so the answer's cached encoding stays the schema's", () => {
    // The cache is keyed by schema object, and apache-arrow's Schema.metadata and Field.metadata
    // are plain Maps: a layout's schema is frozen when the layout is built, so that a change
    // after its first answer throws instead of leaving later answers with a stale encoding.
    const table = boolResult(2).toArrowTable();
    const first = encodeArrowAnswer(table, true)!;
    const schema = table.schema;
    try {
      expect(() => schema.metadata.set('note', 'added later')).toThrow(TypeError);
      expect(() => schema.fields[1]!.metadata.set('note', 'added later')).toThrow(TypeError);
      expect(() => schema.fields.push(new Field('extra', new Bool(), false))).toThrow(TypeError);
    } finally {
      // The lane's old code let the changes through: undo them for any later answer of this layout.
      Map.prototype.delete.call(schema.metadata, 'note');
      Map.prototype.delete.call(schema.fields[1]!.metadata, 'note');
      if (schema.fields.length > 4 && !Object.isFrozen(schema.fields)) schema.fields.pop();
    }
    const again = encodeArrowAnswer(table, true)!;
    expect(again).toEqual(first);
    const read = tableFromIPC(again);
    expect(read.schema.metadata.size).toBe(0);
    expect(read.schema.fields.map(String)).toEqual(
      tableFromIPC(tableToIPC(table, 'file')).schema.fields.map(String),
    );
  });
});
