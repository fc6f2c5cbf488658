import type { TensorElementType } from '@quoll/client/wire';
import { ApiError } from '../errors/index.js';
import type { FeedSlab, NumericArrayConstructor } from './feed-slab.js';

/** The flat, row-major values of a tensor, in the array type onnxruntime uses for its element type. */
export type TensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | string[];

/** A tensor as it crosses the worker boundary: plain data plus its typed-array buffer (transferred). */
export interface WireTensor {
  name: string;
  type: TensorElementType;
  dims: number[];
  data: TensorData;
}

/** A numeric array we can write numbers into, with how to convert one number. */
export interface NumericSink {
  data: Exclude<TensorData, string[]>;
  /**
   * Writes `value` at `index`, converting it to the element type; false (nothing written) when
   * the type cannot hold it: non-finite values, values beyond float32's range, integers outside
   * the integer type's range (after truncation).
   */
  set(index: number, value: number): boolean;
}

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** The values each numeric element type holds (integers after truncation toward zero). */
export const ELEMENT_RANGES: Readonly<Partial<Record<TensorElementType, readonly [number, number]>>> = {
  float32: [-FLOAT32_MAX, FLOAT32_MAX],
  float64: [-Number.MAX_VALUE, Number.MAX_VALUE],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  // Numbers beyond 2^63 cannot be exact; the largest doubles below the limits are the bounds.
  int64: [-9223372036854775808, 9223372036854774784],
  uint8: [0, 255],
  bool: [0, 1],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, 18446744073709549568],
};

/**
 * Allocates `length` elements for `type` and a setter that casts numbers the way numpy's
 * `astype` does (truncation for integers), refusing what the type cannot hold (see
 * {@link NumericSink.set}). float16 and string inputs cannot be fed from numbers. With `slab`,
 * a small array is carved out of it (a view into a larger buffer, never transferable) instead
 * of having a buffer of its own (see {@link FeedSlab}).
 */
export function allocateNumeric(
  type: TensorElementType,
  length: number,
  column: string,
  slab?: FeedSlab,
): NumericSink {
  const make = <T>(Type: NumericArrayConstructor<T>): T =>
    slab === undefined ? new Type(length) : slab.take(Type, length);
  switch (type) {
    case 'float32':
      return ranged(make(Float32Array), -FLOAT32_MAX, FLOAT32_MAX, false);
    case 'float64':
      return ranged(make(Float64Array), -Number.MAX_VALUE, Number.MAX_VALUE, false);
    case 'int8':
      return ranged(make(Int8Array), -128, 127, true);
    case 'int16':
      return ranged(make(Int16Array), -32768, 32767, true);
    case 'int32':
      return ranged(make(Int32Array), -2147483648, 2147483647, true);
    case 'uint8':
      return ranged(make(Uint8Array), 0, 255, true);
    case 'bool': {
      // 0 and 1 exactly: no fraction is truncated into a bool (0.7 would become false, where
      // numpy's astype(bool) and ONNX Cast make every nonzero true).
      const data = make(Uint8Array);
      return {
        data,
        set(index, value) {
          if (value !== 0 && value !== 1) return false;
          data[index] = value;
          return true;
        },
      };
    }
    case 'uint16':
      return ranged(make(Uint16Array), 0, 65535, true);
    case 'uint32':
      return ranged(make(Uint32Array), 0, 4294967295, true);
    case 'int64': {
      const data = make(BigInt64Array);
      const [min, max] = ELEMENT_RANGES.int64!;
      return {
        data,
        set(index, value) {
          const whole = Math.trunc(value);
          if (!(whole >= min && whole <= max)) return false;
          data[index] = BigInt(whole);
          return true;
        },
      };
    }
    case 'uint64': {
      const data = make(BigUint64Array);
      const [min, max] = ELEMENT_RANGES.uint64!;
      return {
        data,
        set(index, value) {
          const whole = Math.trunc(value);
          if (!(whole >= min && whole <= max)) return false;
          data[index] = BigInt(whole);
          return true;
        },
      };
    }
    case 'float16':
    case 'string':
      throw new ApiError(
        'invalid_inference_input',
        `Column "${column}" feeds a ${type} model input; Quoll can feed numeric inputs only (float32, float64, int8–64, uint8–64, bool).`,
        { column, type },
      );
  }
}

