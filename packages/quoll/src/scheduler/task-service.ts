import type { TaskRunLogLineDto, TaskRunStatus } from '@quoll/client/wire';
import type { Clock, TimerHandle } from '../clock/index.js';
import { systemClock } from '../clock/index.js';
import type { ClusterChannel, Notifier, SubscribeOptions } from '../cluster/index.js';
import { LocalNotifier, PeriodicLoop } from '../cluster/index.js';
import type { PackagedOrchestration, ResourceLimits, RunOutcome, TaskRunner } from '../runner/index.js';
import { LOST_RUN_REASON, STOPPED_RUN_REASON } from '../runner/index.js';
import { ApiError } from '../errors/index.js';
import { CronSchedule } from './cron-schedule.js';
import { decodeRunCursor, encodeRunCursor } from './run-cursor.js';
import { CronScheduler } from './cron-scheduler.js';
import { DEFAULT_BACKOFF, RestartBackoff } from './restart-backoff.js';
import type { BackoffPolicy } from './restart-backoff.js';
import type {
  ListRunsFilter,
  ListTasksFilter,
  NewTask,
  TaskLimits,
  RunOwner,
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
  /**
   * Resource limits of each run, each no looser than the server's ({@link TaskServiceOptions.limits});
   * unchecked input (an `invalid_task_args` error names the bad one). @default {} (the server's)
   */
  limits?: unknown;
  /**
   * The kind of token creating the task: its runs get a token of the same kind (an admin
   * token, or one bounded to the task's workspace), and workspace-scoped creators may only
   * start runs when runs are sandboxed (or unsandboxed runs are allowed). @default 'admin'
   */
  creator?: 'admin' | 'workspace';
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
  /**
   * Checks that an orchestration can run (throws like `resolvePackage`) without preparing
   * it on this node. @default resolvePackage
   */
  checkPackage?: (orchestrationId: string) => Promise<void>;
  /** Should be the runner's clock. @default systemClock */
  clock?: Clock;
  /** Timeout of run-once and scheduled runs when none is given, in seconds. @default 900 */
  defaultTimeoutSeconds?: number;
  /** Restart policy of continuous tasks. @default DEFAULT_BACKOFF */
  backoff?: Partial<BackoffPolicy>;
  /** Most missed ticks recorded per task per outage. @default 100 */
  maxMissedTicksRecorded?: number;
  /**
   * Revokes every unrevoked run token (subject `task-run:<id>`) whose run is not running,
   * checking the runs in the same statement (a run another node creates meanwhile keeps its
   * token); called by {@link TaskService.start} and after lost runs are closed, so tokens of
   * runs a crashed server left behind stop working. @default none
   */
  revokeStaleRunTokens?: () => Promise<void>;
  /** Where background failures are reported. @default console.error */
  onError?: (err: unknown, context: string) => void;
  /**
   * Told once when a cron boundary the store refused (reported once through `onError`) is
   * taken on a later try. @default console.error
   */
  onRecovered?: (message: string) => void;
  /**
   * Who may create tasks when runs are not sandboxed: `allowed` = anyone; `admin-only` =
   * workspace-scoped creators are refused with `sandbox_unavailable`. @default 'allowed'
   */
  unsandboxedRuns?: 'allowed' | 'admin-only';
  /** Told of run starts, run ends and cron ticks (for metrics). @default none */
  observer?: TaskObserver;
  /**
   * The server's limits of each run: the defaults, and the ceilings a task's own limits must
   * stay under (null = none). @default no limits
   */
  limits?: ResourceLimits;
  /**
   * The least `memoryBytes` a task may set: what the Node.js of this server's runs needs to
   * start (Node 24: 600 MiB, see `nodeMemoryFloorBytes`); below it every run would fail
   * before its code starts. null = none. @default null
   */
  memoryFloorBytes?: number | null;
  /**
   * This node's id: runs it launches are recorded as its own and hold a lease it renews.
   * @default 'local'
   */
  nodeId?: string;
  /**
   * How long a run's lease lasts without renewal; this node renews every fifth of it, and
   * closes other nodes' runs whose lease ended as `failure (node lost: …)`. @default 15000
   */
  leaseMs?: number;
  /**
   * Whether this node runs task runs. A node that does not (`--no-tasks`) still accepts
   * tasks: their runs wait, unclaimed, until a node that runs tasks claims them. @default true
   */
  runsTasks?: boolean;
  /**
   * The timers of the coordination loop (lease renewal, lost runs, claims), every fifth of
   * `leaseMs`. @default systemClock, whatever `clock` is: tests that move `clock` by hand
   * keep a steady loop unless they pass their clock here too
   */
  coordinatorClock?: Clock;
  /**
   * How late another node may fire a cron tick before this one records it as missed: ticks
   * younger than this, at start or after this node fell behind, are fired here too (the store
   * gives each tick one run). For nodes of a cluster. @default 0
   */
  peerTickGraceMs?: number;
  /** Messages between nodes (kills, new tasks, runs to claim). @default an in-process LocalNotifier */
  notifier?: Notifier;
  /**
   * On stop, hand the continuous tasks whose runs this node stopped to another node (an
   * unclaimed run each) instead of leaving them to be found idle. For nodes of a cluster.
   * @default false
   */
  handOverOnStop?: boolean;
  /**
   * Create a cron tick's runs waiting (unclaimed) rather than this node's, so that any node
   * with a free slot claims them: this node takes what its own concurrency allows at once and
   * tells the others, and each node claims again as soon as one of its runs ends. Each
   * (task, tick) still has one run. For nodes of a cluster; one node keeps its tick runs in
   * its runner's queue. @default false
   */
  shareTickRuns?: boolean;
}

