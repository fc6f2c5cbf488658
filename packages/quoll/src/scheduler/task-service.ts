import type { TaskRunLogLineDto, TaskRunStatus } from '@quoll/client/wire';
import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import type { PackagedOrchestration, RunOutcome, TaskRunner } from '../runner/index.js';
import { LOST_RUN_REASON, STOPPED_RUN_REASON } from '../runner/index.js';
import { ApiError } from '../server/api-error.js';
import { CronSchedule } from './cron-schedule.js';
import { CronScheduler } from './cron-scheduler.js';
import { RestartBackoff } from './restart-backoff.js';
import type { BackoffPolicy } from './restart-backoff.js';
import type {
  ListRunsFilter,
  ListTasksFilter,
  TaskRecord,
  TaskRunRecord,
  TaskStore,
  TickRecord,
} from './task-store.js';

/** Fields every task creation takes. */
export interface CreateTaskInput {
  orchestrationId: string;
  workspaceId: number;
  /** Free text, 1–200 characters; not unique. */
  name: string;
  /** Any JSON object, given to the run as `QUOLL_TASK_ARGS`. @default {} */
  jsonArgs?: Record<string, unknown>;
}

/** A run-once task. */
export interface CreateOnceInput extends CreateTaskInput {
  /** Seconds the run may last. @default 900 (the service's defaultTimeoutSeconds) */
  timeout?: number | null;
}

/** A task run at every tick of a cron schedule. */
export interface CreateScheduledInput extends CreateTaskInput {
  /** 5-field cron expression (the seed's comma form is accepted). */
  schedule: string;
  /** IANA time zone the schedule is read in. @default UTC */
  timezone?: string | null;
  /** Seconds each run may last. @default 900 (the service's defaultTimeoutSeconds) */
  timeout?: number | null;
}

/** Options of {@link TaskService}. */
export interface TaskServiceOptions {
  store: TaskStore;
  /** Executes the runs; the service stops it in {@link TaskService.stop}. */
  runner: TaskRunner;
  /**
   * Finds the packaged files of an orchestration; throws an `ApiError` (e.g.
   * `orchestration_not_found`, `orchestration_not_ready`) when it cannot run.
   */
  resolvePackage: (orchestrationId: string) => PackagedOrchestration | Promise<PackagedOrchestration>;
  /** Should be the runner's clock. @default systemClock */
  clock?: Clock;
  /** Timeout of run-once and scheduled runs when none is given, in seconds. @default 900 */
  defaultTimeoutSeconds?: number;
  /** Restart policy of continuous tasks. @default DEFAULT_BACKOFF */
  backoff?: Partial<BackoffPolicy>;
  /** Most missed ticks recorded per task per outage. @default 100 */
  maxMissedTicksRecorded?: number;
  /**
   * Revokes every unrevoked run token (subject `task-run:<id>`) except those of `liveRunIds`;
   * called by {@link TaskService.start}, so tokens of runs a crashed server left behind stop
   * working. @default none
   */
  revokeStaleRunTokens?: (liveRunIds: readonly string[]) => Promise<void>;
  /** Where background failures are reported. @default console.error */
  onError?: (err: unknown, context: string) => void;
}

/** Longest accepted timeout: 7 days. */
const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;
/** Largest accepted jsonArgs, serialised. */
const MAX_JSON_ARGS_BYTES = 64 * 1024;
const RUN_STATUSES: readonly (TaskRunStatus | 'all')[] = [
  'all',
  'running',
  'success',
  'failure',
  'timed_out',
  'killed',
];

/**
 * Tasks: creates run-once, scheduled and continuous tasks, launches their runs on the
 * runner, records outcomes, restarts continuous runs with backoff, kills tasks, and on
 * {@link TaskService.start} recovers from the previous server process (lost runs closed,
 * missed ticks recorded, schedules re-armed, continuous tasks restarted).
 *
 * Task status: `pending` → `started` (first run created / schedule armed) → `pending_kill`
 * (kill asked; no run starts after this) → `killed` (its last run has ended). A run-once task
 * stays `started` after its run ends.
 *
 * @example
 * const tasks = new TaskService({ store, runner, resolvePackage, clock });
 * await tasks.start();
 * const task = await tasks.createScheduled({ orchestrationId, workspaceId, name: 'hourly', schedule: '0 * * * *' });
 * await tasks.kill(task.id); // 'pending_kill'
 * await tasks.stop();
 */
