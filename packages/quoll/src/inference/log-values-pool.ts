import { FeedSlab, LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES } from './feed-slab.js';

/**
 * Bytes of arrays a {@link LogValuesPool} keeps for reuse, at most: nine batch-100 × 18 arrays
 * (14 KiB each), more than the requests a deployment has in flight at once on the HTTP thread.
 */
export const LOG_VALUES_POOL_BYTES = 128 * 1024;

/** Lengths a pool keeps arrays of, at most (a deployment sees few batch sizes). */
const POOL_MAX_LENGTHS = 32;

/**
 * Storage of the inference log's Float64 copies of JSON records columns (`RecordValues`) of a
 * deployment, on the calling thread. Small ones (at most {@link LOG_SLAB_MAX_BYTES}) are carved
 * out of a slab ({@link FeedSlab}: never handed out twice, never given back). Larger ones (batch
 * 100 × 18: 14 KiB) are arrays of their own which the result gives back ({@link give}) once
 * nothing can read them again — the log's staging copied them and no table views them (see
 * `InferenceResult.release`) — so that the next request of that size writes into the same array
 * instead of a fresh one: a malloc, a free and a memset of 14 KiB a request on the HTTP thread.
 *
 * An array taken from the pool holds an earlier request's values: the caller writes every
 * element (the records walk does: a column gets values only when every row filled its width).
 */
export class LogValuesPool {
  readonly #slab = new FeedSlab(LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES);
  /** Arrays given back, by length. */
  readonly #free = new Map<number, Float64Array[]>();
  readonly #maxBytes: number;
  #bytes = 0;

  /** `maxBytes`: the most the pool keeps (@default {@link LOG_VALUES_POOL_BYTES}). */
  constructor(maxBytes = LOG_VALUES_POOL_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes of the arrays kept for reuse (for tests and diagnostics). */
  get pooledBytes(): number {
    return this.#bytes;
  }

  /**
   * `length` Float64 elements: carved from the slab (zeroed) when small, else an array given
   * back earlier (holding its old values: write every element) or a new one. `Type` is always
   * `Float64Array` (the signature of `FeedSlab.take`, so that either serves `RecordValues`).
   */
  take(Type: Float64ArrayConstructor, length: number): Float64Array {
    if (!(length * Type.BYTES_PER_ELEMENT > LOG_SLAB_MAX_BYTES)) return this.#slab.take(Type, length);
    const pooled = this.#free.get(length)?.pop();
    if (pooled === undefined) return new Type(length);
    this.#bytes -= pooled.byteLength;
    return pooled;
  }

  /**
   * Keeps `values` for a later {@link take} of its length. Only the caller that took it may give
   * it back, and only once nothing will read or write it again. Arrays carved from the slab, or
   * that view part of a larger buffer (not the pool's), are not kept; nor any beyond the pool's
   * byte cap. An array already kept is not kept twice.
   */
  give(values: Float64Array): void {
    const bytes = values.byteLength;
    if (bytes <= LOG_SLAB_MAX_BYTES || values.byteOffset !== 0 || values.buffer.byteLength !== bytes) return;
    if (this.#bytes + bytes > this.#maxBytes) return;
    let free = this.#free.get(values.length);
    if (free === undefined) {
      if (this.#free.size >= POOL_MAX_LENGTHS) return;
      free = [];
      this.#free.set(values.length, free);
    } else if (free.includes(values)) return;
    free.push(values);
    this.#bytes += bytes;
  }
}
