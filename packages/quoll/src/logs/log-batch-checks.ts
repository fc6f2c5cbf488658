import { Data, DataType, RecordBatch, TimeUnit, makeData } from 'apache-arrow';
import type { FixedSizeList, Schema, Struct } from 'apache-arrow';
import { recordBatchOf } from '../arrow/index.js';
import { ApiError } from '../errors/index.js';
import type { LogRowLeaf } from './log-row-source.js';
import { kindOf } from './log-staging.js';
import { timeValues } from './segment-file.js';

/**
 * Throws unless every column of a batch holds the batch's rows: each column's length is the
 * batch's row count, and each buffer of values holds the values of those rows. The writer
 * threads' unpacker runs it once on every batch they are handed (cheap: a few comparisons per
 * column), so that a batch whose layout does not hold together is set aside rather than merged
 * or stored for its readers to fail on.
 */
export function checkBatchShape(batch: RecordBatch): void {
  const rows = batch.numRows;
  const visit = (d: Data, name: string): void => {
    const values = d.values as ArrayLike<unknown> | undefined;
    const stride = (d as { stride?: number }).stride ?? 1;
    const fixedWidth = DataType.isInt(d.type) || DataType.isFloat(d.type) || DataType.isTimestamp(d.type);
    // Flat values and a fixed-size list's items of a (sliced) Data start at its first row.
    if (fixedWidth && values !== undefined) {
      if (values.length < d.length * stride)
        throw new Error(`column "${name}" holds ${values.length} values for ${d.length} rows`);
    }
    if (DataType.isFixedSizeList(d.type)) {
      const child = d.children[0];
      const size = d.type.listSize;
      if (child === undefined || child.length < d.length * size)
        throw new Error(
          `column "${name}" holds ${child?.length ?? 0} items for ${d.length} lists of ${size}`,
        );
      visit(child, name);
    }
  };
  batch.schema.fields.forEach((field, i) => {
    const column = batch.data.children[i];
    if (column === undefined || column.length !== rows)
      throw new Error(`column "${field.name}" has ${column?.length ?? 0} rows in a batch of ${rows}`);
    visit(column, field.name);
  });
}

/**
 * Returns the batch with its `time` column made non-decreasing and not below `after`
 * (each value raised to the running maximum), or the batch itself when it already is.
 * Queries binary-search on time, so the order must hold along the whole pipeline.
 */
export function clampLogTime(batch: RecordBatch, after: bigint): { batch: RecordBatch; last: bigint } {
  const t = timeValues(batch);
  let ok = inOrderFrom(t, after);
  let prev = after;
  if (ok === null) {
    ok = true;
    for (let i = 0; i < t.length; i++) {
      const v = t[i] as bigint;
      if (v < prev) {
        ok = false;
        break;
      }
      prev = v;
    }
  } else if (ok && t.length > 0) prev = t[t.length - 1] as bigint;
  if (ok) return { batch, last: prev };
  const fixed = new BigInt64Array(t.length);
  prev = after;
  for (let i = 0; i < t.length; i++) {
    const v = t[i] as bigint;
    prev = v > prev ? v : prev;
    fixed[i] = prev;
  }
  const col = batch.schema.fields.findIndex((f) => f.name === 'time');
  const old = batch.data.children[col] as Data;
  const children = batch.data.children.slice();
  children[col] = new Data(old.type, 0, t.length, 0, [undefined, fixed]);
  return {
    batch: batchOf(
      batch.schema,
      makeData({ type: batch.data.type, length: batch.numRows, nullCount: 0, children }),
    ),
    last: prev,
  };
}

/** 2^53: below it in magnitude, an Int64 is a double exactly. */
const EXACT = 2 ** 53;
/** Whether an Int64's low half comes first in memory (its halves are read as two Int32s). */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Whether `t` is non-decreasing and not below `after`, read as doubles from the Int64s' two
 * halves: reading a BigInt64Array element makes a BigInt on the heap, one per row, the bulk
 * of checking a hand-off's times in the log writer thread. `null` when a value (or `after`,
 * above the range) is too large to compare so exactly: the caller compares BigInts then.
 */
