import { parseRecords } from '../inference-input.js';
import { recordsToTable } from './records-to-table.js';
import { refuseDeepJson } from './refuse-deep-json.js';
import type { TransferredData, TransferredField, TransferredTable } from './transferred-table.js';

/** Exact powers of ten as float64 (10^22 is the largest one a double holds exactly). */
const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
  1e20, 1e21, 1e22,
];
/** A mantissa below this stays below 2^53 after one more decimal digit (so it is exact). */
const MANTISSA_LIMIT = 900719925474099;
const TWO_53 = 2 ** 53;
/** At most 4 digits past the mantissa go to `low` (see {@link readAnyNumber}): scale up to 10^4. */
const LOW_SCALE_LIMIT = 10000;
/** Exponent digits are counted up to here; beyond, the number goes to the exact slow path. */
const EXPONENT_LIMIT = 100000;
/** A key of more bytes goes to the general path (which clips it in any error message). */
const MAX_KEY_BYTES = 256;

const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const ONE = 0x31;
const OPEN_LIST = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_LIST = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** One column being filled, row after row. */
interface Column {
  name: string;
  /** Where the key's bytes lie in record 0 (every later record repeats them byte for byte). */
  keyStart: number;
  keyEnd: number;
  /** Values per row: a list's length, or 0 for one number per row. */
  width: number;
  values: Float64Array;
  count: number;
  /** Where its buffers come from and go back to when it grows. */
  alloc: ColumnAllocator;
}

/**
 * Where a scan's float64 columns come from: `float64(n)` is a zeroed or reused array of exactly
 * `n` values (whatever the rest of its buffer holds is never read), `free` takes back one the
 * scan outgrew. A model worker lends reused buffers (`echo-buffers.ts`); by default each is new.
 */
export interface ColumnAllocator {
  float64(length: number): Float64Array;
  free(values: Float64Array): void;
}

/** A new array per column; nothing reused. */
export const NEW_COLUMNS: ColumnAllocator = {
  float64: (length) => new Float64Array(length),
  free: () => {},
};

/** Numbers left to the exact conversion: where each lies in the body and where its value goes. */
interface SlowNumbers {
  starts: number[];
  ends: number[];
  columns: number[];
  indexes: number[];
}

/**
 * Reads a JSON records body (`[{"tensor": [1, 2.5, …]}, …]`) straight from its bytes into
 * float64 columns, making no string and no object per record: the decode worker's fast path
 * for large bodies. It takes only the plain shape: every record with the same keys (printable
 * ASCII, no escapes) in the same order, each value one number or a flat, non-empty list of
 * numbers of the same length in every row. It answers `null` for anything else, valid or not
 * (other shapes, `true`, `null`, `1e999`, strings, nesting, truncation, bad syntax): the caller
 * then decodes the body the general way (`parseRecords`, then `recordsToTable`), which gives
 * the answer or the catalogue error naming the column and row. So for any body this answers what
 * the general path answers, or nothing.
 *
 * Numbers follow JSON's grammar exactly. One with a mantissa below 2^53 and a power of ten up
 * to 22 is one exact float64 operation (Clinger's fast path, correctly rounded); one of up to 4
 * more digits over such a power is divided in double-double arithmetic ({@link longDecimal}),
 * taken when that settles the rounding; every other is converted by `JSON.parse` over a list of
 * only those numbers. So every value is the float64 that `JSON.parse` reads from the body. A value that converts to ±Infinity sends the body to the
 * general path, which refuses it.
 *
 * One pass, linear in the body; it allocates 8 bytes per number (each at least 2 bytes of body)
 * and the exact conversion's list.
 */
export function scanRecords(body: Uint8Array, alloc: ColumnAllocator = NEW_COLUMNS): TransferredTable | null {
  const slow: SlowNumbers = { starts: [], ends: [], columns: [], indexes: [] };
  let at = skipSpace(body, 0);
  if (body[at] !== OPEN_LIST) return null;
  at = skipSpace(body, at + 1);
  if (body[at] !== OPEN_OBJECT) return null;
  const columns: Column[] = [];
  at = firstRecord(body, at + 1, columns, slow, alloc);
  if (at < 0) return null;
  reserve(columns, body.length, at);
  let rows = 1;
  for (;;) {
    at = skipSpace(body, at);
    const next = body[at];
    if (next === CLOSE_LIST) break;
    if (next !== COMMA) return null;
    at = skipSpace(body, at + 1);
    if (body[at] !== OPEN_OBJECT) return null;
    at = record(body, at + 1, columns, slow);
    if (at < 0) return null;
    rows++;
  }
  if (skipSpace(body, at + 1) !== body.length) return null;
  if (!convertSlow(body, columns, slow)) return null;
  return table(columns, rows);
}

