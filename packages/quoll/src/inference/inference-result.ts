import {
  Bool,
  Field,
  FixedSizeList,
  Float16,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
  TimestampMillisecond,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import type { Data, DataType } from 'apache-arrow';
import type { TensorElementType } from '@quoll/client/wire';
import { MEDIA_TYPES } from '@quoll/client/wire';
import type { ResultFormat, InferenceInput } from './inference-input.js';
import { rowWidth } from './tensor-data.js';
import type { TensorData, WireTensor } from './tensor-data.js';

/**
 * The answer to one inference request. Columns, in order: `time` (the request's time for
 * every row), `in.<col>` per request column, `out.<name>` per output of the last step (each
 * cell a list), `check_failures` (0). Built lazily in the form the caller asks for.
 */
export class InferenceResult {
  /** Rows in the result (= rows in the request). */
  readonly rowCount: number;
  /** Epoch milliseconds stamped on every row. */
  readonly time: number;
  /** The last step's output tensors, rows along the first dimension. */
  readonly outputs: readonly WireTensor[];
  readonly #input: InferenceInput;
  readonly #columns: readonly string[];

  constructor(
    input: InferenceInput,
    columns: readonly string[],
    outputs: readonly WireTensor[],
    rowCount: number,
    time: number,
  ) {
    this.#input = input;
    this.#columns = columns;
    this.outputs = outputs;
    this.rowCount = rowCount;
    this.time = time;
  }

  /** The result as an Arrow table; Arrow input columns are reused as they are. */
  toArrowTable(): Table {
    const fields: Field[] = [new Field('time', new TimestampMillisecond(), false)];
    const input = this.#input;
    // One result batch per input batch, so `in.*` columns are reused chunk for chunk.
    const chunks: { length: number; inputs: Data[] }[] = [];
    if (input.kind === 'arrow') {
      const indexes = this.#columns.map((column) =>
        input.table.schema.fields.findIndex((field) => field.name === column),
      );
      for (const index of indexes) {
        const field = input.table.schema.fields[index]!;
        fields.push(new Field(`in.${field.name}`, field.type as DataType, field.nullable));
      }
      for (const batch of input.table.batches) {
        chunks.push({
          length: batch.numRows,
          inputs: indexes.map((index) => batch.data.children[index] as Data),
        });
      }
    } else {
      const inputs = this.#columns.map((column) =>
        recordsColumnData(input.records as Record<string, unknown>[], column),
      );
      for (const [i, column] of this.#columns.entries())
        fields.push(new Field(`in.${column}`, inputs[i]!.type, false));
      chunks.push({ length: this.rowCount, inputs });
    }
    const outputTypes = this.outputs.map((output) => outputData(output, 0, 0).type);
    for (const [i, output] of this.outputs.entries())
      fields.push(new Field(`out.${output.name}`, outputTypes[i]!, false));
    fields.push(new Field('check_failures', new Uint32(), false));
    const schema = new Schema(fields);
    const batches: RecordBatch[] = [];
    let start = 0;
    for (const chunk of chunks) {
      const children: Data[] = [
        makeData({
          type: new TimestampMillisecond(),
          length: chunk.length,
          data: new BigInt64Array(chunk.length).fill(BigInt(this.time)),
        }),
        ...chunk.inputs,
        ...this.outputs.map((output) => outputData(output, start, chunk.length)),
        makeData({ type: new Uint32(), length: chunk.length, data: new Uint32Array(chunk.length) }),
      ];
      batches.push(
        new RecordBatch(
          schema,
          makeData({ type: new Struct(fields), length: chunk.length, nullCount: 0, children }),
        ),
      );
      start += chunk.length;
    }
    return new Table(schema, batches);
  }

  /** The result as flat records: `{ time, 'in.tensor': [...], 'out.variable': [718013.75], check_failures: 0 }`. */
  toRecords(): Record<string, unknown>[] {
    const rows = this.rowCount;
    const input = this.#input;
    const inColumns = this.#columns.map((column) => {
      if (input.kind === 'records') {
        const records = input.records as Record<string, unknown>[];
        return (row: number): unknown => records[row]![column];
      }
      const vector = input.table.getChild(column)!;
      return (row: number): unknown => toPlain(vector.get(row));
    });
    const outColumns = this.outputs.map((output) => {
      const width = rowWidth(output.dims);
      const rest = output.dims.slice(1);
      return (row: number): unknown => nest(output.data, row * width, width, rest);
    });
    const inKeys = this.#columns.map((column) => `in.${column}`);
    const outKeys = this.outputs.map((output) => `out.${output.name}`);
    const records: Record<string, unknown>[] = new Array<Record<string, unknown>>(rows);
    for (let row = 0; row < rows; row++) {
      const record: Record<string, unknown> = { time: this.time };
      for (let i = 0; i < inKeys.length; i++) record[inKeys[i]!] = inColumns[i]!(row);
      for (let i = 0; i < outKeys.length; i++) record[outKeys[i]!] = outColumns[i]!(row);
      record.check_failures = 0;
      records[row] = record;
    }
    return records;
  }
}

