import { FeedSlab, LOG_SLAB_BYTES, LOG_SLAB_MAX_BYTES } from './feed-slab.js';

/**
 * Bytes of arrays a {@link LogValuesPool} keeps for reuse, at most: nine batch-100 × 18 arrays
 * (14 KiB each), more than the requests a deployment has in flight at once on the HTTP thread.
 */
export const LOG_VALUES_POOL_BYTES = 128 * 1024;

/** Lengths a pool keeps arrays of, at most (a deployment sees few batch sizes). */
const POOL_MAX_LENGTHS = 32;

/**
 * Storage of the inference log's copies of JSON records columns (`RecordValues`: Float64 as
 * the records hold them, or Float32 copies of a column's float32 feed) of a deployment, on the
 * calling thread. Small ones (at most {@link LOG_SLAB_MAX_BYTES}) are carved
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
  /** Arrays given back, by {@link keyOf} (length and element type). */
  readonly #free = new Map<number, LogValues[]>();
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
   * `length` elements of `Type` (`Float64Array` or `Float32Array`, the signature of
   * `FeedSlab.take`, so that either serves `RecordValues`): carved from the slab (zeroed) when
   * small, else an array of that type given back earlier (holding its old values: write every
   * element) or a new one.
   */
  take(Type: Float64ArrayConstructor, length: number): Float64Array;
  take(Type: Float32ArrayConstructor, length: number): Float32Array;
  take(Type: Float64ArrayConstructor | Float32ArrayConstructor, length: number): LogValues {
    if (!(length * Type.BYTES_PER_ELEMENT > LOG_SLAB_MAX_BYTES))
      return this.#slab.take<LogValues>(Type, length);
    const key = keyOf(length, Type === Float32Array);
    const free = this.#free.get(key);
    const pooled = free?.pop();
    if (pooled === undefined) return new Type(length);
    // A length with nothing left gives up its slot (a batch size seen once keeps none).
    if (free!.length === 0) this.#free.delete(key);
    this.#bytes -= pooled.byteLength;
    return pooled;
  }

  /**
   * Keeps `values` for a later {@link take} of its length. Only the caller that took it may give
   * it back, and only once nothing will read or write it again. Arrays carved from the slab, or
   * that view part of a larger buffer (not the pool's), are not kept. Over the pool's byte cap or
   * its count of lengths, the arrays of the lengths given back longest ago are dropped to make
   * room; when the length's own arrays fill the cap, `values` is not kept. An array already kept
   * is not kept twice.
   */
  give(values: Float64Array | Float32Array): void {
    const bytes = values.byteLength;
    if (bytes <= LOG_SLAB_MAX_BYTES || values.byteOffset !== 0 || values.buffer.byteLength !== bytes) return;
    if (bytes > this.#maxBytes) return;
    const key = keyOf(values.length, values instanceof Float32Array);
    const free = this.#free.get(key) ?? [];
    if (free.includes(values)) return;
    // Room is made by dropping the arrays of the lengths given back longest ago (a batch size
    // that stopped coming), never those of the length the deployment gives back now.
    this.#free.delete(key);
    for (const [other, arrays] of this.#free) {
      if (this.#bytes + bytes <= this.#maxBytes && this.#free.size < POOL_MAX_LENGTHS) break;
      for (const array of arrays) this.#bytes -= array.byteLength;
      this.#free.delete(other);
    }
    if (this.#bytes + bytes > this.#maxBytes) {
      if (free.length > 0) this.#free.set(key, free);
      return;
    }
    free.push(values);
    // Last in the map's order: the most recently given length.
    this.#free.set(key, free);
    this.#bytes += bytes;
  }
}

type LogValues = Float64Array | Float32Array;

/** The key of arrays of `length` elements in the pool: Float64 and Float32 arrays apart. */
function keyOf(length: number, float32: boolean): number {
  return float32 ? -1 - length : length;
}
