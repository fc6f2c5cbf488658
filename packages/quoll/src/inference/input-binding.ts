import { Precision, Type } from 'apache-arrow';
import type { Data, DataType, Table, Vector } from 'apache-arrow';
import type { TensorInfoDto } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import type { InferenceInput, InputTensor } from './inference-input.js';
import { MAX_ROW_RANK } from './decode/records-to-table.js';
import type { TransferredTable } from './decode/transferred-table.js';
import type { FeedSlab } from './feed-slab.js';
import {
  allocateNumeric,
  ELEMENT_RANGES,
  firstNonFinite,
  float64IntoFloat32,
  lendView,
  sameArrayType,
} from './tensor-data.js';
import type { NumericSink, TensorData, WireTensor } from './tensor-data.js';

/** Which request column feeds which model input of the first step. */
export interface ColumnBinding {
  column: string;
  input: TensorInfoDto;
}

/**
 * Maps request columns to the first step's model inputs: `tensorFields[i]` → input i when
 * given, else by name, else (one input, one column) that column.
 * Throws `unknown_input_column` for a column no input takes and `missing_model_input` for
 * an input no column feeds.
 */
export function bindColumns(
  columns: readonly string[],
  inputs: readonly TensorInfoDto[],
  tensorFields: readonly string[] | null,
): ColumnBinding[] {
  const bindings: ColumnBinding[] = [];
  const bound = new Set<string>();
  const fields = tensorFields ?? [];
  for (const [i, input] of inputs.entries()) {
    const field = fields[i];
    if (field !== undefined) {
      if (!columns.includes(field)) {
        throw new ApiError(
          'missing_model_input',
          `Model input "${input.name}" is configured to take column "${field}" (tensorFields), but the request has columns ${list(columns)}. Send a "${field}" column or reconfigure the model.`,
          { input: input.name, expectedColumn: field, columns: [...columns] },
        );
      }
      bindings.push({ column: field, input });
      bound.add(field);
    } else if (columns.includes(input.name)) {
      bindings.push({ column: input.name, input });
      bound.add(input.name);
    }
  }
  if (fields.length > inputs.length) {
    const extra = fields[inputs.length] ?? '';
    throw new ApiError(
      'unknown_input_column',
      `tensorFields lists ${fields.length} columns but the model has ${inputs.length} input(s); column "${extra}" maps to no input.`,
      {
        column: extra,
      },
    );
  }
  // The tutorial's case: one "tensor" column into a model whose single input is "float_input".
  if (bindings.length === 0 && inputs.length === 1 && columns.length === 1) {
    return [{ column: columns[0]!, input: inputs[0]! }];
  }
  const unknown = columns.find((column) => !bound.has(column));
  if (unknown !== undefined) {
    throw new ApiError(
      'unknown_input_column',
      `Column "${unknown}" maps to no model input; the model's inputs are ${list(inputs.map((input) => input.name))}. Rename the column or configure tensorFields.`,
      { column: unknown, inputs: inputs.map((input) => input.name) },
    );
  }
  const missing = inputs.find((input) => !bindings.some((binding) => binding.input === input));
  if (missing) {
    throw new ApiError(
      'missing_model_input',
      `Model input "${missing.name}" has no column; the request has columns ${list(columns)}. Add a "${missing.name}" column.`,
      {
        input: missing.name,
        columns: [...columns],
      },
    );
  }
  return bindings;
}

/** The column names of a request, in request order. */
export function inputColumns(input: InferenceInput): string[] {
  if (input.kind === 'arrow') return input.table.schema.fields.map((field) => field.name);
  if (input.kind === 'tensors') return input.tensors.map((tensor) => tensor.name);
  const first = input.records[0];
  if (!isRecord(first)) throw notARecord(0);
  return Object.keys(first);
}

/** The number of rows of a request. */
export function inputRowCount(input: InferenceInput): number {
  if (input.kind === 'tensors') return input.rows;
  return input.kind === 'arrow' ? input.table.numRows : input.records.length;
}

/**
 * Builds the first step's feeds: one flat array per input, cast to its declared element
 * type, in a buffer of its own (so it can be transferred to a worker), or an Arrow column's
 * values lent as they are when they already have the input's type (`lendView`: copied into the
 * worker's message, never transferred). With `slab`, the small feeds of JSON records are carved
 * out of it (see {@link FeedSlab}) instead of having a buffer each.
 */
