import { ApiError } from '../../errors/index.js';
import { FlatBufferBoundsError, FlatTable, UNLIMITED_WALK } from './flat-table.js';
import type { WalkBudget } from './flat-table.js';
import type { TransferredField, TransferredType } from './transferred-table.js';

/** What a vetted Arrow IPC body holds: how apache-arrow will read it, its rows, batches and columns. */
export interface ArrowIpcSummary {
  /** `file` when the body starts with the Arrow file magic (apache-arrow then reads its footer). */
  layout: 'file' | 'stream';
  rows: number;
  batches: number;
  columns: string[];
}

/**
 * Where one record batch's data lies in a vetted body: its rows, then per field node in
 * schema pre-order its `[length, nullCount]`, and per buffer in the same order its
 * `[offset, length]` in bytes from the start of the body. Plain numbers, so it crosses a
 * worker boundary for next to nothing.
 */
export interface ArrowBatchLayout {
  rows: number;
  nodes: number[];
  buffers: number[];
}

/** A vetted Arrow IPC body's schema and where every buffer lies ({@link readArrowIpcLayout}). */
export interface ArrowIpcLayout extends ArrowIpcSummary {
  fields: TransferredField[];
  recordBatches: ArrowBatchLayout[];
}

/** The most FixedSizeList levels a tensor column may nest (a tensor of rank 32 is already absurd). */
const MAX_NESTING = 32;
/**
 * The most columns a body may have: as many as an Open Inference request may send tensors. A
 * schema's fields can all point at one table, so without a cap a few bytes per field would
 * build millions of them.
 */
export const MAX_ARROW_COLUMNS = 1024;
/**
 * The most record batches a body may hold. Each batch becomes its own objects when the table is
 * built on the HTTP thread (tens of microseconds each), so a body of many tiny batches would
 * stall it; a client that sends more can combine its chunks (`table.combine_chunks()` in pyarrow).
 */
export const MAX_ARROW_RECORD_BATCHES = 1024;
const MAGIC = Buffer.from('ARROW1');
/** Message header types (Message.fbs). */
const HEADER = { schema: 1, dictionaryBatch: 2, recordBatch: 3 } as const;
/** Type union tags (Schema.fbs) of the types a tensor column may use. */
const TYPE = { int: 2, floatingPoint: 3, list: 12, fixedSizeList: 16 } as const;
const TYPE_NAMES: Record<number, string> = {
  1: 'Null',
  4: 'Binary',
  5: 'Utf8',
  6: 'Bool',
  7: 'Decimal',
  8: 'Date',
  9: 'Time',
  10: 'Timestamp',
  11: 'Interval',
  13: 'Struct',
  14: 'Union',
  15: 'FixedSizeBinary',
  17: 'Map',
  18: 'Duration',
  19: 'LargeBinary',
  20: 'LargeUtf8',
  21: 'LargeList',
  22: 'RunEndEncoded',
  23: 'BinaryView',
  24: 'Utf8View',
  25: 'ListView',
  26: 'LargeListView',
};

/** One field of the schema, as far as buffer layout needs it. */
interface FieldLayout {
  /** The column's name (children carry their column's, for messages). */
  name: string;
  kind: 'numeric' | 'list' | 'fixed-size-list';
  /** Bytes per value (numeric), or values per row (fixed-size list). */
  width: number;
  child: FieldLayout | null;
  /** The field as Arrow declares it (its own name, nullability and type). */
  field: TransferredField;
}

/**
 * Vets an Arrow IPC body before anything decodes it: every message length, body length, buffer
 * offset and length lies inside the body, each record batch has exactly the nodes and buffers its
 * schema calls for, row counts fit the bytes that hold them (so a corrupt count cannot claim 10^12
 * rows), list offsets are in order, and every column is a tensor column Quoll can feed (numbers,
 * FixedSizeList or List of numbers; no dictionaries, compression or big-endian data). A file's
 * footer blocks must follow one another without overlapping (so no batch is counted twice and
 * the rows are bounded by the file's size), and a body holds at most
 * {@link MAX_ARROW_RECORD_BATCHES} batches and {@link MAX_ARROW_COLUMNS} columns.
 *
 * The work is linear in the body size: every loop runs over counts already checked against it.
 * Throws `ApiError('invalid_inference_input')` (or `non_numeric_value` for a column of another type).
 */
