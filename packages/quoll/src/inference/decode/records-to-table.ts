import { ApiError } from '../../errors/index.js';
import type {
  TransferredData,
  TransferredField,
  TransferredTable,
  TransferredType,
} from './transferred-table.js';

/** The most dimensions a value of one row may have (deeper nesting is refused, not recursed). */
export const MAX_ROW_RANK = 32;

/**
 * Turns JSON records (`[{ "tensor": [1, 2, 3] }, …]`) into columns of float64 values as an
 * Arrow table description: a number per row → Float64, equal nested arrays → (nested)
 * FixedSizeList, flat arrays of different lengths → List (the model's shape check then names
 * the row). Every value must be a finite number; booleans, strings, null and non-finite values
 * (`1e999`) are refused naming the column and row. Runs in a decode worker, so the event loop
 * never holds the parsed object graph of a large body.
 */
export function recordsToTable(records: unknown[]): TransferredTable {
  const first = records[0];
  if (!isRecord(first)) throw notARecord(0);
  const columns = Object.keys(first);
  if (columns.length === 0) {
    throw new ApiError(
      'invalid_inference_input',
      'Record 0 has no columns; send at least one tensor column.',
    );
  }
  for (let row = 1; row < records.length; row++) {
    const record = records[row];
    if (!isRecord(record)) throw notARecord(row);
    for (const key in record) {
      if (!Object.hasOwn(first, key)) {
        throw new ApiError(
          'unknown_input_column',
          `Record ${row} has column "${clip(key)}", which record 0 does not have; every record must have the same columns.`,
          { column: clip(key), row },
        );
      }
    }
  }
  const fields: TransferredField[] = [];
  const chunks: TransferredData[] = [];
  for (const column of columns) {
    const { type, data } = columnOf(records as Record<string, unknown>[], column);
    fields.push({ name: column, nullable: false, type });
    chunks.push(data);
  }
  return { fields, batches: [chunks] };
}

function columnOf(
  records: Record<string, unknown>[],
  column: string,
): { type: TransferredType; data: TransferredData } {
  const rows = records.length;
  const shape = rowShape(records[0]![column], column);
  const width = shape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(rows * width);
  if (shape.length === 1) {
    // Flat rows (the common case, { tensor: [18 numbers] }) in one pass: equal widths make a
    // FixedSizeList; at the first row of another width (or not a list) start again as a List.
    for (let row = 0; row < rows; row++) {
      const items = records[row]![column];
      if (!Array.isArray(items) || items.length !== width) return listColumn(records, column);
      const offset = row * width;
      for (let i = 0; i < width; i++) {
        const item: unknown = items[i];
        // A finite number (v - v is NaN for NaN and ±Infinity); anything else is named by numberAt.
        values[offset + i] =
          typeof item === 'number' && item - item === 0 ? item : numberAt(item, column, row);
      }
    }
  } else {
    for (let row = 0; row < rows; row++) {
      const value = records[row]![column];
      const offset = row * width;
      if (shape.length === 0) values[offset] = numberAt(value, column, row);
      else writeNested(values, offset, value, shape, 0, column, row);
    }
  }
  let type: TransferredType = { id: 'float', bitWidth: 64 };
  let data = leaf(values, rows * width);
  for (let level = shape.length - 1; level >= 0; level--) {
    const listSize = shape[level]!;
    type = { id: 'fixed-size-list', listSize, child: { name: 'item', nullable: false, type } };
    data = {
      offset: 0,
      length: data.length / listSize,
      nullCount: 0,
      nullBitmap: null,
      values: null,
      valueOffsets: null,
      children: [data],
    };
  }
  return { type, data: { ...data, length: rows } };
}