export class TaskService {
  private readonly store: TaskStore;
  private readonly runner: TaskRunner;
  private readonly clock: Clock;
  private readonly defaultTimeout: number;
  private readonly onError: (err: unknown, context: string) => void;
  private readonly scheduler: CronScheduler;
  private readonly backoff: RestartBackoff;
  /** Scheduled tasks by id, to launch the runs the scheduler creates (task rows do not change). */
  private readonly scheduled = new Map<string, TaskRecord>();
  private readonly restartTimers = new Map<string, TimerHandle>();
  private readonly crashLooping = new Set<string>();
  /** Tasks whose kill has begun in this process; checked synchronously before any launch. */
  private readonly killing = new Set<string>();
  private readonly work = new Set<Promise<unknown>>();
  private state: 'new' | 'running' | 'stopping' = 'new';

  constructor(private readonly options: TaskServiceOptions) {
    this.store = options.store;
    this.runner = options.runner;
    this.clock = options.clock ?? systemClock;
    this.defaultTimeout = options.defaultTimeoutSeconds ?? 900;
    this.onError = options.onError ?? ((err, context) => console.error(`quoll: tasks (${context}):`, err));
    this.backoff = new RestartBackoff(options.backoff);
    this.scheduler = new CronScheduler({
      store: this.store,
      clock: this.clock,
      maxMissedRecorded: options.maxMissedTicksRecorded ?? 100,
      onError: this.onError,
      onRuns: (runs) => {
        for (const run of runs) {
          const task = this.scheduled.get(run.taskId);
          if (task !== undefined) this.launch(task, run);
        }
      },
    });
  }

  /**
   * Recovers from the previous server process and starts scheduling: runs left `running`
   * are closed as `failure` (lost) with that line appended to their logs, half-done kills
   * complete, scheduled tasks record their missed ticks and wait for the next tick, and
   * continuous tasks start a new run.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('TaskService.start() was already called');
    this.state = 'running';
    for (const run of await this.store.runningRuns()) {
      if (this.runner.has(run.id)) continue;
      try {
        await this.runner.closeLostRun(run.id, run.pid, LOST_RUN_REASON);
      } catch (err) {
        this.onError(err, `closing the log of lost run ${run.id}`);
      }
      await this.store.finishRun(run.id, { status: 'failure', exitCode: null, reason: LOST_RUN_REASON });
    }
    // The lost runs' tokens were never revoked (the process died first): revoke them now.
    if (this.options.revokeStaleRunTokens !== undefined) {
      const live = (await this.store.runningRuns()).map((r) => r.id).filter((id) => this.runner.has(id));
      await this.options.revokeStaleRunTokens(live);
    }
    // Warm processes for the runs about to start (continuous tasks) and the next ones.
    await this.runner.warm().catch((err: unknown) => this.onError(err, 'starting warm processes'));
    const tasks = (await this.store.listTasks({ killed: false })).reverse();
    for (const task of tasks) {
      try {
        await this.resume(task);
      } catch (err) {
        this.onError(err, `resuming task ${task.id}`);
      }
    }
  }

  private async resume(task: TaskRecord): Promise<void> {
    if (task.status === 'pending_kill') {
      await this.store.markKilled(task.id);
      return;
    }
    switch (task.type) {
      case 'Temporary Run':
        // Only a task whose run was never created (crash in between) still needs it.
        if (task.status === 'pending') await this.startOnce(task);
        return;
      case 'Scheduled Run':
        this.scheduled.set(task.id, task);
        await this.scheduler.recoverAndArm(task);
        if (task.status === 'pending') await this.store.setTaskStatus(task.id, 'started');
        return;
      case 'Continuous Run':
        if (task.status === 'pending') await this.store.setTaskStatus(task.id, 'started');
        await this.startContinuousRun(task);
        return;
    }
  }

  /** Creates a task that runs once, now. */
  async createOnce(input: CreateOnceInput): Promise<TaskRecord> {
    this.assertRunning();
    const base = await this.validateBase(input);
    const timeout = validateTimeout(input.timeout, this.defaultTimeout);
    const task = await this.store.createTask({
      ...base,
      type: 'Temporary Run',
      schedule: null,
      timezone: null,
      timeout,
    });
    await this.startOnce(task);
    return this.mustGet(task.id);
  }