export function checkArrowIpc(bytes: Uint8Array): ArrowIpcSummary {
  const { layout, rows, batches, columns } = readArrowIpcLayout(bytes);
  return { layout, rows, batches, columns };
}

/**
 * {@link checkArrowIpc}, also saying where each record batch's nodes and buffers lie, so the
 * table can be built from views of the body without another reader ({@link tableFromLayout}):
 * nothing but this bounded walk ever interprets the body's metadata.
 *
 * Flatbuffer metadata can point at one table many times, so the walk's work is not bounded by
 * the body's size alone: `budget` bounds it in steps (one per table read, node, buffer and
 * block, one per 64 list offsets), and the walk throws `WalkBudgetExceeded` when it runs out.
 * @throws ApiError as {@link checkArrowIpc}; `WalkBudgetExceeded` past `budget`
 */
export function readArrowIpcLayout(bytes: Uint8Array, budget: WalkBudget = UNLIMITED_WALK): ArrowIpcLayout {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return isFile(bytes) ? checkFile(view, budget) : checkStream(view, 0, view.byteLength, null, budget);
  } catch (error) {
    if (error instanceof FlatBufferBoundsError || error instanceof RangeError) {
      throw corrupt('its metadata points outside the body');
    }
    throw error;
  }
}

function corrupt(why: string): ApiError {
  return new ApiError(
    'invalid_inference_input',
    `The body is not readable Arrow IPC: ${why}. Send an Arrow IPC file or stream as written by an Arrow library.`,
  );
}

function isFile(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 6 && Buffer.from(bytes.buffer, bytes.byteOffset, 6).equals(MAGIC);
}

/** One encapsulated message at `at`: its flatbuffer range and body range, or null at end of stream. */
function readFrame(
  view: DataView,
  at: number,
  end: number,
  budget: WalkBudget,
): { meta: FlatTable; body: number; bodyLength: number; next: number } | null {
  if (at + 4 > end) return null;
  let length = view.getInt32(at, true);
  let header = 4;
  if (length === -1) {
    if (at + 8 > end) throw corrupt('a message is cut off');
    length = view.getInt32(at + 4, true);
    header = 8;
  }
  if (length === 0) return null;
  if (length < 0 || at + header + length > end)
    throw corrupt(`a message length (${length}) runs past the body`);
  const metaStart = at + header;
  const meta = FlatTable.root(view, metaStart, metaStart + length, budget);
  const version = meta.int16(0, 0);
  if (version < 3 || version > 4) throw corrupt(`the metadata version (${version}) is not Arrow V4 or V5`);
  const bodyLength = meta.int64(3, 0);
  const body = metaStart + length;
  if (!(bodyLength >= 0) || body + bodyLength > end)
    throw corrupt('a message body runs past the end of the body');
  return { meta, body, bodyLength, next: body + bodyLength };
}

function checkStream(
  view: DataView,
  start: number,
  end: number,
  known: FieldLayout[] | null,
  budget: WalkBudget,
): ArrowIpcLayout {
  let schema = known;
  let rows = 0;
  const batches: ArrowBatchLayout[] = [];
  let at = start;
  for (;;) {
    const frame = readFrame(view, at, end, budget);
    if (frame === null) break;
    const type = frame.meta.uint8(1, 0);
    const header = frame.meta.table(2);
    if (header === null) throw corrupt('a message has no header');
    if (type === HEADER.schema) {
      if (schema !== null && known === null) throw corrupt('the stream has more than one schema');
      schema = readSchema(header);
    } else if (type === HEADER.recordBatch) {
      if (schema === null) throw corrupt('a record batch comes before the schema');
      if (batches.length >= MAX_ARROW_RECORD_BATCHES) throw tooManyBatches();
      const batch = checkBatch(view, header, schema, frame.body, frame.bodyLength);
      rows += batch.rows;
      batches.push(batch);
    } else if (type === HEADER.dictionaryBatch) {
      throw corrupt('it holds dictionary batches; tensor columns are plain numbers');
    } else {
      throw corrupt(`a message has header type ${type}, which is not a schema or record batch`);
    }
    at = frame.next;
  }
  if (schema === null) throw corrupt('it has no schema');
  return layoutOf('stream', schema, rows, batches);
}

