import { describe, expect, it } from 'vitest';
import type { TensorInfoDto } from '@quoll/client/wire';
import { bindColumns } from './input-binding.js';
import { logFloat32Flags } from './log-float32-flags.js';

const input = (name: string, type: TensorInfoDto['type']): TensorInfoDto => ({
  name,
  type,
  shape: [null, 2],
});

describe('logFloat32Flags', () => {
  it('flags each column bound to a float32 input, by name, by position or by tensorFields', () => {
    expect(
      logFloat32Flags(['tensor'], bindColumns(['tensor'], [input('float_input', 'float32')], null)),
    ).toEqual([true]);
    const inputs = [input('a', 'float32'), input('b', 'float64'), input('c', 'int64')];
    expect(logFloat32Flags(['c', 'b', 'a'], bindColumns(['c', 'b', 'a'], inputs, null))).toEqual([
      false,
      false,
      true,
    ]);
    expect(logFloat32Flags(['x', 'y', 'z'], bindColumns(['x', 'y', 'z'], inputs, ['y', 'x', 'z']))).toEqual([
      false,
      true,
      false,
    ]);
  });

  it('is null when no column is logged as Float32', () => {
    expect(logFloat32Flags(['b'], bindColumns(['b'], [input('b', 'float64')], null))).toBeNull();
  });

  it('keeps a column that also feeds an input of another type as sent: the log cannot hold both, and the rounding loses that input’s values', () => {
    // tensorFields may name one column for several inputs: "a" feeds a float32 and a float64 input.
    const inputs = [input('f32', 'float32'), input('f64', 'float64')];
    const bindings = bindColumns(['a'], inputs, ['a', 'a']);
    expect(bindings.map((binding) => binding.column)).toEqual(['a', 'a']);
    expect(logFloat32Flags(['a'], bindings)).toBeNull();
    // Both float32: logged as Float32.
    expect(
      logFloat32Flags(['a'], bindColumns(['a'], [input('p', 'float32'), input('q', 'float32')], ['a', 'a'])),
    ).toEqual([true]);
  });
});
