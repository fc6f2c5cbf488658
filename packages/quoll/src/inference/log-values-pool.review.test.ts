import { describe, expect, it } from 'vitest';
import { LOG_SLAB_MAX_BYTES } from './feed-slab.js';
import { LOG_VALUES_POOL_BYTES, LogValuesPool } from './log-values-pool.js';

/** Elements of an array just above the slab's largest region (pooled sizes start here). */
const BIG = LOG_SLAB_MAX_BYTES / 8 + 1;
/** A JSON batch-100 × 18 request's log copy: the length the pool is for. */
const USUAL = 100 * 18;

describe('review logfill: the pool keeps serving the length a deployment uses now', () => {
  it('a length whose arrays were all taken back gives up its slot: after 32 other batch sizes came and went, batch 100 is still pooled', () => {
    const pool = new LogValuesPool();
    // 32 other batch sizes, each seen once (a request, its values given back, the next of that
    // size taking them): the pool ends empty.
    for (let i = 0; i < 32; i++) {
      const length = BIG + i;
      pool.give(pool.take(Float64Array, length));
      pool.take(Float64Array, length);
    }
    expect(pool.pooledBytes).toBe(0);
    // The deployment's usual batch now: given back, it should be there for the next request.
    const usual = pool.take(Float64Array, USUAL);
    pool.give(usual);
    expect(pool.pooledBytes).toBe(usual.byteLength);
    expect(pool.take(Float64Array, USUAL)).toBe(usual);
  });

  it('arrays of a length never asked for again do not keep the usual length out of the pool for good (no eviction under the byte cap)', () => {
    const pool = new LogValuesPool();
    // One burst of 8 requests in flight at once of 110 rows × 18 (15 840 B each, 126 720 B in all:
    // under the 128 KiB cap), all given back; that batch size never comes again.
    const burstLength = 110 * 18;
    const burst = Array.from({ length: 8 }, () => pool.take(Float64Array, burstLength));
    for (const array of burst) pool.give(array);
    expect(pool.pooledBytes).toBe(8 * burstLength * 8);
    expect(pool.pooledBytes).toBeLessThanOrEqual(LOG_VALUES_POOL_BYTES);
    // From then on, batch-100 requests one after another: each one's array should be reused by
    // the next (what the pool is for), not a fresh 14 KiB array every request.
    const first = pool.take(Float64Array, USUAL);
    pool.give(first);
    expect(pool.take(Float64Array, USUAL)).toBe(first);
  });
});
