import { describe, expect, it } from 'vitest';
import { BufferLease, leaseOf } from './buffer-lease.js';

describe('BufferLease', () => {
  it('frees its buffers once, when the last holder lets go, and is found from each of them until then', () => {
    const a = new ArrayBuffer(8);
    const b = new ArrayBuffer(16);
    const freed: (readonly ArrayBuffer[])[] = [];
    const lease = new BufferLease([a, b], (buffers) => freed.push(buffers));
    expect(leaseOf(a)).toBe(lease);
    expect(leaseOf(b)).toBe(lease);
    lease.retain();
    lease.release();
    expect(freed).toEqual([]);
    expect(lease.held).toBe(true);
    lease.release();
    expect(freed).toEqual([[a, b]]);
    expect(lease.held).toBe(false);
    // Still found, freed: a reader that comes late can tell.
    expect(leaseOf(a)?.held).toBe(false);
  });

  it('refuses a retain after it is freed and a release more than held (the buffers may be written again)', () => {
    const lease = new BufferLease([new ArrayBuffer(8)], () => {});
    lease.release();
    expect(() => lease.retain()).toThrow(/after it was freed/);
    expect(() => lease.release()).toThrow(/more often than held/);
  });

  it('knows no lease for a buffer nobody leased', () => {
    expect(leaseOf(new ArrayBuffer(8))).toBeUndefined();
  });
});
