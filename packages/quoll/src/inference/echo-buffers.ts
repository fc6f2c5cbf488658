/**
 * Reused buffers for the float64 input columns a model worker decodes from a JSON records body
 * and sends back with the answer (the answer and the inference log echo them, exactly).
 *
 * Each request's columns used to be a new ArrayBuffer (≈ 150 KB for 1000 rows of 18 values)
 * that the HTTP thread's isolate freed only when a garbage collection found it dead; enough of
 * them outlived a young-generation collection that the isolate's ArrayBuffer memory climbed to
 * V8's external-memory limit and set off a mark-compact every few dozen requests. Instead they
 * circulate: the worker fills buffers from its pool, transfers them with the answer, the HTTP
 * thread holds them under a `BufferLease` until the answer is encoded and the log no longer
 * reads them, then they ride back to a worker on its next `infer-records` message (transferring
 * detaches them here at once, so their memory leaves this isolate's count without a
 * collection).
 *
 * One pool per thread (this module's instance in each): on a model worker the buffers its scans
 * take from, on the HTTP thread those waiting to go back.
 */
export class EchoBufferPool {
  readonly #maxBuffers: number;
  readonly #maxBytes: number;
  readonly #free: ArrayBuffer[] = [];
  #bytes = 0;

  constructor(maxBuffers: number, maxBytes: number) {
    this.#maxBuffers = maxBuffers;
    this.#maxBytes = maxBytes;
  }

  /** Buffers kept. */
  get size(): number {
    return this.#free.length;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Keeps a buffer nobody reads any more for reuse; a detached one (sent elsewhere), a small one
   * or one over the pool's caps is left to the garbage collector.
   */
  give(buffer: ArrayBuffer): void {
    const size = buffer.byteLength;
    if (size < MIN_POOLED_BYTES || size > MAX_POOLED_BYTES) return;
    if (this.#free.length >= this.#maxBuffers || this.#bytes + size > this.#maxBytes) return;
    this.#free.push(buffer);
    this.#bytes += size;
  }

  /** A buffer of at least `bytes`: the smallest kept that fits, or a new one of the size class above `bytes`. */
  take(bytes: number): ArrayBuffer {
    const free = this.#free;
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const size = free[i]!.byteLength;
      if (size >= bytes && (best === -1 || size < free[best]!.byteLength)) best = i;
    }
    if (best === -1) return new ArrayBuffer(sizeClass(bytes));
    const buffer = free[best]!;
    free[best] = free[free.length - 1]!;
    free.pop();
    this.#bytes -= buffer.byteLength;
    return buffer;
  }

  /** Removes and returns up to `max` kept buffers (to transfer to a worker), most recently given first. */
  drain(max: number): ArrayBuffer[] {
    const out: ArrayBuffer[] = [];
    while (out.length < max && this.#free.length > 0) {
      const buffer = this.#free.pop()!;
      this.#bytes -= buffer.byteLength;
      // A buffer detached meanwhile cannot be sent (transferring it throws).
      if (buffer.byteLength > 0) out.push(buffer);
    }
    return out;
  }
}

/** Buffers below this are not pooled (a scan's first-row columns; cheap to allocate). */
const MIN_POOLED_BYTES = 4 * 1024;
/** Nor above this (a rare huge body should not pin its memory). */
const MAX_POOLED_BYTES = 8 * 1024 * 1024;

/**
 * `bytes` rounded up to one of 8 steps per power of two (at most 1/8 over), so that bodies of
 * about one size reuse each other's buffers.
 */
function sizeClass(bytes: number): number {
  if (bytes <= MIN_POOLED_BYTES) return Math.max(8, Math.ceil(bytes / 8) * 8);
  const step = 2 ** Math.floor(Math.log2(bytes)) / 8;
  return Math.ceil(bytes / step) * step;
}

/** This thread's pool (see {@link EchoBufferPool}). */
export const echoBuffers = new EchoBufferPool(256, 32 * 1024 * 1024);

/** Buffers sent back to a worker with one `infer-records` message, at most. */
export const ECHO_BUFFERS_PER_MESSAGE = 32;
