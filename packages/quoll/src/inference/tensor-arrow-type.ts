import {
  Bool,
  Float16,
  Float32,
  Float64,
  Int16,
  Int32,
  Int64,
  Int8,
  Uint16,
  Uint32,
  Uint64,
  Uint8,
  Utf8,
} from 'apache-arrow';
import type { DataType } from 'apache-arrow';
import type { TensorElementType } from '@quoll/client/wire';
import type { TensorData } from './tensor-data.js';

type NumericValues = Exclude<TensorData, string[]>;

/**
 * The one table of how tensor values are typed in Arrow: per element type, its Arrow type and
 * the typed array its values come in. A typed array that stands for two element types (uint8
 * and bool, uint16 and float16) is typed as the first of them: request tensors come as typed
 * arrays only (an Open Inference BOOL input feeds, and is logged, as uint8).
 */
const ARROW_TYPES: readonly {
  element: TensorElementType;
  arrow: () => DataType;
  array: (abstract new (...args: never[]) => NumericValues) | null;
}[] = [
  { element: 'float32', arrow: () => new Float32(), array: Float32Array },
  { element: 'float64', arrow: () => new Float64(), array: Float64Array },
  { element: 'int8', arrow: () => new Int8(), array: Int8Array },
  { element: 'int16', arrow: () => new Int16(), array: Int16Array },
  { element: 'int32', arrow: () => new Int32(), array: Int32Array },
  { element: 'int64', arrow: () => new Int64(), array: BigInt64Array },
  { element: 'uint8', arrow: () => new Uint8(), array: Uint8Array },
  { element: 'uint16', arrow: () => new Uint16(), array: Uint16Array },
  { element: 'uint32', arrow: () => new Uint32(), array: Uint32Array },
  { element: 'uint64', arrow: () => new Uint64(), array: BigUint64Array },
  { element: 'float16', arrow: () => new Float16(), array: Uint16Array },
  { element: 'bool', arrow: () => new Bool(), array: Uint8Array },
  { element: 'string', arrow: () => new Utf8(), array: null },
];

const BY_ELEMENT = new Map(ARROW_TYPES.map((entry) => [entry.element, entry.arrow]));

/** The Arrow type of a tensor's values of element type `type` (a model output's). */
export function tensorArrowType(type: TensorElementType): DataType {
  const arrow = BY_ELEMENT.get(type);
  if (arrow === undefined) throw new TypeError(`no Arrow type for tensor element type ${String(type)}`);
  return arrow();
}

/** The Arrow type of a typed array's values (a request tensor's), from the same table. */
export function valuesArrowType(values: NumericValues): DataType {
  for (const entry of ARROW_TYPES)
    if (entry.array !== null && values instanceof entry.array) return entry.arrow();
  throw new TypeError(`no Arrow type for values of ${(values as object).constructor.name}`);
}
