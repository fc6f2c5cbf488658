import { describe, expect, it } from 'vitest';
import { tableFromIPC } from 'apache-arrow';
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
  it("encodes a schema's current metadata, not the one cached before it changed", () => {
    // The cache is keyed by schema object; Schema.metadata is a mutable Map, so a schema
    // changed after its first answer keeps answering with the stale encoding.
    const first = boolResult(2).toArrowTable();
    encodeArrowAnswer(first, true);
    first.schema.metadata.set('note', 'added later');
    const answer = encodeArrowAnswer(first, true);
    try {
      expect(tableFromIPC(answer).schema.metadata.get('note')).toBe('added later');
    } finally {
      first.schema.metadata.delete('note');
    }
  });
});
