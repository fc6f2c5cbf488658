/**
 * Who still reads a set of buffers that came from another thread and will go back to it for
 * reuse. The thread that received them holds the lease once; every other reader that keeps
 * them past that holder (the inference log, for a batch it keeps until its writer confirms it)
 * retains it and releases it when done. When the last holder lets go, `onFree` gets the buffers,
 * once: only then may they be written again (sent back to the thread that fills them).
 *
 * The lease is found from any of its buffers ({@link leaseOf}), so a reader that sees only
 * views of them (a log batch's columns, a slice of them) can still retain it.
 */
export class BufferLease {
  readonly #buffers: readonly ArrayBuffer[];
  #onFree: ((buffers: readonly ArrayBuffer[]) => void) | null;
  #holders = 1;

  /** Registers `buffers` under a new lease, held once by the caller. */
  constructor(buffers: readonly ArrayBuffer[], onFree: (buffers: readonly ArrayBuffer[]) => void) {
    this.#buffers = buffers;
    this.#onFree = onFree;
    for (const buffer of buffers) leases.set(buffer, this);
  }

  /** Whether some holder still reads the buffers. */
  get held(): boolean {
    return this.#holders > 0;
  }

  /** One more holder. Throws once the lease is freed: the buffers may already be written again. */
  retain(): void {
    if (this.#holders === 0) throw new Error('buffer lease retained after it was freed');
    this.#holders++;
  }

  /** One holder less; the last one frees the buffers. Throws when no holder is left (a double release). */
  release(): void {
    if (this.#holders === 0) throw new Error('buffer lease released more often than held');
    this.#holders--;
    if (this.#holders > 0) return;
    // The buffers stay registered: a reader that comes late finds a freed lease and refuses.
    const onFree = this.#onFree!;
    this.#onFree = null;
    onFree(this.#buffers);
  }
}

const leases = new WeakMap<ArrayBufferLike, BufferLease>();

/** The lease of a buffer (held, or already freed: see {@link BufferLease.held}), or undefined for one nobody leased. */
export function leaseOf(buffer: ArrayBufferLike): BufferLease | undefined {
  return leases.get(buffer);
}
