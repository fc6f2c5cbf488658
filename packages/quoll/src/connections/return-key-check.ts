import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { MasterKeyError } from './master-key.js';

/** Options of {@link ReturnKeyCheck}. */
export interface ReturnKeyCheckOptions {
  /** The node's key check, as at its start (`verifyMasterKey` with its node id): throws `MasterKeyError` when refused. */
  check: () => Promise<void>;
  /**
   * Whether this process holds its node id now (`ClusterMembership.holdsId`): while another
   * process holds it (this one stalled again, past the lease), no check runs — it would record
   * this node's keys under that process's id; the return is checked when the id is back (a
   * return again). @default always
   */
  holdsId?: () => boolean;
  /** Told when the check refused the node (once; nothing runs after it). */
  onRefused: (err: MasterKeyError) => void;
  /**
   * Told when the check admitted the node (its key report written again, dated now): the owner
   * beats at once, so the report is not newer than the node's last sight for long — a node whose
   * report is newer counts as one still starting, live, to the others. @default nothing
   */
  onAdmitted?: () => void;
  /** Told when the check could not run (the database away): it runs again `retryMs` later. */
  onRetry: (err: unknown) => void;
  /** Wait before a check that could not run is tried again. */
  retryMs: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The key check of a node of a cluster that was marked lost (it stalled past the lease) and
 * registered again: it was checked against the nodes live at its start only, so the nodes started
 * while it was lost (a key rotation's rollout, say) were never checked against it. {@link run}
 * checks it again, as at a start: refused (`master_key_mismatch`, `master_key_retired`), the owner
 * is told once and stops the node; a check that could not run is retried until it does, or until
 * {@link stop}. One check at a time: a return during a check is covered by that check.
 * @example
 * const recheck = new ReturnKeyCheck({ check, onRefused: stopNode, onRetry: warn, retryMs: 1_000 });
 * membership = new ClusterMembership({ ..., onSelfLost: () => recheck.run() });
 * await recheck.stop();
 */
export class ReturnKeyCheck {
  readonly #options: ReturnKeyCheckOptions;
  readonly #clock: Clock;
  /** The check under way (with its retries); null when idle. */
  #running: Promise<void> | null = null;
  /** Whether another return came while a check was under way: checked again after it. */
  #again = false;
  #timer: TimerHandle | null = null;
  #wake: (() => void) | null = null;
  #stopped = false;
  #refused = false;

  constructor(options: ReturnKeyCheckOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether a check (or its retry) is under way. */
  get running(): boolean {
    return this.#running !== null;
  }

  /** Checks the node's keys again (the node was just registered again after being marked lost). */
  run(): void {
    if (this.#stopped || this.#refused || this.#options.holdsId?.() === false) return;
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = null;
    });
  }

  /** Cancels a retry's wait and waits for a check under way; nothing runs after it. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#wake?.();
    await this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      while (!this.#stopped) {
        if (this.#options.holdsId?.() === false) return;
        try {
          await this.#options.check();
          this.#options.onAdmitted?.();
          break;
        } catch (err) {
          if (err instanceof MasterKeyError) {
            this.#refused = true;
            this.#options.onRefused(err);
            return;
          }
          if (this.#stopped) return;
          this.#options.onRetry(err);
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
            this.#timer = this.#clock.setTimeout(resolve, this.#options.retryMs);
          });
          this.#timer = null;
          this.#wake = null;
        }
      }
    } while (this.#again && !this.#stopped);
  }
}
