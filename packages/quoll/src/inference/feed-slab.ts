/** Bytes of one slab of a {@link FeedSlab}. */
export const FEED_SLAB_BYTES = 8 * 1024;

/**
 * Feeds of at most this many bytes are carved out of a slab; larger ones get a buffer of their
 * own. A merged inline run of 16 batch-1 requests of 18 float32 is 1152 bytes.
 */
export const FEED_SLAB_MAX_BYTES = 2 * 1024;

/**
 * Typed arrays of at most this many bytes live on V8's heap (`typed_array_max_size_in_heap`),
 * without an ArrayBuffer of their own: they are not carved.
 */
const ON_HEAP_MAX_BYTES = 64;

/** A typed-array constructor of the numeric feeds (`allocateNumeric`). */
export interface NumericArrayConstructor<T> {
  new (length: number): T;
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * Storage for the small feeds of the calling thread's requests, carved one after the other out
 * of a slab of {@link FEED_SLAB_BYTES}, as Node.js carves small Buffers out of its pool: a JSON
 * batch-1 feed (18 float32, 72 bytes: over the 64 bytes V8 keeps a typed array on its heap) was
 * an ArrayBuffer of its own per request, which costs a malloc, a free and the scavenger's
 * `sweep_array_buffers` and the V8 platform threads' sweeping (on the same core as the HTTP
 * thread when it is pinned to one). Carved, a slab serves ~100 requests.
 *
 * A region is never handed out twice: the next one starts past it, and a full slab is dropped
 * (it stays alive while a feed views it), never rewound. So a feed cannot be seen or written by
 * a later request; what it costs is that one feed kept alive (an answer, a log batch kept as
 * it is) keeps its whole slab (8 KiB at most) alive.
 *
 * A carved feed is a view into a larger buffer: it can never be transferred (`transferList`
 * leaves such views; a worker's message copies it, see `WorkerHandle.infer`), so nothing detaches
 * a slab another feed views.
 */
export class FeedSlab {
  #slab: ArrayBuffer | null = null;
  #used = 0;

  /**
   * `length` elements of `Type`, zeroed: carved out of the current slab, or of a new one when it
   * is full; made as `new Type(length)` when over {@link FEED_SLAB_MAX_BYTES} (a buffer of their
   * own) or small enough to live on V8's heap.
   */
  take<T>(Type: NumericArrayConstructor<T>, length: number): T {
    const bytes = length * Type.BYTES_PER_ELEMENT;
    if (bytes <= ON_HEAP_MAX_BYTES || bytes > FEED_SLAB_MAX_BYTES) return new Type(length);
    // Aligned to 8 bytes, so that every element type's view may start there.
    let at = (this.#used + 7) & ~7;
    if (this.#slab === null || at + bytes > FEED_SLAB_BYTES) {
      this.#slab = new ArrayBuffer(FEED_SLAB_BYTES);
      at = 0;
    }
    this.#used = at + bytes;
    return new Type(this.#slab, at, length);
  }
}
