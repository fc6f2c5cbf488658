import type { Worker } from 'node:worker_threads';
import { spawnModuleWorker } from '../threads/index.js';
import type { LogSegmentIndex } from './log-segment-index.js';
import type { FromWriter, IndexMethod, LogWriterSettings, ToWriter } from './log-writer-protocol.js';

/** What a {@link LogWriterThread} tells its owner. */
export interface LogWriterThreadEvents {
  /** Every message but index calls (which the thread answers itself). */
  message(msg: Exclude<FromWriter, { type: 'index-call' }>): void;
  /** After an index call succeeded: the owner keeps its read cache in step. */
  indexCalled(method: IndexMethod, args: unknown[]): void;
  /** The thread ended: `error` is `null` after its `stopped` message, else why it died. */
  exit(error: Error | null): void;
}

/**
 * One writer thread (`log-writer-worker.ts`) and the owner's side of its channel: it answers
 * the thread's index calls with the owner's {@link LogSegmentIndex} (so the database
 * connection, SQLite or PostgreSQL, stays with the owner) and reports how the thread ended.
 */
export class LogWriterThread {
  readonly #worker: Worker;
  readonly #index: LogSegmentIndex;
  readonly #events: LogWriterThreadEvents;
  #stopped = false;
  #ended = false;
  #error: Error | null = null;
  /** Resolves once the thread has ended. */
  readonly exited: Promise<void>;

  constructor(settings: LogWriterSettings, index: LogSegmentIndex, events: LogWriterThreadEvents) {
    this.#index = index;
    this.#events = events;
    this.#worker = spawnModuleWorker(import.meta.url, 'log-writer-worker', { workerData: settings });
    this.#worker.on('message', (msg: FromWriter) => this.#onMessage(msg));
    this.#worker.on('error', (err) => {
      this.#error ??= err;
    });
    this.exited = new Promise((resolve) => {
      this.#worker.once('exit', (code) => {
        this.#ended = true;
        const error =
          this.#stopped && code === 0
            ? null
            : new Error(
                `The inference log writer thread ended unexpectedly (exit code ${code})${this.#error ? `: ${this.#error.message}` : ''}.`,
                { cause: this.#error ?? undefined },
              );
        this.#events.exit(error);
        resolve();
      });
    });
  }

  /** The thread's id (for diagnostics). */
  get threadId(): number {
    return this.#worker.threadId;
  }

  /** Sends a message; buffers in `transfer` move to the thread. Ignored once the thread has ended. */
  send(msg: ToWriter, transfer: ArrayBuffer[] = []): void {
    if (!this.#ended) this.#worker.postMessage(msg, transfer);
  }

  /** Ends the thread at once, as a crash would (what it has not written is lost to it). */
  async terminate(): Promise<void> {
    await this.#worker.terminate();
    await this.exited;
  }

  #onMessage(msg: FromWriter): void {
    if (msg.type === 'index-call') {
      void this.#answer(msg.id, msg.method, msg.args);
      return;
    }
    if (msg.type === 'stopped') this.#stopped = true;
    this.#events.message(msg);
  }

  async #answer(id: number, method: IndexMethod, args: unknown[]): Promise<void> {
    try {
      // Called as a method of the index, so it keeps its `this`.
      const index = this.#index as unknown as Record<IndexMethod, (...a: unknown[]) => Promise<unknown>>;
      const value = await index[method](...args);
      this.#events.indexCalled(method, args);
      this.send({ type: 'index-result', id, ok: true, value });
    } catch (err) {
      this.send({
        type: 'index-result',
        id,
        ok: false,
        message: err instanceof Error ? err.message : String(err),
      });
    }
  }
}