function inOrderFrom(t: BigInt64Array, after: bigint): boolean | null {
  let prev: number;
  if (!LITTLE_ENDIAN) return null;
  if (after < -EXACT) prev = Number.NEGATIVE_INFINITY;
  else if (after < EXACT) prev = Number(after);
  else return null;
  const halves = new Int32Array(t.buffer, t.byteOffset, t.length * 2);
  for (let i = 0; i < halves.length; i += 2) {
    const high = halves[i + 1]!;
    // value is in [-2^53, 2^53) (a double exactly) exactly when the high half is in [-2^21, 2^21).
    if (high >= 0x20_0000 || high < -0x20_0000) return null;
    const v = high * 0x1_0000_0000 + (halves[i]! >>> 0);
    if (v < prev) return false;
    prev = v;
  }
  return true;
}

/**
 * A record batch of `schema` and `data` that keeps `schema` itself: Arrow's constructor derives
 * an equal copy (cloning every field), and work keyed by schema object (the schema id, the
 * transfer to the writer thread) should find the one it has seen.
 *
 * When `data` is already what the constructor would make of it (always, for the batches the log
 * builds: a struct whose fields are the schema's own `Field` objects, with no offset or nulls of
 * its own, every column with the batch's rows), the batch is made without the constructor. The
 * constructor pays for padding short columns with nulls and for rebuilding the struct type from
 * the schema's fields with a new Schema, cloned fields and a rebuilt struct `Data` per batch, the
 * largest cost of unpacking a hand-off in the log writer thread (cold, generic code run a few
 * times per hand-off). Any other `data` (a short column, a struct type naming other fields) takes
 * the constructor. The fields set are those the constructor sets (`log-batch-checks.test.ts`
 * checks the result behaves as the constructor's).
 */
export function batchOf(schema: Schema, data: Data<Struct>): RecordBatch {
  const children = data.children;
  let whole =
    DataType.isStruct(data.type) &&
    data.offset === 0 &&
    data.nullCount === 0 &&
    children.length === schema.fields.length;
  const types = data.type.children;
  for (let i = 0; whole && i < children.length; i++) {
    // The constructor's struct type is built from the schema's fields: the same objects here
    // means the same names, types and nullability, so the rows read as the schema says.
    whole = children[i]!.length === data.length && types[i] === schema.fields[i];
  }
  if (whole) return recordBatchOf(schema, data);
  const batch = new RecordBatch(schema, data);
  (batch as { schema: Schema }).schema = schema;
  return batch;
}

/** Schemas that passed the checks of {@link checkLogBatch}, with the index of their `time` column. */
const checkedSchemas = new WeakMap<Schema, number>();

/**
 * Checks that a batch can be logged: throws `ApiError('invalid_request')` naming what is wrong
 * with its schema, and `ApiError('log_rows_refused')` when its columns do not hold what their
 * schema says (another column count, type or length, values of another width than their type:
 * what a result built on another result's layout, or a buggy row source, hands the log). Such
 * rows would otherwise be staged with, and packed beside, every other request's rows, and stop
 * the hand-off to the writer thread for all of them.
 */
export function checkLogBatch(batch: RecordBatch): void {
  const known = checkLogSchema(batch.schema);
  const fields = batch.schema.fields;
  const columns = batch.data.children;
  if (columns.length !== fields.length)
    throw rowsRefused(`${columns.length} columns for the ${fields.length} of their schema`);
  for (let i = 0; i < fields.length; i++) {
    const problem = dataProblem(columns[i]!, fields[i]!.type as DataType, batch.numRows);
    if (problem !== null) throw rowsRefused(`column "${fields[i]!.name}" ${problem}`);
  }
  if ((columns[known]?.nullCount ?? 0) > 0) throw timeNullsError();
}