  /** Creates a task that runs at every tick of a cron schedule. Invalid schedules are refused. */
  async createScheduled(input: CreateScheduledInput): Promise<TaskRecord> {
    this.assertRunning();
    const parsed = CronSchedule.parse(input.schedule, input.timezone ?? null);
    const base = await this.validateBase(input);
    const timeout = validateTimeout(input.timeout, this.defaultTimeout);
    const task = await this.store.createTask({
      ...base,
      type: 'Scheduled Run',
      schedule: parsed.expression,
      timezone: input.timezone === undefined || input.timezone === null ? null : parsed.timezone,
      timeout,
    });
    this.scheduled.set(task.id, task);
    this.scheduler.arm(task);
    await this.store.setTaskStatus(task.id, 'started');
    return this.mustGet(task.id);
  }

  /** Creates a task that keeps one run going, restarting it with backoff when it exits. */
  async createContinuous(input: CreateTaskInput): Promise<TaskRecord> {
    this.assertRunning();
    const base = await this.validateBase(input);
    const task = await this.store.createTask({
      ...base,
      type: 'Continuous Run',
      schedule: null,
      timezone: null,
      timeout: null,
    });
    await this.store.setTaskStatus(task.id, 'started');
    await this.startContinuousRun(task);
    return this.mustGet(task.id);
  }

  /**
   * Kills a task: no run starts after this call, running runs get SIGTERM (then SIGKILL
   * after the grace period), and the task becomes `killed` once they have ended. Killing a
   * killed task changes nothing. Throws `task_not_found`.
   */
  async kill(taskId: string): Promise<'pending_kill'> {
    // Synchronously, before any await, so a launch racing with this call sees it.
    const already = this.killing.has(taskId);
    this.killing.add(taskId);
    const task = await this.store.getTask(taskId);
    if (task === null) {
      if (!already) this.killing.delete(taskId);
      throw new ApiError('task_not_found', `No task has id "${taskId}". List tasks to see their ids.`, {
        taskId,
      });
    }
    this.scheduler.disarm(taskId);
    this.scheduled.delete(taskId);
    this.cancelRestart(taskId);
    this.backoff.forget(taskId);
    if (task.killed) return 'pending_kill';
    await this.store.setTaskStatus(taskId, 'pending_kill');
    for (const run of await this.store.listRuns(taskId, { status: 'running' })) {
      if (!this.runner.kill(run.id))
        await this.closeUnlaunched(run, 'killed', 'the task was killed before the run started');
    }
    await this.completeKillIfIdle(taskId);
    return 'pending_kill';
  }

  /** A task; throws `task_not_found`. */
  async getTask(taskId: string): Promise<TaskRecord> {
    return this.mustGet(taskId);
  }

  /** Tasks newest first; killed tasks only with `{ killed: true }`. */
  async listTasks(filter: ListTasksFilter = {}): Promise<TaskRecord[]> {
    return this.store.listTasks(filter);
  }

  /** A task's runs newest first; throws `task_not_found`, or `invalid_request` for a bad filter. */
  async listRuns(taskId: string, filter: ListRunsFilter = {}): Promise<TaskRunRecord[]> {
    await this.mustGet(taskId);
    if (filter.status !== undefined && !RUN_STATUSES.includes(filter.status)) {
      throw new ApiError(
        'invalid_request',
        `Unknown run status "${String(filter.status)}". Use one of: ${RUN_STATUSES.join(', ')}.`,
        { status: filter.status },
      );
    }
    if (filter.limit !== undefined) validateLimit(filter.limit);
    return this.store.listRuns(taskId, filter);
  }

  /** A run; throws `task_run_not_found`. */
  async getRun(runId: string): Promise<TaskRunRecord> {
    const run = await this.store.getRun(runId);
    if (run === null) {
      throw new ApiError(
        'task_run_not_found',
        `No task run has id "${runId}". Use lastRuns() on its task to see run ids.`,
        {
          runId,
        },
      );
    }
    return run;
  }

  /** The last `limit` lines of a run's log (all when omitted), oldest first. */
  async readRunLog(runId: string, options: { limit?: number } = {}): Promise<TaskRunLogLineDto[]> {
    await this.getRun(runId);
    if (options.limit !== undefined) validateLimit(options.limit);
    return this.runner.readRunLog(runId, options);
  }

