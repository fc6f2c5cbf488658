/** The restart policy of continuous tasks. */
export interface BackoffPolicy {
  /** Delay before restarting after a run that lived long enough (and the first step of the backoff). @default 1000 */
  initialMs: number;
  /** Longest delay between restarts. @default 60000 */
  maxMs: number;
  /** A run that lived at least this long is healthy: the backoff and the failure streak reset. @default 60000 */
  healthyAfterMs: number;
  /** Failures in a row, each shorter-lived than `healthyAfterMs`, that flag a crash loop. @default 5 */
  crashLoopAfter: number;
}

/** The default {@link BackoffPolicy}: 1 s, 2 s, 4 s … capped at 60 s; crash loop after 5 fast failures. */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({
  initialMs: 1_000,
  maxMs: 60_000,
  healthyAfterMs: 60_000,
  crashLoopAfter: 5,
});

/** What to do after a continuous run ended. */
export interface RestartDecision {
  /** Wait this long before starting the next run. */
  delayMs: number;
  /** Set when the task is (still) crash-looping: the message to record; null when healthy. */
  crashLoop: string | null;
}

/**
 * Exponential restart backoff with crash-loop detection, per task (state in memory; a
 * server restart starts every task afresh). Each run that ends within `healthyAfterMs` of
 * starting doubles the next delay (capped at `maxMs`); a run that lived long enough resets it.
 *
 * @example
 * const backoff = new RestartBackoff();
 * backoff.record('t1', { livedMs: 200, failed: true }); // { delayMs: 1000, crashLoop: null }
 * backoff.record('t1', { livedMs: 200, failed: true }); // { delayMs: 2000, crashLoop: null }
 */
export class RestartBackoff {
  private readonly policy: BackoffPolicy;
  private readonly state = new Map<string, { fastExits: number; fastFailures: number }>();

  /** @param policy overrides of {@link DEFAULT_BACKOFF}. */
  constructor(policy: Partial<BackoffPolicy> = {}) {
    this.policy = { ...DEFAULT_BACKOFF, ...policy };
  }

  /** Records how a run ended and decides the delay before the next one. */
  record(taskId: string, run: { livedMs: number; failed: boolean }): RestartDecision {
    const s = this.state.get(taskId) ?? { fastExits: 0, fastFailures: 0 };
    if (run.livedMs >= this.policy.healthyAfterMs) {
      s.fastExits = 0;
      s.fastFailures = 0;
    } else {
      s.fastExits++;
      s.fastFailures = run.failed ? s.fastFailures + 1 : 0;
    }
    this.state.set(taskId, s);
    const steps = Math.max(0, s.fastExits - 1);
    const delayMs = Math.min(this.policy.maxMs, this.policy.initialMs * 2 ** Math.min(steps, 30));
    const crashLoop =
      s.fastFailures >= this.policy.crashLoopAfter
        ? `crash loop: the last ${s.fastFailures} runs failed within ${Math.round(this.policy.healthyAfterMs / 1000)} s of starting; restarting after ${Math.round(delayMs / 1000)} s`
        : null;
    return { delayMs, crashLoop };
  }

  /** Forgets a task (killed). */
  forget(taskId: string): void {
    this.state.delete(taskId);
  }
}