function ranged(
  data: Exclude<TensorData, string[] | BigInt64Array | BigUint64Array>,
  min: number,
  max: number,
  integer: boolean,
): NumericSink {
  return integer
    ? {
        data,
        set(index, value) {
          const whole = Math.trunc(value);
          if (!(whole >= min && whole <= max)) return false;
          data[index] = whole;
          return true;
        },
      }
    : {
        data,
        set(index, value) {
          if (!(value >= min && value <= max)) return false;
          data[index] = value;
          return true;
        },
      };
}

/**
 * Copies float64 values into `into` from `offset` on, as float32, stopping at the first value
 * float32 cannot hold (NaN, ±Infinity, beyond ±{@link FLOAT32_MAX}): its index in `from`, or -1
 * when all were copied.
 */
export function float64IntoFloat32(from: Float64Array, into: Float32Array, offset: number): number {
  for (let i = 0; i < from.length; i++) {
    const value = from[i]!;
    if (!(value >= -FLOAT32_MAX && value <= FLOAT32_MAX)) return i;
    into[offset + i] = value;
  }
  return -1;
}

/** The index of the first NaN or ±Infinity of a float array, or -1 when every value is finite. */
export function firstNonFinite(data: Float32Array | Float64Array): number {
  // The hostile-input check of every float feed (an Arrow batch of 1000 × 18 scans 18 000
  // values on the HTTP thread). `v * 0` is ±0 for every finite v and NaN for NaN and ±Infinity,
  // so four values are checked with one compare and branch (about half the time of a branch per
  // value); the first group that is not 0 is scanned value by value for the index.
  const length = data.length;
  let i = 0;
  for (; i + 4 <= length; i += 4) {
    if (data[i]! * 0 + data[i + 1]! * 0 + data[i + 2]! * 0 + data[i + 3]! * 0 !== 0) break;
  }
  for (; i < length; i++) {
    const value = data[i]!;
    if (value - value !== 0) return i;
  }
  return -1;
}

/** Whether two element types share one JavaScript array type (so values can be copied as-is). */
export function sameArrayType(data: TensorData, type: TensorElementType): boolean {
  switch (type) {
    case 'float32':
      return data instanceof Float32Array;
    case 'float64':
      return data instanceof Float64Array;
    case 'int8':
      return data instanceof Int8Array;
    case 'int16':
      return data instanceof Int16Array;
    case 'int32':
      return data instanceof Int32Array;
    case 'int64':
      return data instanceof BigInt64Array;
    case 'uint8':
    case 'bool':
      return data instanceof Uint8Array;
    case 'uint16':
    case 'float16':
      return data instanceof Uint16Array;
    case 'uint32':
      return data instanceof Uint32Array;
    case 'uint64':
      return data instanceof BigUint64Array;
    case 'string':
      return Array.isArray(data);
  }
}

/**
 * Converts tensor values to another element type (used between pipeline steps whose
 * output and input types differ). Returns `data` itself when no conversion is needed.
 */
export function castTensorData(data: TensorData, type: TensorElementType, name: string): TensorData {
  if (sameArrayType(data, type)) return data;
  if (Array.isArray(data)) {
    throw new ApiError(
      'inference_failed',
      `Step output "${name}" is a string tensor but the next step expects ${type}.`,
    );
  }
  // Between steps values convert as numpy's astype does (wrapping, infinities), unchecked.
  const out = new (arrayTypeOf(type))(data.length);
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < data.length; i++) {
      const value = Number(data[i]);
      out[i] = Number.isFinite(value) ? BigInt(Math.trunc(value)) : 0n;
    }
  } else {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  }
  return out;
}

/** Feeds that are views of a request's own buffers (see {@link lendView}). */
const lent = new WeakSet<object>();

/**
 * Marks `data`, a view of buffers the caller still reads (a request body whose columns the
 * answer echoes and the log keeps), as lent to a worker run: {@link transferList} never moves
 * its buffer, so postMessage copies it into the message instead. That copy replaces the one the
 * caller would otherwise make to own a transferable buffer, and it is made outside the caller's
 * heap (no new ArrayBuffer on the HTTP thread per request). The message carries the view's
 * whole underlying buffer, so lend only views that cover most of it.
 */
export function lendView<T extends Exclude<TensorData, string[]>>(data: T): T {
  lent.add(data);
  return data;
}

