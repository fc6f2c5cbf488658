import { createSession } from './native-session.js';
import type { NativeSession } from './native-session.js';

interface Held {
  session: NativeSession;
  bytes: number;
  users: number;
}

/**
 * The sessions an engine holds on its calling (HTTP) thread for inline runs (`InlineRunner`),
 * one per model SHA whichever deployments use it, under a budget of model bytes (ONNX file
 * sizes, as the worker pool counts them): a model that does not fit is not held here, and its
 * deployments run everything in the workers.
 */
export class InlineSessions {
  readonly #held = new Map<string, Held>();
  readonly #budget: number;
  #bytes = 0;

  constructor(budgetBytes: number) {
    this.#budget = budgetBytes;
  }

  /** Model bytes held on this thread now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The session of a model (created from `file` when not held yet); null when over the budget. Throws when it cannot load. */
  acquire(sha: string, file: Uint8Array): NativeSession | null {
    let held = this.#held.get(sha);
    if (!held) {
      if (this.#bytes + file.byteLength > this.#budget) return null;
      held = { session: createSession(file, 1), bytes: file.byteLength, users: 0 };
      this.#held.set(sha, held);
      this.#bytes += held.bytes;
    }
    held.users++;
    return held.session;
  }

  /** A deployment no longer uses the model; the last one out frees the session. */
  release(sha: string): void {
    const held = this.#held.get(sha);
    if (!held || --held.users > 0) return;
    this.#held.delete(sha);
    this.#bytes -= held.bytes;
    held.session.release();
  }
}
