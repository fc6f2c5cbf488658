import { Data, Schema, Struct, Table, Type } from 'apache-arrow';
import type { DataType, Field, FixedSizeList, Float32, List } from 'apache-arrow';
import { recordBatchOf } from '../../arrow/index.js';
import type { ArrowBatchLayout, ArrowIpcLayout } from './check-arrow-ipc.js';
import { reviveField } from './transferred-table.js';

/** Schemas built so far, by their fields' description (requests of one client repeat one). */
const schemas = new Map<string, { schema: Schema; type: Struct }>();
const MAX_CACHED_SCHEMAS = 64;

/**
 * Builds the table a vetted Arrow IPC body holds from its layout ({@link readArrowIpcLayout}):
 * the columns are views of `body` (copied only where a buffer is not aligned for its type), so
 * nothing reads the body's metadata again. The schema objects are shared by every table with
 * the same fields. `layout` must come from `body` (the offsets are not checked again).
 * @throws Error when a column's length is not its batch's (the checker refuses such a body)
 *
 * @example
 * const table = tableFromLayout(body, readArrowIpcLayout(body));
 */
export function tableFromLayout(
  body: Uint8Array,
  layout: Pick<ArrowIpcLayout, 'fields' | 'recordBatches'>,
): Table {
  const key = JSON.stringify(layout.fields);
  let cached = schemas.get(key);
  if (cached === undefined) {
    const fields = layout.fields.map((field) => reviveField(field));
    cached = { schema: new Schema(fields), type: new Struct(fields) };
    if (schemas.size >= MAX_CACHED_SCHEMAS) schemas.clear();
    schemas.set(key, cached);
  }
  const { schema, type } = cached;
  const batches = layout.recordBatches.map((batch) => {
    const cursor = { node: 0, buffer: 0 };
    const children = schema.fields.map((field) => columnData(body, batch, cursor, field));
    // recordBatchOf needs every column at the batch's length; the checker refuses any other.
    if (children.some((child) => child.length !== batch.rows))
      throw new Error("an Arrow layout column is not its record batch's length");
    const data = new Data(type, 0, batch.rows, 0, [undefined, undefined, new Uint8Array(0)], children);
    // Not `new RecordBatch`: it re-derives an equal schema per batch (cloning every field) and
    // rebuilds the struct Data, which `new Table` then compares with the table's field by field.
    return recordBatchOf(schema, data);
  });
  return new Table(schema, batches);
}

interface Cursor {
  node: number;
  buffer: number;
}

/** One field's data, consuming its nodes and buffers in the order the checker recorded them. */
function columnData(body: Uint8Array, batch: ArrowBatchLayout, cursor: Cursor, field: Field): Data {
  const length = batch.nodes[2 * cursor.node]!;
  const nullCount = batch.nodes[2 * cursor.node + 1]!;
  cursor.node++;
  const validity = nextBuffer(batch, cursor);
  // What makeData would build (it turns an absent bitmap into an empty one), without its
  // visitor dispatch and conversions per column per request.
  const nullBitmap =
    nullCount > 0 ? view(body, validity, Uint8Array, Math.ceil(length / 8)) : new Uint8Array(0);
  const dataType = field.type as DataType;
  const id = dataType.typeId;
  if (id === Type.FixedSizeList) {
    const child = columnData(body, batch, cursor, dataType.children[0] as Field);
    return new Data(
      dataType as FixedSizeList,
      0,
      length,
      nullCount,
      [undefined, undefined, nullBitmap],
      [child],
    );
  }
  if (id === Type.List) {
    const offsets = nextBuffer(batch, cursor);
    // An empty list column may carry no offsets at all.
    const valueOffsets = length === 0 ? new Int32Array(1) : view(body, offsets, Int32Array, length + 1);
    const child = columnData(body, batch, cursor, dataType.children[0] as Field);
    return new Data(dataType as List, 0, length, nullCount, [valueOffsets, undefined, nullBitmap], [child]);
  }
  // An Int or Float column: reviveField builds no other type.
  const values = nextBuffer(batch, cursor);
  const ArrayType = (dataType as unknown as { ArrayType: TypedArrayType }).ArrayType;
  const data = view(body, values, ArrayType, length);
  return new Data(dataType as Float32, 0, length, nullCount, [undefined, data as Float32Array, nullBitmap]);
}

function nextBuffer(batch: ArrowBatchLayout, cursor: Cursor): { offset: number; length: number } {
  const at = 2 * cursor.buffer++;
  return { offset: batch.buffers[at]!, length: batch.buffers[at + 1]! };
}

type TypedArray = ArrayBufferView & { length: number };
type TypedArrayType = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  BYTES_PER_ELEMENT: number;
};

/**
 * `count` elements of `ArrayType` at a buffer of the body: a view when the buffer is aligned
 * for the type (Arrow writers align to 8 bytes), else a copy.
 */
function view<T extends TypedArray>(
  body: Uint8Array,
  buffer: { offset: number; length: number },
  ArrayType: {
    new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
    BYTES_PER_ELEMENT: number;
  },
  count: number,
): T {
  const start = body.byteOffset + buffer.offset;
  if (start % ArrayType.BYTES_PER_ELEMENT === 0) return new ArrayType(body.buffer, start, count);
  const bytes = count * ArrayType.BYTES_PER_ELEMENT;
  return new ArrayType(body.buffer.slice(start, start + bytes), 0, count);
}