/** Record 0 from after its `{`: sets the columns, their order and widths; the index after its `}`, or -1. */
function firstRecord(
  body: Uint8Array,
  from: number,
  columns: Column[],
  slow: SlowNumbers,
  alloc: ColumnAllocator,
): number {
  let at = from;
  for (;;) {
    at = skipSpace(body, at);
    if (body[at] !== QUOTE) return -1;
    const keyStart = at + 1;
    const keyEnd = keyEndAt(body, keyStart);
    if (keyEnd < 0) return -1;
    const name = keyName(body, keyStart, keyEnd);
    if (name === null || columns.some((column) => column.name === name)) return -1;
    at = colon(body, keyEnd + 1);
    if (at < 0) return -1;
    const index = columns.length;
    const column: Column = {
      name,
      keyStart,
      keyEnd,
      width: 0,
      values: new Float64Array(64),
      count: 0,
      alloc,
    };
    columns.push(column);
    if (body[at] === OPEN_LIST) {
      // Any length but 0 (the general path names an empty list); the column grows as it goes.
      at = skipSpace(body, at + 1);
      if (body[at] === CLOSE_LIST) return -1;
      for (;;) {
        if (column.count === column.values.length) grow(column);
        at = readNumber(body, at, column.values, column.count, index, slow);
        if (at < 0) return -1;
        column.count++;
        at = skipSpace(body, at);
        const next = body[at++];
        if (next === CLOSE_LIST) break;
        if (next !== COMMA) return -1;
        at = skipSpace(body, at);
      }
      column.width = column.count;
    } else {
      at = readNumber(body, at, column.values, 0, index, slow);
      if (at < 0) return -1;
      column.count = 1;
    }
    at = skipSpace(body, at);
    const next = body[at++];
    if (next === CLOSE_OBJECT) return at;
    if (next !== COMMA) return -1;
  }
}

/**
 * A later record from after its `{`: record 0's keys in record 0's order, values of the same
 * widths; the index after its `}`, or -1.
 */
function record(body: Uint8Array, from: number, columns: Column[], slow: SlowNumbers): number {
  const last = columns.length - 1;
  let at = from;
  for (let index = 0; ; index++) {
    const column = columns[index]!;
    at = skipSpace(body, at);
    if (body[at] !== QUOTE) return -1;
    at++;
    // Record 0's key bytes (printable, no quote or backslash), then the closing quote.
    for (let key = column.keyStart; key < column.keyEnd; key++, at++) if (body[at] !== body[key]) return -1;
    if (body[at] !== QUOTE) return -1;
    at = colon(body, at + 1);
    if (at < 0) return -1;
    const width = column.width;
    let count = column.count;
    // Room for this row (the capacity only doubles, and it is at least one row already).
    if (count + Math.max(1, width) > column.values.length) grow(column);
    const values = column.values;
    if (width === 0) {
      at = readNumber(body, at, values, count, index, slow);
      if (at < 0) return -1;
      count++;
    } else {
      if (body[at] !== OPEN_LIST) return -1;
      const stop = count + width;
      at++;
      for (;;) {
        at = skipSpace(body, at);
        at = readNumber(body, at, values, count, index, slow);
        if (at < 0) return -1;
        count++;
        at = skipSpace(body, at);
        const next = body[at++];
        if (next === CLOSE_LIST) break;
        if (next !== COMMA || count === stop) return -1;
      }
      if (count !== stop) return -1;
    }
    column.count = count;
    at = skipSpace(body, at);
    const next = body[at++];
    if (next === CLOSE_OBJECT) return index === last ? at : -1;
    if (next !== COMMA || index === last) return -1;
  }
}