export function buildFeeds(
  input: InferenceInput,
  bindings: readonly ColumnBinding[],
  slab?: FeedSlab,
  recordValues?: RecordValues,
): WireTensor[] {
  if (input.kind === 'arrow') {
    return bindings.map((binding) => arrowFeed(input.table, binding));
  }
  if (input.kind === 'tensors') {
    return bindings.map((binding) => tensorFeed(input.tensors, input.rows, binding));
  }
  const { records } = input;
  const columns = bindings.length;
  for (let row = 0; row < records.length; row++) {
    const record = records[row];
    if (!isRecord(record)) throw notARecord(row);
    // Cheap per-row check for stray keys: count first, name the key only when counts differ.
    if (Object.keys(record).length !== columns) {
      const stray = Object.keys(record).find((key) => !bindings.some((binding) => binding.column === key));
      if (stray !== undefined) {
        throw new ApiError(
          'unknown_input_column',
          `Record ${row} has column "${stray}", which maps to no model input.`,
          { column: stray, row },
        );
      }
    }
  }
  // Which request column takes its log values from each binding (-1: none): one binding per
  // column (every binding of a column reads the same numbers). Linear in the columns: the
  // binding at the column's own index when it reads it (bindings follow the request's columns),
  // else the first one, looked up in a map built once per bindings array.
  let logOf: number[] | null = null;
  if (recordValues !== undefined) {
    const { columns } = recordValues;
    logOf = new Array<number>(bindings.length).fill(-1);
    let byColumn: ReadonlyMap<string, number> | undefined;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      let at: number | undefined = i < bindings.length && bindings[i]!.column === column ? i : undefined;
      if (at === undefined) {
        byColumn ??= bindingIndexes(bindings);
        at = byColumn.get(column);
      }
      if (at !== undefined && logOf[at] === -1) logOf[at] = i;
    }
  }
  const rows = records as Record<string, unknown>[];
  const feeds: WireTensor[] = [];
  const log: (Float64Array | Float32Array | null)[] = [];
  for (let b = 0; b < bindings.length; b++) {
    const binding = bindings[b]!;
    const column = logOf === null ? -1 : logOf[b]!;
    // A column logged as Float32 (it feeds float32 inputs only) is logged as its feed's values,
    // the ones the model receives: nothing is written beside the feed in the walk.
    const float32 =
      column >= 0 && recordValues!.float32?.[column] === true && binding.input.type === 'float32';
    const values =
      column < 0 || float32 ? null : { data: null as Float64Array | null, storage: recordValues!.storage };
    const feed = recordsFeed(rows, binding, slab, values);
    feeds.push(feed);
    log.push(
      float32
        ? feedLogValues(feed, rows[0]?.[binding.column], recordValues!.storage)
        : (values?.data ?? null),
    );
  }
  // Only once every feed is built (a refused request logs nothing): each request column's values.
  if (recordValues !== undefined) {
    const { columns, values } = recordValues;
    for (let i = 0; i < columns.length; i++) values[i] = null;
    for (let b = 0; b < bindings.length; b++) if (logOf![b]! >= 0) values[logOf![b]!] = log[b]!;
  }
  return feeds;
}

/**
 * The log values of a column logged as Float32, from its float32 feed `feed` (of a column of
 * numbers or flat lists, `first` its first row; `null` for nested rows, which the log reads from
 * the records): the feed itself when it is carved out of a feeds' slab — such a view is never
 * moved to a worker (`transferList` moves whole buffers only, `ownedForMessage` copies carved
 * feeds into the message) and its region is never handed out again — else a copy, made now,
 * before the run: a feed of its own buffer is transferred to the model worker, which detaches it.
 */
function feedLogValues(
  feed: WireTensor,
  first: unknown,
  storage: LogValuesStorage | undefined,
): Float32Array | null {
  const data = feed.data;
  if (!(data instanceof Float32Array) || (Array.isArray(first) && Array.isArray(first[0]))) return null;
  if (data.byteLength < data.buffer.byteLength) return data;
  const copy = storage?.take(Float32Array, data.length) ?? new Float32Array(data.length);
  copy.set(data);
  return copy;
}

/** Per bindings array (a deployment caches them per request schema): each column's first binding. */
const bindingIndexCache = new WeakMap<readonly ColumnBinding[], ReadonlyMap<string, number>>();

function bindingIndexes(bindings: readonly ColumnBinding[]): ReadonlyMap<string, number> {
  let indexes = bindingIndexCache.get(bindings);
  if (indexes === undefined) {
    const map = new Map<string, number>();
    for (let i = 0; i < bindings.length; i++) {
      const column = bindings[i]!.column;
      if (!map.has(column)) map.set(column, i);
    }
    indexes = map;
    bindingIndexCache.set(bindings, indexes);
  }
  return indexes;
}

