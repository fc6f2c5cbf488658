import type { LogAppendBatch } from './log-row-source.js';

/** Batches of one `append` call, waiting for the writer. */
export interface QueuedAppend {
  /** Position in arrival order, starting at 1. */
  seq: number;
  pipelineId: number;
  batches: LogAppendBatch[];
  rows: number;
}

interface Waiter {
  item: QueuedAppend;
  /** When the append began waiting (the caller's clock, epoch ms). */
  since: number;
  admit: () => void;
  refuse: (err: Error) => void;
}

/**
 * What an append admitted at once answers (one promise, already resolved, shared): a caller that
 * gets it back has nothing to wait for and can skip its `await` (a microtask and ≈ 0.65 KiB of
 * the request's async function state per request on the HTTP thread).
 */
export const LOG_APPEND_ADMITTED: Promise<void> = Promise.resolve();

/**
 * The bounded queue between `append` callers and the single writer. Capacity is counted in
 * rows: an append that fits is admitted at once; one that does not waits, first come first
 * served, until the writer takes rows out (backpressure: callers slow down, nothing is
 * dropped). An append larger than the whole capacity is admitted when the queue is empty.
 */
export class LogAppendQueue {
  readonly capacityRows: number;
  #items: QueuedAppend[] = [];
  /** Appends admitted and not yet taken (with an `onAdmit` hook they are not kept in `#items`). */
  #admitted = 0;
  #rows = 0;
  readonly #waiters: Waiter[] = [];
  #lastSeq = 0;
  /** Appends are admitted in seq order: this is the highest admitted so far. */
  #lastAdmittedSeq = 0;
  #onItems: (() => void) | null = null;
  readonly #onAdmit: ((item: QueuedAppend) => void) | null;

  /**
   * `onAdmit` is called with each append as it is admitted, in seq order, and takes its rows
   * (copies them): the queue then keeps nothing of the append, only counts it, and
   * {@link takeAll} returns no items (`lastAdmittedSeq` says up to where they went).
   */
  constructor(capacityRows: number, onAdmit?: (item: QueuedAppend) => void) {
    this.capacityRows = capacityRows;
    this.#onAdmit = onAdmit ?? null;
  }

  /** Sequence number of the latest append, admitted or waiting (refused ones do not count). */
  get lastSeq(): number {
    return this.#waiters.at(-1)?.item.seq ?? this.#lastAdmittedSeq;
  }

  /** Seq of the latest admitted append (`0` before the first). */
  get lastAdmittedSeq(): number {
    return this.#lastAdmittedSeq;
  }

  /** Rows currently queued (admitted, not yet taken by the writer). */
  get queuedRows(): number {
    return this.#rows;
  }

  /** Whether nothing is queued or waiting. */
  get idle(): boolean {
    return this.#admitted === 0 && this.#waiters.length === 0;
  }

  /** Whether something is admitted and ready for the writer. */
  get hasItems(): boolean {
    return this.#admitted > 0;
  }

  /** When the longest-waiting append began waiting, or `null` when none waits. */
  get oldestWaitSince(): number | null {
    return this.#waiters[0]?.since ?? null;
  }

  /** Queues batches; resolves once admitted (at once when there is room). `now` dates a wait. */
  push(pipelineId: number, batches: LogAppendBatch[], rows: number, now: number): Promise<void> {
    if (!Number.isSafeInteger(rows) || rows < 0)
      return Promise.reject(
        new RangeError(`An append of ${rows} rows cannot be queued: a row count is a whole number.`),
      );
    const item: QueuedAppend = { seq: ++this.#lastSeq, pipelineId, batches, rows };
    // Waiters go first so that appends keep their order (and time stays non-decreasing).
    if (this.#waiters.length === 0 && this.#fits(rows)) {
      const failed = this.#admit(item);
      return failed === null ? LOG_APPEND_ADMITTED : Promise.reject(failed);
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ item, since: now, admit: resolve, refuse: reject });
    });
  }

  /**
   * Removes and returns every admitted append, then admits waiters that now fit. Never throws:
   * a waiter whose rows the `onAdmit` hook fails to take is refused (its promise rejects) and
   * takes no room.
   */
  takeAll(): QueuedAppend[] {
    const items = this.#items;
    this.#items = [];
    this.#admitted = 0;
    this.#rows = 0;
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0];
      if (w === undefined || !this.#fits(w.item.rows)) break;
      this.#waiters.shift();
      const failed = this.#admit(w.item);
      if (failed === null) w.admit();
      else w.refuse(failed);
    }
    return items;
  }

  /** Rejects every append still waiting for room (the writer has failed and will never take them). */
  failWaiters(err: Error): void {
    for (const w of this.#waiters.splice(0)) w.refuse(err);
  }

  /**
   * Rejects the appends that began waiting at or before `cutoff` (they are never queued, so
   * their caller knows the rows were not logged). Waiters are in arrival order, so these are a
   * prefix. Returns how many were rejected.
   */
  refuseWaitingSince(cutoff: number, err: Error): number {
    let n = 0;
    while ((this.#waiters[0]?.since ?? Infinity) <= cutoff) {
      this.#waiters.shift()?.refuse(err);
      n++;
    }
    return n;
  }

  /** Resolves when an append is admitted (at once if one is queued already). */
  whenItems(): Promise<void> {
    if (this.#admitted > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onItems = resolve;
    });
  }

  /** Wakes a pending {@link whenItems} without an item (stop, flush, timer). */
  wake(): void {
    const fn = this.#onItems;
    this.#onItems = null;
    fn?.();
  }

  #fits(rows: number): boolean {
    return this.#rows === 0 || this.#rows + rows <= this.capacityRows;
  }

  /**
   * Admits an append, or returns why its rows could not be taken (the `onAdmit` hook threw).
   * An append counts as admitted (its rows, its seq as `lastAdmittedSeq`) only once the hook
   * has taken its rows: a failed one is like a refused one, its seq is never handed over and
   * `lastSeq` does not count it (so a flush or stop called afterwards does not wait for it).
   */
  #admit(item: QueuedAppend): Error | null {
    // With a hook the append is not kept: the hook took its rows, and its seq is `lastAdmittedSeq`.
    if (this.#onAdmit !== null) {
      try {
        this.#onAdmit(item);
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    } else this.#items.push(item);
    this.#admitted++;
    this.#lastAdmittedSeq = item.seq;
    this.#rows += item.rows;
    this.wake();
    return null;
  }
}