/**
 * What is wrong with `data` as `rows` rows of `type` (`null`: nothing): another type, fewer
 * rows, and for fixed-width numbers (and fixed-size lists of them) values of another typed-array
 * kind or too few of them, for lists, strings and binaries offsets of another kind, too few or
 * past their items (and a list's items checked as such). Other types are checked by kind and length.
 */
function dataProblem(data: Data, type: DataType, rows: number): string | null {
  const actual = data.type;
  if (actual.typeId !== type.typeId) return `holds ${typeName(actual)} data, its type is ${typeName(type)}`;
  if (data.length < rows) return `holds ${data.length} rows of ${rows}`;
  if (DataType.isFixedSizeList(type)) {
    const size = type.listSize;
    if ((actual as FixedSizeList).listSize !== size)
      return `holds ${typeName(actual)} data, its type is ${typeName(type)}`;
    const child = data.children[0];
    const childType = (type.children[0] as { type: DataType } | undefined)?.type;
    if (child === undefined || childType === undefined) return 'has no list items';
    return dataProblem(child, childType, rows * size);
  }
  if (DataType.isList(type) || DataType.isUtf8(type) || DataType.isBinary(type)) {
    // O(1) per column: the offsets' kind and count, and the last one against the items (whose
    // own kind and count a list's child is checked for); not each row's offset.
    const offsets = data.valueOffsets as unknown;
    if (!(offsets instanceof Int32Array)) return 'has no Int32 offsets';
    if (offsets.length < data.offset + rows + 1) return `holds ${offsets.length} offsets for ${rows} rows`;
    const start = offsets[data.offset]!;
    const end = offsets[data.offset + rows]!;
    if (start < 0 || end < start) return `has offsets from ${start} to ${end}`;
    if (DataType.isList(type)) {
      const child = data.children[0];
      const childType = (type.children[0] as { type: DataType } | undefined)?.type;
      if (child === undefined || childType === undefined) return 'has no list items';
      if (end > child.length) return `has offsets up to ${end} for ${child.length} items`;
      const problem = dataProblem(child, childType, end);
      return problem === null ? null : `items ${problem}`;
    }
    const bytes = (data.values as ArrayBufferView | undefined)?.byteLength ?? 0;
    if (end > bytes) return `has offsets up to ${end} for ${bytes} bytes`;
    return null;
  }
  if (DataType.isInt(type) || DataType.isFloat(type) || DataType.isTimestamp(type)) {
    const values = data.values as ArrayBufferView & { length: number };
    const T = type.ArrayType as unknown as abstract new (...args: never[]) => unknown;
    if (!(values instanceof T))
      return `holds ${values.constructor.name} values, its type ${typeName(type)} takes ${T.name}`;
    if (values.length < rows * data.stride) return `holds ${values.length} values for ${rows} rows`;
  }
  return null;
}

/** An Arrow type as it names itself ("FixedSizeList[4]<Float32>"). */
function typeName(type: DataType): string {
  return (type as { toString(): string }).toString();
}

/**
 * The leaves a {@link LogRowSource} of `schema` must have (depth first, as the staging keeps
 * them), or `null` when a column is not fixed-width numbers. Remembered per schema object.
 */
const schemaLeaves = new WeakMap<Schema, readonly LogRowLeaf[] | null>();

function leavesOf(schema: Schema): readonly LogRowLeaf[] | null {
  if (schemaLeaves.has(schema)) return schemaLeaves.get(schema) ?? null;
  const leaves: LogRowLeaf[] = [];
  const visit = (type: DataType, width: number): boolean => {
    if (DataType.isFixedSizeList(type)) {
      const child = (type.children[0] as { type: DataType } | undefined)?.type;
      return child !== undefined && visit(child, width * type.listSize);
    }
    if (!DataType.isInt(type) && !DataType.isFloat(type) && !DataType.isTimestamp(type)) return false;
    const T = type.ArrayType as unknown as new (length: number) => ArrayBufferView;
    leaves.push(Object.freeze({ kind: kindOf(new T(0)), width }));
    return true;
  };
  const fixed = schema.fields.every((field) => visit(field.type as DataType, 1));
  // Frozen: admitted sources share them (see checkLogRowSource).
  const found = fixed ? Object.freeze(leaves) : null;
  schemaLeaves.set(schema, found);
  return found;
}