/**
 * Where {@link buildFeeds} puts a JSON records input's values as Float64 — the numbers as the
 * records hold them, not cast to the input's type — while it reads them for the feeds: the
 * inference log's `in.*` columns, which are then copied as typed arrays instead of read from the
 * records a second time (see `InferenceResult`'s `recordValues`).
 */
export interface RecordValues {
  /** The request's columns (`inputColumns`): {@link values}`[i]` is column `i`'s. */
  readonly columns: readonly string[];
  /**
   * Set per column once the feeds are built: its values row after row (`rows × width`), or
   * `null` for a column of rows nested more than one level (the log reads those from the
   * records). Float64 as the records hold them; Float32 for a column flagged in {@link float32}:
   * its float32 feed's values, those the model received. Left as it is when a feed is refused.
   */
  readonly values: (Float64Array | Float32Array | null)[];
  /**
   * Where the values' arrays come from (a deployment's `LogValuesPool`, or a `FeedSlab`); fresh
   * arrays without it. Its arrays may hold an earlier request's values: every element is written.
   */
  readonly storage: LogValuesStorage | undefined;
  /**
   * Per column (as {@link columns}), whether the log holds it as Float32 (`logFloat32Flags`:
   * every input it feeds is float32): its values are then taken from its feed, not written as
   * Float64 in the walk. None when absent or `null`.
   */
  readonly float32?: readonly boolean[] | null;
}

/** Storage of {@link RecordValues}' arrays: `length` elements, not necessarily zeroed. */
export interface LogValuesStorage {
  take(Type: Float64ArrayConstructor, length: number): Float64Array;
  take(Type: Float32ArrayConstructor, length: number): Float32Array;
}

/**
 * The feeds {@link buildFeeds} builds from JSON records, built from the float64 columns that
 * `recordsToTable` read from those same records (the columns the model worker echoes for the
 * answer and the log), so the records are walked once, not twice: the same feeds, bit for bit,
 * and the same errors. `recordsToTable` has already refused everything but finite numbers,
 * records with other columns and rows of another nested shape; what is left to refuse here is a
 * first row whose shape is not the declared one, rows of another length (a List column), and
 * values the input's element type cannot hold, in the order `buildFeeds` finds them.
 */
export function buildFeedsFromRecordColumns(
  table: TransferredTable,
  bindings: readonly ColumnBinding[],
): WireTensor[] {
  return bindings.map((binding) => recordColumnFeed(table, binding));
}

function recordColumnFeed(table: TransferredTable, binding: ColumnBinding): WireTensor {
  const { column, input } = binding;
  const at = table.fields.findIndex((field) => field.name === column);
  const chunk = table.batches.length === 1 ? table.batches[0]![at] : undefined;
  if (at === -1 || chunk === undefined) throw new Error(`no records column "${column}" to feed from`);
  const rows = chunk.length;
  // Down the FixedSizeLists (and at most one List) to the float64 leaf, as recordsToTable builds them.
  const shape: number[] = [];
  let type = table.fields[at]!.type;
  let data = chunk;
  let offsets: Int32Array | null = null;
  while (type.id === 'fixed-size-list') {
    shape.push(type.listSize);
    type = type.child.type;
    data = data.children[0]!;
  }
  if (type.id === 'list' && shape.length === 0 && data.valueOffsets !== null) {
    offsets = data.valueOffsets;
    shape.push(offsets[1]! - offsets[0]!);
    type = type.child.type;
    data = data.children[0]!;
  }
  const values = data.values;
  if (type.id !== 'float' || type.bitWidth !== 64 || !(values instanceof Float64Array) || chunk.offset !== 0)
    throw new Error(`column "${column}" is not a records column of float64 values`);
  const declared = declaredRowShape(input);
  checkWidth(column, input, declared, shape, 0);
  const width = product(shape);
  const sink = allocateNumeric(input.type, rows * width, column);
  if (offsets === null) {
    const bad = fillFromFloat64(sink, values, 0);
    if (bad !== -1) throw unrepresentable(column, Math.floor(bad / width), values[bad]!, input);
  } else {
    // Flat rows of several lengths: row by row, the length first, as buildFeeds checks them.
    for (let row = 0; row < rows; row++) {
      const start = offsets[row]!;
      const length = offsets[row + 1]! - start;
      if (length !== width) throw shapeError(column, input, declared ?? shape, [length], row);
      const bad = fillFromFloat64(sink, values.subarray(start, start + length), row * width);
      if (bad !== -1) throw unrepresentable(column, row, values[start + bad]!, input);
    }
  }
  return { name: input.name, type: input.type, dims: feedDims(rows, declared, shape), data: sink.data };
}

