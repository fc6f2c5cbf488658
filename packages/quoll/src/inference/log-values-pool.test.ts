import { describe, expect, it } from 'vitest';
import { LOG_SLAB_MAX_BYTES } from './feed-slab.js';
import { LogValuesPool } from './log-values-pool.js';

/** Elements of an array just above the slab's largest region (batch 100 × 18 is 1800). */
const BIG = LOG_SLAB_MAX_BYTES / 8 + 1;

describe('LogValuesPool', () => {
  it('hands an array given back to the next take of its length, and a fresh one for another length or an empty pool', () => {
    const pool = new LogValuesPool();
    const a = pool.take(Float64Array, 1800);
    expect(a).toHaveLength(1800);
    expect(a.buffer.byteLength).toBe(1800 * 8);
    pool.give(a);
    // Another length: not the array given back.
    const other = pool.take(Float64Array, 1801);
    expect(other).not.toBe(a);
    expect(pool.take(Float64Array, 1800)).toBe(a);
    // Taken: not handed out twice.
    expect(pool.take(Float64Array, 1800)).not.toBe(a);
  });

  it('keeps Float32 and Float64 arrays of one length apart: a take gets an array of the type it asks for', () => {
    // A Float32 log copy of a float32 feed (feedlog lane) given back must never serve a Float64
    // take of the same length (its values would be rounded to Float32 as written), nor the reverse.
    const pool = new LogValuesPool();
    const f32 = pool.take(Float32Array, 1800);
    expect(f32).toBeInstanceOf(Float32Array);
    pool.give(f32);
    const f64 = pool.take(Float64Array, 1800);
    expect(f64).toBeInstanceOf(Float64Array);
    f64[0] = 0.1;
    expect(f64[0]).toBe(0.1);
    pool.give(f64);
    expect(pool.take(Float32Array, 1800)).toBe(f32);
    expect(pool.take(Float64Array, 1800)).toBe(f64);
    // Same byte length, other type (3600 float32 = 1800 float64 bytes): still apart.
    pool.give(pool.take(Float32Array, 3600));
    expect(pool.take(Float64Array, 1800)).toBeInstanceOf(Float64Array);
  });

  it('carves small arrays out of its slab (as the log slab did) and never keeps them', () => {
    const pool = new LogValuesPool();
    const small = pool.take(Float64Array, 18);
    const next = pool.take(Float64Array, 18);
    expect(small.buffer).toBe(next.buffer);
    expect(small.buffer.byteLength).toBeGreaterThan(small.byteLength);
    pool.give(small);
    expect(pool.pooledBytes).toBe(0);
    const again = pool.take(Float64Array, 18);
    expect(again).not.toBe(small);
    expect(again.byteOffset).toBeGreaterThan(next.byteOffset);
  });

  it('keeps each array once, only arrays of a buffer of their own, and at most its byte cap', () => {
    const pool = new LogValuesPool(3 * BIG * 8);
    const a = pool.take(Float64Array, BIG);
    pool.give(a);
    pool.give(a);
    expect(pool.pooledBytes).toBe(BIG * 8);
    expect(pool.take(Float64Array, BIG)).toBe(a);
    expect(pool.take(Float64Array, BIG)).not.toBe(a);
    // A view of a larger buffer: someone else's storage, never kept.
    pool.give(new Float64Array(new ArrayBuffer(BIG * 16), 0, BIG));
    pool.give(new Float64Array(new ArrayBuffer(BIG * 16), BIG * 8, BIG));
    expect(pool.pooledBytes).toBe(0);
    const arrays = Array.from({ length: 5 }, () => new Float64Array(BIG));
    for (const array of arrays) pool.give(array);
    expect(pool.pooledBytes).toBe(3 * BIG * 8);
  });
});
