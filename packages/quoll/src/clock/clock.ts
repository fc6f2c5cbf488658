/**
 * An opaque handle for a timer set through a {@link Clock}. Only the clock that made it
 * can clear it.
 */
export interface TimerHandle {
  /** Brand: handles are made by clocks, never by hand. */
  readonly __timerHandle: true;
}

/**
 * The source of time and timers for everything that waits: the scheduler, the runner's
 * timeouts, backoff. Production code takes a `Clock` so tests can move time by hand
 * (see {@link ManualClock}) instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once, `ms` milliseconds from now (at least). */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; clearing a fired or already cleared timer does nothing. */
  clearTimeout(handle: TimerHandle): void;
}

/** Node timers cannot wait longer than this (2^31-1 ms ≈ 24.8 days); longer waits are chained. */
const MAX_NODE_DELAY_MS = 2_147_483_647;

/** The system clock's handle: the current Node timer, replaced when a long wait is chained. */
interface SystemTimer extends TimerHandle {
  timer: NodeJS.Timeout | undefined;
}

/**
 * The real clock: `Date.now()` and Node timers. Waits longer than Node's timer limit
 * (≈ 24.8 days, e.g. a yearly cron tick) are chained so they do not fire at once.
 *
 * @example
 * const scheduler = new CronScheduler({ store, clock: systemClock, onRuns });
 */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = { __timerHandle: true, timer: undefined } as SystemTimer;
    const due = Date.now() + Math.max(0, ms);
    const arm = (): void => {
      const left = due - Date.now();
      if (left > MAX_NODE_DELAY_MS) {
        handle.timer = setTimeout(arm, MAX_NODE_DELAY_MS);
      } else {
        handle.timer = setTimeout(
          () => {
            handle.timer = undefined;
            fn();
          },
          Math.max(0, left),
        );
      }
    };
    arm();
    return handle;
  },
  clearTimeout(handle: TimerHandle): void {
    const h = handle as SystemTimer;
    if (h.timer !== undefined) clearTimeout(h.timer);
    h.timer = undefined;
  },
});

/**
 * A clock that reads the system time shifted by a fixed offset, with real timers. Benchmarks
 * use it to put a cron boundary a second or two ahead without waiting for the real minute.
 */
export function offsetClock(offsetMs: number): Clock {
  return Object.freeze({
    now: () => Date.now() + offsetMs,
    setTimeout: (fn: () => void, ms: number) => systemClock.setTimeout(fn, ms),
    clearTimeout: (handle: TimerHandle) => systemClock.clearTimeout(handle),
  });
}
