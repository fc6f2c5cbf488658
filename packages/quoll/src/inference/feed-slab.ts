/** Bytes of one slab of a {@link FeedSlab}. */
export const FEED_SLAB_BYTES = 8 * 1024;

/**
 * Feeds of at most this many bytes are carved out of a slab; larger ones get a buffer of their
 * own. A merged inline run of 16 batch-1 requests of 18 float32 is 1152 bytes.
 */
export const FEED_SLAB_MAX_BYTES = 2 * 1024;

/**
 * The slab the inference log's copies of JSON records columns (`RecordValues`) are
 * carved from (`Deployment`): sized like the feeds', so that a small logged result, or a source
 * the log keeps until its writer confirms it, pins at most this many bytes (not counted by the
 * staging's backpressure), a few times its own regions.
 */
export const LOG_SLAB_BYTES = FEED_SLAB_BYTES;

/** The largest log copy carved out of a log slab; larger ones (batch 100 × 18: 14 KiB) get an array of their own. */
export const LOG_SLAB_MAX_BYTES = FEED_SLAB_MAX_BYTES;

/** A typed-array constructor of the numeric feeds (`allocateNumeric`). */
export interface NumericArrayConstructor<T> {
  new (length: number): T;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Storage for the small feeds of the calling thread's requests, carved one after the other out
 * of a slab of {@link FEED_SLAB_BYTES}, as Node.js carves small Buffers out of its pool: a JSON
 * batch-1 feed (18 float32, 72 bytes) was an ArrayBuffer of its own per request, which costs a
 * malloc, a free and the scavenger's `sweep_array_buffers` and the V8 platform threads' sweeping
 * (on the same core as the HTTP thread when it is pinned to one). Carved, a slab serves ~100
 * requests. Feeds of 64 bytes or less are carved too: V8 keeps such a typed array on its heap
 * only until something reads its `.buffer`, and onnxruntime-node's binding reads it on every run
 * (`napi_get_typedarray_info`), which gives it an off-heap ArrayBuffer of its own all the same.
 *
 * A region is never handed out twice: the next one starts past it, and a full slab is dropped
 * (it stays alive while a feed views it), never rewound. So a feed cannot be seen or written by
 * a later request. Answers never view a feed (onnxruntime-node copies its outputs; a result keeps
 * the request's records and outputs); the inference log does: a JSON column that feeds only
 * float32 inputs is logged as its feed (`buildFeeds`' `RecordValues`), which a carved feed's log
 * source or log table views until the log's staging copies it. So what keeps a slab alive is a
 * job still queued or running whose feeds view it (the inline queues, a pending worker run's
 * closure) or a logged result not yet copied by the log: at most one {@link FEED_SLAB_BYTES}
 * each, as the log's own slab (`LOG_SLAB_BYTES`).
 *
 * A carved feed is a view into a larger buffer: it can never be transferred (`transferList`
 * leaves such views; a worker's message copies it, see `WorkerHandle.infer`), so nothing detaches
 * a slab another feed views.
 */
export class FeedSlab {
  #slab: ArrayBuffer | null = null;
  #used = 0;
  readonly #slabBytes: number;
  readonly #maxBytes: number;

  /**
   * `slabBytes` per slab, regions of at most `maxBytes` carved (the defaults are the feeds'). A
   * region keeps its whole slab alive, so keep `slabBytes` a small multiple of `maxBytes`.
   */
  constructor(slabBytes = FEED_SLAB_BYTES, maxBytes = FEED_SLAB_MAX_BYTES) {
    this.#slabBytes = slabBytes;
    this.#maxBytes = Math.min(maxBytes, slabBytes);
  }

  /**
   * `length` elements of `Type`, zeroed: carved out of the current slab, or of a new one when it
   * is full; made as `new Type(length)` (a buffer of their own, or the same RangeError as before)
   * when over the largest region carved, empty, or not a size at all (negative, NaN: a NaN
   * `#used` would make the next region start at 0 again, over regions already handed out).
   */
  take<T>(Type: NumericArrayConstructor<T>, length: number): T {
    const bytes = length * Type.BYTES_PER_ELEMENT;
    if (!(bytes > 0 && bytes <= this.#maxBytes)) return new Type(length);
    // Aligned to 8 bytes, so that every element type's view may start there.
    let at = (this.#used + 7) & ~7;
    if (this.#slab === null || at + bytes > this.#slabBytes) {
      this.#slab = new ArrayBuffer(this.#slabBytes);
      at = 0;
    }
    this.#used = at + bytes;
    return new Type(this.#slab, at, length);
  }
}