/** What {@link TaskService} reports as it works (the server's metrics listen). */
export interface TaskObserver {
  /** A run was handed to the runner. */
  runStarted(): void;
  /**
   * A run ended with this status (`success`, `failure`, `killed`, `timed_out`); `started` is
   * false for a run closed before it reached the runner.
   */
  runFinished(status: string, started: boolean): void;
  /** A cron boundary fired `lateMs` after its tick time. */
  tickFired(lateMs: number): void;
}

/** The reason a run gets when its node stopped renewing its lease (a crash, a lost network). */
export function nodeLostReason(nodeId: string | null): string {
  return `node lost: node ${nodeId ?? '(unknown)'} stopped renewing the run's lease`;
}

/**
 * The reason of a tick's run found waiting for a node, older than the lease, by a node starting
 * while no other node holds a run: it was left while every node was down, and is not replayed.
 */
export const MISSED_WAITING_WHILE_DOWN =
  "missed: no node took the tick's run before every node stopped; ticks missed while the cluster was down are not replayed";

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
  /** Continuous tasks this node has run (to hand them over when it stops). */
  private readonly continuousTasks = new Set<string>();
  /** Tasks whose kill has begun in this process; checked synchronously before any launch. */
  private readonly killing = new Set<string>();
  private readonly work = new Set<Promise<unknown>>();
  private state: 'new' | 'running' | 'stopping' = 'new';
  /** This node as the owner of the runs it launches. */
  private readonly owner: RunOwner;
  private readonly runsTasks: boolean;
  private readonly notifier: Notifier;
  /** Runs this node handed to its runner, by id: their task ids. */
  private readonly local = new Map<string, string>();
  /**
   * Runs this node claimed and has not launched yet (their task is being read), by id. Their
   * leases are renewed like those of {@link local} runs, and a round that failed before launching
   * them launches them in a later one: a claim is never left unrenewed, to be closed as lost.
   */
  private readonly claimed = new Map<string, TaskRunRecord>();
  /** Runs that ended here whose outcome the store did not take yet, by id (still in {@link local}). */
  private readonly unrecorded = new Map<
    string,
    { task: TaskRecord; run: TaskRunRecord; outcome: RunOutcome; since: number }
  >();
  /** Lease renewal, lost-run recovery, claims and re-arming: one loop per node. */
  private readonly coordinator: PeriodicLoop;
  private readonly coordinatorClock: Clock;
  /** The coordinator's interval: a fifth of the lease. */
  private readonly renewEveryMs: number;
  /** When ({@link coordinatorClock}) this node last renewed its leases. */
  private renewedAt = 0;
  private readonly unsubscribes: (() => void)[] = [];
  /** A continuous task idle this long (no run, no restart pending anywhere) is restarted by any node. */
  private readonly orphanAfterMs: number;
  /** See {@link TaskServiceOptions.shareTickRuns}. */
  private readonly shareTickRuns: boolean;
  /** The claim being made (claims are made one at a time, so free slots are never counted twice). */
  private claiming: Promise<void> | null = null;
  /** A claim was asked for while one was being made: it claims again once that one ends. */
  private claimAgain = false;

  constructor(private readonly options: TaskServiceOptions) {
    this.store = options.store;
    this.runner = options.runner;
    this.clock = options.clock ?? systemClock;
    this.defaultTimeout = options.defaultTimeoutSeconds ?? 900;
    this.onError = options.onError ?? ((err, context) => console.error(`quoll: tasks (${context}):`, err));
    this.backoff = new RestartBackoff(options.backoff);
    const leaseMs = options.leaseMs ?? 15_000;
    this.owner = { nodeId: options.nodeId ?? 'local', leaseMs };
    this.runsTasks = options.runsTasks ?? true;
    this.shareTickRuns = options.shareTickRuns ?? false;
    this.notifier = options.notifier ?? new LocalNotifier();
    this.orphanAfterMs = (options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs) + 2 * leaseMs;
    this.renewEveryMs = Math.max(50, Math.floor(leaseMs / 5));
    this.coordinatorClock = options.coordinatorClock ?? systemClock;
    this.coordinator = new PeriodicLoop({
      step: () => this.coordinate(),
      intervalMs: this.renewEveryMs,
      onError: (err) => this.onError(err, 'coordinating runs with the other nodes'),
      clock: this.coordinatorClock,
    });
    this.scheduler = new CronScheduler({
      // Shared tick runs are created waiting, for whichever nodes have free slots.
      owner: this.shareTickRuns ? null : this.owner,
      store: this.store,
      clock: this.clock,
      maxMissedRecorded: options.maxMissedTicksRecorded ?? 100,
      peerGraceMs: options.peerTickGraceMs ?? 0,
      onError: this.onError,
      ...(options.onRecovered === undefined ? {} : { onRecovered: options.onRecovered }),
      onTick: (_tick, lateMs) => options.observer?.tickFired(lateMs),
      onRuns: (runs) => {
        if (this.shareTickRuns) {
          this.offerTickRuns(runs);
          return;
        }
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
    const running = await this.store.runningRuns();
    await this.closeTickRunsLeftWhileDown(running);
    for (const run of running) {
      if (this.runner.has(run.id)) continue;
      // Other nodes' runs stay theirs until their lease ends (the coordinator closes them
      // then); runs waiting to be claimed stay waiting.
      if (run.nodeId !== this.owner.nodeId) continue;
      try {
        await this.runner.closeLostRun(run.id, run.pid, LOST_RUN_REASON);
      } catch (err) {
        this.onError(err, `closing the log of lost run ${run.id}`);
      }
      await this.store.finishRun(run.id, { status: 'failure', exitCode: null, reason: LOST_RUN_REASON });
    }
    // The lost runs' tokens were never revoked (the process died first): revoke them now.
    await this.revokeStaleTokens();
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
    const on = async (
      channel: ClusterChannel,
      handler: (payload: string) => void,
      options: SubscribeOptions = {},
    ): Promise<void> => {
      this.unsubscribes.push(await this.notifier.subscribe(channel, handler, options));
    };
    // After the listening connection re-opened, a kill, a new task or a run to claim may have
    // been announced meanwhile and lost: one coordinator round re-reads them all (renewal sees
    // kills of held runs, resync the tasks being killed and scheduled tasks, the claim runs).
    // One connection carries every channel, so one catch-up covers them.
    await on('quoll_task_kill', (taskId) => this.onKillMessage(taskId), {
      onCatchUp: () => this.coordinator.wake(),
    });
    await on('quoll_tasks', () => this.coordinator.wake());
    // Runs to claim: a claim alone, not a whole round (which also lists every task).
    await on('quoll_task_runs', () => this.claimSoon());
    await on('quoll_nodes', () => this.coordinator.wake());
    this.coordinator.start();
  }

  /**
   * At start: a tick's run still waiting for a node though its tick is older than the lease,
   * while no other node holds a live run, was left by a cluster that went down (the last node
   * stopped or died between creating it and claiming it): any task node up since would have
   * claimed it within a round, and busy nodes hold live leases. It is closed as missed, not run
   * now (spec: ticks missed while the cluster was down are not replayed); the close re-checks
   * that no node claimed it meanwhile.
   */
  private async closeTickRunsLeftWhileDown(running: readonly TaskRunRecord[]): Promise<void> {
    const oldest = this.clock.now() - this.owner.leaseMs;
    const stale = running.filter((r) => r.nodeId === null && r.tick !== null && r.tick < oldest);
    if (stale.length === 0) return;
    const expired = new Set((await this.store.expiredRuns()).map((r) => r.id));
    const othersUp = running.some(
      (r) => r.nodeId !== null && r.nodeId !== this.owner.nodeId && !expired.has(r.id),
    );
    if (othersUp) return;
    for (const run of stale) {
      try {
        await this.closeUnlaunched(run, 'failure', MISSED_WAITING_WHILE_DOWN, { unclaimed: true });
      } catch (err) {
        this.onError(err, `closing tick run ${run.id} left waiting while the cluster was down`);
      }
    }
  }

  /** Revokes the tokens of runs no longer running anywhere (a crash left them unrevoked). */
  private async revokeStaleTokens(): Promise<void> {
    await this.options.revokeStaleRunTokens?.();
  }

  /** Sends a message to every node (this one included); a failure is reported, not thrown. */
  private async publish(channel: ClusterChannel, payload: string): Promise<void> {
    try {
      await this.notifier.publish(channel, payload);
    } catch (err) {
      this.onError(err, `telling the other nodes (${channel} ${payload})`);
    }
  }

  /**
   * One round of the coordinator: renews the leases of this node's runs (stopping those it no
   * longer holds, and those whose task is being killed), closes runs whose node stopped
   * renewing theirs, claims runs waiting for a node, and arms scheduled tasks made elsewhere.
   */
  private async coordinate(): Promise<void> {
    if (this.state !== 'running') return;
    await this.renewLeases();
    await this.recordUnrecorded();
    if (this.state !== 'running') return;
    await this.closeLostRuns();
    if (!this.runsTasks || this.state !== 'running') return;
    await this.claimWaiting();
    await this.resync();
  }

  /**
   * Claims waiting runs for this node's free slots and launches them. Claims are made one at
   * a time: one asked for while another is being made is made after it (the same promise).
   */
  private claimWaiting(): Promise<void> {
    this.claimAgain = true;
    if (this.claiming !== null) return this.claiming;
    const claiming = (async () => {
      try {
        while (this.claimAgain && this.state === 'running') {
          this.claimAgain = false;
          await this.claimOnce();
        }
      } finally {
        this.claiming = null;
      }
    })();
    this.claiming = claiming;
    return claiming;
  }

  /** A claim outside the coordinator's rounds (runs were offered, or a slot freed here). */
  private claimSoon(): void {
    if (!this.runsTasks || this.state !== 'running') return;
    this.track(this.claimWaiting(), 'coordinating runs with the other nodes');
  }

  private async claimOnce(): Promise<void> {
    const free = this.runner.concurrencyLimit - this.local.size - this.claimed.size;
    // The runner's per-workspace cap holds for claims too: a run claimed over it would only
    // wait here while another node (or another workspace's run) could have had the slot.
    if (free > 0)
      for (const run of await this.store.claimRuns(this.owner, free, {
        workspaceLimit: this.runner.workspaceConcurrencyLimit,
      }))
        this.claimed.set(run.id, run);
    await this.launchClaimed();
  }

  /**
   * The runs of a cron boundary, created waiting ({@link TaskServiceOptions.shareTickRuns}):
   * this node claims what its free slots allow at once, the other nodes are told to claim the
   * rest. Also while stopping: the runs wait for the other nodes (or this one's next start).
   */
  private offerTickRuns(runs: readonly TaskRunRecord[]): void {
    this.claimSoon();
    const [first] = runs;
    if (first !== undefined) this.track(this.publish('quoll_task_runs', first.id), 'offering tick runs');
  }

  /**
   * Renews again when a renewal interval has passed since the last one: called between the
   * steps of a long round (many lost runs to close and restart), whose own leases must not run
   * out while it works (others would close them as lost and run them a second time).
   */
  private async renewIfDue(): Promise<void> {
    if (this.coordinatorClock.now() - this.renewedAt >= this.renewEveryMs) await this.renewLeases();
  }

  /**
   * Renews the leases of this node's runs; stops those it no longer holds, and those whose task
   * is being killed.
   */
  private async renewLeases(): Promise<void> {
    this.renewedAt = this.coordinatorClock.now();
    const mine = [...this.local.keys(), ...this.claimed.keys()];
    if (mine.length > 0) {
      const held = await this.store.renewRunLeases(this.owner, mine);
      const heldIds = new Set(held.map((h) => h.runId));
      for (const runId of mine) {
        if (heldIds.has(runId)) continue;
        // A claim another node closed meanwhile (this one stalled past its lease) is dropped.
        // Only claims this renewal asked about: one made while it waited for the store (a claim
        // on a message, or after a run ended) was not renewed because it was not asked about,
        // and is still this node's to launch.
        this.claimed.delete(runId);
        // Closed by another node (this one stalled past its lease): the process must stop.
        if (this.local.has(runId) && this.runner.kill(runId))
          this.onError(new Error(`run ${runId} is no longer held by this node; stopped it`), 'lease');
      }
      for (const h of held) if (h.taskStatus === 'pending_kill') this.onKillMessage(h.taskId);
    }
  }

  /** Launches the runs this node claimed, each once its task is read (see {@link claimed}). */
  private async launchClaimed(): Promise<void> {
    for (const run of [...this.claimed.values()]) {
      if (this.state !== 'running') return;
      await this.renewIfDue();
      const task = await this.store.getTask(run.taskId);
      if (!this.claimed.delete(run.id)) continue;
      // This node began stopping while it read the task: a tick's run it never started goes
      // back to waiting for the other nodes, as one it had not claimed would have stayed.
      if (
        this.state !== 'running' &&
        run.tick !== null &&
        task !== null &&
        !task.killed &&
        task.status !== 'pending_kill'
      ) {
        this.track(this.releaseClaim(run), `giving back tick run ${run.id}`);
        continue;
      }
      if (task === null) {
        await this.closeUnlaunched(run, 'failure', 'the task no longer exists');
        continue;
      }
      // Killed after this round claimed the run (its kill message may be late or lost): the run
      // is closed, not started (launch() closes the runs of a task being killed).
      if (task.killed || task.status === 'pending_kill') this.killing.add(task.id);
      this.launch(task, run);
    }
  }

  /**
   * Gives a run this node claimed and never started back to waiting, and tells the other nodes
   * to claim it (this node, stopping, no longer listens).
   */
  private async releaseClaim(run: TaskRunRecord): Promise<void> {
    const released = await this.store.releaseRun(run.id, this.owner);
    if (released !== null) await this.publish('quoll_task_runs', run.id);
  }

  /** Closes runs whose node stopped renewing their lease; continuous tasks start again. */
  private async closeLostRuns(): Promise<void> {
    let closedAny = false;
    for (const run of await this.store.expiredRuns()) {
      if (this.state !== 'running') break;
      await this.renewIfDue();
      const reason = nodeLostReason(run.nodeId);
      const closed = await this.store.closeExpiredRun(run.id, { status: 'failure', exitCode: null, reason });
      if (closed === null) continue;
      closedAny = true;
      try {
        await this.runner.writeFinalLine(run.id, 'failure', reason);
      } catch (err) {
        this.onError(err, `closing the log of lost run ${run.id}`);
      }
      const task = await this.store.getTask(run.taskId);
      if (task === null || task.killed) continue;
      if (task.status === 'pending_kill') {
        this.killing.add(task.id);
        await this.completeKillIfIdle(task.id);
      } else if (task.type === 'Continuous Run') {
        await this.startContinuousRun(task);
      }
    }
    if (closedAny) await this.revokeStaleTokens();
  }

  /**
   * Arms scheduled tasks created on other nodes and drops killed ones; restarts continuous
   * tasks nobody runs (their node stopped them and no restart is pending anywhere).
   */
  private async resync(): Promise<void> {
    const live = await this.store.listTasks({ killed: false });
    const scheduled = new Set<string>();
    for (const task of live) {
      if (this.state !== 'running') return;
      if (task.status === 'pending_kill') {
        if (!this.killing.has(task.id)) this.onKillMessage(task.id);
        continue;
      }
      if (this.killing.has(task.id)) continue;
      if (task.type === 'Scheduled Run') {
        scheduled.add(task.id);
        if (!this.scheduled.has(task.id)) {
          this.scheduled.set(task.id, task);
          this.scheduler.arm(task);
        }
      } else if (
        task.type === 'Continuous Run' &&
        task.status === 'started' &&
        task.lastRunStatus !== 'running' &&
        !this.restartTimers.has(task.id)
      ) {
        await this.renewIfDue();
        if (await this.isOrphaned(task)) await this.startContinuousRun(task);
      }
    }
    for (const id of [...this.scheduled.keys()]) {
      if (scheduled.has(id)) continue;
      this.scheduler.disarm(id);
      this.scheduled.delete(id);
    }
  }

  /**
   * True when nobody is going to start a run of this continuous task: its last run (or, with
   * none yet, the task itself) has not changed for longer than the longest restart back-off
   * plus two leases. A task with no run yet may be between its creation and its first run on
   * the node that created it, and that run is that node's to make.
   */
  private async isOrphaned(task: TaskRecord): Promise<boolean> {
    const [last] = await this.store.listRuns(task.id, { limit: 1 });
    const quietSince = Date.parse(last?.updatedAt ?? task.updatedAt);
    return this.clock.now() - quietSince > this.orphanAfterMs;
  }

  /** A task is being killed (by any node): no run of it starts here, and its runs here stop. */
  private onKillMessage(taskId: string): void {
    if (this.state !== 'running') return;
    this.killing.add(taskId);
    this.scheduler.disarm(taskId);
    this.scheduled.delete(taskId);
    this.cancelRestart(taskId);
    this.backoff.forget(taskId);
    for (const [runId, owner] of this.local) if (owner === taskId) this.runner.kill(runId);
    this.track(this.completeKillIfIdle(taskId), `completing the kill of task ${taskId}`);
  }

  private async resume(task: TaskRecord): Promise<void> {
    if (task.status === 'pending_kill') {
      // Its runs on other nodes end first; the last one to end marks it killed.
      this.killing.add(task.id);
      await this.completeKillIfIdle(task.id);
      return;
    }
    switch (task.type) {
      case 'Temporary Run':
        // Only a task whose run was never created (crash in between) still needs it.
        if (task.status === 'pending') await this.startOnce(task);
        return;
      case 'Scheduled Run':
        if (this.runsTasks) {
          this.scheduled.set(task.id, task);
          await this.scheduler.recoverAndArm(task);
        }
        if (task.status === 'pending') await this.store.setTaskStatus(task.id, 'started');
        return;
      case 'Continuous Run':
        // A task without any run may be another node's, created a moment ago: its first run
        // is that node's to make (the coordinator's rounds take it over if it never comes).
        if ((await this.store.listRuns(task.id, { limit: 1 })).length === 0 && !(await this.isOrphaned(task)))
          return;
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
    return (await this.startOnce(task)) ?? this.mustGet(task.id);
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
    if (this.runsTasks) {
      this.scheduled.set(task.id, task);
      this.scheduler.arm(task);
    }
    await this.store.setTaskStatus(task.id, 'started');
    // The other nodes arm it too: each tick runs once, on whichever node creates its run first.
    await this.publish('quoll_tasks', task.id);
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
    // A reason such as "crash loop" described the runs; once killed it no longer holds.
    this.crashLooping.delete(taskId);
    if (task.statusReason !== null) await this.store.setTaskStatusReason(taskId, null);
    // The node running one of its runs stops it on this message (or at its next lease
    // renewal, which sees the kill, if the message is lost).
    await this.publish('quoll_task_kill', taskId);
    for (const run of await this.store.listRuns(taskId, { status: 'running' })) {
      if (this.runner.kill(run.id)) continue;
      // Another node's run: that node stops it; a dead node's run is closed when its lease ends.
      if (run.nodeId !== null && run.nodeId !== this.owner.nodeId) continue;
      // A run waiting for a node is closed only if still unclaimed: a node that claimed it since
      // the list was read sees the kill when it reads the task to launch it, or when it renews.
      await this.closeUnlaunched(run, 'killed', 'the task was killed before the run started', {
        unclaimed: run.nodeId === null,
      });
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

  /**
   * One page of a task's runs, newest first: at most `limit` runs after the run `cursor` names
   * (the `nextCursor` of the previous page; none = from the newest). `nextCursor` is null when
   * no older run is left, and always without a limit (every run is on the page). Every run that
   * existed when paging started is listed once, in order; runs created meanwhile sort before the
   * first page unless the creating node's clock lags (creation time is that node's clock).
   * Throws `task_not_found`, or `invalid_request` for a bad filter or cursor.
   */
  async listRunsPage(
    taskId: string,
    options: { limit?: number; status?: TaskRunStatus | 'all'; cursor?: string } = {},
  ): Promise<{ runs: TaskRunRecord[]; nextCursor: string | null }> {
    const before = options.cursor !== undefined ? decodeRunCursor(options.cursor) : undefined;
    const filter: ListRunsFilter = {
      ...(options.status !== undefined ? { status: options.status } : {}),
      ...(before !== undefined ? { before } : {}),
    };
    if (options.limit === undefined) return { runs: await this.listRuns(taskId, filter), nextCursor: null };
    validateLimit(options.limit);
    const limit = Math.floor(options.limit);
    // One run more than asked says whether an older one is left, without a second query.
    const runs = await this.listRuns(taskId, {
      ...filter,
      limit: Math.min(limit + 1, Number.MAX_SAFE_INTEGER),
    });
    if (runs.length <= limit) return { runs, nextCursor: null };
    const page = runs.slice(0, limit);
    const last = page.at(-1);
    return { runs: page, nextCursor: last === undefined ? null : encodeRunCursor(last) };
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

  /** {@link TaskService.readRunLog}, streamed in constant memory whatever the log's size. */
  async runLogLines(
    runId: string,
    options: { limit?: number } = {},
  ): Promise<AsyncIterable<TaskRunLogLineDto>> {
    await this.getRun(runId);
    if (options.limit !== undefined) validateLimit(options.limit);
    return this.runner.runLogLines(runId, options);
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
    // A finished run whose log lost its final line (cut by a crash, removed) still ends.
    return this.runner.followRunLog(runId, signal, onFinal, async () => {
      const run = await this.store.getRun(runId);
      return run === null || run.status === 'running'
        ? null
        : { status: run.status, reason: run.reason ?? 'no reason recorded' };
    });
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
    for (const off of this.unsubscribes.splice(0)) off();
    await this.coordinator.stop();
    // A claim in flight ends before the claimed runs are closed below (it launches nothing now).
    await this.claiming?.catch(() => undefined);
    // From here until every run's outcome is stored, the runs being stopped are still this
    // node's: their leases are renewed meanwhile (a boundary in flight can hold the scheduler's
    // stop for seconds, and a run still preparing stops only once its preparation ends), or
    // another node would close them as lost and start continuous tasks while they still run.
    const renewing = new PeriodicLoop({
      step: async () => {
        const mine = [...this.local.keys()];
        if (mine.length > 0) await this.store.renewRunLeases(this.owner, mine);
      },
      intervalMs: this.renewEveryMs,
      onError: (err) => this.onError(err, 'renewing the leases of runs being stopped'),
      clock: this.coordinatorClock,
    });
    renewing.start();
    let continuous: Set<string>;
    try {
      // One more try for outcomes the store refused; left to the lease's expiry if it fails again.
      this.track(this.recordUnrecorded(), 'recording the outcomes of ended runs');
      // Claimed in a round that did not get to launch them: closed as a launch while stopping is.
      // A tick's run goes back to waiting for the other nodes (it never started here).
      for (const run of [...this.claimed.values()]) {
        this.claimed.delete(run.id);
        if (run.tick !== null) this.track(this.releaseClaim(run), `giving back tick run ${run.id}`);
        else this.track(this.closeUnlaunched(run, 'failure', STOPPED_RUN_REASON), `closing run ${run.id}`);
      }
      await this.scheduler.stop();
      for (const id of [...this.restartTimers.keys()]) this.cancelRestart(id);
      continuous = new Set(
        [...this.local.values()].filter(
          (taskId) => this.continuousTasks.has(taskId) && !this.killing.has(taskId),
        ),
      );
      await this.runner.stop();
      await this.drain();
    } finally {
      await renewing.stop();
    }
    if (this.options.handOverOnStop === true) await this.handOver(continuous);
  }

  /** Gives each continuous task this node stopped a run another node will claim. */
  private async handOver(taskIds: ReadonlySet<string>): Promise<void> {
    for (const taskId of taskIds) {
      try {
        const run = await this.store.createRun({ taskId, tick: null, owner: null });
        if (run !== null) await this.publish('quoll_task_runs', run.id);
      } catch (err) {
        this.onError(err, `handing task ${taskId} over to another node`);
      }
    }
  }

  /** Whether this node is still coordinating (false once stopped): for tests. */
  get coordinating(): boolean {
    return this.coordinator.active;
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
  ): Promise<Pick<NewTask, 'orchestrationId' | 'workspaceId' | 'name' | 'jsonArgs' | 'runsAs' | 'limits'>> {
    if (this.options.unsandboxedRuns === 'admin-only' && input.creator === 'workspace') {
      throw new ApiError(
        'sandbox_unavailable',
        'Task runs cannot be sandboxed on this server, so workspace-scoped tokens may not start them. ' +
          'An admin can install bubblewrap (see GET /v1/health for the reason) or start the server with --allow-unsandboxed-runs.',
      );
    }
    validateTaskName(input.name);
    const jsonArgs = validateJsonArgs(input.jsonArgs);
    const limits = validateLimits(
      input.limits,
      this.options.limits ?? null,
      this.options.memoryFloorBytes ?? null,
    );
    // Refuses unknown or unpackaged orchestrations before anything is written.
    if (this.options.checkPackage !== undefined) await this.options.checkPackage(input.orchestrationId);
    else await this.options.resolvePackage(input.orchestrationId);
    return {
      orchestrationId: input.orchestrationId,
      workspaceId: input.workspaceId,
      name: input.name,
      jsonArgs,
      // A run acts with its creator's rights, as in Wallaroo.
      runsAs: input.creator ?? 'admin',
      limits,
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

  /** Creates a run-once task's run and starts it; the task as its status update left it (null: killed meanwhile). */
  private async startOnce(task: TaskRecord): Promise<TaskRecord | null> {
    const run = await this.store.createRun({ taskId: task.id, tick: null, owner: this.runOwner() });
    // This node's run goes to the runner before the status is written: on a database a round
    // trip away, that is one round trip less before the run's first line.
    const local = run !== null && run.nodeId === this.owner.nodeId;
    if (local) this.launch(task, run);
    const started = await this.store.setTaskStatus(task.id, 'started');
    if (run !== null && !local) await this.launchOrOffer(task, run);
    return started;
  }

  private async startContinuousRun(task: TaskRecord): Promise<void> {
    this.restartTimers.delete(task.id);
    if (this.state !== 'running' || this.killing.has(task.id)) return;
    const run = await this.store.createRun({ taskId: task.id, tick: null, owner: this.runOwner() });
    if (run !== null) await this.launchOrOffer(task, run);
  }

  /** This node for the runs it creates, or null (unclaimed) when it does not run tasks. */
  private runOwner(): RunOwner | null {
    return this.runsTasks ? this.owner : null;
  }

  /** Launches a run created for this node, or tells the nodes that run tasks to claim it. */
  private async launchOrOffer(task: TaskRecord, run: TaskRunRecord): Promise<void> {
    if (run.nodeId === this.owner.nodeId) this.launch(task, run);
    else await this.publish('quoll_task_runs', run.id);
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
    this.options.observer?.runStarted();
    if (task.type === 'Continuous Run') this.continuousTasks.add(task.id);
    this.local.set(run.id, task.id);
    const handle = this.runner.start({
      runId: run.id,
      taskId: task.id,
      workspaceId: task.workspaceId,
      runsAs: task.runsAs,
      jsonArgs: task.jsonArgs,
      timeoutSeconds: task.timeout,
      limits: task.limits,
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
    let closed: TaskRunRecord | null;
    try {
      closed = await this.storeOutcome(run, outcome);
    } catch (err) {
      // Kept in `local`, so its lease is still renewed: the coordinator's next rounds store the
      // outcome again, instead of the run being closed as lost once the lease runs out.
      this.unrecorded.set(run.id, { task, run, outcome, since: this.coordinatorClock.now() });
      throw err;
    }
    this.local.delete(run.id);
    // A slot freed here: a tick's run waiting for a node takes it now, not at the next round.
    if (this.shareTickRuns) this.claimSoon();
    await this.afterFinish(task, outcome, closed);
  }

  /**
   * Stores the outcomes whose first write failed (see {@link unrecorded}), each on its own: a
   * failure is reported and the round goes on. One the store still refuses a lease after it
   * ended is given up: the run leaves this node, whose lease then runs out, and a round (here or
   * on another node) closes it as lost.
   */
  private async recordUnrecorded(): Promise<void> {
    for (const { task, run, outcome, since } of [...this.unrecorded.values()]) {
      let closed: TaskRunRecord | null;
      try {
        closed = await this.storeOutcome(run, outcome);
      } catch (err) {
        const givingUp = this.coordinatorClock.now() - since >= this.owner.leaseMs;
        if (givingUp) {
          this.unrecorded.delete(run.id);
          this.local.delete(run.id);
        }
        this.onError(
          err,
          givingUp
            ? `recording the outcome of run ${run.id} (given up: its lease will run out)`
            : `recording the outcome of run ${run.id} (will retry)`,
        );
        continue;
      }
      this.unrecorded.delete(run.id);
      this.local.delete(run.id);
      this.track(this.afterFinish(task, outcome, closed), `after run ${run.id}`);
    }
  }

  /**
   * Stores a run's outcome; null when someone else closed the run first. A run found already
   * closed with exactly this outcome was closed by an earlier write of this node whose reply was
   * lost (the connection broke after the commit): that is this node's close, and what follows it
   * (the continuous restart with its backoff) depends on the stored outcome, not on which write
   * answered. No other closer writes a runner's outcome: another node closes a run as
   * `node lost`, and runs the runner never held are closed with reasons of their own.
   */
  private async storeOutcome(run: TaskRunRecord, outcome: RunOutcome): Promise<TaskRunRecord | null> {
    const result = { status: outcome.status, exitCode: outcome.exitCode, reason: outcome.reason };
    const closed = await this.store.finishRun(run.id, result);
    if (closed !== null) return closed;
    const stored = await this.store.getRun(run.id);
    const ours =
      stored !== null &&
      stored.status === result.status &&
      stored.exitCode === result.exitCode &&
      stored.reason === result.reason;
    return ours ? stored : null;
  }

  /**
   * After a run's outcome was stored: a run another node had already closed (this one stalled
   * past its lease) was dealt with there, continuous restart included, so only a kill in
   * progress is completed here.
   */
  private async afterFinish(
    task: TaskRecord,
    outcome: RunOutcome,
    closed: TaskRunRecord | null,
  ): Promise<void> {
    if (closed !== null) return this.afterRunRecorded(task, outcome);
    await this.completeKillIfIdle(task.id);
  }

  private async afterRunRecorded(task: TaskRecord, outcome: RunOutcome): Promise<void> {
    this.options.observer?.runFinished(outcome.status, true);
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

  /**
   * Ends a run the runner never held; the log line is written only by whoever closed it. With
   * `unclaimed`, only while no node has claimed it (then that node's to stop).
   */
  private async closeUnlaunched(
    run: TaskRunRecord,
    status: RunOutcome['status'],
    reason: string,
    { unclaimed = false }: { unclaimed?: boolean } = {},
  ): Promise<void> {
    const result = { status, exitCode: null, reason };
    const closed = unclaimed
      ? await this.store.closeUnclaimedRun(run.id, result)
      : await this.store.finishRun(run.id, result);
    if (closed !== null) this.options.observer?.runFinished(status, false);
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

/** The limits a task may set, what each means for its message, and the server setting behind it. */
const LIMIT_FIELDS = [
  { key: 'memoryBytes', setting: 'QUOLL_TASK_MEMORY', unit: ' bytes' },
  { key: 'processes', setting: 'QUOLL_TASK_PROCESSES', unit: '' },
  { key: 'openFiles', setting: 'QUOLL_TASK_OPEN_FILES', unit: '' },
  { key: 'cpuSeconds', setting: 'QUOLL_TASK_CPU_SECONDS', unit: ' s' },
  { key: 'diskBytes', setting: 'QUOLL_TASK_DISK', unit: ' bytes' },
] as const;

/**
 * A task's own limits: an object of positive whole numbers under the known names, each no
 * looser than the server's (a task can ask for less, never more). Absent or null = {}.
 */
function validateLimits(raw: unknown, server: ResourceLimits | null, memoryFloor: number | null): TaskLimits {
  if (raw === undefined || raw === null) return {};
  const example =
    'e.g. { "memoryBytes": 1073741824, "processes": 64, "openFiles": 1024, "cpuSeconds": 600, "diskBytes": 1073741824 }';
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new ApiError('invalid_task_args', `Task limits must be a JSON object, ${example}.`, {
      limits: raw,
    });
  const known = new Set<string>(LIMIT_FIELDS.map((f) => f.key));
  for (const key of Object.keys(raw)) {
    if (!known.has(key))
      throw new ApiError(
        'invalid_task_args',
        `Unknown task limit "${key}": give memoryBytes, processes, openFiles, cpuSeconds or diskBytes, ${example}.`,
        { limit: key },
      );
  }
  const limits: TaskLimits = {};
  for (const { key, setting, unit } of LIMIT_FIELDS) {
    const value = (raw as Record<string, unknown>)[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
      throw new ApiError(
        'invalid_task_args',
        `Invalid task limit ${key} ${JSON.stringify(value)}: give a positive whole number.`,
        { limit: key, value },
      );
    const ceiling = server?.[key] ?? null;
    if (ceiling !== null && value > ceiling)
      throw new ApiError(
        'invalid_task_args',
        `Task limit ${key} ${value}${unit} is above this server's ${ceiling}${unit} (${setting}): a task can only lower a limit.`,
        { limit: key, value, serverLimit: ceiling },
      );
    if (key === 'memoryBytes' && memoryFloor !== null && value < memoryFloor)
      throw new ApiError(
        'invalid_task_args',
        `Task limit memoryBytes ${value} bytes is below ${memoryFloor} bytes (${Math.round(memoryFloor / 1024 ** 2)} MiB), the least the Node.js of this server's runs needs to start (Node 24 and later cannot reserve their code range below it, so every run would fail before its code starts). Give ${memoryFloor} or more (1 GiB recommended), or leave memoryBytes out.`,
        { limit: key, value, floor: memoryFloor },
      );
    limits[key] = value;
  }
  return limits;
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
  // A safe integer: past 2^53 a number is no longer exact, and the stores cannot bind 1e20.
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0) {
    throw new ApiError(
      'invalid_request',
      `Invalid limit ${JSON.stringify(limit)}: give a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, e.g. 100.`,
      {
        limit,
      },
    );
  }
}