/** Writes `from` into the sink at `offset`; the index in `from` of the first value it cannot hold, or -1. */
function fillFromFloat64(sink: NumericSink, from: Float64Array, offset: number): number {
  if (sink.data instanceof Float32Array) return float64IntoFloat32(from, sink.data, offset);
  for (let i = 0; i < from.length; i++) if (!sink.set(offset + i, from[i]!)) return i;
  return -1;
}

// ---------------------------------------------------------------- shapes

/** The declared per-row dimensions when they are all known, else null. */
function declaredRowShape(input: TensorInfoDto): number[] | null {
  if (input.shape.length === 0) return null;
  const rest = input.shape.slice(1);
  return rest.every((dim): dim is number => typeof dim === 'number') ? rest : null;
}

function list(names: readonly string[]): string {
  return names.length === 0 ? '(none)' : names.map((name) => `"${name}"`).join(', ');
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function checkWidth(
  column: string,
  input: TensorInfoDto,
  expected: number[] | null,
  got: number[],
  row: number,
): void {
  if (expected !== null && product(expected) !== product(got)) {
    throw shapeError(column, input, expected, got, row);
  }
}

function shapeError(
  column: string,
  input: TensorInfoDto,
  expected: readonly number[],
  got: readonly number[],
  row: number,
): ApiError {
  const show = (dims: readonly number[]): string =>
    dims.length === 0 ? 'a single number' : `[${dims.join(', ')}]`;
  return new ApiError(
    'invalid_tensor_shape',
    `Column "${column}" row ${row} has shape ${show(got)} but model input "${input.name}" expects ${show(expected)} per row. Send ${product(expected)} value(s) per row.`,
    { column, input: input.name, row, expected: [...expected], got: [...got] },
  );
}

function nonNumeric(column: string, row: number, value: unknown): ApiError {
  const shown =
    value === undefined
      ? 'no value'
      : value === null
        ? 'null'
        : typeof value === 'string'
          ? `the string ${JSON.stringify(value.slice(0, 40))}`
          : `a ${typeof value}`;
  return new ApiError(
    'non_numeric_value',
    `Column "${column}" row ${row} holds ${shown} where a number is expected.`,
    { column, row },
  );
}

function feedDims(rows: number, declared: number[] | null, got: number[]): number[] {
  return [rows, ...(declared ?? got)];
}

// ---------------------------------------------------------------- Arrow

/**
 * A numeric Arrow type whose values are stored one per slot (not bit-packed) as the numbers they
 * are: not Float16, whose Uint16Array holds half-float bits (1.0 is 0x3c00, read as 15360).
 */
function isNumericLeaf(type: DataType): boolean {
  return type.typeId === Type.Int || (type.typeId === Type.Float && !isHalfFloat(type));
}

function isHalfFloat(type: DataType): boolean {
  return (type as unknown as { precision: Precision }).precision === Precision.HALF;
}

/** An Arrow type's name as Arrow libraries print it: `Uint8`, `Float16`, `Float32`, `Bool`. */
function arrowTypeName(type: DataType): string {
  if (type.typeId === Type.Int) {
    const { bitWidth, isSigned } = type as unknown as { bitWidth: number; isSigned: boolean };
    return `${isSigned ? 'Int' : 'Uint'}${bitWidth}`;
  }
  if (type.typeId === Type.Float) {
    const precision = (type as unknown as { precision: Precision }).precision;
    return precision === Precision.HALF ? 'Float16' : precision === Precision.SINGLE ? 'Float32' : 'Float64';
  }
  return Type[type.typeId];
}

/** The Arrow type of a column's values: its leaf below FixedSizeList and List levels. */
function arrowLeafType(type: DataType): DataType {
  let leaf = type;
  while (leaf.typeId === Type.FixedSizeList || leaf.typeId === Type.List)
    leaf = (leaf.children[0] as { type: DataType }).type;
  return leaf;
}

/** Per-row shape of an Arrow column: nested FixedSizeLists down to a numeric leaf, or one variable List level. */
function arrowRowShape(type: DataType, column: string): { shape: number[]; variable: boolean } {
  if (isNumericLeaf(type)) return { shape: [], variable: false };
  if (type.typeId === Type.FixedSizeList) {
    const inner = arrowRowShape((type.children[0] as { type: DataType }).type, column);
    if (inner.variable) throw unsupportedArrow(column, type);
    return { shape: [(type as unknown as { listSize: number }).listSize, ...inner.shape], variable: false };
  }
  if (type.typeId === Type.List) {
    const childType = (type.children[0] as { type: DataType }).type;
    if (!isNumericLeaf(childType)) throw unsupportedArrow(column, type);
    return { shape: [-1], variable: true };
  }
  throw unsupportedArrow(column, type);
}

function unsupportedArrow(column: string, type: DataType): ApiError {
  // Named as the Arrow decoder names it (check-arrow-ipc): Float16, not Float.
  return new ApiError(
    'non_numeric_value',
    `Column "${column}" has Arrow type ${arrowTypeName(type)}; tensor columns must be numbers, FixedSizeList or List of numbers.`,
    {
      column,
      row: 0,
    },
  );
}

function arrowFeed(table: Table, binding: ColumnBinding): WireTensor {
  const { column, input } = binding;
  const vector: Vector | null = table.getChild(column);
  if (!vector)
    throw new ApiError('missing_model_input', `The table has no column "${column}".`, { input: input.name });
  const rows = table.numRows;
  const declared = declaredRowShape(input);
  const { shape, variable } = arrowRowShape(vector.type as DataType, column);
  let rowShape = shape;
  if (variable) {
    // A List column: every row must have the declared width (or the first row's when not declared).
    const first = (vector.data as Data[])[0];
    const width = declared ? product(declared) : first ? listLength(first, 0) : 0;
    rowShape = [width];
  }
  // A column whose values share the input's array type is fed as it is (castInto), which is
  // right only when they are the input's values: a Uint8 column's 7 is no bool, a Uint16
  // column's 1 no half-float. Two compares per feed; other inputs do no per-value work here.
  if (input.type === 'float16') throw noFloat16Feed(column, arrowLeafType(vector.type as DataType), input);
  checkWidth(column, input, declared, rowShape, 0);
  const width = product(rowShape);
  const parts: TensorData[] = [];
  let rowOffset = 0;
  for (const data of vector.data as Data[]) {
    parts.push(leafValues(data, column, input, width, rowShape, variable, rowOffset));
    rowOffset += data.length;
  }
  if (input.type === 'bool')
    checkBoolValues(parts, column, arrowLeafType(vector.type as DataType), input, width);
  return {
    name: input.name,
    type: input.type,
    dims: feedDims(rows, declared, rowShape),
    data: castInto(parts, input, rows * width, column, width),
  };
}

/**
 * Checks that every value of an Arrow column fed to a bool input is one the input takes, as
 * JSON records' numbers are (see `allocateNumeric`): 0 or 1 exactly, no fraction. A Uint8
 * column's values are the bool feed's array type and would otherwise be fed as they are (7 is
 * no bool: onnxruntime takes Not(7) as true); those that pass are then fed as they are.
 */
function checkBoolValues(
  parts: readonly TensorData[],
  column: string,
  arrowType: DataType,
  input: TensorInfoDto,
  width: number,
): void {
  let offset = 0;
  for (const part of parts) {
    const numbers = part as Exclude<TensorData, string[]>;
    if (numbers instanceof Uint8Array) {
      for (let i = 0; i < numbers.length; i++)
        if (numbers[i]! > 1)
          throw notABool(column, arrowType, Math.floor((offset + i) / width), numbers[i]!, input);
    } else {
      for (let i = 0; i < numbers.length; i++) {
        const value = Number(numbers[i]);
        if (value !== 0 && value !== 1)
          throw notABool(column, arrowType, Math.floor((offset + i) / width), value, input);
      }
    }
    offset += part.length;
  }
}

function notABool(
  column: string,
  arrowType: DataType,
  row: number,
  value: number,
  input: TensorInfoDto,
): ApiError {
  return new ApiError(
    'invalid_inference_input',
    `Column "${column}" (Arrow ${arrowTypeName(arrowType)}) row ${row} holds ${value}, which model input "${input.name}" (bool) cannot take; send 0 (false) or 1 (true).`,
    { column, row, arrowType: arrowTypeName(arrowType), input: input.name, type: input.type },
  );
}

function noFloat16Feed(column: string, arrowType: DataType, input: TensorInfoDto): ApiError {
  return new ApiError(
    'invalid_inference_input',
    `Column "${column}" (Arrow ${arrowTypeName(arrowType)}) cannot feed model input "${input.name}" (float16): Quoll feeds no float16 input, from Arrow, JSON or Open Inference requests alike.`,
    { column, arrowType: arrowTypeName(arrowType), input: input.name, type: input.type },
  );
}

/**
 * The feed of a request tensor: what {@link arrowFeed} makes of the Arrow column the tensor
 * stands for (nested FixedSizeLists of its dimensions after the first, no nulls, one chunk),
 * from its values as they are.
 */
function tensorFeed(tensors: readonly InputTensor[], rows: number, binding: ColumnBinding): WireTensor {
  const { column, input } = binding;
  const tensor = tensors.find((candidate) => candidate.name === column);
  if (!tensor)
    throw new ApiError('missing_model_input', `The request has no input "${column}".`, { input: input.name });
  const declared = declaredRowShape(input);
  const rowShape = tensor.shape.slice(1);
  checkWidth(column, input, declared, rowShape, 0);
  const width = product(rowShape);
  const values = tensor.values;
  return {
    name: input.name,
    type: input.type,
    dims: feedDims(rows, declared, rowShape),
    data: BY_VALUE.has(input.type)
      ? castByValue(values, input, column, width)
      : carvedView(values, input.type)
        ? checkedFinite(values, input, column, width)
        : castInto([values], input, rows * width, column, width),
  };
}

/**
 * Input types whose array type a request tensor of another datatype shares: UINT8 values are a
 * bool feed's Uint8Array (7 is no bool: onnxruntime takes Not(7) as true), UINT16 values a
 * float16 feed's Uint16Array (1 is not the half-float bits 0x0001). Read value by value.
 */
const BY_VALUE: ReadonlySet<TensorInfoDto['type']> = new Set(['bool', 'float16']);

/** The values cast one by one into a feed of the input's type, refused where it cannot hold them. */
function castByValue(
  values: Exclude<TensorData, string[]>,
  input: TensorInfoDto,
  column: string,
  width: number,
): TensorData {
  const sink = allocateNumeric(input.type, values.length, column);
  for (let i = 0; i < values.length; i++) {
    const value = Number(values[i]);
    if (!sink.set(i, value)) throw unrepresentable(column, Math.floor(i / width), value, input);
  }
  return sink.data;
}

/**
 * Whether a request tensor's values are a small region of a larger buffer that already has the
 * input's type: values the decode pool carved out of its slab (`readOpenInferenceBody`), a
 * region handed to no one else. The run reads them where they are: not copied into a buffer of
 * their own, nor lent (`lendView`'s WeakSet entry, per request, kept each batch-1 request's
 * values alive through the next scavenge); a worker's message copies them (`ownedForMessage`).
 */
function carvedView(values: Exclude<TensorData, string[]>, type: TensorInfoDto['type']): boolean {
  return values.byteLength * 2 < values.buffer.byteLength && sameArrayType(values, type);
}

/** `values` themselves, once every float among them is finite (as {@link castInto} checks them). */
function checkedFinite(
  values: Exclude<TensorData, string[]>,
  input: TensorInfoDto,
  column: string,
  width: number,
): TensorData {
  if (values instanceof Float32Array || values instanceof Float64Array) {
    const bad = firstNonFinite(values);
    if (bad !== -1) throw unrepresentable(column, Math.floor(bad / width), values[bad]!, input);
  }
  return values;
}

function listLength(data: Data, row: number): number {
  const offsets = data.valueOffsets as Int32Array;
  return (offsets[row + 1] ?? 0) - (offsets[row] ?? 0);
}

/** The contiguous leaf values of one record-batch chunk, as a view (no copy). */
function leafValues(
  data: Data,
  column: string,
  input: TensorInfoDto,
  width: number,
  rowShape: number[],
  variable: boolean,
  rowOffset: number,
): TensorData {
  if (data.nullCount > 0) throw nonNumeric(column, rowOffset + firstNull(data), null);
  let leaf = data;
  let start = 0;
  if (variable) {
    const offsets = data.valueOffsets as Int32Array;
    for (let row = 0; row < data.length; row++) {
      const length = (offsets[row + 1] ?? 0) - (offsets[row] ?? 0);
      if (length !== width) throw shapeError(column, input, [width], [length], rowOffset + row);
    }
    start = offsets[0] ?? 0;
    leaf = data.children[0] as Data;
  } else {
    // Slicing a FixedSizeList slices its children too, so each level's values start at index 0.
    for (let level = 0; level < rowShape.length; level++) {
      leaf = leaf.children[0] as Data;
      if (leaf.nullCount > 0)
        throw nonNumeric(
          column,
          rowOffset + Math.floor(firstNull(leaf) / product(rowShape.slice(level))),
          null,
        );
    }
  }
  if (variable && leaf.nullCount > 0) throw nonNumeric(column, rowOffset, null);
  const values = leaf.values as Exclude<TensorData, string[]>;
  return values.subarray(start, start + data.length * width);
}

function firstNull(data: Data): number {
  for (let i = 0; i < data.length; i++) if (!data.getValid(i)) return i;
  return 0;
}

/**
 * One copy of all chunks into a fresh array of the input's type (a plain copy when types
 * already match), refusing NaN, ±Infinity and values the input's type cannot hold.
 */
function castInto(
  parts: TensorData[],
  input: TensorInfoDto,
  length: number,
  column: string,
  width: number,
): TensorData {
  const first = parts[0];
  if (parts.length === 1 && first && sameArrayType(first, input.type)) {
    if (first instanceof Float32Array || first instanceof Float64Array) {
      const bad = firstNonFinite(first);
      if (bad !== -1) throw unrepresentable(column, Math.floor(bad / width), first[bad]!, input);
    }
    return ownOrLent(first as Exclude<TensorData, string[]>);
  }
  const sink = allocateNumeric(input.type, length, column);
  let offset = 0;
  for (const part of parts) {
    if (sameArrayType(part, input.type)) {
      if (part instanceof Float32Array || part instanceof Float64Array) {
        const bad = firstNonFinite(part);
        if (bad !== -1) throw unrepresentable(column, Math.floor((offset + bad) / width), part[bad]!, input);
      }
      (sink.data as Float32Array).set(part as Float32Array, offset);
    } else if (part instanceof Float64Array && sink.data instanceof Float32Array) {
      // JSON records decoded in a worker (float64 columns) into a float32 input: one
      // monomorphic loop instead of a setter call per value.
      const bad = float64IntoFloat32(part, sink.data, offset);
      if (bad !== -1) throw unrepresentable(column, Math.floor((offset + bad) / width), part[bad]!, input);
    } else {
      const numbers = part as Exclude<TensorData, string[]>;
      for (let i = 0; i < numbers.length; i++) {
        const value = Number(numbers[i]);
        if (!sink.set(offset + i, value))
          throw unrepresentable(column, Math.floor((offset + i) / width), value, input);
      }
    }
    offset += part.length;
  }
  return sink.data;
}

/**
 * The values of a single chunk as the feed: lent as they are when they fill at least half of
 * their buffer (an Arrow body's column: postMessage copies the buffer into the run's message, the
 * one copy either way), else copied into a buffer of their own (a small view of a large or pooled
 * buffer would make the message carry the rest of it).
 */
function ownOrLent(values: Exclude<TensorData, string[]>): TensorData {
  const buffer = values.buffer;
  if (buffer instanceof ArrayBuffer && values.byteLength * 2 >= buffer.byteLength) return lendView(values);
  return values.slice();
}

/**
 * `invalid_inference_input` for a number the model input cannot take: NaN, ±Infinity, or
 * beyond the range of its element type (float32 overflow, integer ranges).
 */
function unrepresentable(column: string, row: number, value: number, input: TensorInfoDto): ApiError {
  if (!Number.isFinite(value)) {
    return new ApiError(
      'invalid_inference_input',
      `Column "${column}" row ${row} holds ${String(value)}; send finite numbers.`,
      { column, row },
    );
  }
  const range = ELEMENT_RANGES[input.type];
  const hint =
    input.type === 'bool'
      ? '; send 0 (false) or 1 (true)'
      : range
        ? `; send values from ${range[0]} to ${range[1]}`
        : '';
  return new ApiError(
    'invalid_inference_input',
    `Column "${column}" row ${row} holds ${value}, which model input "${input.name}" (${input.type}) cannot hold${hint}.`,
    { column, row, input: input.name, type: input.type },
  );
}

// ---------------------------------------------------------------- records

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function notARecord(row: number): ApiError {
  return new ApiError(
    'invalid_inference_input',
    `Record ${row} is not an object; send an array of records like [{"tensor": [1, 2, 3]}].`,
    { row },
  );
}

/** The nested-array shape of a JSON value, following first elements. */
function jsonShape(value: unknown): number[] {
  const shape: number[] = [];
  let current = value;
  while (Array.isArray(current)) {
    if (shape.length >= MAX_ROW_RANK) {
      throw new ApiError(
        'invalid_tensor_shape',
        `A value nests arrays more than ${MAX_ROW_RANK} levels deep; send at most ${MAX_ROW_RANK} dimensions per row.`,
      );
    }
    shape.push(current.length);
    current = current[0];
  }
  return shape;
}

/**
 * `log`: when given, `log.data` is set to the column's values as Float64 (see
 * {@link RecordValues}) for a column of numbers or flat lists, left `null` for nested rows.
 */
function recordsFeed(
  records: Record<string, unknown>[],
  binding: ColumnBinding,
  slab: FeedSlab | undefined,
  log: { data: Float64Array | null; readonly storage: LogValuesStorage | undefined } | null,
): WireTensor {
  const { column, input } = binding;
  const rows = records.length;
  const declared = declaredRowShape(input);
  const first = records[0]?.[column];
  if (!Array.isArray(first) && typeof first !== 'number' && typeof first !== 'boolean')
    throw nonNumeric(column, 0, first);
  const firstShape = jsonShape(first);
  checkWidth(column, input, declared, firstShape, 0);
  // The first row sets the row shape (checked against the declared one); a width-1 input
  // takes a bare number or a one-element list per row.
  const rowShape = firstShape;
  const width = product(rowShape);
  const sink = allocateNumeric(input.type, rows * width, column, slab);
  // Every row of a fed column of numbers or flat lists has the first row's width and only
  // numbers (anything else is refused below), so these are exactly the Float64 values the log
  // would read from the records: every element written, none left to zero-fill (and an array
  // reused from an earlier request keeps none of its values).
  const values =
    log === null || rowShape.length > 1
      ? null
      : (log.storage?.take(Float64Array, rows * width) ?? new Float64Array(rows * width));
  for (let row = 0; row < rows; row++) {
    const value = records[row]![column];
    const offset = row * width;
    if (rowShape.length === 1 && Array.isArray(value)) {
      // The common case ([{ tensor: [18 numbers] }]): a flat, tight loop.
      if (value.length !== width)
        throw shapeError(column, input, declared ?? rowShape, jsonShape(value), row);
      for (let i = 0; i < width; i++) {
        const item: unknown = value[i];
        if (!writeNumber(sink, offset + i, item, column, row, input)) throw nonNumeric(column, row, item);
        if (values !== null) values[offset + i] = item as number;
      }
    } else if (rowShape.length === 0) {
      if (!writeNumber(sink, offset, value, column, row, input)) throw nonNumeric(column, row, value);
      if (values !== null) values[offset] = value as number;
    } else {
      writeNested(sink, offset, value, rowShape, 0, column, input, declared, row);
    }
  }
  if (log !== null) log.data = values;
  return { name: input.name, type: input.type, dims: feedDims(rows, declared, rowShape), data: sink.data };
}

/** Writes one JSON value; false when it is not a number (the caller names it), throws when the input cannot hold it. */
function writeNumber(
  sink: NumericSink,
  index: number,
  value: unknown,
  column: string,
  row: number,
  input: TensorInfoDto,
): boolean {
  if (typeof value === 'number') {
    if (!sink.set(index, value)) throw unrepresentable(column, row, value, input);
    return true;
  }
  if (typeof value === 'boolean') {
    throw new ApiError(
      'invalid_inference_input',
      `Column "${column}" row ${row} holds the boolean ${String(value)} where a number is expected; send 1 or 0.`,
      { column, row },
    );
  }
  return false;
}

function writeNested(
  sink: NumericSink,
  offset: number,
  value: unknown,
  shape: number[],
  level: number,
  column: string,
  input: TensorInfoDto,
  declared: number[] | null,
  row: number,
): number {
  if (level === shape.length) {
    if (!writeNumber(sink, offset, value, column, row, input)) throw nonNumeric(column, row, value);
    return offset + 1;
  }
  if (!Array.isArray(value)) {
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'number' || typeof value === 'boolean')
        throw shapeError(column, input, declared ?? shape, [], row);
      throw nonNumeric(column, row, value);
    }
    throw nonNumeric(column, row, value);
  }
  if (value.length !== shape[level])
    throw shapeError(column, input, declared ?? shape, jsonShape(value), row);
  let next = offset;
  for (const item of value)
    next = writeNested(sink, next, item, shape, level + 1, column, input, declared, row);
  return next;
}
