import type {
  TransferredData,
  TransferredTable,
} from '../../packages/quoll/src/inference/decode/transferred-table.js';

/**
 * A decoded table with each float64 value as its bit pattern (so -0 and 0 differ, and NaN is
 * seen) and its offsets as plain numbers, for exact comparison with `toEqual`.
 */
export function transferredTableBits(table: TransferredTable): unknown {
  const data = (chunk: TransferredData): unknown => ({
    ...chunk,
    values:
      chunk.values === null
        ? null
        : Array.from(new BigUint64Array((chunk.values as Float64Array).slice().buffer), String),
    valueOffsets: chunk.valueOffsets === null ? null : Array.from(chunk.valueOffsets),
    children: chunk.children.map(data),
  });
  return { fields: table.fields, batches: table.batches.map((batch) => batch.map(data)) };
}