/**
 * One JSON number at `from`, written to `values[index]` (or noted for the exact conversion);
 * the index after it, or -1 when there is none. The common case (no exponent, a mantissa below
 * 2^53, at most 22 decimals) is read here, small enough to be inlined into the loops above; any
 * other number is read again by {@link readAnyNumber}. Past the body's end a read gives
 * `undefined`, which no comparison below accepts.
 */
function readNumber(
  body: Uint8Array,
  from: number,
  values: Float64Array,
  index: number,
  column: number,
  slow: SlowNumbers,
): number {
  let at = from;
  let byte = body[at]!;
  const negative = byte === MINUS;
  if (negative) byte = body[++at]!;
  // Past 2^53 the sum is rounded, but never back below 2^53: such a mantissa is caught below.
  let mantissa = 0;
  let decimals = 0;
  if (byte === ZERO) {
    byte = body[++at]!;
  } else if (byte >= ONE && byte <= NINE) {
    do {
      mantissa = mantissa * 10 + (byte - ZERO);
      byte = body[++at]!;
    } while (byte >= ZERO && byte <= NINE);
  } else {
    return -1;
  }
  if (byte === DOT) {
    byte = body[++at]!;
    if (!(byte >= ZERO && byte <= NINE)) return -1;
    do {
      mantissa = mantissa * 10 + (byte - ZERO);
      decimals++;
      byte = body[++at]!;
    } while (byte >= ZERO && byte <= NINE);
  }
  if (byte === 0x65 || byte === 0x45 || mantissa >= TWO_53 || decimals > 22)
    return readAnyNumber(body, from, values, index, column, slow);
  // One correctly rounded division of two exact doubles (Clinger's fast path).
  const magnitude = mantissa / POW10[decimals]!;
  values[index] = negative ? -magnitude : magnitude;
  return at;
}

/**
 * Any JSON number at `from` (as {@link readNumber}, which it backs): exact in float64 when its
 * mantissa is below 2^53 and its power of ten at most 22; a mantissa of up to 4 more digits
 * divided by such a power (`47.606300354003906`, how a float32 value prints as a double) by
 * {@link longDecimal} when that settles the rounding; else noted for the exact conversion.
 */
function readAnyNumber(
  body: Uint8Array,
  from: number,
  values: Float64Array,
  index: number,
  column: number,
  slow: SlowNumbers,
): number {
  let at = from;
  let byte = body[at]!;
  const negative = byte === MINUS;
  if (negative) byte = body[++at]!;
  // The digits are mantissa * scale + low: the first ones in mantissa (below 2^53), up to
  // 4 more in low (scale = 10^their count); any digit beyond makes it inexact.
  let mantissa = 0;
  let low = 0;
  let scale = 1;
  let exponent = 0;
  let exact = true;
  if (byte === ZERO) {
    byte = body[++at]!;
  } else if (byte >= ONE && byte <= NINE) {
    do {
      if (mantissa < MANTISSA_LIMIT) mantissa = mantissa * 10 + (byte - ZERO);
      else if (scale < LOW_SCALE_LIMIT) {
        low = low * 10 + (byte - ZERO);
        scale *= 10;
      } else exact = false;
      byte = body[++at]!;
    } while (byte >= ZERO && byte <= NINE);
  } else {
    return -1;
  }
  if (byte === DOT) {
    byte = body[++at]!;
    if (!(byte >= ZERO && byte <= NINE)) return -1;
    do {
      if (mantissa < MANTISSA_LIMIT) {
        mantissa = mantissa * 10 + (byte - ZERO);
        exponent--;
      } else if (scale < LOW_SCALE_LIMIT) {
        low = low * 10 + (byte - ZERO);
        scale *= 10;
        exponent--;
      } else {
        exact = false;
      }
      byte = body[++at]!;
    } while (byte >= ZERO && byte <= NINE);
  }
  if (byte === 0x65 || byte === 0x45) {
    byte = body[++at]!;
    const sign = byte === MINUS ? -1 : 1;
    if (byte === MINUS || byte === 0x2b) byte = body[++at]!;
    if (!(byte >= ZERO && byte <= NINE)) return -1;
    let written = 0;
    do {
      if (written < EXPONENT_LIMIT) written = written * 10 + (byte - ZERO);
      else exact = false;
      byte = body[++at]!;
    } while (byte >= ZERO && byte <= NINE);
    exponent += sign * written;
  }
  if (exact && scale === 1 && (mantissa === 0 || (exponent >= -22 && exponent <= 22))) {
    const magnitude =
      mantissa === 0 ? 0 : exponent >= 0 ? mantissa * POW10[exponent]! : mantissa / POW10[-exponent]!;
    values[index] = negative ? -magnitude : magnitude;
    return at;
  }
  const magnitude =
    exact && scale > 1 && exponent >= -22 && exponent <= 0
      ? longDecimal(mantissa, scale, low, POW10[-exponent]!)
      : NaN;
  if (magnitude === magnitude) {
    values[index] = negative ? -magnitude : magnitude;
  } else {
    slow.starts.push(from);
    slow.ends.push(at);
    slow.columns.push(column);
    slow.indexes.push(index);
  }
  return at;
}

