import { describe, expect, it } from 'vitest';
import { EchoBufferPool } from './echo-buffers.js';

describe('EchoBufferPool', () => {
  it('gives back the smallest kept buffer that fits, and a new one of a size class when none does', () => {
    const pool = new EchoBufferPool(8, 1 << 20);
    const small = new ArrayBuffer(8 * 1024);
    const big = new ArrayBuffer(64 * 1024);
    pool.give(big);
    pool.give(small);
    expect(pool.take(6 * 1024)).toBe(small);
    expect(pool.take(6 * 1024)).toBe(big);
    const fresh = pool.take(150_000);
    // One of 8 steps per power of two: at most 1/8 over what was asked.
    expect(fresh.byteLength).toBeGreaterThanOrEqual(150_000);
    expect(fresh.byteLength).toBeLessThanOrEqual(150_000 * 1.125);
    expect(fresh.byteLength % 8).toBe(0);
    expect(pool.size).toBe(0);
    expect(pool.bytes).toBe(0);
  });

  it('keeps no small, detached or over-cap buffer, and drains the kept ones for a worker', () => {
    const pool = new EchoBufferPool(2, 40 * 1024);
    pool.give(new ArrayBuffer(1024));
    const gone = new ArrayBuffer(8 * 1024);
    structuredClone(gone, { transfer: [gone] });
    pool.give(gone);
    expect(pool.size).toBe(0);
    const a = new ArrayBuffer(16 * 1024);
    const b = new ArrayBuffer(16 * 1024);
    pool.give(a);
    pool.give(b);
    pool.give(new ArrayBuffer(16 * 1024));
    expect(pool.size).toBe(2);
    expect(pool.bytes).toBe(32 * 1024);
    expect(pool.drain(1)).toEqual([b]);
    // Detached while kept (sent elsewhere by mistake): not sent again.
    structuredClone(a, { transfer: [a] });
    expect(pool.drain(4)).toEqual([]);
    expect(pool.size).toBe(0);
  });
});
