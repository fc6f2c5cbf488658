import { describe, expect, it } from 'vitest';
import { firstNonFinite } from './tensor-data.js';

const FLOAT32_MAX = 3.4028234663852886e38;

describe('firstNonFinite', () => {
  it('returns -1 when every value is finite, extremes, zeros and subnormals included', () => {
    const values = [0, -0, 1, -1, FLOAT32_MAX, -FLOAT32_MAX, 1e-45, -1e-45, 12.5];
    expect(firstNonFinite(new Float32Array(values))).toBe(-1);
    expect(firstNonFinite(new Float64Array([...values, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324]))).toBe(
      -1,
    );
    expect(firstNonFinite(new Float32Array(0))).toBe(-1);
  });

  it('finds the first NaN or ±Infinity at every position of a group of four and of the tail', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      for (const length of [1, 3, 4, 5, 8, 11, 18]) {
        for (let at = 0; at < length; at++) {
          const f32 = new Float32Array(length).fill(2.5);
          f32[at] = bad;
          expect(firstNonFinite(f32)).toBe(at);
          const f64 = new Float64Array(length).fill(-7);
          f64[at] = bad;
          expect(firstNonFinite(f64)).toBe(at);
        }
      }
    }
  });

  it('names the first of several bad values, also when a later group holds one too', () => {
    const data = new Float32Array(18000).map((_, i) => Math.sin(i) * 1000);
    data[17001] = Number.NaN;
    data[9006] = Number.POSITIVE_INFINITY;
    data[9007] = Number.NaN;
    expect(firstNonFinite(data)).toBe(9006);
    // Large finite float64 values whose sum of products is still 0 are not taken for bad ones.
    expect(firstNonFinite(new Float64Array([1e308, 1e308, 1e308, 1e308, Number.NaN]))).toBe(4);
  });
});
