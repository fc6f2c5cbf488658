/** Where a model worker's JSON decode stands, as the parent sees it (see {@link DecodeProgress}). */
export type DecodeState =
  { state: 'waiting' } | { state: 'decoding'; body: number; elapsedMs: number } | { state: 'decoded' };

// Int32 slots, then the start time as a BigInt64 (8-byte aligned).
const DECODING = 0;
const BODY = 1;
const DECODED = 2;
/** A slot nobody writes: the abandoned worker waits on it until it is terminated. */
const HALT = 3;
/** In `DECODING`: the parent abandoned the decode (message ids are positive). */
const ABANDONED = -1;
const SINCE_OFFSET = 16;
const BYTES = 24;

/**
 * Shared memory between a model worker and its parent: which `infer-records` message and which
 * of its bodies the worker is decoding, and since when, so the parent can abandon a body whose
 * decode overruns its own deadline without the worker sending a message per decode. Times are
 * `process.hrtime` (monotonic, one clock for every thread of the process), so neither a
 * wall-clock jump nor a long-lived worker can make a decode look overdue.
 *
 * The worker writes the start time before the body index, and the body index before the message
 * id, with sequentially consistent stores; the parent reads in the opposite order, so it never
 * pairs a body with an older start time (a read that races the next body sees a later start,
 * and only waits longer).
 */
export class DecodeProgress {
  readonly buffer: SharedArrayBuffer;
  readonly #slots: Int32Array;
  readonly #since: BigInt64Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(BYTES)) {
    this.buffer = buffer;
    this.#slots = new Int32Array(buffer, 0, 4);
    this.#since = new BigInt64Array(buffer, SINCE_OFFSET, 1);
  }

  /**
   * Worker: body `body` of message `message` starts decoding now. Never returns when the parent
   * has abandoned the decode (see {@link abandon}).
   */
  begin(message: number, body: number): void {
    Atomics.store(this.#since, 0, process.hrtime.bigint());
    Atomics.store(this.#slots, BODY, body);
    if (Atomics.exchange(this.#slots, DECODING, message) === ABANDONED) this.#halt();
  }

  /**
   * Worker: every body of message `message` is decoded (or refused). Never returns when the
   * parent has abandoned the decode, so an abandoned worker never starts the runs after it.
   */
  end(message: number): void {
    if (Atomics.compareExchange(this.#slots, DECODING, message, 0) !== message) this.#halt();
    Atomics.store(this.#slots, DECODED, message);
  }

  /**
   * Parent: claims the decode of message `message` as abandoned, so the worker stops at its
   * next step ({@link begin} or {@link end}) and the parent may terminate it; false when the
   * worker has already left the decode (it runs the model now, or waits for the next message).
   * onnxruntime-node aborts the whole process when its thread is terminated inside a model run:
   * this is what keeps a decode deadline from ever terminating one there.
   */
  abandon(message: number): boolean {
    return Atomics.compareExchange(this.#slots, DECODING, message, ABANDONED) === message;
  }

  /** Worker, abandoned: waits to be terminated (`Atomics.wait` is interrupted by terminate). */
  #halt(): never {
    for (;;) Atomics.wait(this.#slots, HALT, 0);
  }

  /** Parent: where the decode of message `message` stands (ids grow, so a later one means done). */
  read(message: number): DecodeState {
    if (Atomics.load(this.#slots, DECODED) >= message) return { state: 'decoded' };
    if (Atomics.load(this.#slots, DECODING) !== message) return { state: 'waiting' };
    const body = Atomics.load(this.#slots, BODY);
    const since = Atomics.load(this.#since, 0);
    return { state: 'decoding', body, elapsedMs: Number(process.hrtime.bigint() - since) / 1e6 };
  }
}