function layoutOf(
  layout: 'file' | 'stream',
  schema: FieldLayout[],
  rows: number,
  batches: ArrowBatchLayout[],
): ArrowIpcLayout {
  return {
    layout,
    rows,
    batches: batches.length,
    columns: schema.map((field) => field.name),
    fields: schema.map((field) => field.field),
    recordBatches: batches,
  };
}

function checkFile(view: DataView, budget: WalkBudget): ArrowIpcLayout {
  const size = view.byteLength;
  // "ARROW1" + 2 padding bytes, ..., footer, int32 footer length, "ARROW1".
  if (size < 8 + 4 + 6) throw corrupt('the file is too short');
  const tail = Buffer.from(view.buffer, view.byteOffset + size - 6, 6);
  if (!tail.equals(MAGIC)) throw corrupt('the file does not end with the Arrow magic (is it cut short?)');
  const footerLength = view.getInt32(size - 10, true);
  const footerStart = size - 10 - footerLength;
  if (footerLength <= 0 || footerStart < 8)
    throw corrupt(`the footer length (${footerLength}) does not fit the file`);
  const footer = FlatTable.root(view, footerStart, size - 10, budget);
  const schemaTable = footer.table(1);
  if (schemaTable === null) throw corrupt('the footer has no schema');
  const schema = readSchema(schemaTable);
  const dictionaries = footer.vector(2, 24);
  if (dictionaries !== null && dictionaries.length > 0) {
    throw corrupt('it holds dictionary batches; tensor columns are plain numbers');
  }
  const blocks = footer.vector(3, 24);
  let rows = 0;
  const batches: ArrowBatchLayout[] = [];
  const count = blocks?.length ?? 0;
  if (count > MAX_ARROW_RECORD_BATCHES) throw tooManyBatches();
  // Where the block before ended: blocks must come in file order and never overlap, or a few
  // bytes of footer per block would count one batch's rows again and again.
  let previousEnd = 8;
  for (let i = 0; i < count; i++) {
    // Block: offset int64, metaDataLength int32, padding, bodyLength int64.
    budget.spend(1);
    const slot = blocks!.at + 24 * i;
    const offset = footer.int64At(slot);
    const metaLength = footer.int32At(slot + 8);
    const bodyLength = footer.int64At(slot + 16);
    if (
      !(offset >= 8) ||
      metaLength <= 0 ||
      !(bodyLength >= 0) ||
      offset + metaLength + bodyLength > footerStart
    ) {
      throw corrupt(`record batch block ${i} points outside the file`);
    }
    if (offset < previousEnd) {
      throw corrupt(`record batch block ${i} overlaps the block before it (or comes before it in the file)`);
    }
    previousEnd = offset + metaLength + bodyLength;
    const frame = readFrame(view, offset, offset + metaLength + bodyLength, budget);
    if (frame === null || frame.meta.uint8(1, 0) !== HEADER.recordBatch) {
      throw corrupt(`record batch block ${i} does not hold a record batch`);
    }
    const header = frame.meta.table(2);
    if (header === null) throw corrupt('a message has no header');
    const batch = checkBatch(view, header, schema, frame.body, frame.bodyLength);
    rows += batch.rows;
    batches.push(batch);
  }
  return layoutOf('file', schema, rows, batches);
}

function tooManyBatches(): ApiError {
  return new ApiError(
    'invalid_inference_input',
    `The Arrow body holds more than ${MAX_ARROW_RECORD_BATCHES} record batches; combine them into fewer (pyarrow: table.combine_chunks()).`,
  );
}