/** Splits a double into high and low halves of 26 bits (Dekker), for exact products. */
const SPLITTER = 134217729;
/** 2^-70: how close to halfway between two doubles (relative) a quotient is left to the exact path. */
const TIE_MARGIN = 2 ** -70;

/** The rounding error of `a * b`, which rounded to `product`: a * b = product + error exactly (Dekker). */
function productError(a: number, b: number, product: number): number {
  let t = SPLITTER * a;
  const aHigh = t - (t - a);
  const aLow = a - aHigh;
  t = SPLITTER * b;
  const bHigh = t - (t - b);
  const bLow = b - bHigh;
  return aHigh * bHigh - product + aHigh * bLow + aLow * bHigh + aLow * bLow;
}

/**
 * (mantissa * scale + low) / divisor correctly rounded, or NaN when this cannot tell: mantissa
 * is below 2^53, scale a power of ten up to 10^4, low below scale, divisor an exact power of
 * ten up to 10^22. The numerator is held exactly as a sum of two doubles and divided in
 * double-double arithmetic (error below 2^-100 of the quotient); the quotient's rounding to
 * one double is taken only when the exact value lies further than 2^-70 of it from halfway
 * between two doubles, so every value returned is the double `JSON.parse` reads.
 */
export function longDecimal(mantissa: number, scale: number, low: number, divisor: number): number {
  // mantissa * scale + low = high + tail exactly, high + (tail's rounding) to within 2^-105.
  const product = mantissa * scale;
  const productTail = productError(mantissa, scale, product);
  const high = product + low;
  const back = high - product;
  const tail = product - (high - back) + (low - back) + productTail;
  // Divide: q1 the rounded quotient, q2 the rest of it from the exact remainder.
  const q1 = high / divisor;
  const p = q1 * divisor;
  const remainder = high - p - productError(q1, divisor, p) + tail;
  const q2 = remainder / divisor;
  // q1 + q2 = x + y exactly (|q2| is far below |q1|), x the nearest double.
  const x = q1 + q2;
  const y = q2 - (x - q1);
  const margin = x * TIE_MARGIN;
  return x + (y + margin) === x && x + (y - margin) === x ? x : NaN;
}

/** The index of the first byte at or after `at` that is not JSON white space. */
function skipSpace(body: Uint8Array, from: number): number {
  let at = from;
  let byte = body[at];
  while (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) byte = body[++at];
  return at;
}

/** A `:` (with white space around it) at `from`: the index after it, or -1. */
function colon(body: Uint8Array, from: number): number {
  const at = skipSpace(body, from);
  return body[at] === COLON ? skipSpace(body, at + 1) : -1;
}

/** The closing quote of a key whose bytes start at `start` (printable ASCII, no escapes), or -1. */
function keyEndAt(body: Uint8Array, start: number): number {
  const limit = Math.min(body.length, start + MAX_KEY_BYTES);
  for (let at = start; at < limit; at++) {
    const byte = body[at]!;
    if (byte === QUOTE) return at;
    if (byte < 0x20 || byte > 0x7e || byte === BACKSLASH) return -1;
  }
  return -1;
}

/**
 * A key's name, or null for one the general path could order or treat differently: an array
 * index (`"0"`: objects list those first), `__proto__`, or the empty key.
 */
