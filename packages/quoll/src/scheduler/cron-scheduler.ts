import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import { CronSchedule } from './cron-schedule.js';
import type { RunOwner, TaskRunRecord, TaskStore } from './task-store.js';

/** The fields of a scheduled task the scheduler needs. */
export interface ScheduledTaskRef {
  id: string;
  schedule: string | null;
  timezone: string | null;
  /** The newest tick already dealt with; null when none. */
  lastTick: number | null;
  createdAt: string;
}

/** How long after a boundary the store refused it is tried again, within the peers' grace (ms). */
export const STORE_RETRY_MS = 1_000;

/** Options of {@link CronScheduler}. */
export interface CronSchedulerOptions {
  store: TaskStore;
  /** @default systemClock */
  clock?: Clock;
  /**
   * Receives the runs created at one boundary, synchronously after they are committed; also for
   * a boundary that was in flight when {@link CronScheduler.stop} was called (its runs exist).
   */
  onRuns: (runs: TaskRunRecord[]) => void;
  /** Most missed ticks recorded per task per gap (the newest are kept). @default 100 */
  maxMissedRecorded?: number;
  /**
   * How late another scheduler on the same store may fire a tick (ms). A tick younger than this
   * is never recorded as missed by this one, which fires it itself instead: the store gives it
   * one run whoever comes first. For nodes of a cluster (their lease); one node has no peer to
   * wait for. @default 0
   */
  peerGraceMs?: number;
  /** Told each boundary as it fires, with how late it fired (ms after the tick). @default none */
  onTick?: (tick: number, lateMs: number) => void;
  /**
   * Where failures of a boundary (e.g. the store) are reported: once per boundary, however
   * often it is tried again, and once more if it is given up after being tried again.
   * @default console.error
   */
  onError?: (err: unknown, context: string) => void;
  /**
   * Told once when a boundary the store refused is taken on a later try (what happened, for
   * the log). @default console.error
   */
  onRecovered?: (message: string) => void;
  /** The node the runs of a boundary are created for (holding their leases). @default none (unclaimed) */
  owner?: RunOwner | null;
}

/** Reason recorded for ticks that passed while the server was not running. */
export const MISSED_WHILE_DOWN = 'missed: the server was not running at this tick';

/** Reason recorded for ticks that passed while the scheduler was held up (event loop blocked, machine asleep). */
export const MISSED_WHILE_LATE = 'missed: the scheduler was held up past this tick';

interface Bucket {
  timer: TimerHandle;
  taskIds: Set<string>;
}

/**
 * Fires cron ticks for scheduled tasks. Tasks are grouped by their next tick: there is one
 * timer per distinct tick time, and at the boundary the runs of all its tasks are created in
 * one store transaction keyed by (task, tick), so a tick can never produce two runs — not
 * even across restarts or with two schedulers on one store. A tick whose previous run is
 * still running is recorded as skipped. Ticks that passed while the scheduler was not
 * running (or was held up) are recorded as missed and not replayed.
 *
 * @example
 * const scheduler = new CronScheduler({ store, clock, onRuns: (runs) => runs.forEach(launch) });
 * await scheduler.recoverAndArm(task); // at startup: records missed ticks, arms the next
 * scheduler.arm(newTask);              // for a task created while running
 */
export class CronScheduler {
  private readonly store: TaskStore;
  private readonly clock: Clock;
  private readonly maxMissed: number;
  private readonly peerGraceMs: number;
  private readonly onError: (err: unknown, context: string) => void;
  private readonly onRecovered: (message: string) => void;
  private readonly buckets = new Map<number, Bucket>();
  private readonly armed = new Map<string, { schedule: CronSchedule; tick: number }>();
  private readonly schedules = new Map<string, CronSchedule>();
  /** Tasks whose tick is being processed, so a disarm during processing prevents re-arming. */
  private readonly firing = new Map<string, number>();
  private readonly inflight = new Set<Promise<void>>();
  /**
   * Boundaries the store refused that are being tried again, by tick: the tries so far. Their
   * failure was reported at the first; later tries report nothing until the boundary is taken
   * (recovered) or given up.
   */
  private readonly refused = new Map<number, number>();
  private stopped = false;

