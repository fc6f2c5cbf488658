import { Data, Field, FixedSizeList, Float32, List, Precision, Type } from 'apache-arrow';
import type { DataType } from 'apache-arrow';

/**
 * The inference log's type for an `in.*` column that fed a float32 model input: `type` with its
 * Float64 leaf made Float32, through any FixedSizeList and List levels (their sizes, field names
 * and nullability kept), or `null` when `type` has no Float64 leaf (it is logged as it is). The
 * log holds the values the model received — what the original logs (`in.tensor: list<float>`) —
 * and JSON numbers, which are Float64, then log half the bytes.
 */
export function narrowToFloat32(type: DataType): DataType | null {
  if (type.typeId === Type.Float)
    return (type as DataType & { precision: Precision }).precision === Precision.DOUBLE
      ? new Float32()
      : null;
  if (type.typeId !== Type.FixedSizeList && type.typeId !== Type.List) return null;
  const child = type.children[0] as Field | undefined;
  if (child === undefined) return null;
  const inner = narrowToFloat32(child.type as DataType);
  if (inner === null) return null;
  const field = new Field(child.name, inner, child.nullable, child.metadata);
  return type.typeId === Type.List
    ? new List(field)
    : new FixedSizeList((type as FixedSizeList).listSize, field);
}

/**
 * `data` (of a type {@link narrowToFloat32} narrows to `type`) as `type`: the Float64 leaf's
 * values rounded to Float32 as a Float32Array assignment rounds them (the model's feed rounds
 * the same way), every list level, offset, length, null bitmap and list offset kept as it is.
 */
export function narrowDataToFloat32(data: Data, type: DataType): Data {
  if (type.typeId === Type.Float) {
    const values = data.values as Float64Array;
    // The constructor, not `Float32Array.from` (which walks the iterator): the same rounding, in
    // about a quarter of the time (an Arrow batch of 1000 × 18: 12 µs against 45, docs/benchmarks.md).
    return new Data(type, data.offset, data.length, data.nullCount, [
      undefined,
      new Float32Array(values),
      data.nullBitmap,
    ]);
  }
  const child = data.children[0] as Data;
  const childType = (type.children[0] as Field).type as DataType;
  return new Data(
    type,
    data.offset,
    data.length,
    data.nullCount,
    [data.valueOffsets, undefined, data.nullBitmap],
    [narrowDataToFloat32(child, childType)],
  );
}