function listColumn(
  records: Record<string, unknown>[],
  column: string,
): { type: TransferredType; data: TransferredData } {
  const rows = records.length;
  const valueOffsets = new Int32Array(rows + 1);
  let total = 0;
  for (let row = 0; row < rows; row++) {
    const value = records[row]![column];
    if (!Array.isArray(value)) {
      if (typeof value === 'number') {
        throw new ApiError(
          'invalid_tensor_shape',
          `Column "${clip(column)}" row ${row} holds a single number where record 0 holds a list; send a list per row.`,
          { column: clip(column), row },
        );
      }
      throw nonNumeric(column, row, value);
    }
    total += value.length;
    if (total > 2 ** 31 - 1)
      throw new ApiError('invalid_inference_input', `Column "${clip(column)}" holds too many values.`);
    valueOffsets[row + 1] = total;
  }
  const values = new Float64Array(total);
  for (let row = 0; row < rows; row++) {
    const items = records[row]![column] as unknown[];
    const offset = valueOffsets[row]!;
    for (let i = 0; i < items.length; i++) values[offset + i] = numberAt(items[i], column, row);
  }
  return {
    type: { id: 'list', child: { name: 'item', nullable: false, type: { id: 'float', bitWidth: 64 } } },
    data: {
      offset: 0,
      length: rows,
      nullCount: 0,
      nullBitmap: null,
      values: null,
      valueOffsets,
      children: [leaf(values, total)],
    },
  };
}

function leaf(values: Float64Array, length: number): TransferredData {
  return { offset: 0, length, nullCount: 0, nullBitmap: null, values, valueOffsets: null, children: [] };
}

/** The nested-array shape of a row's value, following first elements, refusing absurd depth. */
function rowShape(value: unknown, column: string): number[] {
  const shape: number[] = [];
  let current = value;
  while (Array.isArray(current)) {
    if (shape.length >= MAX_ROW_RANK) {
      throw new ApiError(
        'invalid_tensor_shape',
        `Column "${clip(column)}" row 0 nests arrays more than ${MAX_ROW_RANK} levels deep; send at most ${MAX_ROW_RANK} dimensions per row.`,
        { column: clip(column), row: 0 },
      );
    }
    shape.push(current.length);
    current = current[0];
  }
  if (shape.includes(0)) {
    throw new ApiError(
      'invalid_tensor_shape',
      `Column "${clip(column)}" row 0 holds an empty list; send at least one value per row.`,
      {
        column: clip(column),
        row: 0,
      },
    );
  }
  return shape;
}

function writeNested(
  values: Float64Array,
  offset: number,
  value: unknown,
  shape: number[],
  level: number,
  column: string,
  row: number,
): number {
  if (level === shape.length) {
    values[offset] = numberAt(value, column, row);
    return offset + 1;
  }
  if (!Array.isArray(value) || value.length !== shape[level]) {
    if (Array.isArray(value) || typeof value === 'number') {
      throw new ApiError(
        'invalid_tensor_shape',
        `Column "${clip(column)}" row ${row} does not have the shape of row 0 ([${shape.join(', ')}]); send rows of one shape.`,
        { column: clip(column), row, expected: shape },
      );
    }
    throw nonNumeric(column, row, value);
  }
  let next = offset;
  for (const item of value) next = writeNested(values, next, item, shape, level + 1, column, row);
  return next;
}

/** A JSON value as a finite number, or the catalogue error that names the column and row. */
export function numberAt(value: unknown, column: string, row: number): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    throw new ApiError(
      'invalid_inference_input',
      `Column "${clip(column)}" row ${row} holds a number beyond the float64 range (such as 1e999); send finite numbers.`,
      { column: clip(column), row },
    );
  }
  if (typeof value === 'boolean') {
    throw new ApiError(
      'invalid_inference_input',
      `Column "${clip(column)}" row ${row} holds the boolean ${String(value)} where a number is expected; send 1 or 0.`,
      { column: clip(column), row },
    );
  }
  throw nonNumeric(column, row, value);
}

function nonNumeric(column: string, row: number, value: unknown): ApiError {
  const shown =
    value === undefined
      ? 'no value'
      : value === null
        ? 'null'
        : typeof value === 'string'
          ? `the string ${JSON.stringify(value.slice(0, 40))}`
          : Array.isArray(value)
            ? 'a list'
            : `a ${typeof value}`;
  return new ApiError(
    'non_numeric_value',
    `Column "${clip(column)}" row ${row} holds ${shown} where a number is expected.`,
    { column: clip(column), row },
  );
}

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

/** A name from the request, cut to 64 characters so an error never echoes a huge key. */
function clip(name: string): string {
  return name.length <= 64 ? name : `${name.slice(0, 61)}...`;
}