function keyName(body: Uint8Array, start: number, end: number): string | null {
  if (end === start) return null;
  const first = body[start]!;
  if (first >= ZERO && first <= NINE) return null;
  const name = String.fromCharCode(...body.subarray(start, end));
  return name === '__proto__' ? null : name;
}

/** After record 0 (which ended at `used`): room for the rows the body's size suggests. */
function reserve(columns: Column[], bodyBytes: number, used: number): void {
  const rows = Math.ceil((bodyBytes / Math.max(2, used)) * 1.05) + 1;
  for (const column of columns) {
    const needed = rows * Math.max(1, column.width);
    if (needed > column.values.length) {
      const values = column.alloc.float64(needed);
      values.set(column.values.subarray(0, column.count));
      column.alloc.free(column.values);
      column.values = values;
    }
  }
}

function grow(column: Column): void {
  const values = column.alloc.float64(column.values.length * 2);
  values.set(column.values);
  column.alloc.free(column.values);
  column.values = values;
}

/**
 * The numbers the fast path left, converted by `JSON.parse` over one list of only them (each
 * already checked against JSON's grammar); false if one is not finite (the general path refuses
 * it, naming the column and row).
 */
function convertSlow(body: Uint8Array, columns: Column[], slow: SlowNumbers): boolean {
  const { starts, ends } = slow;
  const count = starts.length;
  if (count === 0) return true;
  let size = 1 + count;
  for (let i = 0; i < count; i++) size += ends[i]! - starts[i]!;
  const text = Buffer.allocUnsafe(size);
  let at = 0;
  text[at++] = OPEN_LIST;
  for (let i = 0; i < count; i++) {
    if (i > 0) text[at++] = COMMA;
    for (let from = starts[i]!, to = ends[i]!; from < to; from++) text[at++] = body[from]!;
  }
  text[at] = CLOSE_LIST;
  const numbers = JSON.parse(text.toString('latin1')) as number[];
  const { columns: targets, indexes } = slow;
  for (let i = 0; i < count; i++) {
    const value = numbers[i]!;
    // A finite number (v - v is NaN for ±Infinity).
    if (value - value !== 0) return false;
    columns[targets[i]!]!.values[indexes[i]!] = value;
  }
  return true;
}

/** The columns as `recordsToTable` describes them: Float64, or a FixedSizeList of Float64. */
function table(columns: Column[], rows: number): TransferredTable {
  const fields: TransferredField[] = [];
  const chunks: TransferredData[] = [];
  for (const column of columns) {
    const total = column.count;
    // A view of the first `total` values: the buffer (sized by the estimate, a little over) moves
    // to the parent as it is, with no copy.
    const values = column.values.subarray(0, total);
    const leaf: TransferredData = {
      offset: 0,
      length: total,
      nullCount: 0,
      nullBitmap: null,
      values,
      valueOffsets: null,
      children: [],
    };
    if (column.width === 0) {
      fields.push({ name: column.name, nullable: false, type: { id: 'float', bitWidth: 64 } });
      chunks.push(leaf);
      continue;
    }
    fields.push({
      name: column.name,
      nullable: false,
      type: {
        id: 'fixed-size-list',
        listSize: column.width,
        child: { name: 'item', nullable: false, type: { id: 'float', bitWidth: 64 } },
      },
    });
    chunks.push({
      offset: 0,
      length: rows,
      nullCount: 0,
      nullBitmap: null,
      values: null,
      valueOffsets: null,
      children: [leaf],
    });
  }
  return { fields, batches: [chunks] };
}

/**
 * A JSON records body as float64 columns, in a decode worker: the plain shape read straight
 * from the bytes ({@link scanRecords}), any other body (and every invalid one) parsed the
 * general way, whose catalogue error names the column and row. A body nested deeper than any
 * records body can be is refused from its bytes before that parse ({@link refuseDeepJson}).
 * @throws ApiError `invalid_inference_input`, `non_numeric_value`, `invalid_tensor_shape`, `unknown_input_column`
 */
export function jsonRecordsToTable(body: Uint8Array, alloc: ColumnAllocator = NEW_COLUMNS): TransferredTable {
  const scanned = scanRecords(body, alloc);
  if (scanned) return scanned;
  refuseDeepJson(body);
  return recordsToTable(parseRecords(body));
}
