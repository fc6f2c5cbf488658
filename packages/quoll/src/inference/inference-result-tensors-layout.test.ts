import { AssertionError } from 'node:assert';
import { describe, expect, it } from 'vitest';
import { InferenceResult } from './inference-result.js';
import type { InputTensor } from './inference-input.js';
import type { WireTensor } from './tensor-data.js';

const TIME = 1_733_200_000_456;

function result(tensors: InputTensor[]): InferenceResult {
  const output: WireTensor = { name: 'o', type: 'float32', dims: [1, 1], data: Float32Array.from([0.5]) };
  const input = { kind: 'tensors' as const, tensors, rows: 1 };
  return new InferenceResult(
    input,
    tensors.map((tensor) => tensor.name),
    [output],
    1,
    TIME,
  );
}

describe('InferenceResult of tensors: the shared layout', () => {
  // An OIP input name is any non-empty string. One tensor named so that its name, type and
  // dimensions spell the layout key of two other tensors (x [1, 4] and y [1, 2], FP32) must not
  // get their layout: its log rows would be written under a schema of two input columns (the
  // inference log writer then fails, and later appends never settle).
  it('a tensor whose name holds the layout key separators gets a schema of its own', () => {
    const two = result([
      { name: 'x', shape: [1, 4], values: Float32Array.from([1, 2, 3, 4]) },
      { name: 'y', shape: [1, 2], values: Float32Array.from([5, 6]) },
    ]);
    expect(two.toArrowTable().schema.fields.map((field) => field.name)).toEqual([
      'time',
      'in.x',
      'in.y',
      'out.o',
      'check_failures',
    ]);
    const crafted = 'x\u0000Float32Array,4\u0001y';
    const one = result([{ name: crafted, shape: [1, 2], values: Float32Array.from([7, 8]) }]);
    const expected = ['time', `in.${crafted}`, 'out.o', 'check_failures'];
    expect(one.logRows().schema.fields.map((field) => field.name)).toEqual(expected);
    expect(one.toArrowTable().schema.fields.map((field) => field.name)).toEqual(expected);
  });
});

describe('InferenceResult of tensors: a zero-size dimension', () => {
  // OIP takes shape [2, 0] (every dimension at least 0). Its in.* column must hold a row per
  // row (each an empty list), as the log rows written straight from the tensor do; a column of
  // length 0 under 2 rows is what the log takes whenever it logs the table (a bool output, or
  // a big request on base), and it reads back as null rows.
  it('the table column of an [N, 0] tensor has N rows of empty lists', () => {
    const tensors: InputTensor[] = [{ name: 'x', shape: [2, 0], values: new Float32Array(0) }];
    const output: WireTensor = { name: 'o', type: 'bool', dims: [2, 1], data: Uint8Array.from([1, 0]) };
    const answer = new InferenceResult({ kind: 'tensors', tensors, rows: 2 }, ['x'], [output], 2, TIME);
    const column = answer.toArrowTable().getChild('in.x')!;
    expect(column.data.map((data) => data.length)).toEqual([2]);
    expect([...column].map((row) => (row === null ? null : [...(row as Iterable<number>)]))).toEqual([
      [],
      [],
    ]);
  });
});

describe('InferenceResult of tensors: its columns', () => {
  // A request's columns are its tensors' names (inputColumns), so a column without a tensor is
  // a defect of the caller, not of the request: an assertion says so (not a plain Error, which
  // read like a refusal of the request).
  it('asserts that every column has its tensor', () => {
    const tensors: InputTensor[] = [{ name: 'x', shape: [1, 1], values: Float32Array.from([1]) }];
    const output: WireTensor = { name: 'o', type: 'float32', dims: [1, 1], data: Float32Array.from([0.5]) };
    const answer = new InferenceResult({ kind: 'tensors', tensors, rows: 1 }, ['y'], [output], 1, TIME);
    expect(() => answer.logRows()).toThrow(AssertionError);
    expect(() => answer.toArrowTable()).toThrow(/column "y" has no input tensor/);
  });
});