  /**
   * A run's log lines, existing then live, ending after the final status line (`onFinal` is
   * called just before it is yielded) or on abort.
   */
  async followRunLog(
    runId: string,
    signal?: AbortSignal,
    onFinal?: () => void,
  ): Promise<AsyncIterable<TaskRunLogLineDto>> {
    await this.getRun(runId);
    return this.runner.followRunLog(runId, signal, onFinal);
  }

  /**
   * A task's cron ticks that produced no run (skipped: the previous run was still going;
   * missed: the server was down or late), newest first. Throws `task_not_found`.
   */
  async listTicks(taskId: string, options: { limit?: number } = {}): Promise<TickRecord[]> {
    await this.mustGet(taskId);
    if (options.limit !== undefined) validateLimit(options.limit);
    return this.store.listTickRecords(taskId, options);
  }

  /**
   * Stops scheduling and restarting, stops the runner (running runs end as `failure`,
   * "stopped: the server shut down …") and resolves once every outcome is recorded.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopping') return this.drain();
    this.state = 'stopping';
    await this.scheduler.stop();
    for (const id of [...this.restartTimers.keys()]) this.cancelRestart(id);
    await this.runner.stop();
    await this.drain();
  }

  private async drain(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  private assertRunning(): void {
    if (this.state === 'stopping') {
      throw new ApiError(
        'shutting_down',
        'The server is stopping and takes no new tasks. Retry once it is back.',
      );
    }
    if (this.state === 'new') throw new Error('TaskService.start() must be called before creating tasks');
  }

  private async validateBase(
    input: CreateTaskInput,
  ): Promise<Omit<CreateTaskInput, 'jsonArgs'> & { jsonArgs: Record<string, unknown> }> {
    validateTaskName(input.name);
    const jsonArgs = validateJsonArgs(input.jsonArgs);
    // Refuses unknown or unpackaged orchestrations before anything is written.
    await this.options.resolvePackage(input.orchestrationId);
    return {
      orchestrationId: input.orchestrationId,
      workspaceId: input.workspaceId,
      name: input.name,
      jsonArgs,
    };
  }

  private async mustGet(taskId: string): Promise<TaskRecord> {
    const task = await this.store.getTask(taskId);
    if (task === null) {
      throw new ApiError('task_not_found', `No task has id "${taskId}". List tasks to see their ids.`, {
        taskId,
      });
    }
    return task;
  }

  private async startOnce(task: TaskRecord): Promise<void> {
    const run = await this.store.createRun({ taskId: task.id, tick: null });
    await this.store.setTaskStatus(task.id, 'started');
    if (run !== null) this.launch(task, run);
  }

  private async startContinuousRun(task: TaskRecord): Promise<void> {
    this.restartTimers.delete(task.id);
    if (this.state !== 'running' || this.killing.has(task.id)) return;
    const run = await this.store.createRun({ taskId: task.id, tick: null });
    if (run !== null) this.launch(task, run);
  }

  /** Hands a created run to the runner. Synchronous, so a kill that has begun is always seen. */
  private launch(task: TaskRecord, run: TaskRunRecord): void {
    if (this.killing.has(task.id) || this.state !== 'running') {
      const stopping = this.state !== 'running';
      this.track(
        this.closeUnlaunched(
          run,
          stopping ? 'failure' : 'killed',
          stopping ? STOPPED_RUN_REASON : 'the task was killed before the run started',
        ).then(() => this.completeKillIfIdle(task.id)),
        `closing run ${run.id}`,
      );
      return;
    }
    const handle = this.runner.start({
      runId: run.id,
      taskId: task.id,
      workspaceId: task.workspaceId,
      jsonArgs: task.jsonArgs,
      timeoutSeconds: task.timeout,
      package: async () => this.options.resolvePackage(task.orchestrationId),
    });
    this.track(
      handle.spawned.then((pid) => (pid === null ? undefined : this.store.setRunPid(run.id, pid))),
      `recording the pid of run ${run.id}`,
    );
    this.track(
      handle.done.then((outcome) => this.onRunEnded(task, run, outcome)),
      `recording the outcome of run ${run.id}`,
    );
  }

