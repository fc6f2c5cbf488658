import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';

/** Options of a {@link PeriodicLoop}. */
export interface PeriodicLoopOptions {
  /** What to do each round; a round never starts while the previous one runs. */
  step: () => Promise<void>;
  /** Pause between the end of one round and the start of the next, ms. */
  intervalMs: number;
  /** Where a failed round is reported (the loop goes on). */
  onError: (err: unknown) => void;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * A background loop that stops cleanly: rounds run one at a time, `wake()` runs the next one
 * now (a message arrived), and `stop()` resolves once no round runs and no timer is left.
 * @example
 * const loop = new PeriodicLoop({ step: () => reconcile(), intervalMs: 5_000, onError: log });
 * loop.start();
 * await loop.stop();
 */
export class PeriodicLoop {
  readonly #step: () => Promise<void>;
  readonly #intervalMs: number;
  readonly #onError: (err: unknown) => void;
  readonly #clock: Clock;
  #timer: TimerHandle | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #state: 'new' | 'running' | 'stopped' = 'new';

  constructor(options: PeriodicLoopOptions) {
    this.#step = options.step;
    this.#intervalMs = Math.max(1, options.intervalMs);
    this.#onError = options.onError;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether a timer or a round is pending (false once stopped). */
  get active(): boolean {
    return this.#timer !== null || this.#running !== null;
  }

  /** Runs the first round now, then one every interval. */
  start(): void {
    if (this.#state !== 'new') throw new Error(`PeriodicLoop.start(): already ${this.#state}`);
    this.#state = 'running';
    this.wake();
  }

  /** Runs a round as soon as the current one (if any) ends. */
  wake(): void {
    if (this.#state !== 'running') return;
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#running = this.#round();
  }

  /** Runs one round now and resolves when it (and any round it is waiting for) has ended. */
  async runNow(): Promise<void> {
    this.wake();
    while (this.#running !== null) await this.#running;
  }

  /** Stops the loop: no new round starts; resolves once the current one has ended. Idempotent. */
  async stop(): Promise<void> {
    this.#state = 'stopped';
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    while (this.#running !== null) await this.#running;
  }

  async #round(): Promise<void> {
    try {
      await this.#step();
    } catch (err) {
      this.#onError(err);
    }
    this.#running = null;
    if (this.#state !== 'running') return;
    if (this.#again) {
      this.#again = false;
      this.#running = this.#round();
      return;
    }
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = null;
      this.wake();
    }, this.#intervalMs);
  }
}
