import type { TensorElementType } from '@quoll/client/wire';
import { ApiError } from '../server/api-error.js';

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
  /** Writes `value` at `index`, converting it to the element type; false when it cannot be (NaN into an int64). */
  set(index: number, value: number): boolean;
}

/**
 * Allocates `length` elements for `type` and a setter that casts numbers the way numpy's
 * `astype` does (truncation for integers). float16 and string inputs cannot be fed from numbers.
 */
export function allocateNumeric(type: TensorElementType, length: number, column: string): NumericSink {
  switch (type) {
    case 'float32':
      return plain(new Float32Array(length));
    case 'float64':
      return plain(new Float64Array(length));
    case 'int8':
      return plain(new Int8Array(length));
    case 'int16':
      return plain(new Int16Array(length));
    case 'int32':
      return plain(new Int32Array(length));
    case 'uint8':
    case 'bool':
      return plain(new Uint8Array(length));
    case 'uint16':
      return plain(new Uint16Array(length));
    case 'uint32':
      return plain(new Uint32Array(length));
    case 'int64': {
      const data = new BigInt64Array(length);
      return {
        data,
        set(index, value) {
          if (!Number.isFinite(value)) return false;
          data[index] = BigInt(Math.trunc(value));
          return true;
        },
      };
    }
    case 'uint64': {
      const data = new BigUint64Array(length);
      return {
        data,
        set(index, value) {
          if (!Number.isFinite(value) || value < 0) return false;
          data[index] = BigInt(Math.trunc(value));
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

function plain(data: Exclude<TensorData, string[] | BigInt64Array | BigUint64Array>): NumericSink {
  return {
    data,
    set(index, value) {
      data[index] = value;
      return true;
    },
  };
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
  const sink = allocateNumeric(type, data.length, name);
  for (let i = 0; i < data.length; i++) sink.set(i, Number(data[i]));
  return sink.data;
}

/** The transferable buffers of some tensors, so postMessage moves them instead of copying. */
export function transferList(tensors: readonly WireTensor[]): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  for (const tensor of tensors) {
    if (Array.isArray(tensor.data)) continue;
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

/** The number of elements of one row (the product of all dimensions after the batch one). */
export function rowWidth(dims: readonly number[]): number {
  let width = 1;
  for (let i = 1; i < dims.length; i++) width *= dims[i] ?? 1;
  return width;
}

/** Concatenates tensor values along the row axis (one copy). */
export function concatTensorData(parts: readonly TensorData[]): TensorData {
  const first = parts[0];
  if (!first) return new Float32Array(0);
  if (parts.length === 1) return first;
  if (Array.isArray(first)) return (parts as string[][]).flat();
  const numeric = parts as readonly Exclude<TensorData, string[]>[];
  const total = numeric.reduce((sum, part) => sum + part.length, 0);
  const out = new (first.constructor as new (length: number) => Exclude<TensorData, string[]>)(total);
  let offset = 0;
  for (const part of numeric) {
    // Same constructor on both sides, so set() copies element for element.
    (out as Float32Array).set(part as Float32Array, offset);
    offset += part.length;
  }
  return out;
}
