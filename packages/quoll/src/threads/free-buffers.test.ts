import { markAsUntransferable } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { freeBuffers } from './free-buffers.js';

describe('freeBuffers', () => {
  it('detaches the buffers, so their memory goes now and not at a later garbage collection', () => {
    const a = new Float32Array(1000);
    const b = new ArrayBuffer(72_000);
    const before = process.memoryUsage().arrayBuffers;
    freeBuffers([a.buffer, b]);
    expect(a.length).toBe(0);
    expect(b.byteLength).toBe(0);
    expect(process.memoryUsage().arrayBuffers).toBeLessThanOrEqual(before - 72_000);
  });

  it('leaves what it cannot free and frees the rest: shared, untransferable, detached, twice given', () => {
    const shared = new SharedArrayBuffer(16);
    const pinned = new ArrayBuffer(64);
    markAsUntransferable(pinned);
    const gone = new ArrayBuffer(8);
    freeBuffers([gone]);
    const plain = new ArrayBuffer(32);
    expect(() =>
      freeBuffers([shared as unknown as ArrayBuffer, pinned, gone, plain, plain, new ArrayBuffer(0)]),
    ).not.toThrow();
    expect(shared.byteLength).toBe(16);
    expect(pinned.byteLength).toBe(64);
    expect(plain.byteLength).toBe(0);
  });
});
