import { performance } from 'node:perf_hooks';

/**
 * The most time (µs) inline runs may take the calling thread in one turn of its event loop, all
 * deployments of an engine together: past it, the small runs of that turn not yet started go to
 * the workers. The work bound and the probe bound one run (≤ 2 ms); this bounds their sum, which
 * many deployments (each with a request in the same turn) or many merged runs of one deployment
 * (on one CPU, `inlineWhenContended`) would otherwise make as long as the requests read in a turn
 * allow. A turn's inline runs then hold the thread for at most this plus one run.
 */
export const INLINE_TURN_BUDGET_US = 2000;

/**
 * The calling thread's turns of inline runs, shared by every deployment of an engine: a
 * deployment with small runs to make asks for the turn ({@link schedule}); once per turn of the
 * event loop (one `setImmediate`, after the requests of the turn were read) every deployment that
 * asked runs its queue, and {@link claim} says, before each run, whether the turn's budget
 * allows another (the first run of a turn always may).
 */
export class InlineTurns {
  readonly #budgetMs: number;
  #waiting: (() => void)[] = [];
  #scheduled = false;
  /** When the current turn's budget ends (`performance.now()`). */
  #deadline = 0;
  /** Whether a run was claimed in the current turn. */
  #claimed = false;

  constructor(budgetUs: number = INLINE_TURN_BUDGET_US) {
    this.#budgetMs = Math.max(0, budgetUs) / 1000;
  }

  /** Calls `run` in the next turn of inline runs (once per call; deployments ask once per turn). */
  schedule(run: () => void): void {
    this.#waiting.push(run);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#turn());
  }

  /** Whether one more inline run may start in this turn; it counts as started when true. */
  claim(): boolean {
    if (!this.#claimed) {
      this.#claimed = true;
      return true;
    }
    return performance.now() < this.#deadline;
  }

  #turn(): void {
    this.#scheduled = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#claimed = false;
    this.#deadline = performance.now() + this.#budgetMs;
    for (const run of waiting) run();
  }
}
