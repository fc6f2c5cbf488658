import type { Clock, TimerHandle } from './clock.js';

interface ManualTimer extends TimerHandle {
  due: number;
  seq: number;
  fn: () => void;
  cleared: boolean;
}

/**
 * A clock for tests: time moves only when {@link ManualClock.advance} is called, and due
 * timers fire in order of due time (then in the order they were set), each with `now()`
 * equal to its due time.
 *
 * @example
 * const clock = new ManualClock(Date.UTC(2025, 0, 1));
 * clock.setTimeout(() => console.log('tick'), 60_000);
 * await clock.advance(60_000); // prints "tick"
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly timers = new Set<ManualTimer>();

  /** @param startMs the initial time, ms since the epoch. @default 0 */
  constructor(startMs = 0) {
    this.current = startMs;
  }

  /** The current (manual) time in ms since the epoch. */
  now(): number {
    return this.current;
  }

  /** Sets a timer that fires when the clock is advanced to or past `now() + ms`. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = {
      __timerHandle: true,
      due: this.current + Math.max(0, ms),
      seq: this.seq++,
      fn,
      cleared: false,
    };
    this.timers.add(timer as ManualTimer);
    return timer as ManualTimer;
  }

  /** Cancels a timer. */
  clearTimeout(handle: TimerHandle): void {
    const timer = handle as ManualTimer;
    timer.cleared = true;
    this.timers.delete(timer);
  }

  /** How many timers are waiting. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Whether a waiting timer falls due `ms` from now: lets a test wait until a delay is armed before advancing past it. */
  hasTimerIn(ms: number): boolean {
    const due = this.current + ms;
    for (const t of this.timers) if (t.due === due) return true;
    return false;
  }

  /** The due time of the earliest waiting timer, or null when none waits. */
  nextTimerAt(): number | null {
    const next = this.earliest();
    return next === undefined ? null : next.due;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way (including
   * timers set by fired callbacks). Between timers it lets pending promise callbacks and
   * I/O callbacks run, so async work started by a timer settles before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.current + Math.max(0, ms);
    await settle();
    for (;;) {
      const next = this.earliest();
      if (next === undefined || next.due > target) break;
      this.timers.delete(next);
      this.current = Math.max(this.current, next.due);
      next.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  /** Moves time to an absolute instant (no-op if it is in the past). */
  async advanceTo(ms: number): Promise<void> {
    await this.advance(Math.max(0, ms - this.current));
  }

  private earliest(): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (best === undefined || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets queued microtasks and one round of I/O/immediate callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
