import { describe, expect, it } from 'vitest';
import type { DataType } from 'apache-arrow';
import type { TensorElementType } from '@quoll/client/wire';
import { allocateNumeric } from './tensor-data.js';
import { tensorArrowType, valuesArrowType } from './tensor-arrow-type.js';

/** An Arrow type as it names itself ("Float32"). */
const typeName = (type: DataType): string => (type as { toString(): string }).toString();

const NUMERIC: TensorElementType[] = [
  'float32',
  'float64',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
];

describe('tensorArrowType and valuesArrowType: one table', () => {
  it('types the values a numeric element type is fed in as that element type', () => {
    for (const type of NUMERIC) {
      const { data } = allocateNumeric(type, 1, 'x');
      expect(typeName(valuesArrowType(data)), type).toBe(typeName(tensorArrowType(type)));
    }
  });

  it('types bool and float16 outputs as Arrow Bool and Float16, and their typed arrays as uint8 and uint16', () => {
    expect(typeName(tensorArrowType('bool'))).toBe('Bool');
    expect(typeName(tensorArrowType('float16'))).toBe('Float16');
    expect(typeName(tensorArrowType('string'))).toBe('Utf8');
    expect(typeName(valuesArrowType(allocateNumeric('bool', 1, 'x').data))).toBe('Uint8');
    expect(typeName(valuesArrowType(new Uint16Array(1)))).toBe('Uint16');
  });
});