function readSchema(schema: FlatTable): FieldLayout[] {
  if (schema.int16(0, 0) !== 0) throw corrupt('it is big-endian; send little-endian Arrow');
  const declared = schema.vector(1, 4)?.length ?? 0;
  if (declared > MAX_ARROW_COLUMNS) {
    throw new ApiError(
      'invalid_inference_input',
      `The Arrow table has ${declared} columns; at most ${MAX_ARROW_COLUMNS} are accepted.`,
    );
  }
  const fields = schema.tables(1).map((field, i) => readField(field, `column ${i}`, 0));
  if (fields.length === 0) {
    throw new ApiError(
      'invalid_inference_input',
      'The Arrow table has no columns; send at least one tensor column.',
    );
  }
  return fields;
}

function readField(field: FlatTable, fallbackName: string, depth: number): FieldLayout {
  if (depth > MAX_NESTING) throw corrupt(`a column nests more than ${MAX_NESTING} list levels`);
  const own = field.string(0);
  const name = depth === 0 ? (own ?? fallbackName) : fallbackName;
  const nullable = field.uint8(1, 0) !== 0;
  const typeTag = field.uint8(2, 0);
  const type = field.table(3);
  if (field.table(4) !== null) throw unsupported(name, 'Dictionary');
  // Only list types have children, exactly one: a numeric field's are never read, and a
  // vector of many is refused before its tables are read (each one is a step of the walk).
  const children = (): FlatTable[] => (field.vector(5, 4)?.length === 1 ? field.tables(5) : []);
  const declared = (arrowType: TransferredType): TransferredField => ({
    name: depth === 0 ? name : (own ?? 'item'),
    nullable,
    type: arrowType,
  });
  switch (typeTag) {
    case TYPE.int: {
      const bits = type?.int32(0, 0) ?? 0;
      if (bits !== 8 && bits !== 16 && bits !== 32 && bits !== 64)
        throw corrupt(`column "${name}" has an integer width of ${bits} bits`);
      const signed = (type?.uint8(1, 0) ?? 0) !== 0;
      return {
        name,
        kind: 'numeric',
        width: bits / 8,
        child: null,
        field: declared({ id: 'int', bitWidth: bits, signed }),
      };
    }
    case TYPE.floatingPoint: {
      const precision = type?.int16(0, 0) ?? 0;
      if (precision === 0) throw unsupported(name, 'Float16');
      if (precision !== 1 && precision !== 2)
        throw corrupt(`column "${name}" has an unknown float precision`);
      return {
        name,
        kind: 'numeric',
        width: precision === 1 ? 4 : 8,
        child: null,
        field: declared({ id: 'float', bitWidth: precision === 1 ? 32 : 64 }),
      };
    }
    case TYPE.fixedSizeList: {
      const size = type?.int32(0, 0) ?? 0;
      const kids = size <= 0 ? [] : children();
      if (size <= 0 || kids.length !== 1) throw corrupt(`column "${name}" is a malformed FixedSizeList`);
      const child = readField(kids[0]!, name, depth + 1);
      if (child.kind === 'list') throw unsupported(name, 'FixedSizeList of List');
      return {
        name,
        kind: 'fixed-size-list',
        width: size,
        child,
        field: declared({ id: 'fixed-size-list', listSize: size, child: child.field }),
      };
    }
    case TYPE.list: {
      const kids = children();
      if (kids.length !== 1) throw corrupt(`column "${name}" is a malformed List`);
      const child = readField(kids[0]!, name, depth + 1);
      if (child.kind !== 'numeric') throw unsupported(name, 'List of lists');
      return { name, kind: 'list', width: 0, child, field: declared({ id: 'list', child: child.field }) };
    }
    default:
      throw unsupported(name, TYPE_NAMES[typeTag] ?? `type #${typeTag}`);
  }
}