  private async onRunEnded(task: TaskRecord, run: TaskRunRecord, outcome: RunOutcome): Promise<void> {
    await this.store.finishRun(run.id, {
      status: outcome.status,
      exitCode: outcome.exitCode,
      reason: outcome.reason,
    });
    if (this.killing.has(task.id)) {
      await this.completeKillIfIdle(task.id);
      return;
    }
    if (task.type !== 'Continuous Run' || this.state !== 'running') return;
    const lived = outcome.startedAt === null ? 0 : outcome.finishedAt - outcome.startedAt;
    const decision = this.backoff.record(task.id, { livedMs: lived, failed: outcome.status !== 'success' });
    if (decision.crashLoop !== null) {
      this.crashLooping.add(task.id);
      await this.store.setTaskStatusReason(task.id, decision.crashLoop);
    } else if (this.crashLooping.delete(task.id)) {
      await this.store.setTaskStatusReason(task.id, null);
    }
    if (this.state !== 'running' || this.killing.has(task.id)) return;
    this.cancelRestart(task.id);
    this.restartTimers.set(
      task.id,
      this.clock.setTimeout(() => {
        this.track(this.startContinuousRun(task), `restarting task ${task.id}`);
      }, decision.delayMs),
    );
  }

  private cancelRestart(taskId: string): void {
    const timer = this.restartTimers.get(taskId);
    if (timer !== undefined) this.clock.clearTimeout(timer);
    this.restartTimers.delete(taskId);
  }

  /** Ends a run the runner never held; the log line is written only by whoever closed it. */
  private async closeUnlaunched(
    run: TaskRunRecord,
    status: RunOutcome['status'],
    reason: string,
  ): Promise<void> {
    const closed = await this.store.finishRun(run.id, { status, exitCode: null, reason });
    if (closed !== null) await this.runner.writeFinalLine(run.id, status, reason);
  }

  private async completeKillIfIdle(taskId: string): Promise<void> {
    if (!this.killing.has(taskId)) return;
    const running = await this.store.listRuns(taskId, { status: 'running', limit: 1 });
    if (running.length === 0) await this.store.markKilled(taskId);
  }

  private track(p: Promise<unknown>, context: string): void {
    const tracked = p
      .catch((err: unknown) => this.onError(err, context))
      .finally(() => this.work.delete(tracked));
    this.work.add(tracked);
  }
}

function validateTaskName(name: unknown): void {
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200 || hasControlChar(name)) {
    throw new ApiError(
      'invalid_name',
      `Invalid task name ${JSON.stringify(name)}: give 1 to 200 printable characters, e.g. "house price run once".`,
      { name },
    );
  }
}

function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function validateJsonArgs(args: unknown): Record<string, unknown> {
  if (args === undefined || args === null) return {};
  if (typeof args !== 'object' || Array.isArray(args)) {
    throw new ApiError(
      'invalid_task_args',
      `jsonArgs must be a JSON object such as {"pipeline_name": "p1"}, got ${JSON.stringify(args)}.`,
    );
  }
  let text: string;
  try {
    text = JSON.stringify(args);
  } catch (err) {
    throw new ApiError(
      'invalid_task_args',
      `jsonArgs cannot be serialised as JSON: ${err instanceof Error ? err.message : String(err)}.`,
    );
  }
  if (Buffer.byteLength(text) > MAX_JSON_ARGS_BYTES) {
    throw new ApiError(
      'invalid_task_args',
      `jsonArgs is ${Buffer.byteLength(text)} bytes; the limit is ${MAX_JSON_ARGS_BYTES}. Pass large data through a connection or a file instead.`,
    );
  }
  return JSON.parse(text) as Record<string, unknown>;
}

function validateTimeout(timeout: unknown, fallback: number): number {
  if (timeout === undefined || timeout === null) return fallback;
  if (
    typeof timeout !== 'number' ||
    !Number.isInteger(timeout) ||
    timeout < 1 ||
    timeout > MAX_TIMEOUT_SECONDS
  ) {
    throw new ApiError(
      'invalid_task_args',
      `Invalid timeout ${JSON.stringify(timeout)}: give whole seconds from 1 to ${MAX_TIMEOUT_SECONDS}, e.g. 600.`,
      { timeout },
    );
  }
  return timeout;
}

function validateLimit(limit: unknown): void {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) {
    throw new ApiError(
      'invalid_request',
      `Invalid limit ${JSON.stringify(limit)}: give a whole number ≥ 0, e.g. 100.`,
      {
        limit,
      },
    );
  }
}
