import { DataType, Struct, makeData } from 'apache-arrow';
import type { Data, RecordBatch } from 'apache-arrow';
import { batchOf } from './log-batch-checks.js';
import { schemaIdOf } from './schema-id.js';

/** Batches with fewer rows than this are merged with their neighbours of the same schema. */
export const COALESCE_BELOW_ROWS = 1024;
/** A merged batch holds at most this many rows. */
export const COALESCE_MAX_ROWS = 16_384;
/** A merged batch holds at most this many bytes of column data. */
export const COALESCE_MAX_BYTES = 4 * 1024 * 1024;

interface Part {
  data: Data;
  /** Rows (or list items) of `data` to take, from its start. */
  length: number;
}

/**
 * Concatenates the columns of several parts into one contiguous `Data`, for the types an
 * inference row is made of: integers, floats, timestamps, and fixed-size lists of those
 * (tensors), without nulls. Returns `null` for anything else; the caller then keeps the batches apart.
 */
function gather(type: DataType, parts: Part[], total: number): Data | null {
  if (parts.some((p) => p.data.nullCount !== 0)) return null;
  if (DataType.isFixedSizeList(type)) {
    const size = type.listSize;
    const childType = type.children[0]?.type as DataType | undefined;
    if (childType === undefined) return null;
    // A sliced fixed-size list's child is sliced with it, so each part's items start at 0.
    const child = gather(
      childType,
      parts.map((p) => ({ data: p.data.children[0] as Data, length: p.length * size })),
      total * size,
    );
    return child === null ? null : makeData({ type, length: total, nullCount: 0, child });
  }
  if (DataType.isInt(type) || DataType.isFloat(type) || DataType.isTimestamp(type)) {
    const first = parts[0]?.data;
    if (first === undefined) return null;
    const stride = first.stride;
    const ArrayType = (first.values as ArrayLike<unknown>).constructor as new (n: number) => Uint8Array;
    const out = new ArrayType(total * stride);
    let at = 0;
    for (const p of parts) {
      // Flat values of a (sliced) Data start at its first row.
      const values = (p.data.values as Uint8Array).subarray(0, p.length * stride);
      out.set(values, at);
      at += values.length;
    }
    return makeData({ type: type as DataType, length: total, nullCount: 0, data: out } as never);
  }
  return null;
}

/** One batch holding the rows of `batches` (same schema) in order, or `null` when a column type cannot be merged. */
function concatBatches(batches: RecordBatch[]): RecordBatch | null {
  const first = batches[0];
  if (first === undefined) return null;
  const total = batches.reduce((sum, b) => sum + b.numRows, 0);
  const children: Data[] = [];
  for (let c = 0; c < first.schema.fields.length; c++) {
    const field = first.schema.fields[c];
    if (field === undefined) return null;
    const merged = gather(
      field.type as DataType,
      batches.map((b) => ({ data: b.data.children[c] as Data, length: b.numRows })),
      total,
    );
    if (merged === null) return null;
    children.push(merged);
  }
  return batchOf(
    first.schema,
    makeData({ type: new Struct(first.schema.fields), length: total, nullCount: 0, children }),
  );
}

/**
 * Merges runs of small consecutive batches of one schema into bigger batches (keeping row
 * order). Many one-row inferences would otherwise each cost an IPC message and a batch-index
 * entry to write and to read back; merged, they cost one copy of a few bytes per row.
 * Batches of types that cannot be merged (strings, booleans, nulls…) are passed through.
 * A merged batch stays within `maxRows` and `maxBytes` (so segments still roll at their caps).
 * When `sources` is given, it receives, per returned batch, how many consecutive input batches
 * it holds (so a caller can go back to the batches it was handed).
 *
 * @example
 * coalesceLogBatches([oneRow, oneRow, oneRow]) // [threeRows]
 */
export function coalesceLogBatches(
  batches: RecordBatch[],
  belowRows = COALESCE_BELOW_ROWS,
  maxRows = COALESCE_MAX_ROWS,
  maxBytes = COALESCE_MAX_BYTES,
  sources?: number[],
): RecordBatch[] {
  const out: RecordBatch[] = [];
  let run: RecordBatch[] = [];
  let runRows = 0;
  let runBytes = 0;
  let runId = '';
  const flush = (): void => {
    if (run.length === 1) {
      out.push(run[0] as RecordBatch);
      sources?.push(1);
    } else if (run.length > 1) {
      const merged = concatBatches(run);
      if (merged === null) {
        out.push(...run);
        for (let i = 0; i < run.length; i++) sources?.push(1);
      } else {
        out.push(merged);
        sources?.push(run.length);
      }
    }
    run = [];
    runRows = 0;
    runBytes = 0;
  };
  for (const b of batches) {
    if (b.numRows >= belowRows) {
      flush();
      out.push(b);
      sources?.push(1);
      continue;
    }
    const id = schemaIdOf(b.schema);
    const bytes = b.data.byteLength;
    if (run.length > 0 && (id !== runId || runRows + b.numRows > maxRows || runBytes + bytes > maxBytes))
      flush();
    run.push(b);
    runRows += b.numRows;
    runBytes += bytes;
    runId = id;
  }
  flush();
  return out;
}