/**
 * Writes a result in a wire format: `json` (records), `arrow-file` or `arrow-stream` (IPC).
 *
 * @example
 * const { contentType, body } = encodeInferenceResult(result, 'arrow-file');
 */
export function encodeInferenceResult(
  result: InferenceResult,
  format: ResultFormat,
): { contentType: string; body: Uint8Array | string } {
  switch (format) {
    case 'json':
      return { contentType: MEDIA_TYPES.json, body: JSON.stringify(result.toRecords()) };
    case 'arrow-file':
      return { contentType: MEDIA_TYPES.arrowFile, body: tableToIPC(result.toArrowTable(), 'file') };
    case 'arrow-stream':
      return { contentType: MEDIA_TYPES.arrowStream, body: tableToIPC(result.toArrowTable(), 'stream') };
  }
}

// ---------------------------------------------------------------- Arrow building

function leafType(type: TensorElementType): DataType {
  switch (type) {
    case 'float32':
      return new Float32();
    case 'float64':
      return new Float64();
    case 'float16':
      return new Float16();
    case 'int8':
      return new Int8();
    case 'int16':
      return new Int16();
    case 'int32':
      return new Int32();
    case 'int64':
      return new Int64();
    case 'uint8':
      return new Uint8();
    case 'uint16':
      return new Uint16();
    case 'uint32':
      return new Uint32();
    case 'uint64':
      return new Uint64();
    case 'bool':
      return new Bool();
    case 'string':
      return new Utf8();
  }
}

/** Rows [start, start+length) of an output as nested FixedSizeLists over a view of its buffer. */
function outputData(output: WireTensor, start: number, length: number): Data {
  const rest = output.dims.slice(1);
  // Every cell is a list, even for a [N] output: the shape users see is [N, 1].
  const shape = rest.length === 0 ? [1] : rest;
  const width = rowWidth(output.dims);
  const slice = Array.isArray(output.data)
    ? output.data.slice(start * width, (start + length) * width)
    : output.data.subarray(start * width, (start + length) * width);
  let data: Data;
  const type = leafType(output.type);
  if (output.type === 'bool') {
    data = vectorFromArray(
      Array.from(slice as Uint8Array, (value) => value !== 0),
      new Bool(),
    ).data[0] as Data;
  } else if (output.type === 'string') {
    data = vectorFromArray(slice as string[], new Utf8()).data[0] as Data;
  } else {
    data = makeData({ type: type as Float32, length: slice.length, data: slice as Float32Array });
  }
  let cells = slice.length;
  for (let level = shape.length - 1; level >= 0; level--) {
    const size = shape[level]!;
    cells = size === 0 ? 0 : cells / size;
    data = makeData({
      type: new FixedSizeList(size, new Field('item', data.type, false)),
      length: cells,
      nullCount: 0,
      child: data,
    });
  }
  return data;
}

/** An Arrow column for a records request's input column (numbers become Float64). */
function recordsColumnData(records: Record<string, unknown>[], column: string): Data {
  const first = records[0]?.[column];
  const shape: number[] = [];
  for (let current: unknown = first; Array.isArray(current); current = current[0]) shape.push(current.length);
  const width = shape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(records.length * width);
  let offset = 0;
  const push = (value: unknown): void => {
    if (Array.isArray(value)) for (const item of value) push(item);
    else values[offset++] = typeof value === 'boolean' ? Number(value) : (value as number);
  };
  for (const record of records) push(record[column]);
  let data: Data = makeData({ type: new Float64(), length: values.length, data: values });
  let cells = values.length;
  for (let level = shape.length - 1; level >= 0; level--) {
    const size = shape[level]!;
    cells = size === 0 ? 0 : cells / size;
    data = makeData({
      type: new FixedSizeList(size, new Field('item', data.type, false)),
      length: cells,
      nullCount: 0,
      child: data,
    });
  }
  return data;
}

// ---------------------------------------------------------------- records building

/** Row values as plain nested arrays of numbers (bigints become numbers for JSON). */
function nest(data: TensorData, offset: number, width: number, rest: readonly number[]): unknown[] {
  if (rest.length <= 1) {
    const out = new Array<unknown>(width);
    for (let i = 0; i < width; i++) {
      const value = data[offset + i];
      out[i] = typeof value === 'bigint' ? Number(value) : value;
    }
    return out;
  }
  const size = rest[0]!;
  const inner = size === 0 ? 0 : width / size;
  const out = new Array<unknown>(size);
  for (let i = 0; i < size; i++) out[i] = nest(data, offset + i * inner, inner, rest.slice(1));
  return out;
}

/** An Arrow cell as plain JSON-able values. */
function toPlain(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value !== null && typeof value === 'object' && Symbol.iterator in value && typeof value !== 'string') {
    return Array.from(value as Iterable<unknown>, toPlain);
  }
  return value;
}