function unsupported(column: string, type: string): ApiError {
  return new ApiError(
    'non_numeric_value',
    `Column "${column}" has Arrow type ${type}; tensor columns must be numbers, FixedSizeList or List of numbers.`,
    { column, row: 0 },
  );
}

/**
 * Checks one record batch against its schema and body range; returns its rows and where its
 * nodes and buffers lie.
 */
function checkBatch(
  view: DataView,
  batch: FlatTable,
  schema: FieldLayout[],
  body: number,
  bodyLength: number,
): ArrowBatchLayout {
  if (batch.has(3)) throw corrupt('its buffers are compressed; send uncompressed Arrow');
  const rows = batch.int64(0, 0);
  if (!(rows >= 0)) throw corrupt(`a record batch claims ${rows} rows`);
  const nodes = batch.vector(1, 16);
  const buffers = batch.vector(2, 16);
  if (nodes === null || buffers === null) throw corrupt('a record batch lists no nodes or buffers');
  const cursor = { node: 0, buffer: 0 };
  const layout: ArrowBatchLayout = { rows, nodes: [], buffers: [] };
  const node = (): { length: number; nulls: number } => {
    if (cursor.node >= nodes.length)
      throw corrupt('a record batch has fewer nodes than its schema has fields');
    batch.spend(1);
    const at = nodes.at + 16 * cursor.node++;
    const length = batch.int64At(at);
    const nulls = batch.int64At(at + 8);
    if (!(length >= 0) || !(nulls >= 0) || nulls > length)
      throw corrupt('a record batch has a bad row or null count');
    layout.nodes.push(length, nulls);
    return { length, nulls };
  };
  const buffer = (): { offset: number; length: number } => {
    if (cursor.buffer >= buffers.length)
      throw corrupt('a record batch has fewer buffers than its schema needs');
    batch.spend(1);
    const at = buffers.at + 16 * cursor.buffer++;
    const offset = batch.int64At(at);
    const length = batch.int64At(at + 8);
    if (!(offset >= 0) || !(length >= 0) || offset + length > bodyLength) {
      throw corrupt('a buffer of a record batch lies outside its message body');
    }
    layout.buffers.push(body + offset, length);
    return { offset: body + offset, length };
  };
  const checkField = (field: FieldLayout, expected: number | null): void => {
    const { length, nulls } = node();
    if (expected !== null && length < expected) {
      throw corrupt(`column "${field.name}" has ${length} values where ${expected} are needed`);
    }
    const validity = buffer();
    if (nulls > 0 && validity.length < Math.ceil(length / 8))
      throw corrupt(`column "${field.name}" has a short validity bitmap`);
    switch (field.kind) {
      case 'numeric': {
        const values = buffer();
        if (values.length < length * field.width) {
          throw corrupt(`column "${field.name}" claims ${length} values but holds ${values.length} bytes`);
        }
        return;
      }
      case 'fixed-size-list':
        checkField(field.child!, length * field.width);
        return;
      case 'list': {
        const offsets = buffer();
        let last = 0;
        if (length > 0) {
          if (offsets.length < (length + 1) * 4)
            throw corrupt(`column "${field.name}" has a short offsets buffer`);
          batch.spend(Math.ceil(length / 64));
          let previous = view.getInt32(offsets.offset, true);
          if (previous < 0) throw corrupt(`column "${field.name}" has a negative list offset`);
          for (let i = 1; i <= length; i++) {
            const next = view.getInt32(offsets.offset + 4 * i, true);
            if (next < previous) throw corrupt(`column "${field.name}" has list offsets out of order`);
            previous = next;
          }
          last = previous;
        }
        checkField(field.child!, last);
        return;
      }
    }
  };
  for (const field of schema) {
    const before = cursor.node;
    checkField(field, rows);
    const top = batch.int64At(nodes.at + 16 * before);
    if (top !== rows) throw corrupt(`column "${field.name}" has ${top} rows but its record batch ${rows}`);
  }
  if (cursor.node !== nodes.length || cursor.buffer !== buffers.length) {
    throw corrupt('a record batch has more nodes or buffers than its schema has fields');
  }
  return layout;
}
