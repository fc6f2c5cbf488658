import { Data, DataType, RecordBatch, Vector, makeBuilder, makeData, makeVector } from 'apache-arrow';

/** Reads validity bit `i` of a bitmap (Arrow bit order: least significant bit first). */
function bit(bitmap: Uint8Array, i: number): boolean {
  return ((bitmap[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}

/**
 * Reverses the order of `data`'s elements taken in blocks of `k` (each block keeps its inner
 * order): with `k = 1` a plain reversal; a FixedSizeList of size `n` reverses its child in
 * blocks of `k × n`. Null bitmaps follow. Returns `null` for types without a fast path.
 */
function reverseBlocks(data: Data, k: number): Data | null {
  const n = data.length;
  const blocks = n / k;
  const at = (i: number): number => (blocks - 1 - Math.floor(i / k)) * k + (i % k);
  let nullBitmap: Uint8Array | undefined;
  if (data.nullCount > 0 && data.nullBitmap) {
    nullBitmap = new Uint8Array((n + 7) >> 3);
    for (let i = 0; i < n; i++) {
      if (bit(data.nullBitmap, data.offset + i)) {
        const j = at(i);
        nullBitmap[j >> 3] = (nullBitmap[j >> 3] ?? 0) | (1 << (j & 7));
      }
    }
  }
  const type: DataType = data.type;
  if (DataType.isBool(type)) {
    const values = new Uint8Array((n + 7) >> 3);
    const src = data.values as Uint8Array;
    for (let i = 0; i < n; i++) {
      if (bit(src, data.offset + i)) {
        const j = at(i);
        values[j >> 3] = (values[j >> 3] ?? 0) | (1 << (j & 7));
      }
    }
    return new Data(type, 0, n, data.nullCount, [undefined, values, nullBitmap]);
  }
  if (
    DataType.isInt(type) ||
    DataType.isFloat(type) ||
    DataType.isTimestamp(type) ||
    DataType.isDate(type) ||
    DataType.isTime(type) ||
    DataType.isDuration(type) ||
    DataType.isInterval(type) ||
    DataType.isDecimal(type) ||
    DataType.isFixedSizeBinary(type)
  ) {
    // Fixed width: `values` already starts at this slice's first element.
    const src = data.values as unknown as Uint8Array;
    const width = data.stride * k;
    const out = new (src.constructor as new (len: number) => Uint8Array)(n * data.stride);
    for (let b = 0; b < blocks; b++) {
      out.set(src.subarray(b * width, (b + 1) * width), (blocks - 1 - b) * width);
    }
    return new Data(type, 0, n, data.nullCount, [undefined, out, nullBitmap]);
  }
  if (DataType.isFixedSizeList(type)) {
    const child = data.children[0];
    const rev = child === undefined ? null : reverseBlocks(child, k * type.listSize);
    return rev === null
      ? null
      : new Data(type, 0, n, data.nullCount, [undefined, undefined, nullBitmap], [rev]);
  }
  return null;
}

/**
 * A value as a builder takes it: a list's element comes out of `get` as a `Vector`, which a list
 * builder cannot index (every item became null), so lists become arrays, nested ones too.
 */
function builderValue(value: unknown): unknown {
  return value instanceof Vector ? Array.from(value, builderValue) : value;
}

/** Builds the reversed column element by element: the general path for nested or variable types. */
function reverseByValue(data: Data): Data {
  const vector = makeVector(data);
  const builder = makeBuilder({ type: data.type, nullValues: [null, undefined] });
  for (let i = data.length - 1; i >= 0; i--) builder.append(builderValue(vector.get(i)));
  return builder.finish().flush() as Data;
}

/**
 * The same rows in reverse order (newest first for a log page read oldest-first). Fixed-width
 * columns and fixed-size lists of them (the inference tensors) are reversed with block
 * copies; other types go element by element.
 */
export function reverseRecordBatch(batch: RecordBatch): RecordBatch {
  if (batch.numRows <= 1) return batch;
  const children = batch.data.children.map((c) => reverseBlocks(c, 1) ?? reverseByValue(c));
  return new RecordBatch(
    batch.schema,
    makeData({ type: batch.data.type, length: batch.numRows, nullCount: 0, children }),
  );
}