/**
 * Checks that a row source's leaves (`got`, as read from it once) are those of its schema (each
 * column's typed-array kind and values per row, in order) before it is staged: a source built on
 * another result's layout (review of 5 December, finding 1) or with values of another width would
 * be merged into the run of rows of that schema and stop the hand-off. Returns the schema's
 * leaves, equal to `got`: one frozen array per schema, which admitted sources share instead of a
 * copy each. Throws `ApiError('log_rows_refused')`.
 */
export function checkLogRowSource(schema: Schema, got: readonly LogRowLeaf[]): readonly LogRowLeaf[] {
  const want = leavesOf(schema);
  if (want === null) throw rowsRefused('fixed-width leaves for a schema that has other columns');
  // A buggy source's leaves are refused, not read into a TypeError (review of 5 December, finding 2).
  if (!Array.isArray(got)) throw rowsRefused(`leaves that are not an array (${typeof got})`);
  if (got.length !== want.length)
    throw rowsRefused(`${got.length} leaves for the ${want.length} of their schema`);
  for (let i = 0; i < want.length; i++) {
    const g: unknown = got[i];
    const w = want[i]!;
    if (typeof g !== 'object' || g === null)
      throw rowsRefused(`leaf ${i} is ${g === null ? 'null' : typeof g}`);
    const { kind, width } = g as Partial<LogRowLeaf>;
    if (kind !== w.kind || width !== w.width)
      throw rowsRefused(
        `leaf ${i} is of kind ${String(kind)} × ${String(width)} per row, their schema says kind ${w.kind} × ${w.width}`,
      );
  }
  return want;
}

/**
 * `log_rows_refused`: rows of one append that cannot be logged, refused alone. The client gets a
 * fixed message (`reason` and `cause` can quote a model's input values, file paths or Arrow's
 * internals); they go to the server log only, as the error's `cause` (what was thrown, or an
 * Error of `reason`), which the error handler logs with the 500.
 */
export function rowsRefused(reason: string, cause?: unknown): ApiError {
  const err = new ApiError(
    'log_rows_refused',
    "This request's inference log rows were refused: they do not match their columns' types, or reading them failed. The inference ran, but its rows are not logged. Every other request's rows are logged as usual; the server log has the details.",
  );
  (err as { cause?: unknown }).cause = cause ?? new Error(`inference log rows refused: ${reason}`);
  return err;
}

/**
 * Checks that rows of `schema` can be logged (a `time` column of type Timestamp(ms), no
 * dictionary-encoded column) and returns the index of its `time` column; throws
 * `ApiError('invalid_request')` naming what is wrong. Remembered per schema object.
 */
export function checkLogSchema(schema: Schema): number {
  const known = checkedSchemas.get(schema);
  if (known !== undefined) return known;
  const field = schema.fields.find((f) => f.name === 'time');
  if (field === undefined || !DataType.isTimestamp(field.type) || field.type.unit !== TimeUnit.MILLISECOND) {
    throw new ApiError(
      'invalid_request',
      `An inference log batch needs a "time" column of type Timestamp(ms); got ${field === undefined ? 'no such column' : String(field.type)}.`,
      { columns: schema.fields.map((f) => f.name) },
    );
  }
  if (schema.fields.some((f) => DataType.isDictionary(f.type))) {
    throw new ApiError(
      'invalid_request',
      'Dictionary-encoded columns cannot be logged; decode them before appending.',
      {
        columns: schema.fields.filter((f) => DataType.isDictionary(f.type)).map((f) => f.name),
      },
    );
  }
  const index = schema.fields.findIndex((f) => f.name === 'time');
  checkedSchemas.set(schema, index);
  return index;
}

function timeNullsError(): ApiError {
  return new ApiError(
    'invalid_request',
    'The "time" column of an inference log batch has nulls; every row needs a time.',
  );
}