  constructor(private readonly options: CronSchedulerOptions) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.maxMissed = Math.max(0, options.maxMissedRecorded ?? 100);
    this.peerGraceMs = Math.max(0, options.peerGraceMs ?? 0);
    this.onError =
      options.onError ?? ((err, context) => console.error(`quoll: scheduler (${context}):`, err));
    this.onRecovered = options.onRecovered ?? ((message) => console.error(`quoll: scheduler: ${message}`));
  }

  /** How many tasks wait for a tick. */
  get armedCount(): number {
    return this.armed.size;
  }

  /** How many timers are set (one per distinct next tick). */
  get timerCount(): number {
    return this.buckets.size;
  }

  /** The next tick a task waits for, or null when it is not armed. */
  nextTickOf(taskId: string): number | null {
    return this.armed.get(taskId)?.tick ?? null;
  }

  /**
   * Startup path for a live scheduled task: records the ticks between its last dealt-with
   * tick (or its creation) and now as missed, then arms the next one.
   */
  async recoverAndArm(task: ScheduledTaskRef): Promise<void> {
    const schedule = this.scheduleOf(task);
    const from = task.lastTick ?? Date.parse(task.createdAt);
    // Ticks within the peers' grace may be in another scheduler's hands right now: fired here
    // too (late, or as a duplicate the store refuses), never recorded as missed.
    const until = this.clock.now() - this.peerGraceMs;
    await this.recordMissed(task.id, schedule, from, until, MISSED_WHILE_DOWN);
    if (this.stopped) return;
    this.armAfter(task.id, schedule, Math.max(from, until));
  }

  /** Arms a task for its first tick after now (re-arming replaces the previous tick). */
  arm(task: ScheduledTaskRef): void {
    if (this.stopped) return;
    this.armAfter(task.id, this.scheduleOf(task), this.clock.now());
  }

  /** Stops firing ticks for a task. */
  disarm(taskId: string): void {
    this.firing.delete(taskId);
    const current = this.armed.get(taskId);
    if (current === undefined) return;
    this.armed.delete(taskId);
    const bucket = this.buckets.get(current.tick);
    if (bucket === undefined) return;
    bucket.taskIds.delete(taskId);
    if (bucket.taskIds.size === 0) {
      this.clock.clearTimeout(bucket.timer);
      this.buckets.delete(current.tick);
      // Nothing waits for a boundary being tried again any more: its story ends unreported.
      this.refused.delete(current.tick);
    }
  }

  /** Clears every timer and resolves when no boundary is being processed. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const bucket of this.buckets.values()) this.clock.clearTimeout(bucket.timer);
    this.buckets.clear();
    this.armed.clear();
    this.firing.clear();
    this.refused.clear();
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private scheduleOf(task: ScheduledTaskRef): CronSchedule {
    if (task.schedule === null) throw new Error(`Task ${task.id} has no schedule`);
    // Tasks with the same schedule share one parsed instance, and so its next-tick memo.
    const key = `${task.timezone ?? 'UTC'}|${task.schedule}`;
    let schedule = this.schedules.get(key);
    if (schedule === undefined) {
      schedule = CronSchedule.parse(task.schedule, task.timezone);
      this.schedules.set(key, schedule);
    }
    return schedule;
  }

  private armAfter(taskId: string, schedule: CronSchedule, afterMs: number): void {
    this.disarm(taskId);
    const tick = schedule.nextAfter(afterMs);
    if (tick === null) return;
    this.armed.set(taskId, { schedule, tick });
    let bucket = this.buckets.get(tick);
    if (bucket === undefined) {
      bucket = { timer: this.setTimer(tick), taskIds: new Set() };
      this.buckets.set(tick, bucket);
    }
    bucket.taskIds.add(taskId);
  }

  /** Arms a task for `tick` again, {@link STORE_RETRY_MS} from now (its boundary failed). */
  private armRetry(taskId: string, schedule: CronSchedule, tick: number): void {
    this.disarm(taskId);
    this.armed.set(taskId, { schedule, tick });
    let bucket = this.buckets.get(tick);
    if (bucket === undefined) {
      bucket = { timer: this.clock.setTimeout(() => this.onTimer(tick), STORE_RETRY_MS), taskIds: new Set() };
      this.buckets.set(tick, bucket);
    }
    bucket.taskIds.add(taskId);
  }

  private setTimer(tick: number): TimerHandle {
    return this.clock.setTimeout(() => this.onTimer(tick), Math.max(0, tick - this.clock.now()));
  }

  private onTimer(tick: number): void {
    const bucket = this.buckets.get(tick);
    if (bucket === undefined || this.stopped) return;
    // Timers may fire a hair early against the wall clock: wait out the rest.
    if (this.clock.now() < tick) {
      bucket.timer = this.setTimer(tick);
      return;
    }
    this.buckets.delete(tick);
    // A boundary tried again was told to the observer at its first try.
    if (!this.refused.has(tick)) this.options.onTick?.(tick, this.clock.now() - tick);
    const taskIds = [...bucket.taskIds].filter((id) => this.armed.get(id)?.tick === tick);
    const work = this.fire(tick, taskIds)
      .catch((err: unknown) => this.onError(err, `tick ${new Date(tick).toISOString()}`))
      .finally(() => this.inflight.delete(work));
    this.inflight.add(work);
  }

  private async fire(tick: number, taskIds: string[]): Promise<void> {
    const schedules = new Map<string, CronSchedule>();
    for (const id of taskIds) {
      const a = this.armed.get(id);
      if (a !== undefined) schedules.set(id, a.schedule);
      this.armed.delete(id);
      this.firing.set(id, tick);
    }
    // Re-arm only tasks nobody disarmed or re-armed while the boundary was processed.
    const stillMine = (id: string): boolean => this.firing.get(id) === tick;
    let outcomes;
    try {
      outcomes = await this.store.createTickRuns(
        taskIds.map((taskId) => ({ taskId, tick })),
        this.options.owner ?? null,
      );
    } catch (err) {
      // The store failed (unreachable, or a peer held the tasks' rows past the lock timeout).
      // While the tick is younger than the peers' grace it is tried again shortly: a peer may
      // not make its run either. After that (or on one node) the tasks wait for their next tick.
      const retry = this.clock.now() + STORE_RETRY_MS - tick < this.peerGraceMs;
      let retried = false;
      for (const [id, schedule] of schedules) {
        if (!stillMine(id)) continue;
        if (retry) {
          this.armRetry(id, schedule, tick);
          retried = true;
        } else this.armAfter(id, schedule, tick);
      }
      // Reported once per boundary: at its first failure, and when it is given up after tries.
      const tries = (this.refused.get(tick) ?? 0) + 1;
      if (retried && !this.stopped) this.refused.set(tick, tries);
      else this.refused.delete(tick);
      const when = new Date(tick).toISOString();
      if (tries === 1) {
        this.onError(
          err,
          retried
            ? `tick ${when} (tried again every ${STORE_RETRY_MS} ms while younger than ${this.peerGraceMs} ms; reported once)`
            : `tick ${when} (its tasks wait for their next tick)`,
        );
      } else if (!retried) {
        this.onError(err, `tick ${when} (given up after ${tries} tries: its tasks wait for their next tick)`);
      }
      return;
    }
    const tries = this.refused.get(tick);
    if (tries !== undefined) {
      this.refused.delete(tick);
      this.onRecovered(
        `tick ${new Date(tick).toISOString()}: the store took the boundary at try ${tries + 1}, ${this.clock.now() - tick} ms after the tick`,
      );
    }
    const created: TaskRunRecord[] = [];
    for (const o of outcomes) if (o.outcome === 'created') created.push(o.run);
    // Handed on even when a stop came meanwhile: they are committed, so the receiver must give
    // them an outcome (a stopping task service closes them as stopped rather than leaving them
    // `running` until a lease or the next start notices).
    if (created.length > 0) this.options.onRuns(created);
    if (this.stopped) return;
    const now = this.clock.now();
    for (const o of outcomes) {
      const schedule = schedules.get(o.taskId);
      // Inactive (killed) tasks are not re-armed; a task re-armed meanwhile keeps its arming.
      if (schedule === undefined || !stillMine(o.taskId)) continue;
      if (o.outcome === 'inactive') {
        this.firing.delete(o.taskId);
        continue;
      }
      const next = schedule.nextAfter(tick);
      const until = now - this.peerGraceMs;
      if (next !== null && next <= until)
        await this.recordMissed(o.taskId, schedule, tick, until, MISSED_WHILE_LATE);
      if (this.stopped) return;
      if (stillMine(o.taskId)) this.armAfter(o.taskId, schedule, Math.max(tick, until));
    }
  }

  private async recordMissed(
    taskId: string,
    schedule: CronSchedule,
    fromMs: number,
    untilMs: number,
    reason: string,
  ): Promise<void> {
    const { ticks, truncated } = schedule.ticksBetween(fromMs, untilMs, this.maxMissed);
    if (ticks.length === 0) return;
    const [oldest, ...rest] = ticks;
    if (truncated && oldest !== undefined) {
      await this.store.recordMissedTicks(taskId, [oldest], `${reason} (older missed ticks are not listed)`);
      await this.store.recordMissedTicks(taskId, rest, reason);
    } else {
      await this.store.recordMissedTicks(taskId, ticks, reason);
    }
  }
}