/** The transferable buffers of some tensors, so postMessage moves them instead of copying. */
export function transferList(tensors: readonly WireTensor[]): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const tensor of tensors) {
    if (Array.isArray(tensor.data) || lent.has(tensor.data)) continue;
    const buffer = tensor.data.buffer;
    // Only whole, plain ArrayBuffers can be moved; a view into a shared or larger buffer is copied instead.
    if (
      buffer instanceof ArrayBuffer &&
      tensor.data.byteLength === buffer.byteLength &&
      !buffers.includes(buffer)
    ) {
      buffers.push(buffer);
    }
  }
  return buffers;
}

/**
 * The tensors as a worker's message should carry them: a view that covers less than half of its
 * buffer (a feed carved out of a `FeedSlab`) and is not lent is copied into a buffer of its own,
 * which {@link transferList} then moves, instead of postMessage cloning the whole buffer it
 * views into the message. Other tensors are the same objects.
 */
export function ownedForMessage(tensors: WireTensor[]): WireTensor[] {
  let owned: WireTensor[] | null = null;
  for (let i = 0; i < tensors.length; i++) {
    const tensor = tensors[i]!;
    const data = tensor.data;
    if (Array.isArray(data) || lent.has(data) || data.byteLength * 2 >= data.buffer.byteLength) continue;
    owned ??= [...tensors];
    owned[i] = { ...tensor, data: data.slice() };
  }
  return owned ?? tensors;
}

/** The number of elements of one row (the product of all dimensions after the batch one). */
export function rowWidth(dims: readonly number[]): number {
  let width = 1;
  for (let i = 1; i < dims.length; i++) width *= dims[i] ?? 1;
  return width;
}

/**
 * Concatenates tensor values along the row axis (one copy); with `slab`, a small result is
 * carved out of it (see {@link FeedSlab}).
 */
export function concatTensorData(parts: readonly TensorData[], slab?: FeedSlab): TensorData {
  const first = parts[0];
  if (!first) return new Float32Array(0);
  if (parts.length === 1) return first;
  if (Array.isArray(first)) return (parts as string[][]).flat();
  const numeric = parts as readonly Exclude<TensorData, string[]>[];
  const total = numeric.reduce((sum, part) => sum + part.length, 0);
  const Type = first.constructor as NumericArrayConstructor<Exclude<TensorData, string[]>>;
  const out = slab === undefined ? new Type(total) : slab.take(Type, total);
  let offset = 0;
  for (const part of numeric) {
    // Same constructor on both sides, so set() copies element for element.
    (out as Float32Array).set(part as Float32Array, offset);
    offset += part.length;
  }
  return out;
}

/** The typed-array constructor onnxruntime uses for a numeric element type. */
function arrayTypeOf(type: TensorElementType): new (length: number) => Exclude<TensorData, string[]> {
  switch (type) {
    case 'float32':
      return Float32Array;
    case 'float64':
      return Float64Array;
    case 'int8':
      return Int8Array;
    case 'int16':
      return Int16Array;
    case 'int32':
      return Int32Array;
    case 'int64':
      return BigInt64Array;
    case 'uint8':
    case 'bool':
      return Uint8Array;
    case 'uint16':
      return Uint16Array;
    case 'uint32':
      return Uint32Array;
    case 'uint64':
      return BigUint64Array;
    case 'float16':
    case 'string':
      throw new ApiError('inference_failed', `A step input of type ${type} cannot be fed from numbers.`);
  }
}

/**
 * What must match for two requests' feeds to be concatenated into one run (dynamic batching):
 * every feed's name, element type and per-row shape.
 */
export function feedLayoutKey(feeds: readonly WireTensor[]): string {
  let key = '';
  for (const feed of feeds)
    key += `${feed.name}\u0000${feed.type}\u0000${feed.dims.slice(1).join(',')}\u0001`;
  return key;
}

/**
 * The feeds of several requests of one {@link feedLayoutKey} as one run's: each feed's rows
 * concatenated in request order, `total` rows in all (dynamic batching, on either thread); with
 * `slab`, small merged feeds are carved out of it (for a run on this thread: never transferred).
 */
export function mergeFeeds(
  requests: readonly (readonly WireTensor[])[],
  total: number,
  slab?: FeedSlab,
): WireTensor[] {
  return requests[0]!.map((feed, f) => ({
    ...feed,
    dims: [total, ...feed.dims.slice(1)],
    data: concatTensorData(
      requests.map((feeds) => feeds[f]!.data),
      slab,
    ),
  }));
}
